//go:build !js

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/ams-dev/ams/bench/cdp"
	"github.com/ams-dev/ams/internal/wranglerdev"
)

// profileRun is a V8 CPU profile of one target during one phase.
type profileRun struct {
	Target  string       `json:"target"`
	Phase   string       `json:"phase"`
	Work    string       `json:"work"`
	Profile *cdp.Profile `json:"profile,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// profile repeats short phases with the V8 sampling profiler attached
// through the inspector port, apart from (and after) the measured phases,
// since sampling slows the Worker. AMS is profiled on a second broker built
// from the same source without -s -w, so the wasm keeps its name section
// and the profile names Go functions; the code is the same.
func (b *bench) profile(ctx context.Context) {
	amsProf, stop, err := b.startNamedBroker(ctx)
	if err != nil {
		b.profiles = append(b.profiles, profileRun{Target: "ams", Phase: "setup", Error: err.Error()})
		amsProf = b.ams // fall back to the stripped build
	} else {
		defer stop()
	}
	for _, tg := range []target{amsProf, b.floor} {
		b.profiles = append(b.profiles, profileFanout(ctx, tg, 10, b.cfg))
		b.profiles = append(b.profiles, profileJoins(ctx, tg, 30))
		settle(ctx, tg.Server(), 10*time.Second)
	}
}

func (b *bench) startNamedBroker(ctx context.Context) (*amsTarget, func(), error) {
	dir, err := os.MkdirTemp("", "amsbench-named-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "app.wasm"), "./cmd/broker")
	build.Dir = b.broker
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("build named wasm: %v: %s", err, out)
	}
	for _, f := range []string{"entry.mjs", "wasm_exec.js"} {
		raw, err := os.ReadFile(filepath.Join(b.broker, "build", f))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, f), raw, 0o644)
		}
		if err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	opts := wranglerdev.Options{
		Name: "ams-profile", Wrangler: filepath.Join(b.root, "node_modules/.bin/wrangler"), Config: b.amsConfig,
		Main:      filepath.Join(dir, "entry.mjs"),
		Vars:      b.amsVars(),
		ReadyPath: "/healthz", ReadyTimeout: 90 * time.Second,
	}
	srv, err := wranglerdev.Start(ctx, opts)
	if err != nil && ctx.Err() == nil {
		// The free ports are picked before wrangler binds them; on a busy
		// machine another process can take one in between. Try once more.
		srv, err = wranglerdev.Start(ctx, opts)
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	tg := &amsTarget{srv: srv, http: newHTTPClient()}
	if err := tg.Prepare(ctx, 0); err != nil {
		srv.Stop()
		cleanup()
		return nil, nil, err
	}
	return tg, func() { srv.Stop(); cleanup() }, nil
}

// profileFanout profiles only the send phase (and drain) of a fan-out case.
func profileFanout(ctx context.Context, tg target, n int, cfg config) (run profileRun) {
	run = profileRun{Target: tg.Name(), Phase: fmt.Sprintf("fan-out send phase, 1 pub x %d subs", n)}
	s, err := cdp.Dial(ctx, tg.Server().Inspector)
	if err != nil {
		run.Error = err.Error()
		return run
	}
	defer s.Close()
	cfg.fanoutDuration = 2 * time.Second
	cfg.beforeSend = func() {
		if err := s.Start(ctx, 200*time.Microsecond); err != nil {
			run.Error = err.Error()
		}
	}
	cfg.afterDrain = func() {
		if run.Error != "" {
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		run.Profile, err = s.Stop(sctx, 40)
		if err != nil {
			run.Error = err.Error()
		}
	}
	r := runFanout(ctx, tg, n, cfg)
	run.Work = fmt.Sprintf("%d deliveries in %.2f s, %.0f/s (profiler attached)", r.Delivered, r.Seconds, r.PerSecond)
	if r.Error != "" && run.Error == "" {
		run.Error = r.Error
	}
	return run
}

// profileJoins profiles n sequential joins.
func profileJoins(ctx context.Context, tg target, n int) (run profileRun) {
	run = profileRun{Target: tg.Name(), Phase: fmt.Sprintf("%d sequential joins", n)}
	if err := tg.Prepare(ctx, n+1); err != nil {
		run.Error = err.Error()
		return run
	}
	s, err := cdp.Dial(ctx, tg.Server().Inspector)
	if err != nil {
		run.Error = err.Error()
		return run
	}
	defer s.Close()
	if err := s.Start(ctx, 200*time.Microsecond); err != nil {
		run.Error = err.Error()
		return run
	}
	r := runJoin(ctx, tg, n)
	run.Work = fmt.Sprintf("join p50 %.2f ms (profiler attached)", r.Lat.P50ms)
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if run.Profile, err = s.Stop(sctx, 40); err != nil {
		run.Error = err.Error()
	}
	return run
}

func printProfiles(w io.Writer, runs []profileRun) {
	if len(runs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nWhere the time goes (V8 sampling profile of the Worker isolate via the inspector; self time):")
	for _, r := range runs {
		fmt.Fprintf(w, "\n[%s] %s: %s\n", r.Target, r.Phase, r.Work)
		if r.Error != "" {
			fmt.Fprintf(w, "  profile failed: %s\n", r.Error)
		}
		p := r.Profile
		if p == nil {
			continue
		}
		fmt.Fprintf(w, "  sampled %.0f ms (workerd reports no idle state to V8: idle time shows up as native frames)\n", p.TotalMs)
		groups := make([]string, 0, len(p.Groups))
		for g := range p.Groups {
			groups = append(groups, g)
		}
		sort.Slice(groups, func(i, j int) bool { return p.Groups[groups[i]] > p.Groups[groups[j]] })
		for _, g := range groups {
			fmt.Fprintf(w, "  %6.1f%%  %8.1f ms  %s\n", pct(p.Groups[g], p.BusyMs), p.Groups[g], g)
		}
		fmt.Fprintln(w, "  top functions:")
		for i, e := range p.Top {
			if i == 15 {
				break
			}
			name := e.Function
			if name == "" {
				name = "(anonymous)"
			}
			if e.URL != "" && e.URL != "entry.js" && len(e.URL) < 20 {
				name += " @" + e.URL
			} else if e.URL == "entry.js" {
				name += " @entry.js"
			}
			fmt.Fprintf(w, "  %6.1f%%  %8.1f ms  %s\n", e.Percent, e.SelfMs, name)
		}
	}
}

func pct(v, total float64) float64 {
	if total == 0 {
		return 0
	}
	return v / total * 100
}
