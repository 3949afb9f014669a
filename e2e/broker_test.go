//go:build e2e

// Package e2e drives the real broker: it builds nothing itself (make test-e2e
// builds the wasm first), starts `wrangler dev` on a free port with a private
// config directory, and talks to it with the project's Go client.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ams-dev/ams/internal/wranglerdev"
)

// Broker is a running `wrangler dev` serving the broker.
type Broker struct {
	*wranglerdev.Server
	Peppers map[string]string
	build   string
}

// BrokerOptions configure a broker.
type BrokerOptions struct {
	// Vars are written to .dev.vars; nil means fresh random peppers.
	Vars map[string]string
	// PersistDir keeps local KV and Durable Object state; empty means a temp dir.
	PersistDir string
	// Port is the port to listen on; zero means a free one.
	Port int
}

var repoRoot = func() string {
	dir, _ := filepath.Abs("..")
	return dir
}()

// StartBroker starts wrangler dev on a private copy of the build (so a
// rebuild during the run does not make wrangler reload it) and waits until
// /healthz answers.
func StartBroker(opts BrokerOptions) (*Broker, error) {
	wrangler := filepath.Join(repoRoot, "node_modules/.bin/wrangler")
	if _, err := os.Stat(wrangler); err != nil {
		return nil, fmt.Errorf("wrangler is missing: run `make deps` (make test-e2e does)")
	}
	build, err := os.MkdirTemp("", "ams-e2e-build-")
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"entry.mjs", "wasm_exec.js", "app.wasm"} {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "build", f))
		if err != nil {
			return nil, fmt.Errorf("%w: run `make build` (make test-e2e does)", err)
		}
		if err := os.WriteFile(filepath.Join(build, f), raw, 0o644); err != nil {
			return nil, err
		}
	}
	config, err := os.ReadFile(filepath.Join(repoRoot, "wrangler.toml"))
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
	srv, err := wranglerdev.Start(context.Background(), wranglerdev.Options{
		Name: "ams-e2e", Wrangler: wrangler, Config: config, Main: filepath.Join(build, "entry.mjs"),
		Vars: vars, ReadyPath: "/healthz", ReadyTimeout: 90 * time.Second, PersistDir: opts.PersistDir, Port: opts.Port,
	})
	if err != nil {
		os.RemoveAll(build)
		return nil, err
	}
	return &Broker{Server: srv, Peppers: vars, build: build}, nil
}

// Stop ends wrangler dev and its workerd.
func (b *Broker) Stop() {
	b.Server.Stop()
	os.RemoveAll(b.build)
}

// ownState is a fresh state directory (removed after the test) and fresh
// peppers, for a test that starts brokers of its own over one state.
func ownState(t *testing.T) (persist string, vars map[string]string) {
	t.Helper()
	persist, err := os.MkdirTemp("", "ams-e2e-state-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(persist) })
	return persist, map[string]string{"AMS_CREDENTIAL_PEPPER": randomHex(32), "AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(32)}
}

func randomHex(n int) string { return wranglerdev.RandomHex(n) }

func freePort() int {
	port, err := wranglerdev.FreePort()
	if err != nil {
		panic(err)
	}
	return port
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
