//go:build !js

package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ams-dev/ams/internal/wranglerdev"
)

// epoch is the load generator's clock: tokens carry nanoseconds since epoch
// (monotonic), so emit → receipt is measured on one clock.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// Token data: kind|publisher|seq|emit-ns. Opaque to both brokers.
func tokenData(kind byte, pub, seq int, ns int64) string {
	b := make([]byte, 0, 40)
	b = append(b, kind, '|')
	b = strconv.AppendInt(b, int64(pub), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, ns, 10)
	return string(b)
}

type token struct {
	kind byte
	pub  int
	seq  int
	ns   int64
}

func parseToken(data string) (token, bool) {
	parts := strings.SplitN(data, "|", 4)
	if len(parts) != 4 || len(parts[0]) != 1 {
		return token{}, false
	}
	pub, err1 := strconv.Atoi(parts[1])
	seq, err2 := strconv.Atoi(parts[2])
	ns, err3 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return token{}, false
	}
	return token{kind: parts[0][0], pub: pub, seq: seq, ns: ns}, true
}

// counters gathered by the readers of one case.
type counters struct {
	delivered  atomic.Int64 // measured tokens received by subscribers
	pubRecv    atomic.Int64 // measured tokens received by publishers (of other publishers)
	warm       atomic.Int64 // warm-up tokens received by subscribers
	selfEcho   atomic.Int64 // tokens a stream received of its own
	reorder    atomic.Int64 // a publisher's seq not above the last one seen
	foreign    atomic.Int64 // token data we did not send
	closed     atomic.Int64 // sockets closed under us before the end
	lastRecvNs atomic.Int64
}

func (c *counters) seen(ns int64) {
	for {
		old := c.lastRecvNs.Load()
		if ns <= old || c.lastRecvNs.CompareAndSwap(old, ns) {
			return
		}
	}
}

// member is one joined socket with its reader.
type member struct {
	p       peer
	pub     int  // publisher index, or -1 for a pure subscriber
	isSub   bool // counts deliveries and latency
	lastSeq map[int]int
	lat     []time.Duration
	done    chan struct{}
}

// read runs until ctx ends or the socket fails; it never blocks the caller.
func (m *member) read(ctx context.Context, c *counters, keepLatency bool) {
	defer close(m.done)
	for {
		isToken, data, self, err := m.p.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.closed.Add(1)
			}
			return
		}
		if !isToken {
			continue
		}
		at := now()
		t, ok := parseToken(data)
		if !ok {
			c.foreign.Add(1)
			continue
		}
		if self || (m.pub >= 0 && t.pub == m.pub) {
			c.selfEcho.Add(1)
			continue
		}
		if !m.isSub {
			if t.kind == 't' {
				c.pubRecv.Add(1)
			}
			continue
		}
		switch t.kind {
		case 'w':
			c.warm.Add(1)
		case 't':
			if last, ok := m.lastSeq[t.pub]; ok && t.seq <= last {
				c.reorder.Add(1)
			}
			m.lastSeq[t.pub] = t.seq
			if keepLatency { // before the count, which publishes it
				m.lat = append(m.lat, time.Duration(at-t.ns))
			}
			c.seen(at)
			c.delivered.Add(1)
		}
	}
}

// group is the sockets of one room for one case.
type group struct {
	tg     target
	room   room
	subs   []*member
	pubs   []*member
	c      counters
	ctx    context.Context
	cancel context.CancelFunc
}

