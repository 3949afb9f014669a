//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// rawSession is an MCP session spoken over plain HTTP, for what the SDK
// clients hide: the push leg and its comments.
type rawSession struct {
	t        *testing.T
	endpoint string
	id       string
}

func newRawSession(t *testing.T, endpoint, client string) *rawSession {
	t.Helper()
	s := &rawSession{t: t, endpoint: endpoint}
	res := s.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"` + client + `","version":"1"}}}`)
	s.id = res.Header.Get("Mcp-Session-Id")
	res.Body.Close()
	if s.id == "" {
		t.Fatal("initialize gave no Mcp-Session-Id")
	}
	return s
}

func (s *rawSession) post(body string) *http.Response {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return res
}

// tool calls a tool and returns its structured result.
func (s *rawSession) tool(name string, args map[string]any) map[string]any {
	s.t.Helper()
	raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": map[string]any{"name": name, "arguments": args}})
	res := s.post(string(raw))
	defer res.Body.Close()
	var reply struct {
		Result struct {
			StructuredContent map[string]any `json:"structuredContent"`
			IsError           bool           `json:"isError"`
		} `json:"result"`
	}
	body, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(body, &reply); err != nil || reply.Result.IsError {
		s.t.Fatalf("%s: %d %s", name, res.StatusCode, body)
	}
	return reply.Result.StructuredContent
}

// sseEvent is one item of an SSE stream: a comment or a message's data.
type sseEvent struct {
	comment string
	id      string
	data    map[string]any
	at      time.Time
}

// openLeg opens the session's push leg and streams what it reads;
// lastEventID, if given, is sent as Last-Event-ID.
func (s *rawSession) openLeg(lastEventID ...string) (<-chan sseEvent, func()) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.endpoint, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", s.id)
	if len(lastEventID) > 0 {
		req.Header.Set("Last-Event-ID", lastEventID[0])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(res.Body)
		s.t.Fatalf("GET leg: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	events := make(chan sseEvent, 1024)
	go func() {
		defer close(events)
		r := bufio.NewReader(res.Body)
		id := ""
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, ":"):
				events <- sseEvent{comment: line, at: time.Now()}
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				var m map[string]any
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m)
				events <- sseEvent{id: id, data: m, at: time.Now()}
				id = ""
			}
		}
	}()
	return events, func() { res.Body.Close() }
}

// nextMessage returns the next message of the leg, skipping comments.
func nextMessage(t *testing.T, events <-chan sseEvent, within time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("the push leg ended")
			}
			if e.data != nil {
				return e
			}
		case <-deadline:
			t.Fatalf("no message on the push leg within %s", within)
		}
	}
}

// TestMCPPushLeg (11.4): the GET leg answers :ok, pushes the member's frames
// as notifications/ams/* within milliseconds (p50 reported), keeps them
// readable with ams_recv, sends :keepalive, lets the idle conversation
// hibernate and still delivers after the wake, and says
// notifications/ams/closed when the member leaves.
func TestMCPPushLeg(t *testing.T) {
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{})
	s := newRawSession(t, conv.MagicLink, "Claude Code")
	events, stop := s.openLeg() // opened before the join, as hosts do
	defer stop()
	first := <-events
	if first.comment != ":ok" {
		t.Fatalf("the leg opened with %+v", first)
	}
	joined := s.tool("ams_join", map[string]any{"stream_name": "pushed"})
	ws, _ := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "talker"})
	// The leg follows the session's binding at once: the first frame after
	// the join is pushed, whenever the leg taps the member.
	if err := ws.SendToken(testContext(t, 5*time.Second), "right after the join"); err != nil {
		t.Fatal(err)
	}
	for {
		e := nextMessage(t, events, 10*time.Second)
		if params, _ := e.data["params"].(map[string]any); e.data["method"] == "notifications/ams/token" {
			if params["data"] != "right after the join" {
				t.Fatalf("first push %v", e.data)
			}
			break
		}
	}
	const warm = 1
	var latencies []time.Duration
	for i := 0; i < 20; i++ {
		sent := time.Now()
		if err := ws.SendToken(testContext(t, 5*time.Second), "pushed "+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
		e := nextMessage(t, events, 10*time.Second)
		params, _ := e.data["params"].(map[string]any)
		if e.data["method"] != "notifications/ams/token" || params["data"] != "pushed "+string(rune('a'+i)) || e.data["jsonrpc"] != "2.0" ||
			!strings.HasPrefix(e.id, fmt.Sprint(params["seq"])+"-") {
			t.Fatalf("push %d: %v", i, e.data)
		}
		latencies = append(latencies, e.at.Sub(sent))
		time.Sleep(20 * time.Millisecond)
	}
	slices.Sort(latencies)
	t.Logf("push leg delivery, WebSocket send to SSE event, 20 tokens: p50 %s, max %s", latencies[10], latencies[19])

	// Nothing pushed was marked read.
	got := framesOf(t, s.tool("ams_recv", map[string]any{"gather_ms": 0}))
	if tokens := slices.DeleteFunc(got, func(f map[string]any) bool { return f["type"] != "token" }); len(tokens) != 20+warm {
		t.Fatalf("ams_recv after pushes returned %d tokens", len(tokens))
	}

	// Idle until the object hibernates: the open leg does not keep it
	// awake, keeps its keepalives coming, and delivers after the wake.
	mark := time.Now()
	waitForWake(t, broker, []string{joined["stream_id"].(string)}, func() {
		ws.SendToken(testContext(t, 5*time.Second), "after the wake")
	})
	keepalives := 0
	for {
		e := <-events
		if e.comment == ":keepalive" && e.at.After(mark) {
			keepalives++
			continue
		}
		if e.data != nil {
			params, _ := e.data["params"].(map[string]any)
			if params["data"] != "after the wake" {
				t.Fatalf("after the wake the leg pushed %v", e.data)
			}
			break
		}
	}
	if keepalives == 0 {
		t.Fatalf("no :keepalive during %s of idle", hibernationIdle())
	}

	// The member leaves: the leg says so.
	s.tool("ams_leave", map[string]any{})
	for {
		e := nextMessage(t, events, 10*time.Second)
		if e.data["method"] == "notifications/ams/closed" {
			params, _ := e.data["params"].(map[string]any)
			if params["reason"] != wire.CloseNotJoined.Reason {
				t.Fatalf("closed %v", e.data)
			}
			break
		}
	}
}

// tokenNote waits for the next notifications/ams/token of the leg and
// returns its data and SSE id.
func tokenNote(t *testing.T, events <-chan sseEvent) (string, string) {
	t.Helper()
	for {
		e := nextMessage(t, events, 10*time.Second)
		if e.data["method"] == "notifications/ams/token" {
			params, _ := e.data["params"].(map[string]any)
			data, _ := params["data"].(string)
			return data, e.id
		}
	}
}

// TestMCPPushOnlyAndResume (11.4): with delivery "push", what the leg
// delivered is read and what no leg delivered stays for ams_recv; a leg
// reopened with Last-Event-ID gets exactly what came after it; DELETE of
// the session ends its leg with notifications/ams/closed session_ended.
func TestMCPPushOnlyAndResume(t *testing.T) {
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{})
	ws, _ := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "talker"})
	send := func(data string) {
		t.Helper()
		if err := ws.SendToken(testContext(t, 5*time.Second), data); err != nil {
			t.Fatal(err)
		}
	}
	s := newRawSession(t, conv.MagicLink, "pusher")
	if out := s.tool("ams_join", map[string]any{"stream_name": "pusher", "delivery": "push"}); out["delivery"] != "push" {
		t.Fatalf("join %v", out)
	}
	events, stop := s.openLeg()
	send("one")
	send("two")
	if d, _ := tokenNote(t, events); d != "one" {
		t.Fatalf("first push %q", d)
	}
	d, lastID := tokenNote(t, events)
	if d != "two" || lastID == "" {
		t.Fatalf("second push %q id %q", d, lastID)
	}
	// Acked, so read: ams_recv has nothing (the ack trails the write).
	deadline := time.Now().Add(5 * time.Second)
	for len(framesOf(t, s.tool("ams_recv", map[string]any{"gather_ms": 0}))) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("pushed frames of a push-only member were not marked read")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	send("while away 1")
	send("while away 2")
	// The client saw "two": a leg resumed after it gets the two it missed.
	events, stop = s.openLeg(lastID)
	defer stop()
	for _, want := range []string{"while away 1", "while away 2"} {
		if d, _ := tokenNote(t, events); d != want {
			t.Fatalf("resumed leg pushed %q, want %q", d, want)
		}
	}
	send("live")
	if d, _ := tokenNote(t, events); d != "live" {
		t.Fatalf("live %q", d)
	}
	// DELETE ends the session, and the leg says so.
	req, _ := http.NewRequest("DELETE", conv.MagicLink, nil)
	req.Header.Set("Mcp-Session-Id", s.id)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for {
		e := nextMessage(t, events, 10*time.Second)
		if e.data["method"] == "notifications/ams/closed" {
			if params, _ := e.data["params"].(map[string]any); params["reason"] == "session_ended" {
				break
			}
		}
	}
}

// TestMCPRideAlong (11.4): without a leg, a tool call answered with an event
// stream carries the member's undelivered frames as notifications before
// its result, once; ams_recv still returns them, and its own event stream
// does not notify them again.
func TestMCPRideAlong(t *testing.T) {
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{})
	s := newRawSession(t, conv.MagicLink, "rider")
	s.tool("ams_join", map[string]any{"stream_name": "rider"})
	ws, _ := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "talker"})
	for _, d := range []string{"one", "two"} {
		if err := ws.SendToken(testContext(t, 5*time.Second), d); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let both reach the object
	call := func(name string, args map[string]any) []string {
		t.Helper()
		raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": map[string]any{"name": name, "arguments": args}})
		req, _ := http.NewRequest("POST", s.endpoint, strings.NewReader(string(raw)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", s.id)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
			return []string{string(body)} // nothing to notify: a plain JSON answer
		}
		var events []string
		for _, block := range strings.Split(strings.TrimSpace(string(body)), "\n\n") {
			events = append(events, strings.TrimPrefix(block, "event: message\ndata: "))
		}
		return events
	}
	first := call("ams_send", map[string]any{"data": "x"})
	if len(first) != 4 || !strings.Contains(first[0], `"method":"notifications/ams/stream_joined"`) ||
		!strings.Contains(first[1], `"method":"notifications/ams/token"`) || !strings.Contains(first[1], `"data":"one"`) ||
		!strings.Contains(first[2], `"data":"two"`) || !strings.Contains(first[3], `"result"`) {
		t.Fatalf("ride-along on ams_send: %q", first)
	}
	if again := call("ams_send", map[string]any{"data": "y"}); len(again) != 1 {
		t.Fatalf("frames rode along twice: %q", again)
	}
	read := call("ams_recv", map[string]any{"gather_ms": 0})
	if len(read) != 1 || !strings.Contains(read[0], `\"data\":\"one\"`) || !strings.Contains(read[0], `\"data\":\"two\"`) {
		t.Fatalf("ams_recv after the ride-along: %q", read)
	}
}

// TestMCPPushLegRefusals: the leg needs a session this service issued.
func TestMCPPushLegRefusals(t *testing.T) {
	for header, want := range map[string]int{"": 400, "made-up": 404} {
		req, _ := http.NewRequest("GET", broker.URL+"/mcp", nil)
		req.Header.Set("Accept", "text/event-stream")
		if header != "" {
			req.Header.Set("Mcp-Session-Id", header)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want || !strings.Contains(string(body), `"error"`) {
			t.Errorf("GET leg with session %q: %d %s", header, res.StatusCode, body)
		}
	}
	res, err := http.Get(broker.URL + "/mcp")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 {
		t.Errorf("GET /mcp without an event stream: %d", res.StatusCode)
	}
}
