//go:build !js

// Package wranglerdev starts a Worker under `wrangler dev` for the
// end-to-end tests and the benchmark: a private temporary directory holds the
// config and .dev.vars, the process runs in its own process group (so Stop
// kills wrangler and its workerd together) and only listens on 127.0.0.1. It
// also reads the memory and CPU of the workerd process from /proc.
package wranglerdev

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options describe one Worker to start.
type Options struct {
	// Name labels logs and errors ("ams", "floor").
	Name string
	// Wrangler is the wrangler binary.
	Wrangler string
	// Config is the wrangler.toml text; its `main` is replaced by Main.
	Config []byte
	// Main is the absolute path of the entry module.
	Main string
	// Vars go to .dev.vars (secrets).
	Vars map[string]string
	// ReadyPath is probed with GET until it answers 200.
	ReadyPath string
	// ReadyTimeout bounds the wait for readiness.
	ReadyTimeout time.Duration
	// PersistDir keeps local KV and Durable Object state across runs; empty
	// means a directory removed by Stop.
	PersistDir string
	// Port to listen on; zero means a free one. A restart on the same port
	// and PersistDir is the same broker to its clients (magic links name
	// the host).
	Port int
}

// Server is a running `wrangler dev`.
type Server struct {
	Name string
	URL  string
	// Inspector is the DevTools port of the Worker (see bench/cdp).
	Inspector int
	// Spawned is when the process was started.
	Spawned time.Time
	// Ready is the time from Spawned to the first 200 of ReadyPath.
	Ready time.Duration
	// FirstRequest is the duration of the probe that first answered 200:
	// the first request the Worker served after the process started (cold).
	FirstRequest time.Duration
	// Probes counts the readiness probes sent (refused ones included).
	Probes int

	dir    string
	state  string
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *syncBuffer
	once   sync.Once
}

var mainLine = regexp.MustCompile(`(?m)^main\s*=\s*".*"$`)

// Start starts the Worker and waits until it is ready. On error everything
// started is stopped.
func Start(ctx context.Context, opts Options) (*Server, error) {
	dir, err := os.MkdirTemp("", "amsbench-"+opts.Name+"-")
	if err != nil {
		return nil, err
	}
	s := &Server{Name: opts.Name, dir: dir, state: persistDir(opts, dir), logs: &syncBuffer{}}
	fail := func(err error) (*Server, error) {
		s.Stop()
		return nil, fmt.Errorf("%s: %w", opts.Name, err)
	}
	var dotVars strings.Builder
	for k, v := range opts.Vars {
		fmt.Fprintf(&dotVars, "%s=%s\n", k, v)
	}
	if err := os.WriteFile(filepath.Join(dir, ".dev.vars"), []byte(dotVars.String()), 0o600); err != nil {
		return fail(err)
	}
	if !mainLine.Match(opts.Config) {
		return fail(fmt.Errorf("config has no main line"))
	}
	config := mainLine.ReplaceAll(opts.Config, []byte(fmt.Sprintf("main = %q", opts.Main)))
	configPath := filepath.Join(dir, "wrangler.toml")
	if err := os.WriteFile(configPath, config, 0o644); err != nil {
		return fail(err)
	}
	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return fail(err)
		}
	}
	inspector, err := FreePort()
	if err != nil {
		return fail(err)
	}
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.Inspector = inspector
	s.cmd = exec.Command(opts.Wrangler, "dev",
		"--config", configPath,
		"--port", fmt.Sprint(port), "--ip", "127.0.0.1",
		"--inspector-port", fmt.Sprint(inspector),
		"--persist-to", persistDir(opts, dir),
		"--show-interactive-dev-session=false")
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.Env = append(os.Environ(), "WRANGLER_SEND_METRICS=false", "CI=true")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.Spawned = time.Now()
	if err := s.cmd.Start(); err != nil {
		return fail(err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func() { _ = s.cmd.Wait(); close(exited) }()

	// A probe client without keep-alive, so the first 200 is timed on its
	// own connection and nothing is shared with the measured phases.
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 60 * time.Second}
	deadline := time.Now().Add(opts.ReadyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-exited:
			return fail(fmt.Errorf("wrangler dev exited:\n%s", s.Logs()))
		default:
		}
		s.Probes++
		began := time.Now()
		res, err := probe.Get(s.URL + opts.ReadyPath)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				s.FirstRequest = time.Since(began)
				s.Ready = time.Since(s.Spawned)
				return s, nil
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fail(fmt.Errorf("not ready after %s:\n%s", opts.ReadyTimeout, s.Logs()))
}

// Stop kills the process group (wrangler and workerd) and removes the
// temporary directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			pgid := s.cmd.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
			}
			// Whatever is left of the group (workerd may outlive wrangler).
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			select {
			case <-s.exited:
			case <-time.After(5 * time.Second):
			}
		}
		os.RemoveAll(s.dir)
	})
}

// Logs returns what wrangler dev printed so far.
func (s *Server) Logs() string { return s.logs.String() }

// Count returns how many times substr occurs in the logs.
func (s *Server) Count(substr string) int { return strings.Count(s.Logs(), substr) }

// Workerd returns the pids of the workerd processes in the server's
// process group.
func (s *Server) Workerd() []int {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	return GroupProcesses(s.cmd.Process.Pid, "workerd")
}

// Group returns every pid of the server's process group.
func (s *Server) Group() []int {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	return GroupProcesses(s.cmd.Process.Pid, "")
}

// StateDir is where the server keeps its local KV and Durable Object state.
func (s *Server) StateDir() string { return s.state }

func persistDir(opts Options, dir string) string {
	if opts.PersistDir != "" {
		return opts.PersistDir
	}
	return filepath.Join(dir, "state")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
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
	// Bound what a chatty process can make us hold.
	if s.buf.Len() > 64<<20 {
		return len(p), nil
	}
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// Pgid is the server's process group, or 0.
func (s *Server) Pgid() int {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
