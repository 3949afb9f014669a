//go:build e2e

// Package e2e drives the real broker: it builds nothing itself (make test-e2e
// builds the wasm first), starts `wrangler dev` on a free port with a private
// config directory, and talks to it with the project's Go client.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Broker is a running `wrangler dev`.
type Broker struct {
	URL     string
	Peppers map[string]string
	dir     string
	cmd     *exec.Cmd
	logs    *syncBuffer
}

// BrokerOptions configure a broker.
type BrokerOptions struct {
	// Vars are written to .dev.vars; nil means fresh random peppers.
	Vars map[string]string
	// PersistDir keeps local KV and Durable Object state; empty means a temp dir.
	PersistDir string
}

var repoRoot = func() string {
	dir, _ := filepath.Abs("..")
	return dir
}()

// StartBroker starts wrangler dev and waits until /healthz answers.
func StartBroker(opts BrokerOptions) (*Broker, error) {
	for _, f := range []string{"build/app.wasm", "build/wasm_exec.js", "node_modules/.bin/wrangler"} {
		if _, err := os.Stat(filepath.Join(repoRoot, f)); err != nil {
			return nil, fmt.Errorf("%s is missing: run `make build deps` (make test-e2e does)", f)
		}
	}
	dir, err := os.MkdirTemp("", "ams-e2e-")
	if err != nil {
		return nil, err
	}
	vars := opts.Vars
	if vars == nil {
		vars = map[string]string{
			"AMS_CREDENTIAL_PEPPER":       randomHex(32),
			"AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(32),
		}
	}
	var dotVars strings.Builder
	for k, v := range vars {
		fmt.Fprintf(&dotVars, "%s=%s\n", k, v)
	}
	if err := os.WriteFile(filepath.Join(dir, ".dev.vars"), []byte(dotVars.String()), 0o600); err != nil {
		return nil, err
	}
	config, err := os.ReadFile(filepath.Join(repoRoot, "wrangler.toml"))
	if err != nil {
		return nil, err
	}
	// A private copy of the build, so a rebuild during the run does not
	// make wrangler reload this broker.
	if err := os.Mkdir(filepath.Join(dir, "build"), 0o755); err != nil {
		return nil, err
	}
	for _, f := range []string{"entry.mjs", "wasm_exec.js", "app.wasm"} {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "build", f))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "build", f), raw, 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "wrangler.toml"), config, 0o644); err != nil {
		return nil, err
	}
	persist := opts.PersistDir
	if persist == "" {
		persist = filepath.Join(dir, "state")
	}
	port, inspector := freePort(), freePort()
	cmd := exec.Command(filepath.Join(repoRoot, "node_modules/.bin/wrangler"), "dev",
		"--config", filepath.Join(dir, "wrangler.toml"),
		"--port", fmt.Sprint(port), "--ip", "127.0.0.1",
		"--inspector-port", fmt.Sprint(inspector),
		"--persist-to", persist,
		"--show-interactive-dev-session=false")
	cmd.Dir = dir
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Env = append(os.Environ(), "WRANGLER_SEND_METRICS=false", "CI=true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &Broker{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Peppers: vars, dir: dir, cmd: cmd, logs: logs}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(b.URL + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return b, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.Stop()
	return nil, fmt.Errorf("wrangler dev did not become ready:\n%s", logs.String())
}

// Stop ends wrangler dev and its workerd.
func (b *Broker) Stop() {
	if b.cmd.Process != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	os.RemoveAll(b.dir)
}

// Logs returns everything wrangler dev printed so far.
func (b *Broker) Logs() string { return b.logs.String() }

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// broker is the deployment most tests share.
var broker *Broker

func TestMain(m *testing.M) {
	var err error
	broker, err = StartBroker(BrokerOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if code != 0 || os.Getenv("AMS_E2E_LOGS") != "" {
		fmt.Fprintf(os.Stderr, "---- wrangler dev output ----\n%s\n", broker.Logs())
	}
	broker.Stop()
	os.Exit(code)
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
