//go:build !js

// Package cdp takes a V8 CPU profile of a `wrangler dev` Worker through its
// inspector port (the Chrome DevTools protocol), and sums self time by
// function, so the benchmark can say where a case's time goes.
package cdp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Session is a DevTools connection to one Worker.
type Session struct {
	ws      *websocket.Conn
	mu      sync.Mutex
	next    int
	pending map[int]chan json.RawMessage
	done    chan struct{}
}

// Dial connects to the inspector at 127.0.0.1:port.
func Dial(ctx context.Context, port int) (*Session, error) {
	// The inspector proxy admits local DevTools origins only.
	ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/ws", port), &websocket.DialOptions{
		HTTPHeader: http.Header{"Origin": {"http://localhost"}},
	})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(256 << 20)
	s := &Session{ws: ws, pending: map[int]chan json.RawMessage{}, done: make(chan struct{})}
	go s.readLoop()
	return s, nil
}

func (s *Session) readLoop() {
	defer close(s.done)
	for {
		_, raw, err := s.ws.Read(context.Background())
		if err != nil {
			return
		}
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal(raw, &msg) != nil || msg.ID == 0 {
			continue // events
		}
		s.mu.Lock()
		ch := s.pending[msg.ID]
		delete(s.pending, msg.ID)
		s.mu.Unlock()
		if ch != nil {
			if msg.Error != nil {
				ch <- append(json.RawMessage(`{"__error":`), append(msg.Error, '}')...)
			} else {
				ch <- msg.Result
			}
		}
	}
}

