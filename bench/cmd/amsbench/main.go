//go:build !js

// Command amsbench is the benchmark of AMS (issue 3): it starts the broker
// and a plain-JS floor (bench/floor) under `wrangler dev` on 127.0.0.1,
// drives both with the same Go load generator, and reports every figure
// with its ratio to the floor measured in the same run, as a table on stdout
// and as JSON. `make bench` runs it after building; BENCHMARKS.md explains
// the figures. It is not a test: nothing asserts a timing, but the exit
// status is 1 if a token was lost or echoed to its own stream, or a case failed.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ams-dev/ams/internal/wranglerdev"
)

type config struct {
	Cases          []string      `json:"cases"`
	Quick          bool          `json:"quick"`
	Subscribers    []int         `json:"fanout_subscribers"`
	fanoutDuration time.Duration // send phase of a fan-out case
	FanoutSeconds  float64       `json:"fanout_send_seconds"`
	window         int           // deliveries in flight at most
	Window         int           `json:"fanout_window_deliveries"`
	maxDeliveries  int
	drain          time.Duration
	latencyDur     time.Duration
	LatencySeconds float64 `json:"latency_seconds"`
	Joins          int     `json:"joins"`
	Calls          int     `json:"calls"`
	idle           time.Duration
	IdleSeconds    float64           `json:"hibernation_idle_seconds"`
	ConnLimit      int               `json:"ams_connections_per_conversation"`
	ReplayEvents   string            `json:"ams_replay_events,omitempty"`
	Vars           map[string]string `json:"ams_vars,omitempty"`
	// Hooks around a fan-out send phase (the profiler uses them).
	beforeSend, afterDrain func()
}

var allCases = []string{"control", "join", "fanout", "latency", "wake", "profile"}

func main() {
	os.Exit(run())
}

func run() int {
	var (
		casesFlag = flag.String("cases", strings.Join(allCases, ","), "comma-separated subset of "+strings.Join(allCases, ",")+" (cold start, size and memory are always reported)")
		quick     = flag.Bool("quick", false, "smoke run: short phases, fewer samples")
		subsFlag  = flag.String("subs", "10,100,1000", "fan-out subscriber counts")
		fanoutDur = flag.Duration("fanout-duration", 0, "send phase of each fan-out case (default 4s, quick 1.5s)")
		latDur    = flag.Duration("latency-duration", 0, "length of each paced latency case (default 5s, quick 2s)")
		idle      = flag.Duration("idle", 20*time.Second, "idle time before the hibernation wake token (workerd hibernates after ~10-15s)")
		joins     = flag.Int("joins", 0, "sequential joins timed (default 100, quick 20)")
		calls     = flag.Int("calls", 0, "sequential control-plane calls timed (default 100, quick 30)")
		window    = flag.Int("window", 20000, "fan-out: most deliveries in flight (bounds queues and the drain)")
		out       = flag.String("out", "", "JSON results path (default bench/results.json)")
		md        = flag.Bool("markdown", false, "also print the table as Markdown")
		timeout   = flag.Duration("timeout", 8*time.Minute, "hard bound on the whole run")
		rootFlag  = flag.String("root", "", "repository root (default: found from the working directory)")
		brokerDir = flag.String("broker", "", "tree whose build/ and wrangler.toml are the broker measured (default -root), e.g. a saved \"before\" build; the floor and load generator stay this tree's")
		logs      = flag.Bool("logs", false, "print wrangler dev output at the end")
		replay    = flag.String("replay-events", "", "AMS_REPLAY_EVENTS for the broker (default: wrangler.toml's; 0 turns the replay buffer off)")
		varsFlag  = flag.String("vars", "", "more broker vars, NAME=VALUE,... (e.g. AMS_REPLAY_FLUSH_MILLIS=10)")
	)
	flag.Parse()

	cfg := config{Quick: *quick, idle: *idle, Window: *window, window: *window, maxDeliveries: 5_000_000, drain: 15 * time.Second}
	cfg.fanoutDuration, cfg.latencyDur, cfg.Joins, cfg.Calls = 4*time.Second, 5*time.Second, 100, 100
	if *quick {
		cfg.fanoutDuration, cfg.latencyDur, cfg.Joins, cfg.Calls = 1500*time.Millisecond, 2*time.Second, 20, 30
	}
	if *fanoutDur > 0 {
		cfg.fanoutDuration = *fanoutDur
	}
	if *latDur > 0 {
		cfg.latencyDur = *latDur
	}
	if *joins > 0 {
		cfg.Joins = *joins
	}
	if *calls > 0 {
		cfg.Calls = *calls
	}
	cfg.ReplayEvents = *replay
	cfg.Vars = map[string]string{}
	for _, kv := range strings.Split(*varsFlag, ",") {
		if name, value, ok := strings.Cut(kv, "="); ok {
			cfg.Vars[name] = value
		}
	}
	cfg.FanoutSeconds, cfg.LatencySeconds, cfg.IdleSeconds = cfg.fanoutDuration.Seconds(), cfg.latencyDur.Seconds(), cfg.idle.Seconds()
	for _, c := range strings.Split(*casesFlag, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !contains(allCases, c) {
			fmt.Fprintf(os.Stderr, "amsbench: unknown case %q (have %s)\n", c, strings.Join(allCases, ","))
			return 2
		}
		cfg.Cases = append(cfg.Cases, c)
	}
	for _, s := range strings.Split(*subsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 2000 {
			fmt.Fprintf(os.Stderr, "amsbench: bad -subs entry %q (1..2000)\n", s)
			return 2
		}
		cfg.Subscribers = append(cfg.Subscribers, n)
	}
	maxSubs := 0
	for _, n := range cfg.Subscribers {
		maxSubs = max(maxSubs, n)
	}
	// The publisher is a connection too; leave headroom over the default 1000.
	cfg.ConnLimit = max(1000, maxSubs+10)

	root := *rootFlag
	if root == "" {
		var err error
		if root, err = findRoot(); err != nil {
			fmt.Fprintln(os.Stderr, "amsbench:", err)
			return 2
		}
	}
	if *out == "" {
		*out = filepath.Join(root, "bench", "results.json")
	}
	for _, f := range []string{"build/app.wasm", "build/wasm_exec.js", "build/entry.mjs", "node_modules/.bin/wrangler", "bench/floor/entry.mjs", "bench/floor/wrangler.toml"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			fmt.Fprintf(os.Stderr, "amsbench: %s is missing: run `make deps build` (make bench does)\n", f)
			return 2
		}
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < uint64(maxSubs+256) {
		fmt.Fprintf(os.Stderr, "amsbench: open-file limit %d is too low for %d subscribers; lower -subs\n", rl.Cur, maxSubs)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	if *brokerDir == "" {
		*brokerDir = root
	}
	b := &bench{cfg: cfg, root: root, broker: *brokerDir, details: map[string]any{}}
	b.details["machine"] = describeMachine(root)
	b.details["config"] = cfg
	b.details["command"] = strings.Join(os.Args, " ")
	code := b.run(ctx)
	if *logs {
		for _, s := range []*wranglerdev.Server{b.amsSrv, b.floorSrv} {
			if s != nil {
				fmt.Fprintf(os.Stderr, "---- %s: wrangler dev output ----\n%s\n", s.Name, s.Logs())
			}
		}
	}
	b.stop()

	printTable(os.Stdout, b.rows, false)
	printProfiles(os.Stdout, b.profiles)
	if len(b.others) > 0 {
		fmt.Printf("\nWARNING: other workerd/node processes were running during the run: %s\n", strings.Join(b.others, " "))
	}
	if *md {
		fmt.Println()
		printTable(os.Stdout, b.rows, true)
	}
	for _, p := range b.problems {
		fmt.Fprintln(os.Stderr, "amsbench: PROBLEM:", p)
	}
	b.details["rows"] = b.rows
	b.details["profiles"] = b.profiles
	b.details["other_processes"] = b.others
	b.details["problems"] = b.problems
	raw, _ := json.MarshalIndent(b.details, "", "  ")
	if err := os.WriteFile(*out, append(raw, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "amsbench:", err)
		code = 1
	} else {
		fmt.Printf("\nresults: %s\n", *out)
	}
	if ctx.Err() != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "amsbench: interrupted or timed out:", ctx.Err())
		code = 1
	}
	return code
}

type bench struct {
	cfg       config
	root      string
	broker    string // where the broker's build/ and wrangler.toml come from
	amsSrv    *wranglerdev.Server
	floorSrv  *wranglerdev.Server
	ams       *amsTarget
	floor     *floorTarget
	ref       *floorTarget // the floor's stand-in for the hosted reference
	samplers  map[string]*wranglerdev.Sampler
	rows      []row
	details   map[string]any
	problems  []string
	profiles  []profileRun
	amsConfig []byte
	buildCopy string // the copy of build/ the broker runs from
	others    []string
	stopOnce  sync.Once
}

func (b *bench) problem(format string, args ...any) {
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

func (b *bench) stop() {
	b.stopOnce.Do(func() {
		for _, s := range []*wranglerdev.Server{b.amsSrv, b.floorSrv} {
			if s != nil {
				s.Stop()
			}
		}
		if b.buildCopy != "" {
			os.RemoveAll(b.buildCopy)
		}
	})
}

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

func (b *bench) run(ctx context.Context) (code int) {
	defer b.stop()
	defer func() {
		if p := recover(); p != nil {
			b.problem("panic: %v", p)
			code = 1
		}
	}()
	if err := b.start(ctx); err != nil {
		b.problem("start: %v", err)
		return 1
	}
	b.samplers = map[string]*wranglerdev.Sampler{
		"ams":   wranglerdev.Sample(b.amsSrv, 100*time.Millisecond),
		"floor": wranglerdev.Sample(b.floorSrv, 100*time.Millisecond),
	}
	b.cold(ctx)
	idleRSS := map[string]int64{}
	for name, s := range map[string]*wranglerdev.Server{"ams": b.amsSrv, "floor": b.floorSrv} {
		idleRSS[name], _ = wranglerdev.Memory(s.Workerd())
	}
	step := func(name string, fn func()) {
		if !contains(b.cfg.Cases, name) || ctx.Err() != nil {
			return
		}
		began := time.Now()
		fmt.Fprintf(os.Stderr, "amsbench: %s ...\n", name)
		fn()
		fmt.Fprintf(os.Stderr, "amsbench: %s done in %s\n", name, time.Since(began).Round(time.Millisecond))
	}
	b.others = wranglerdev.Others(b.amsSrv.Pgid(), b.floorSrv.Pgid())
	step("control", func() { b.control(ctx) })
	step("join", func() { b.join(ctx) })
	step("fanout", func() { b.fanout(ctx) })
	step("latency", func() { b.latency(ctx) })
	step("wake", func() { b.wake(ctx) })
	step("profile", func() { b.profile(ctx) })
	b.size()
	b.memory(idleRSS)
	for _, o := range wranglerdev.Others(b.amsSrv.Pgid(), b.floorSrv.Pgid()) {
		if !contains(b.others, o) {
			b.others = append(b.others, o)
		}
	}
	if len(b.problems) > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}

// start launches the two Workers one after the other, so each cold start is
// timed on an otherwise idle machine.
func (b *bench) start(ctx context.Context) error {
	wrangler := filepath.Join(b.root, "node_modules/.bin/wrangler")
	amsConfig, err := os.ReadFile(filepath.Join(b.broker, "wrangler.toml"))
	if err != nil {
		return err
	}
	// The 1000-subscriber case needs the publisher on top of 1000 sockets.
	limit := regexp.MustCompile(`(?m)^AMS_LIMIT_CONNECTIONS_PER_CONVERSATION\s*=.*$`)
	amsConfig = limit.ReplaceAll(amsConfig, []byte(fmt.Sprintf("AMS_LIMIT_CONNECTIONS_PER_CONVERSATION = \"%d\"", b.cfg.ConnLimit)))
	b.amsConfig = amsConfig
	// wrangler dev reloads (closing every socket) when its files change, so
	// the broker runs from a copy of build/: a rebuild during the run, e.g.
	// by a concurrent `make test`, does not disturb it.
	b.buildCopy, err = os.MkdirTemp("", "amsbench-build-")
	if err != nil {
		return err
	}
	for _, f := range []string{"entry.mjs", "app.wasm", "wasm_exec.js"} {
		raw, err := os.ReadFile(filepath.Join(b.broker, "build", f))
		if err == nil {
			err = os.WriteFile(filepath.Join(b.buildCopy, f), raw, 0o644)
		}
		if err != nil {
			return err
		}
	}
	b.amsSrv, err = wranglerdev.Start(ctx, wranglerdev.Options{
		Name: "ams", Wrangler: wrangler, Config: amsConfig,
		Main:      filepath.Join(b.buildCopy, "entry.mjs"),
		Vars:      b.amsVars(),
		ReadyPath: "/healthz", ReadyTimeout: 90 * time.Second,
	})
	if err != nil {
		return err
	}
	floorConfig, err := os.ReadFile(filepath.Join(b.root, "bench/floor/wrangler.toml"))
	if err != nil {
		return err
	}
	b.floorSrv, err = wranglerdev.Start(ctx, wranglerdev.Options{
		Name: "floor", Wrangler: wrangler, Config: floorConfig,
		Main:      filepath.Join(b.root, "bench/floor/entry.mjs"),
		ReadyPath: "/healthz", ReadyTimeout: 90 * time.Second,
	})
	if err != nil {
		return err
	}
	servers = []*wranglerdev.Server{b.amsSrv, b.floorSrv}
	h := newHTTPClient()
	b.ams = &amsTarget{srv: b.amsSrv, http: h}
	b.floor = &floorTarget{srv: b.floorSrv, http: h, path: "/room/"}
	b.ref = &floorTarget{srv: b.floorSrv, http: h, path: refPath}
	// The owner account; every case adds the accounts it needs.
	return b.ams.Prepare(ctx, 0)
}

// amsVars are the broker's .dev.vars: fresh peppers, and -replay-events
// (.dev.vars overrides wrangler.toml's [vars]).
func (b *bench) amsVars() map[string]string {
	vars := map[string]string{
		"AMS_CREDENTIAL_PEPPER":       wranglerdev.RandomHex(32),
		"AMS_PERMISSIVE_TOKEN_PEPPER": wranglerdev.RandomHex(32),
	}
	if b.cfg.ReplayEvents != "" {
		vars["AMS_REPLAY_EVENTS"] = b.cfg.ReplayEvents
	}
	for name, value := range b.cfg.Vars {
		vars[name] = value
	}
	return vars
}

func (b *bench) cold(ctx context.Context) {
	second := func(t target) *float64 {
		began := time.Now()
		if err := t.Health(ctx); err != nil {
			return nil
		}
		return f(ms(time.Since(began)))
	}
	a, fl := b.amsSrv, b.floorSrv
	b.details["cold"] = map[string]any{
		"ams":   map[string]any{"ready_ms": ms(a.Ready), "first_request_ms": ms(a.FirstRequest), "probes": a.Probes},
		"floor": map[string]any{"ready_ms": ms(fl.Ready), "first_request_ms": ms(fl.FirstRequest), "probes": fl.Probes},
	}
	b.add(newRow("cold", "process start -> first 200 /healthz", "ms", f(ms(a.Ready)), f(ms(fl.Ready)), "", ""))
	b.add(newRow("cold", "first request served (its own duration)", "ms", f(ms(a.FirstRequest)), f(ms(fl.FirstRequest)), "", "the readiness probe that first answered"))
	b.add(newRow("cold", "a later GET /healthz", "ms", second(b.ams), second(b.floor), "", "new connection after the cold one"))
}

func (b *bench) control(ctx context.Context) {
	mint := runCalls(ctx, b.amsSrv, b.cfg.Calls, b.ams.Control)
	health := runCalls(ctx, b.amsSrv, b.cfg.Calls, b.ams.Health)
	floor := runCalls(ctx, b.floorSrv, b.cfg.Calls, b.floor.Control)
	jsMint := runCalls(ctx, b.floorSrv, b.cfg.Calls, b.floor.Mint)
	b.details["control"] = map[string]any{"ams_mint": mint, "ams_healthz": health, "floor_healthz": floor, "floor_mint": jsMint}
	for _, r := range []callResult{mint, health, floor, jsMint} {
		if r.Error != "" {
			b.problem("control: %s", r.Error)
		}
	}
	b.add(newRow("control", "mint POST /v1/{ns}/conversations p50", "ms", f(mint.Lat.P50ms), f(jsMint.Lat.P50ms), "<=2", "floor = JS POST /mint, the same KV operations"))
	b.add(newRow("control", "mint POST /v1/{ns}/conversations p99", "ms", f(mint.Lat.P99ms), f(jsMint.Lat.P99ms), "<=2", ""))
	b.add(newRow("control", "workerd CPU per mint (Go vs JS, same KV operations)", "us", f(mint.ServerCPUus), f(jsMint.ServerCPUus), "", "10 ms tick resolution"))
	b.add(newRow("control", "GET /healthz p50 (Go worker vs JS)", "ms", f(health.Lat.P50ms), f(floor.Lat.P50ms), "<=1.5", ""))
	b.add(newRow("control", "GET /healthz p99 (Go worker vs JS)", "ms", f(health.Lat.P99ms), f(floor.Lat.P99ms), "", ""))
	b.add(newRow("control", "workerd CPU per mint / per healthz", "us", f(mint.ServerCPUus), f(floor.ServerCPUus), "", "10 ms tick resolution"))
}

func (b *bench) join(ctx context.Context) {
	a := runJoin(ctx, b.ams, b.cfg.Joins)
	settle(ctx, b.amsSrv, 10*time.Second)
	fl := runJoin(ctx, b.floor, b.cfg.Joins)
	settle(ctx, b.floorSrv, 10*time.Second)
	b.details["join"] = map[string]any{"ams": a, "floor": fl}
	for _, r := range []joinResult{a, fl} {
		if r.Error != "" {
			b.problem("join: %s", r.Error)
		}
	}
	b.add(newRow("join", "dial -> joined/hello p50", "ms", f(a.Lat.P50ms), f(fl.Lat.P50ms), "<=1.5", ""))
	b.add(newRow("join", "dial -> joined/hello p99", "ms", f(a.Lat.P99ms), f(fl.Lat.P99ms), "<=2", ""))
	b.add(newRow("join", "first join (creates the object)", "ms", f(a.FirstMs), f(fl.FirstMs), "", ""))
	b.add(newRow("join", "workerd CPU per join", "us", f(a.ServerCPUus), f(fl.ServerCPUus), "", ""))
}

func (b *bench) fanout(ctx context.Context) {
	var all []map[string]any
	for _, n := range b.cfg.Subscribers {
		a := runFanout(ctx, b.ams, n, b.cfg)
		fl := runFanout(ctx, b.floor, n, b.cfg)
		ref := runFanout(ctx, b.ref, n, b.cfg)
		all = append(all, map[string]any{"ams": a, "floor": fl, "reference_stand_in": ref})
		for _, r := range []fanoutResult{a, fl, ref} {
			b.checkIntegrity(fmt.Sprintf("fanout %d subs", n), r.Error, r.Lost, r.SelfEcho, r.Reordered, r.Closed)
		}
		target, cpuTarget := "", ""
		if n <= 100 {
			target = ">=0.8"
		}
		switch n {
		case 10:
			cpuTarget = "<=1.25"
		case 100:
			cpuTarget = "<=1.1"
		}
		b.add(newRow("fanout", fmt.Sprintf("1 pub x %d subs deliveries/s", n), "1/s", f(a.PerSecond), f(fl.PerSecond), target, ""))
		b.add(newRow("fanout", fmt.Sprintf("1 pub x %d subs workerd CPU/delivery", n), "us", f(a.ServerCPUus), f(fl.ServerCPUus), cpuTarget, ""))
		b.add(newRow("fanout", fmt.Sprintf("1 pub x %d subs CPU/delivery, JS reference stand-in", n), "us", f(ref.ServerCPUus), f(fl.ServerCPUus), "", "AMS column: plain-JS parse+stamp+forward"))
		b.add(newRow("fanout", fmt.Sprintf("1 pub x %d subs lost / self-echo", n), "count", f(float64(a.Lost+a.SelfEcho)), f(float64(fl.Lost+fl.SelfEcho)), "", "must be 0"))
	}
	b.details["fanout"] = all
}

func (b *bench) latency(ctx context.Context) {
	type spec struct {
		name       string
		pubs, subs int
		rate       float64
	}
	var all []map[string]any
	for _, s := range []spec{{"100 tok/s -> 10 subs", 1, 10, 100}, {"20 pubs x 20 subs @ 20 tok/s", 20, 20, 20}} {
		a := runLatency(ctx, b.ams, s.name, s.pubs, s.subs, s.rate, b.cfg.latencyDur, b.cfg)
		fl := runLatency(ctx, b.floor, s.name, s.pubs, s.subs, s.rate, b.cfg.latencyDur, b.cfg)
		all = append(all, map[string]any{"ams": a, "floor": fl})
		for _, r := range []latencyResult{a, fl} {
			b.checkIntegrity("latency "+s.name, r.Error, r.Lost, r.SelfEcho, r.Reordered, r.Closed)
		}
		p50Target := ""
		if s.pubs == 1 {
			p50Target = "<=1.3"
		}
		b.add(newRow("latency", s.name+" p50", "ms", f(a.Lat.P50ms), f(fl.Lat.P50ms), p50Target, ""))
		b.add(newRow("latency", s.name+" p99", "ms", f(a.Lat.P99ms), f(fl.Lat.P99ms), "<=1.5", ""))
		b.add(newRow("latency", s.name+" max", "ms", f(a.Lat.MaxMs), f(fl.Lat.MaxMs), "", ""))
		b.add(newRow("latency", s.name+" lost / self-echo", "count", f(float64(a.Lost+a.SelfEcho)), f(float64(fl.Lost+fl.SelfEcho)), "", "must be 0"))
	}
	b.details["latency"] = all
}

func (b *bench) wake(ctx context.Context) {
	const warm = 20
	a := wakeSetup(ctx, b.ams, warm)
	fl := wakeSetup(ctx, b.floor, warm)
	a.warmLatencies()
	fl.warmLatencies()
	// Both idle at once; AMS is woken first, then the floor (idle a little longer).
	fmt.Fprintf(os.Stderr, "amsbench: idling %s for hibernation ...\n", b.cfg.idle)
	select {
	case <-ctx.Done():
	case <-time.After(b.cfg.idle):
	}
	a.fire(ctx, warm, b.cfg.idle, func() int { return b.amsSrv.Count("conversation object woke") })
	fl.fire(ctx, warm, b.cfg.idle, func() int { return b.floorSrv.Count("floor: room woke") })
	b.details["wake"] = map[string]any{"ams": a.res, "floor": fl.res}
	for _, r := range []wakeResult{a.res, fl.res} {
		b.checkIntegrity("wake", r.Error, r.Lost, r.SelfEcho, 0, 0)
	}
	note := func(w wakeResult) string {
		if w.Woke {
			return "hibernated"
		}
		return "NOT hibernated"
	}
	b.add(newRow("wake", "warm token p50 (before idle)", "ms", f(a.res.Warm.P50ms), f(fl.res.Warm.P50ms), "", ""))
	b.add(newRow("wake", fmt.Sprintf("first token after %s idle", b.cfg.idle), "ms", f(a.res.WakeMs), f(fl.res.WakeMs), "",
		"ams "+note(a.res)+", floor "+note(fl.res)))
	if !a.res.Woke {
		b.problem("wake: no AMS wake-up line in the logs after %s idle: the object did not hibernate (raise -idle?)", b.cfg.idle)
	}
}

func (b *bench) size() {
	path := filepath.Join(b.buildCopy, "app.wasm")
	raw, err := os.ReadFile(path)
	if err != nil {
		b.problem("size: %v", err)
		return
	}
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = w.Write(raw)
	_ = w.Close()
	floorRaw, _ := os.ReadFile(filepath.Join(b.root, "bench/floor/entry.mjs"))
	b.details["size"] = map[string]any{"wasm_bytes": len(raw), "wasm_gzip_bytes": gz.Len(), "floor_entry_bytes": len(floorRaw)}
	b.add(newRow("size", "build/app.wasm raw", "KiB", f(float64(len(raw))/1024), nil, "", fmt.Sprintf("floor entry.mjs: %d bytes", len(floorRaw))))
	b.add(newRow("size", "build/app.wasm gzip -9", "KiB", f(float64(gz.Len())/1024), nil, "", ""))
}

func (b *bench) memory(idle map[string]int64) {
	peaks := map[string][3]int64{}
	for name, s := range map[string]*wranglerdev.Server{"ams": b.amsSrv, "floor": b.floorSrv} {
		b.samplers[name].Stop(s)
		rss, hwm, _ := b.samplers[name].Peak()
		peaks[name] = [3]int64{idle[name], rss, hwm}
	}
	mib := func(v int64) *float64 { return f(float64(v) / (1 << 20)) }
	b.details["memory"] = map[string]any{
		"ams":   map[string]int64{"idle_rss_bytes": peaks["ams"][0], "peak_rss_sampled_bytes": peaks["ams"][1], "vm_hwm_bytes": peaks["ams"][2]},
		"floor": map[string]int64{"idle_rss_bytes": peaks["floor"][0], "peak_rss_sampled_bytes": peaks["floor"][1], "vm_hwm_bytes": peaks["floor"][2]},
	}
	b.add(newRow("memory", "workerd RSS after start", "MiB", mib(peaks["ams"][0]), mib(peaks["floor"][0]), "", ""))
	b.add(newRow("memory", "workerd peak RSS (VmHWM)", "MiB", mib(peaks["ams"][2]), mib(peaks["floor"][2]), "", "whole run"))
}

func (b *bench) checkIntegrity(what, errText string, lost, self, reordered, closed int64) {
	if errText != "" {
		b.problem("%s: %s", what, errText)
	}
	if lost != 0 || self != 0 || reordered != 0 || closed != 0 {
		b.problem("%s: lost %d, self-echo %d, reordered %d, closed under us %d", what, lost, self, reordered, closed)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// findRoot walks up from the working directory to the module root.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if raw, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(raw, []byte("module github.com/ams-dev/ams")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the ams repository; pass -root")
		}
		dir = parent
	}
}