// openGroup joins nSubs subscribers (slots 0..nSubs-1) then nPubs
// publishers, each reader started as soon as it joins.
func openGroup(ctx context.Context, tg target, nSubs, nPubs int, keepLatency bool) (*group, error) {
	if err := tg.Prepare(ctx, nSubs+nPubs); err != nil {
		return nil, err
	}
	r, err := tg.NewRoom(ctx)
	if err != nil {
		return nil, fmt.Errorf("new room: %w", err)
	}
	gctx, cancel := context.WithCancel(ctx)
	g := &group{tg: tg, room: r, ctx: gctx, cancel: cancel}
	join := func(slot, pub int, isSub bool) (*member, error) {
		jctx, jcancel := context.WithTimeout(ctx, 30*time.Second)
		defer jcancel()
		p, err := tg.Join(jctx, r, slot)
		if err != nil {
			return nil, fmt.Errorf("join slot %d: %w", slot, err)
		}
		m := &member{p: p, pub: pub, isSub: isSub, lastSeq: map[int]int{}, done: make(chan struct{})}
		go m.read(gctx, &g.c, keepLatency)
		return m, nil
	}
	// Subscribers join with bounded concurrency.
	g.subs = make([]*member, nSubs)
	errs := make(chan error, nSubs)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := 0; i < nSubs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			m, err := join(i, -1, true)
			if err != nil {
				errs <- err
				return
			}
			g.subs[i] = m
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		g.close()
		return nil, err
	}
	for i := 0; i < nPubs; i++ {
		m, err := join(nSubs+i, i, false)
		if err != nil {
			g.close()
			return nil, err
		}
		g.pubs = append(g.pubs, m)
	}
	return g, nil
}

// warmUp sends one 'w' token per publisher and waits until every
// subscriber has them: every join notice queued before is then delivered.
func (g *group) warmUp(timeout time.Duration) error {
	for i, m := range g.pubs {
		if err := m.p.Send(g.ctx, tokenData('w', i, 0, now())); err != nil {
			return err
		}
	}
	want := int64(len(g.pubs) * len(g.subs))
	err := waitFor(g.ctx, timeout, func() bool { return g.c.warm.Load() >= want || g.c.closed.Load() > 0 })
	if err == nil && g.c.closed.Load() > 0 {
		err = fmt.Errorf("%d sockets closed by the server", g.c.closed.Load())
	}
	return err
}

func (g *group) close() {
	g.cancel()
	for _, m := range append(append([]*member{}, g.subs...), g.pubs...) {
		if m != nil {
			m.p.Close()
			<-m.done
		}
	}
}

func (g *group) latencies() []time.Duration {
	var all []time.Duration
	for _, m := range g.subs {
		all = append(all, m.lat...)
	}
	return all
}

var errTimeout = errors.New("timed out")

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return errTimeout
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// servers are every running Worker; settle waits for all of them.
var servers []*wranglerdev.Server

// settle waits (bounded) until every server's workerd is nearly idle, so
// one case's tail (e.g. 1000 stream_left broadcasts) does not bleed into the
// next case, on either server. srv is kept for the call sites' clarity.
func settle(ctx context.Context, srv *wranglerdev.Server, max time.Duration) time.Duration {
	began := time.Now()
	var pids []int
	for _, s := range servers {
		pids = append(pids, s.Workerd()...)
	}
	if len(servers) == 0 {
		pids = srv.Workerd()
	}
	prev := wranglerdev.CPU(pids)
	for time.Since(began) < max && ctx.Err() == nil {
		time.Sleep(300 * time.Millisecond)
		cur := wranglerdev.CPU(pids)
		if cur-prev <= 20*time.Millisecond { // under ~7% of a core
			break
		}
		prev = cur
	}
	return time.Since(began)
}

// selfCPU is the load generator's own user+system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ---- fan-out throughput ----

type fanoutResult struct {
	Subscribers     int     `json:"subscribers"`
	Sent            int     `json:"tokens_sent"`
	Expected        int64   `json:"deliveries_expected"`
	Delivered       int64   `json:"deliveries"`
	Seconds         float64 `json:"seconds"`
	PerSecond       float64 `json:"deliveries_per_s"`
	TokensPerSecond float64 `json:"tokens_per_s"`
	Lost            int64   `json:"lost"`
	SelfEcho        int64   `json:"self_echo"`
	Reordered       int64   `json:"reordered"`
	Closed          int64   `json:"closed_under_us"`
	ServerCPUus     float64 `json:"server_cpu_us_per_delivery"`
	ClientCPUus     float64 `json:"client_cpu_us_per_delivery"`
	JoinSeconds     float64 `json:"join_all_seconds"`
	Error           string  `json:"error,omitempty"`
}

func runFanout(ctx context.Context, tg target, n int, cfg config) (res fanoutResult) {
	res.Subscribers = n
	joinBegan := time.Now()
	g, err := openGroup(ctx, tg, n, 1, false)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer func() {
		g.close()
		settle(ctx, tg.Server(), 90*time.Second)
	}()
	// Joining n streams costs AMS O(n^2) frames (joined lists every peer,
	// stream_joined goes to everyone): the warm-up waits for all of it.
	if err := g.warmUp(60*time.Second + time.Duration(n)*100*time.Millisecond); err != nil {
		res.Error = fmt.Sprintf("warm-up after %s: %v (closed under us: %d)", time.Since(joinBegan).Round(time.Second), err, g.c.closed.Load())
		return res
	}
	res.JoinSeconds = time.Since(joinBegan).Seconds()
	settle(ctx, tg.Server(), 10*time.Second)

	// At most `window` deliveries in flight: the publisher is never idle
	// waiting, yet queues inside workerd stay bounded, so the drain after the
	// send phase is short and every case ends in bounded time.
	window := int64(cfg.window)
	maxTokens := cfg.maxDeliveries / n
	pub := g.pubs[0]
	pids := tg.Server().Workerd()
	if cfg.beforeSend != nil {
		cfg.beforeSend()
	}
	cpu0, self0 := wranglerdev.CPU(pids), selfCPU()
	began := now()
	stopAt := time.Now().Add(cfg.fanoutDuration)
	sent := 0
	for sent < maxTokens && time.Now().Before(stopAt) && ctx.Err() == nil {
		for int64(sent)*int64(n)-g.c.delivered.Load() > window {
			if time.Now().After(stopAt) || g.c.closed.Load() > 0 {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		if time.Now().After(stopAt) {
			break
		}
		if err := pub.p.Send(g.ctx, tokenData('t', 0, sent, now())); err != nil {
			res.Error = "send: " + err.Error()
			break
		}
		sent++
	}
	res.Sent = sent
	res.Expected = int64(sent) * int64(n)
	_ = waitFor(ctx, cfg.drain, func() bool { return g.c.delivered.Load() >= res.Expected })
	// Work a target defers past the last delivery (AMS writes its replay
	// buffer in batches, at most AMS_REPLAY_FLUSH_MILLIS later) is counted too.
	time.Sleep(cpuSettle)
	cpu1, self1 := wranglerdev.CPU(pids), selfCPU()
	if cfg.afterDrain != nil {
		cfg.afterDrain()
	}
	res.Delivered = g.c.delivered.Load()
	elapsed := time.Duration(g.c.lastRecvNs.Load() - began)
	if elapsed > 0 {
		res.Seconds = elapsed.Seconds()
		res.PerSecond = float64(res.Delivered) / elapsed.Seconds()
		res.TokensPerSecond = res.PerSecond / float64(n)
	}
	if res.Delivered > 0 {
		res.ServerCPUus = float64((cpu1 - cpu0).Microseconds()) / float64(res.Delivered)
		res.ClientCPUus = float64((self1 - self0).Microseconds()) / float64(res.Delivered)
	}
	res.Lost = res.Expected - res.Delivered
	res.SelfEcho = g.c.selfEcho.Load()
	res.Reordered = g.c.reorder.Load()
	res.Closed = g.c.closed.Load()
	return res
}

// ---- paced latency ----

type latencyResult struct {
	Name        string  `json:"name"`
	Publishers  int     `json:"publishers"`
	Subscribers int     `json:"subscribers"`
	Rate        float64 `json:"tokens_per_s_per_publisher"`
	Sent        int     `json:"tokens_sent"`
	Expected    int64   `json:"deliveries_expected"`
	Delivered   int64   `json:"deliveries"`
	Lost        int64   `json:"lost"`
	SelfEcho    int64   `json:"self_echo"`
	Reordered   int64   `json:"reordered"`
	Closed      int64   `json:"closed_under_us"`
	Lat         dist    `json:"latency"`
	AllDeliv    int64   `json:"deliveries_incl_publishers"`
	ServerCPUus float64 `json:"server_cpu_us_per_delivery"`
	Error       string  `json:"error,omitempty"`
}

func runLatency(ctx context.Context, tg target, name string, pubs, subs int, rate float64, d time.Duration, cfg config) (res latencyResult) {
	res = latencyResult{Name: name, Publishers: pubs, Subscribers: subs, Rate: rate}
	g, err := openGroup(ctx, tg, subs, pubs, true)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer func() {
		g.close()
		settle(ctx, tg.Server(), 20*time.Second)
	}()
	if err := g.warmUp(60 * time.Second); err != nil {
		res.Error = "warm-up: " + err.Error()
		return res
	}
	settle(ctx, tg.Server(), 10*time.Second)
	perPub := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	pids := tg.Server().Workerd()
	cpu0 := wranglerdev.CPU(pids)
	start := time.Now().Add(20 * time.Millisecond)
	var sent atomic.Int64
	var wg sync.WaitGroup
	var sendErr atomic.Value
	for i, m := range g.pubs {
		wg.Add(1)
		go func(i int, m *member) {
			defer wg.Done()
			// Publishers are staggered evenly within one interval.
			offset := interval * time.Duration(i) / time.Duration(pubs)
			for k := 0; k < perPub && g.ctx.Err() == nil; k++ {
				time.Sleep(time.Until(start.Add(offset + time.Duration(k)*interval)))
				if err := m.p.Send(g.ctx, tokenData('t', i, k, now())); err != nil {
					sendErr.Store(err.Error())
					return
				}
				sent.Add(1)
			}
		}(i, m)
	}
	wg.Wait()
	res.Sent = int(sent.Load())
	res.Expected = sent.Load() * int64(subs)
	_ = waitFor(ctx, cfg.drain, func() bool { return g.c.delivered.Load() >= res.Expected })
	time.Sleep(cpuSettle) // as in runFanout
	cpu1 := wranglerdev.CPU(pids)
	if e, ok := sendErr.Load().(string); ok {
		res.Error = "send: " + e
	}
	res.Delivered = g.c.delivered.Load()
	res.Lost = res.Expected - res.Delivered
	res.SelfEcho = g.c.selfEcho.Load()
	res.Reordered = g.c.reorder.Load()
	res.Closed = g.c.closed.Load()
	if res.Delivered > 0 {
		res.ServerCPUus = float64((cpu1 - cpu0).Microseconds()) / float64(res.Delivered)
	}
	g.cancel() // stop readers before reading their slices
	for _, m := range append(append([]*member{}, g.subs...), g.pubs...) {
		m.p.Close()
		<-m.done
	}
	res.Lat = summarize(g.latencies())
	return res
}

// ---- join and control-plane latency ----

type joinResult struct {
	First       time.Duration `json:"-"`
	FirstMs     float64       `json:"first_join_new_object_ms"`
	Lat         dist          `json:"latency"`
	ServerCPUus float64       `json:"server_cpu_us_per_join"`
	Error       string        `json:"error,omitempty"`
}

// runJoin times n sequential joins (dial → usable) into one room, each
// socket closed before the next; the first join creates the object and is
// reported apart.
func runJoin(ctx context.Context, tg target, n int) (res joinResult) {
	if err := tg.Prepare(ctx, n+1); err != nil {
		res.Error = err.Error()
		return res
	}
	r, err := tg.NewRoom(ctx)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	pids := tg.Server().Workerd()
	var lat []time.Duration
	var cpu time.Duration
	for i := 0; i <= n && ctx.Err() == nil; i++ {
		jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		cpu0 := wranglerdev.CPU(pids)
		began := time.Now()
		p, err := tg.Join(jctx, r, i)
		d := time.Since(began)
		cancel()
		if err != nil {
			res.Error = fmt.Sprintf("join %d: %v", i, err)
			return res
		}
		if i == 0 {
			res.First, res.FirstMs = d, ms(d)
		} else {
			lat = append(lat, d)
			cpu += wranglerdev.CPU(pids) - cpu0
		}
		p.Close()
	}
	res.Lat = summarize(lat)
	if len(lat) > 0 {
		res.ServerCPUus = float64(cpu.Microseconds()) / float64(len(lat))
	}
	return res
}

type callResult struct {
	Lat         dist    `json:"latency"`
	ServerCPUus float64 `json:"server_cpu_us_per_call"`
	Error       string  `json:"error,omitempty"`
}

// runCalls times n sequential calls of fn on a kept-alive connection.
func runCalls(ctx context.Context, srv *wranglerdev.Server, n int, fn func(context.Context) error) (res callResult) {
	// One untimed call opens the kept-alive connection.
	if err := fn(ctx); err != nil {
		res.Error = err.Error()
		return res
	}
	pids := srv.Workerd()
	cpu0 := wranglerdev.CPU(pids)
	var lat []time.Duration
	for i := 0; i < n && ctx.Err() == nil; i++ {
		began := time.Now()
		if err := fn(ctx); err != nil {
			res.Error = err.Error()
			return res
		}
		lat = append(lat, time.Since(began))
	}
	res.Lat = summarize(lat)
	if len(lat) > 0 {
		res.ServerCPUus = float64((wranglerdev.CPU(pids) - cpu0).Microseconds()) / float64(len(lat))
	}
	return res
}

// cpuSettle is how long after the last delivery the workerd CPU is read:
// longer than the broker's replay flush bound.
var cpuSettle = 300 * time.Millisecond

// ---- hibernation wake ----

type wakeResult struct {
	Warm      dist    `json:"warm_latency"`
	WakeMs    float64 `json:"wake_first_token_ms"`
	WakeMaxMs float64 `json:"wake_first_token_all_subscribers_ms"`
	IdleS     float64 `json:"idle_seconds"`
	Woke      bool    `json:"hibernated_and_woke"`
	Lost      int64   `json:"lost"`
	SelfEcho  int64   `json:"self_echo"`
	Error     string  `json:"error,omitempty"`
}

// wakeSetup joins a publisher and two subscribers and measures warm tokens;
// the caller idles, then calls wakeFire.
type wakeRun struct {
	g   *group
	res wakeResult
}

const wakeSubs = 2

func wakeSetup(ctx context.Context, tg target, warmTokens int) *wakeRun {
	w := &wakeRun{}
	g, err := openGroup(ctx, tg, wakeSubs, 1, true)
	if err != nil {
		w.res.Error = err.Error()
		return w
	}
	w.g = g
	if err := g.warmUp(30 * time.Second); err != nil {
		w.res.Error = "warm-up: " + err.Error()
		return w
	}
	for k := 0; k < warmTokens && ctx.Err() == nil; k++ {
		if err := g.pubs[0].p.Send(g.ctx, tokenData('t', 0, k, now())); err != nil {
			w.res.Error = err.Error()
			return w
		}
		time.Sleep(30 * time.Millisecond)
	}
	want := int64(warmTokens * wakeSubs)
	_ = waitFor(ctx, 10*time.Second, func() bool { return g.c.delivered.Load() >= want })
	return w
}

// wakeFire sends one token after the idle period and times its receipt.
func (w *wakeRun) fire(ctx context.Context, warmTokens int, idle time.Duration, wakeLine func() int) {
	if w.g == nil || w.res.Error != "" {
		return
	}
	g := w.g
	before := wakeLine()
	warmN := int64(warmTokens * wakeSubs)
	if d := g.c.delivered.Load(); d < warmN {
		w.res.Error = fmt.Sprintf("warm tokens: %d of %d delivered", d, warmN)
		return
	}
	for _, m := range g.subs {
		m.lat = m.lat[:0:0] // readers are idle: nothing arrives during the idle period
	}
	w.res.IdleS = idle.Seconds()
	sentAt := now()
	if err := g.pubs[0].p.Send(g.ctx, tokenData('t', 0, warmTokens, sentAt)); err != nil {
		w.res.Error = err.Error()
		return
	}
	_ = waitFor(ctx, 30*time.Second, func() bool { return g.c.delivered.Load() >= warmN+wakeSubs })
	first, last := time.Duration(-1), time.Duration(0)
	if d := time.Duration(g.c.lastRecvNs.Load() - sentAt); d > 0 {
		last = d
	}
	time.Sleep(500 * time.Millisecond) // let the log line arrive
	w.res.Woke = wakeLine() > before
	w.res.Lost = warmN + wakeSubs - g.c.delivered.Load()
	w.res.SelfEcho = g.c.selfEcho.Load()
	g.cancel()
	for _, m := range append(append([]*member{}, g.subs...), g.pubs...) {
		m.p.Close()
		<-m.done
	}
	for _, m := range g.subs {
		for _, l := range m.lat {
			if first < 0 || l < first {
				first = l
			}
		}
	}
	w.res.WakeMs, w.res.WakeMaxMs = ms(first), ms(last)
}

// warmLatencies must be read before fire resets them.
func (w *wakeRun) warmLatencies() {
	if w.g != nil {
		w.res.Warm = summarize(w.g.latencies())
	}
}