// Call sends one method and waits for its result.
func (s *Session) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	s.mu.Lock()
	s.next++
	id := s.next
	ch := make(chan json.RawMessage, 1)
	s.pending[id] = ch
	s.mu.Unlock()
	raw, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err := s.ws.Write(ctx, websocket.MessageText, raw); err != nil {
		return nil, err
	}
	select {
	case res := <-ch:
		if strings.HasPrefix(string(res), `{"__error":`) {
			return nil, fmt.Errorf("%s: %s", method, res)
		}
		return res, nil
	case <-s.done:
		return nil, fmt.Errorf("%s: inspector closed", method)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close ends the session.
func (s *Session) Close() { _ = s.ws.CloseNow() }

// Start enables the profiler and starts sampling every interval.
func (s *Session) Start(ctx context.Context, interval time.Duration) error {
	if _, err := s.Call(ctx, "Profiler.enable", map[string]any{}); err != nil {
		return err
	}
	if _, err := s.Call(ctx, "Profiler.setSamplingInterval", map[string]any{"interval": interval.Microseconds()}); err != nil {
		return err
	}
	_, err := s.Call(ctx, "Profiler.start", map[string]any{})
	return err
}

// Entry is the self time of one function.
type Entry struct {
	Function string  `json:"function"`
	URL      string  `json:"url,omitempty"`
	SelfMs   float64 `json:"self_ms"`
	Percent  float64 `json:"percent"`
}

// Profile is a summarized CPU profile.
type Profile struct {
	TotalMs float64 `json:"total_ms"`
	// BusyMs excludes (idle).
	BusyMs float64 `json:"busy_ms"`
	Top    []Entry `json:"top"`
	// Groups sums self time by category (Go wasm, Go↔JS glue, JS, GC, ...).
	Groups map[string]float64 `json:"groups_ms"`
}

// Stop ends sampling and summarizes the top n functions by self time.
var rawProfiles int

func (s *Session) Stop(ctx context.Context, n int) (*Profile, error) {
	raw, err := s.Call(ctx, "Profiler.stop", map[string]any{})
	if err != nil {
		return nil, err
	}
	if dir := os.Getenv("AMSBENCH_RAW_PROFILES"); dir != "" {
		rawProfiles++
		_ = os.WriteFile(fmt.Sprintf("%s/profile%d.json", dir, rawProfiles), raw, 0o644)
	}
	var res struct {
		Profile struct {
			Nodes []struct {
				ID        int `json:"id"`
				CallFrame struct {
					FunctionName string `json:"functionName"`
					URL          string `json:"url"`
				} `json:"callFrame"`
			} `json:"nodes"`
			Samples    []int   `json:"samples"`
			TimeDeltas []int64 `json:"timeDeltas"`
		} `json:"profile"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, err
	}
	type key struct{ fn, url string }
	nodes := map[int]key{}
	for _, nd := range res.Profile.Nodes {
		nodes[nd.ID] = key{nd.CallFrame.FunctionName, nd.CallFrame.URL}
	}
	self := map[key]float64{}
	var total, idle float64
	p := res.Profile
	for i, id := range p.Samples {
		// The delta after a sample is the time attributed to it.
		var d float64
		if i+1 < len(p.TimeDeltas) {
			d = float64(p.TimeDeltas[i+1]) / 1000
		}
		k := nodes[id]
		self[k] += d
		total += d
		if k.fn == "(idle)" {
			idle += d
		}
	}
	out := &Profile{TotalMs: round(total), BusyMs: round(total - idle), Groups: map[string]float64{}}
	for k, v := range self {
		if k.fn == "(idle)" {
			continue
		}
		out.Groups[group(k.fn, k.url)] += v
		out.Top = append(out.Top, Entry{Function: k.fn, URL: short(k.url), SelfMs: round(v)})
	}
	for g, v := range out.Groups {
		out.Groups[g] = round(v)
	}
	sort.Slice(out.Top, func(i, j int) bool { return out.Top[i].SelfMs > out.Top[j].SelfMs })
	if len(out.Top) > n {
		out.Top = out.Top[:n]
	}
	busy := total - idle
	for i := range out.Top {
		if busy > 0 {
			out.Top[i].Percent = round(out.Top[i].SelfMs / busy * 100)
		}
	}
	return out, nil
}

// glue are the functions of wasm_exec.js (bundled into the Worker script).
var glue = map[string]bool{
	"_resume": true, "_makeFuncWrapper": true, "loadValue": true, "storeValue": true,
	"loadSlice": true, "loadSliceOfValues": true, "loadString": true, "setInt64": true,
	"getInt64": true, "setInt32": true, "getInt32": true, "unboxValue": true,
	"removeRef": true, "testCallExport": true, "run": true, "_pendingEvent": true,
}

// group classifies a profile frame.
func group(fn, url string) string {
	switch {
	case fn == "(garbage collector)":
		return "v8 gc"
	case fn == "(program)":
		return "(program): native runtime outside JS/wasm"
	case strings.HasPrefix(url, "wasm://"):
		return "go wasm: " + goPackage(fn)
	case strings.HasPrefix(fn, "syscall/js.") || strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "gojs.") || glue[fn] || strings.Contains(url, "wasm_exec"):
		return "go<->js glue (wasm_exec.js)"
	case url == "":
		return "native builtins (send, getWebSockets, ...)"
	case fn == "" && strings.HasSuffix(url, "entry.js"):
		// Named handlers of entry.mjs keep their names; the anonymous
		// functions of the bundle are wasm_exec.js's import object.
		return "js glue: anonymous bundle fns (wasm_exec.js imports)"
	default:
		return "js: " + short(url)
	}
}

// goPackage names the Go code a wasm function belongs to. The wasm name
// section carries Go symbol names with '/' written '_' (e.g.
// "encoding_json.stringEncoder"); a stripped build shows wasm-function[N].
func goPackage(fn string) string {
	fn = strings.TrimPrefix(fn, "$")
	pkg := fn
	if i := strings.IndexByte(fn, '.'); i > 0 && !strings.HasPrefix(fn, "github.com") {
		pkg = fn[:i]
	} else if strings.HasPrefix(fn, "github.com") {
		rest := strings.TrimPrefix(fn, "github.com")
		if i := strings.IndexByte(rest, '.'); i > 0 {
			pkg = "github.com" + rest[:i]
		}
	}
	switch {
	case strings.HasPrefix(fn, "wasm-function"):
		return "unnamed (stripped build)"
	case pkg == "syscall_js" || pkg == "syscall/js":
		return "syscall/js (Go side of JS calls)"
	case pkg == "runtime" || strings.HasPrefix(pkg, "internal_runtime") || strings.HasPrefix(pkg, "internal/runtime"):
		return "runtime (scheduler, GC, malloc, finalizers)"
	case strings.HasPrefix(pkg, "github.com_tidwall") || pkg == "encoding_json" || pkg == "encoding/json":
		return "JSON (encoding/json, gjson)"
	case strings.HasPrefix(pkg, "github.com_ams_dev_ams_"), strings.HasPrefix(pkg, "github.com_ams-dev_ams_"):
		return "ams/" + pkg[len("github.com_ams_dev_ams_"):]
	case pkg == "time":
		return "time (timestamps)"
	default:
		return "other: " + pkg
	}
}

func short(url string) string {
	if i := strings.LastIndex(url, "/"); i >= 0 {
		return url[i+1:]
	}
	return url
}

func round(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }
