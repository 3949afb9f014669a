package worker

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// The tests of the hosted reference's MCP dialect (issue 11) and of the
// handle and data holes (issue 10 items 4 and 5).

// session is an MCP session opened with initialize on target.
type session struct {
	t      *testing.T
	f      *mcpFixture
	target string
	bearer string
	id     string
}

func (f *mcpFixture) session(t *testing.T, target, bearer, client string) *session {
	t.Helper()
	_, w := rpc(t, f.s, target, bearer, "initialize", map[string]any{
		"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": client, "version": "1"},
	}, nil)
	id := w.Header().Get("Mcp-Session-Id")
	if id == "" {
		t.Fatal("initialize gave no Mcp-Session-Id")
	}
	return &session{t: t, f: f, target: target, bearer: bearer, id: id}
}

func (s *session) call(name string, args any) (map[string]json.RawMessage, bool) {
	s.t.Helper()
	return toolIn(s.t, s.f.s, s.target, s.bearer, map[string]string{"Mcp-Session-Id": s.id}, name, args)
}

func (s *session) ok(name string, args any) map[string]json.RawMessage {
	s.t.Helper()
	out, isError := s.call(name, args)
	if isError {
		s.t.Fatalf("%s(%v) failed: %s %s", name, args, out["error"], out["message"])
	}
	return out
}

func (s *session) err(name string, args any) (string, string) {
	s.t.Helper()
	out, isError := s.call(name, args)
	if !isError {
		raw, _ := json.Marshal(out)
		s.t.Fatalf("%s(%v) succeeded: %s", name, args, raw)
	}
	var code, message string
	_ = json.Unmarshal(out["error"], &code)
	_ = json.Unmarshal(out["message"], &message)
	return code, message
}

// objectCount is how many conversation objects exist, and how many member
// calls reached one.
func (o *fakeObjects) objectCount() (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.convs), len(o.calls)
}

// TestMCPHandleCarriesNoSecretAndIsAuthenticated (10.4, 11.9): the handle
// holds no t; a forged, altered or old-format handle is not_joined and
// reaches no object (none is created); a handle from before a rotation is
// stale.
func TestMCPHandleCarriesNoSecretAndIsAuthenticated(t *testing.T) {
	f := newMCPFixture(t)
	out := toolOK(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"stream_name": "agent"})
	handle := jstr(t, out["handle"])
	payload := strings.Split(strings.TrimPrefix(handle, "amsh1."), ".")[0]
	decoded, _ := base64.RawURLEncoding.DecodeString(payload)
	if strings.Contains(handle, f.token) || strings.Contains(string(decoded), f.token) || len(decoded) == 0 {
		t.Fatalf("the handle %s (%s) carries the link's t", handle, decoded)
	}
	toolOK(t, f.s, mcpURL, "", "ams_send", map[string]any{"handle": handle, "data": "real"})

	// The old format: base64 JSON naming a conversation and a link.
	oldFormat := base64.RawURLEncoding.EncodeToString([]byte(`{"c":"conv_01FORGED0000000000000000000","s":"x","l":"https://ams.example/demo/conversations/calm-otter-1234?t=forged"}`))
	altered := []byte(handle)
	altered[len(altered)-3] ^= 1
	forgedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"c":"conv_01FORGED0000000000000000000","n":"demo","a":"calm-otter-1234","u":"acc_anon_0000","s":"x","r":""}`))
	for _, forged := range []string{
		oldFormat,
		string(altered),
		"amsh1." + forgedPayload + "." + strings.Split(handle, ".")[2],
		"amsh1." + forgedPayload + ".",
		strings.Repeat("a", 5000),
	} {
		objects, calls := f.objects.objectCount()
		for _, tool := range []string{"ams_send", "ams_recv", "ams_set_metadata", "ams_leave"} {
			code := toolErr(t, f.s, mcpURL, "", tool, map[string]any{"handle": forged, "data": "x", "metadata": map[string]any{}})
			if code != "not_joined" {
				t.Errorf("%s with forged handle %.40s: %s, want not_joined", tool, forged, code)
			}
		}
		if o, c := f.objects.objectCount(); o != objects || c != calls {
			t.Errorf("a forged handle reached objects: %d→%d objects, %d→%d member calls", objects, o, calls, c)
		}
	}

	// A rotation makes the handle stale: refused before any object.
	code, rotated := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations/calm-otter-1234/rotate", f.credential, `{}`)
	if code != http.StatusOK {
		t.Fatalf("rotate: %d %v", code, rotated)
	}
	_, calls := f.objects.objectCount()
	if code := toolErr(t, f.s, mcpURL, "", "ams_send", map[string]any{"handle": handle, "data": "x"}); code != "not_joined" {
		t.Errorf("stale handle: %s", code)
	}
	if _, c := f.objects.objectCount(); c != calls {
		t.Errorf("a stale handle reached the object")
	}
}

// TestMCPSessionIDAuthenticated: an Mcp-Session-Id this service did not
// issue is a 404 before any object; initialize issues one that carries no
// state and works on any isolate.
func TestMCPSessionIDAuthenticated(t *testing.T) {
	f := newMCPFixture(t)
	for _, id := range []string{"made-up", "amss1.e30.AAAA", f.s.Peppers.NewSessionID("x") + "A"} {
		w := postMCP(t, f.s, mcpURL, "", rpcBody(1, "tools/call", map[string]any{"name": "ams_recv", "arguments": map[string]any{}}),
			map[string]string{"Mcp-Session-Id": id})
		if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "session_not_found") {
			t.Errorf("session %q: %d %s", id, w.Code, w.Body.String())
		}
	}
	if len(f.objects.sessions) != 0 {
		t.Errorf("a made-up session id created a session object")
	}
}

// TestMCPVerbatimData (10.5): data is relayed as the JSON text the client
// sent — a lone surrogate stays one, nothing is HTML-escaped — to WebSocket
// peers and to MCP readers; missing, null or non-string data is an error.
func TestMCPVerbatimData(t *testing.T) {
	f := newMCPFixture(t)
	link := f.linkURL()
	peer := f.ws(t, "web")
	sender := jstr(t, toolOK(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "sender"})["handle"])
	reader := jstr(t, toolOK(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "reader"})["handle"])
	toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": reader, "gather_ms": 0})
	for _, literal := range []string{`"\ud83d"`, `"<b>&amp;"`, `"\u003cb\u003e"`, `"a\u2028b\/c"`, `"🦉 \"q\" \\"`} {
		peer.sock.reset()
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ams_send","arguments":{"handle":"` + sender + `","data":` + literal + `}}}`
		if w := postMCP(t, f.s, link, "", body, nil); w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"isError":true`) {
			t.Fatalf("send %s: %d %s", literal, w.Code, w.Body.String())
		}
		frames := peer.sock.frames()
		if len(frames) != 1 || !strings.HasSuffix(frames[0], `"data":`+literal+`}`) {
			t.Errorf("sent %s, the WebSocket peer got %q", literal, frames)
		}
		w := postMCP(t, f.s, link, "", rpcBody(1, "tools/call", map[string]any{"name": "ams_recv", "arguments": map[string]any{"handle": reader, "gather_ms": 0}}),
			map[string]string{"Accept": "application/json"})
		if !strings.Contains(w.Body.String(), `"data":`+literal+`}`) && !strings.Contains(w.Body.String(), `\"data\":`+jsonInString(literal)) {
			t.Errorf("sent %s, ams_recv answered %s", literal, w.Body.String())
		}
	}
	peer.sock.reset()
	for _, args := range []map[string]any{
		{"handle": sender},
		{"handle": sender, "data": nil},
		{"handle": sender, "data": 5},
		{"handle": sender, "data": []string{"x"}},
	} {
		if code := toolErr(t, f.s, link, "", "ams_send", args); code != "invalid_arguments" {
			t.Errorf("send %v: %s, want invalid_arguments", args, code)
		}
	}
	if n := len(peer.framesOf(t, "token")); n != 0 {
		t.Errorf("a refused send emitted %d tokens", n)
	}
}

// jsonInString is literal as it appears inside a JSON string (the text
// content of a tool result).
func jsonInString(literal string) string {
	raw := wire.MarshalVerbatim(literal)
	return string(raw[1 : len(raw)-1])
}

// FuzzMCPRelayVerbatim is the relay property on the MCP path: whatever
// JSON string literal ams_send carries, the WebSocket peer's token carries
// the same bytes, and a refusal emits nothing.
func FuzzMCPRelayVerbatim(f *testing.F) {
	for _, seed := range []string{`"x"`, `"\ud83d"`, `"<b>&amp;"`, `"\u0000"`, `"é"`, `""`, `"\"`, `"a` + "\x00" + `"`, `"\ud800\udc00"`, `"` + "\xff" + `"`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, literal string) {
		fx := newMCPFixture(t)
		peer := fx.ws(t, "web")
		handle := jstr(t, toolOK(t, fx.s, fx.linkURL(), "", "ams_join", map[string]any{"stream_name": "sender"})["handle"])
		peer.sock.reset()
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ams_send","arguments":{"handle":"` + handle + `","data":` + literal + `}}}`
		w := postMCP(t, fx.s, fx.linkURL(), "", body, nil)
		tokens := peer.framesOf(t, "token")
		var valid string
		isString := json.Unmarshal([]byte(literal), &valid) == nil && strings.HasPrefix(strings.TrimSpace(literal), `"`)
		switch {
		case !json.Valid([]byte(body)):
			if len(tokens) != 0 {
				t.Fatalf("an unparsable request emitted %v", tokens)
			}
		case strings.Contains(w.Body.String(), `"isError":true`):
			if len(tokens) != 0 {
				t.Fatalf("a refused send emitted %v", tokens)
			}
		default:
			frames := peer.sock.frames()
			if !isString || len(frames) != 1 || !strings.HasSuffix(frames[0], `"data":`+strings.TrimSpace(literal)+`}`) {
				t.Fatalf("sent %q, the peer got %q", literal, frames)
			}
		}
	})
}

// TestMCPSessionDialect (11.1, 11.3, 11.10): after ams_join in a session the
// other tools need no handle; results have the reference's shapes; a
// session that left is refused until it joins; DELETE ends the session and
// its member leaves.
func TestMCPSessionDialect(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	for _, target := range []string{mcpURL, f.linkURL()} {
		peer.sock.reset()
		s := f.session(t, target, "", "Claude Code")
		joined := s.ok("ams_join", map[string]any{"magic_link": f.linkURL(), "peer_identity": map[string]any{"kind": "agent", "model": "m1"}})
		for _, k := range []string{"ok", "conversation_id", "stream_id", "stream_name", "metadata", "self_subscribe", "peers", "peer_identity"} {
			if _, ok := joined[k]; !ok {
				t.Errorf("join result lacks %s: %v", k, joined)
			}
		}
		if string(joined["metadata"]) != "{}" || string(joined["ok"]) != "true" {
			t.Errorf("join: metadata %s (the stream's), ok %s", joined["metadata"], joined["ok"])
		}
		name := jstr(t, joined["stream_name"])
		if !strings.HasPrefix(name, "claude-code-") {
			t.Errorf("auto name %q", name)
		}
		sent := s.ok("ams_send", map[string]any{"data": "hi"})
		if string(sent["ok"]) != "true" || jstr(t, sent["ts"]) == "" {
			t.Errorf("send result %v", sent)
		}
		if tok := peer.framesOf(t, "token"); len(tok) != 1 || tok[0]["stream_name"] != name {
			t.Errorf("peer got %q", peer.sock.frames())
		}
		peer.token("back")
		got := s.ok("ams_recv", map[string]any{"wait_ms": 1000, "gather_ms": 0})
		frames := recvFrames(t, got)
		if string(got["ok"]) != "true" || string(got["truncated"]) != "false" || len(frames) != 1 || frames[0]["data"] != "back" {
			t.Errorf("recv %v", got)
		}
		s.ok("ams_set_metadata", map[string]any{"metadata": map[string]any{"mood": "ok"}})
		s.ok("ams_leave", map[string]any{})
		if code, msg := s.err("ams_send", map[string]any{"data": "ghost"}); code != "not_joined" || !strings.Contains(msg, "left") {
			t.Errorf("send after leave: %s %s", code, msg)
		}
		if code, _ := s.err("ams_recv", map[string]any{}); code != "not_joined" {
			t.Errorf("recv after leave: %s", code)
		}
		// Joining again works, and DELETE ends the session: the member leaves.
		s.ok("ams_join", map[string]any{"magic_link": f.linkURL()})
		peer.sock.reset()
		r, _ := http.NewRequest(http.MethodDelete, target, nil)
		r.Header.Set("Mcp-Session-Id", s.id)
		rec := newRecorder(f.s, r)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s", rec.Code, rec.Body.String())
		}
		if left := peer.framesOf(t, "stream_left"); len(left) != 1 || left[0]["stream_name"] != name {
			t.Errorf("DELETE: the peer got %q", peer.sock.frames())
		}
		w := postMCP(t, f.s, target, "", rpcBody(1, "tools/call", map[string]any{"name": "ams_recv", "arguments": map[string]any{}}),
			map[string]string{"Mcp-Session-Id": s.id})
		if w.Code != http.StatusNotFound {
			t.Errorf("a call in an ended session: %d %s", w.Code, w.Body.String())
		}
	}
}

// TestMCPOneMemberOneReader (11.7, 11.6): two sessions on one link get two
// streams without stream_name; naming the same stream takes it over, and the
// first is told so, never sharing the read position.
func TestMCPOneMemberOneReader(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	a := f.session(t, f.linkURL(), "", "claude")
	b := f.session(t, f.linkURL(), "", "claude")
	na := jstr(t, a.ok("ams_join", map[string]any{})["stream_name"])
	nb := jstr(t, b.ok("ams_join", map[string]any{})["stream_name"])
	if na == nb || !strings.HasPrefix(na, "claude-") || !strings.HasPrefix(nb, "claude-") {
		t.Errorf("two sessions, streams %q and %q", na, nb)
	}
	// The same session joining again keeps its name.
	if again := jstr(t, a.ok("ams_join", map[string]any{})["stream_name"]); again != na {
		t.Errorf("rejoin named %q, was %q", again, na)
	}
	a.ok("ams_join", map[string]any{"stream_name": "claude"})
	peer.token("one")
	b.ok("ams_join", map[string]any{"stream_name": "claude"})
	if code, msg := a.err("ams_recv", map[string]any{}); code != "not_joined" || !strings.Contains(msg, "took it over") {
		t.Errorf("the first session after takeover: %s %s", code, msg)
	}
	if code, _ := a.err("ams_send", map[string]any{"data": "as b?"}); code != "not_joined" {
		t.Errorf("the first session sends as the second: %s", code)
	}
	peer.token("two")
	frames := recvFrames(t, b.ok("ams_recv", map[string]any{"gather_ms": 0}))
	if len(frames) != 1 || frames[0]["data"] != "two" {
		t.Errorf("the new owner reads %v", frames)
	}
	// A sessionless caller of the same identity cannot read it either.
	if code := toolErr(t, f.s, mcpURL, "", "ams_recv", map[string]any{"magic_link": f.linkURL(), "stream_name": "claude"}); code != "not_joined" {
		t.Errorf("sessionless read of a session's member: %s", code)
	}
}

// TestMCPSelfRehydration (11.2): send and recv with magic_link and no join
// join on their own; after an explicit leave they are refused; without
// stream_name the caller's one member is meant.
func TestMCPSelfRehydration(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	args := map[string]any{"magic_link": f.linkURL(), "stream_name": "chatgpt", "data": "hello"}
	sent := toolOK(t, f.s, mcpURL, "", "ams_send", args)
	if string(sent["rejoined"]) != "true" {
		t.Errorf("first send %v", sent)
	}
	if sj, tok := peer.framesOf(t, "stream_joined"), peer.framesOf(t, "token"); len(sj) != 1 || len(tok) != 1 || tok[0]["data"] != "hello" {
		t.Errorf("peer got %q", peer.sock.frames())
	}
	if again := toolOK(t, f.s, mcpURL, "", "ams_send", args); string(again["rejoined"]) == "true" {
		t.Errorf("second send joined again: %v", again)
	}
	peer.token("for you")
	frames := recvFrames(t, toolOK(t, f.s, mcpURL, "", "ams_recv", map[string]any{"magic_link": f.linkURL(), "gather_ms": 0}))
	if len(frames) != 1 || frames[0]["data"] != "for you" {
		t.Errorf("recv of the one member: %v", frames)
	}
	toolOK(t, f.s, mcpURL, "", "ams_leave", map[string]any{"magic_link": f.linkURL(), "stream_name": "chatgpt"})
	for _, tool := range []string{"ams_send", "ams_recv"} {
		if code := toolErr(t, f.s, mcpURL, "", tool, args); code != "not_joined" {
			t.Errorf("%s after leave: %s", tool, code)
		}
	}
	toolOK(t, f.s, mcpURL, "", "ams_join", map[string]any{"magic_link": f.linkURL(), "stream_name": "chatgpt"})
	toolOK(t, f.s, mcpURL, "", "ams_send", args)
}

// TestMCPPeerIdentity (11.6): a peer identity is stored with the stream and
// seen in stream_joined, in a newcomer's joined peers and in inspect; a bad
// one is refused.
func TestMCPPeerIdentity(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	toolOK(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"stream_name": "bot", "peer_identity": map[string]any{"kind": "agent", "model": "m", "client": "c"}})
	want := `{"kind":"agent","model":"m","client":"c"}`
	if sj := peer.framesOf(t, "stream_joined"); len(sj) != 1 || !jsonEqualRaw(mustJSON(sj[0]["peer_identity"]), json.RawMessage(want)) {
		t.Errorf("stream_joined %q", peer.sock.frames())
	}
	out := toolOK(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"stream_name": "late"})
	if !strings.Contains(string(out["peers"]), `"peer_identity":`+want) {
		t.Errorf("joined peers %s", out["peers"])
	}
	for _, bad := range []any{"agent", map[string]any{"kind": "robot"}, map[string]any{"kind": "agent", "model": 5}, map[string]any{"kind": "human", "client": strings.Repeat("x", 200)}} {
		if code := toolErr(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"peer_identity": bad}); code != "invalid_arguments" {
			t.Errorf("peer_identity %v: %s", bad, code)
		}
	}
}

// TestMCPCoalesce (11.8): coalesce joins consecutive tokens of one stream
// and says which seqs it covered.
func TestMCPCoalesce(t *testing.T) {
	f := newMCPFixture(t)
	a, b := f.ws(t, "a"), f.ws(t, "b")
	h := jstr(t, toolOK(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"stream_name": "reader"})["handle"])
	for _, w := range []string{"The ", "quick ", "fox"} {
		a.token(w)
	}
	b.token("!")
	a.token(" again")
	frames := recvFrames(t, toolOK(t, f.s, f.linkURL(), "", "ams_recv", map[string]any{"handle": h, "coalesce": true, "gather_ms": 0}))
	if len(frames) != 3 || frames[0]["data"] != "The quick fox" || frames[1]["data"] != "!" || frames[2]["data"] != " again" {
		t.Fatalf("coalesced %v", frames)
	}
	if frames[0]["seq_from"] == nil || frames[0]["seq_to"] != frames[0]["seq"] || frames[0]["tokens"] != float64(3) {
		t.Errorf("the run's range: %v", frames[0])
	}
}

// TestMCPBatchLimit (10.7): a batch over wire.MaxRPCBatch is refused whole.
func TestMCPBatchLimit(t *testing.T) {
	f := newMCPFixture(t)
	var msgs []string
	for i := 0; i <= wire.MaxRPCBatch; i++ {
		msgs = append(msgs, rpcBody(i+1, "ping", nil))
	}
	w := postMCP(t, f.s, mcpURL, "", "["+strings.Join(msgs, ",")+"]", nil)
	if !strings.Contains(w.Body.String(), `"code":-32600`) || strings.Count(w.Body.String(), `"id"`) != 1 {
		t.Errorf("a batch of %d: %d %s", len(msgs), w.Code, w.Body.String())
	}
	w = postMCP(t, f.s, mcpURL, "", "["+strings.Join(msgs[:wire.MaxRPCBatch], ",")+"]", nil)
	var replies []json.RawMessage
	if json.Unmarshal(w.Body.Bytes(), &replies) != nil || len(replies) != wire.MaxRPCBatch {
		t.Errorf("a batch at the limit: %s", w.Body.String())
	}
}

func newRecorder(s *Service, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// TestMCPPromptsAndResources (11.5): the conversation's metadata.prompts are
// served verbatim; the resources name the protocol, the conventions, the
// record and the live peers; capabilities say so.
func TestMCPPromptsAndResources(t *testing.T) {
	f := newMCPFixture(t)
	code, conv := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential,
		`{"alias":"prompted","metadata":{"prompts":[{"name":"review","description":"Review the diff","messages":[{"role":"user","content":{"type":"text","text":"Review <this> & that"}}]},{"description":"nameless"}]}}`)
	if code != http.StatusCreated {
		t.Fatalf("mint: %d %v", code, conv)
	}
	link := jstr(t, conv["magic_link"])
	convID := jstr(t, conv["conversation_id"])
	init, _ := rpc(t, f.s, link, "", "initialize", map[string]any{"protocolVersion": "2025-06-18"}, nil)
	var caps map[string]json.RawMessage
	_ = json.Unmarshal(init.Result["capabilities"], &caps)
	if caps["prompts"] == nil || caps["resources"] == nil || caps["tools"] == nil {
		t.Errorf("capabilities %s", init.Result["capabilities"])
	}
	list, _ := rpc(t, f.s, link, "", "prompts/list", nil, nil)
	if string(list.Result["prompts"]) != `[{"description":"Review the diff","name":"review"}]` {
		t.Errorf("prompts/list %s", list.Result["prompts"])
	}
	got, w := rpc(t, f.s, link, "", "prompts/get", map[string]any{"name": "review"}, nil)
	// Verbatim means the bytes: the record keeps client JSON unescaped, so
	// the answer does too (not "\u003cthis\u003e \u0026 that").
	if !strings.Contains(w.Body.String(), `"text":"Review <this> & that"`) {
		t.Errorf("prompts/get is not byte-verbatim: %s", w.Body)
	}
	if !jsonEqualRaw(got.Result["messages"], json.RawMessage(`[{"role":"user","content":{"type":"text","text":"Review <this> & that"}}]`)) || jstr(t, got.Result["description"]) != "Review the diff" {
		t.Errorf("prompts/get %v", got.Result)
	}
	if miss, _ := rpc(t, f.s, link, "", "prompts/get", map[string]any{"name": "nope"}, nil); miss.Error == nil || miss.Error.Code != rpcInvalidParams {
		t.Errorf("unknown prompt %+v", miss)
	}
	res, _ := rpc(t, f.s, link, "", "resources/list", nil, nil)
	for _, uri := range []string{"ams://protocol", "ams://conventions/v1", "ams://conversations/" + convID, "ams://conversations/" + convID + "/peers"} {
		if !strings.Contains(string(res.Result["resources"]), `"uri":"`+uri+`"`) {
			t.Errorf("resources/list lacks %s: %s", uri, res.Result["resources"])
		}
		read, _ := rpc(t, f.s, link, "", "resources/read", map[string]any{"uri": uri}, nil)
		if read.Error != nil || !strings.Contains(string(read.Result["contents"]), `"text":`) {
			t.Errorf("resources/read %s: %+v", uri, read)
		}
	}
	// The peers resource is live, from the object.
	toolOK(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "present"})
	read, _ := rpc(t, f.s, link, "", "resources/read", map[string]any{"uri": "ams://conversations/" + convID + "/peers"}, nil)
	if !strings.Contains(string(read.Result["contents"]), `present`) {
		t.Errorf("peers %s", read.Result["contents"])
	}
	rec, _ := rpc(t, f.s, link, "", "resources/read", map[string]any{"uri": "ams://conversations/" + convID}, nil)
	if strings.Contains(string(rec.Result["contents"]), "hash") || !strings.Contains(string(rec.Result["contents"]), "prompted") {
		t.Errorf("record %s", rec.Result["contents"])
	}
	// Another conversation's record is not found here; /mcp without a
	// conversation lists only the static resources.
	if other, _ := rpc(t, f.s, link, "", "resources/read", map[string]any{"uri": "ams://conversations/" + f.conversationID}, nil); other.Error == nil || other.Error.Code != rpcResourceNotFound {
		t.Errorf("another conversation's record: %+v", other)
	}
	if plain, _ := rpc(t, f.s, mcpURL, "", "resources/list", nil, nil); strings.Contains(string(plain.Result["resources"]), "conversations/") {
		t.Errorf("/mcp resources %s", plain.Result["resources"])
	}
}

// TestWebSocketPeerIdentity (11.6): a WebSocket client sets its peer
// identity with X-AMS-Peer-Identity or its query form; a bad one is refused.
func TestWebSocketPeerIdentity(t *testing.T) {
	f := newMCPFixture(t)
	h := jstr(t, toolOK(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"stream_name": "watcher"})["handle"])
	toolOK(t, f.s, f.linkURL(), "", "ams_recv", map[string]any{"handle": h, "gather_ms": 0})
	f.objects.connectWS(t, f.s, f.connect(map[string]string{wire.HeaderStreamName: "human", wire.HeaderPeerIdentity: `{"kind":"human","client":"TinCan"}`}, nil))
	f.objects.connectWS(t, f.s, f.connect(map[string]string{wire.HeaderStreamName: "bot"}, url.Values{"peer_identity": {`{"kind":"agent","model":"m"}`}}))
	frames := recvFrames(t, toolOK(t, f.s, f.linkURL(), "", "ams_recv", map[string]any{"handle": h, "gather_ms": 0}))
	if len(frames) != 2 || !jsonEqualRaw(mustJSON(frames[0]["peer_identity"]), json.RawMessage(`{"kind":"human","client":"TinCan"}`)) ||
		!jsonEqualRaw(mustJSON(frames[1]["peer_identity"]), json.RawMessage(`{"kind":"agent","model":"m"}`)) {
		t.Errorf("stream_joined frames %v", frames)
	}
	if _, refusal := f.s.Admit(f.connect(map[string]string{wire.HeaderStreamName: "x", wire.HeaderPeerIdentity: `{"kind":"cat"}`}, nil)); refusal == nil || *refusal != wire.CloseInvalidPeerIdentity {
		t.Errorf("a bad peer identity: %v", refusal)
	}
}

// TestMCPRideAlong (11.4): a tool call answered with an event stream
// carries the member's unread frames as notifications, once each, and
// ams_recv still returns them all.
func TestMCPRideAlong(t *testing.T) {
	f, peer, s := joinedAgent(t)
	peer.token("one")
	peer.token("two")
	send := func() []string {
		w := postMCP(t, f.s, f.linkURL(), "", rpcBody(1, "tools/call", map[string]any{"name": "ams_send", "arguments": map[string]any{"data": "x"}}),
			map[string]string{"Mcp-Session-Id": s.id})
		var notes []string
		for _, block := range strings.Split(strings.TrimSpace(w.Body.String()), "\n\n") {
			if data := strings.TrimPrefix(block, "event: message\ndata: "); strings.Contains(data, `"notifications/ams/`) {
				notes = append(notes, data)
			}
		}
		return notes
	}
	first := send()
	if len(first) != 2 || !strings.Contains(first[0], `"data":"one"`) || !strings.Contains(first[1], `"data":"two"`) {
		t.Fatalf("ride-along %q", first)
	}
	if again := send(); len(again) != 0 {
		t.Errorf("frames rode along twice: %q", again)
	}
	// A frame is notified once: the read returns all three, but notifies
	// only the one that did not ride along.
	peer.token("three")
	w := postMCP(t, f.s, f.linkURL(), "", rpcBody(1, "tools/call", map[string]any{"name": "ams_recv", "arguments": map[string]any{"gather_ms": 0}}),
		map[string]string{"Mcp-Session-Id": s.id})
	blocks := strings.Split(strings.TrimSpace(w.Body.String()), "\n\n")
	if len(blocks) != 2 || !strings.Contains(blocks[0], `"method":"notifications/ams/token"`) || !strings.Contains(blocks[0], `"data":"three"`) {
		t.Fatalf("ams_recv notified %q", blocks)
	}
	for _, data := range []string{`\"data\":\"one\"`, `\"data\":\"two\"`, `\"data\":\"three\"`} {
		if !strings.Contains(blocks[1], data) {
			t.Errorf("ams_recv after ride-along lacks %s: %s", data, blocks[1])
		}
	}
}

// TestMCPRejoinKeepsPeerIdentity: a member that rejoins on its own (after
// expiring idle) comes back with the peer identity it joined with.
func TestMCPRejoinKeepsPeerIdentity(t *testing.T) {
	f := newMCPFixture(t)
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent", "peer_identity": map[string]any{"kind": "agent", "model": "m"}})
	f.objects.expireAll(t)
	peer := f.ws(t, "web")
	if out := s.ok("ams_send", map[string]any{"data": "back"}); string(out["rejoined"]) != "true" {
		t.Fatalf("send after expiry %v", out)
	}
	sj := peer.framesOf(t, "stream_joined")
	if len(sj) != 1 || !jsonEqualRaw(mustJSON(sj[0]["peer_identity"]), json.RawMessage(`{"kind":"agent","model":"m"}`)) {
		t.Errorf("rejoined as %q", peer.sock.frames())
	}
}

// TestMCPBatchWaitsOnce: the ams_recv calls of one request (a JSON-RPC
// batch) wait at most one long-poll together: a batch of five 25 s reads
// cannot hold its request for five.
func TestMCPBatchWaitsOnce(t *testing.T) {
	defer func(d time.Duration) { mcpRequestWait = d }(mcpRequestWait)
	mcpRequestWait = 300 * time.Millisecond
	f := newMCPFixture(t)
	f.objects.maxWait = 200 * time.Millisecond
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	var batch []any
	for i := range 5 {
		batch = append(batch, map[string]any{"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
			"params": map[string]any{"name": "ams_recv", "arguments": map[string]any{"wait_ms": 25000}}})
	}
	raw, _ := json.Marshal(batch)
	w := postMCP(t, f.s, f.linkURL(), "", string(raw), map[string]string{"Mcp-Session-Id": s.id})
	if w.Code != http.StatusOK || strings.Count(w.Body.String(), `"frames":[]`) != 5 {
		t.Fatalf("batch: %d %s", w.Code, w.Body.String())
	}
	var waits []int
	for _, c := range f.objects.calls {
		if c.op == "recv" {
			waits = append(waits, c.call.WaitMS)
		}
	}
	// The first asks for the whole budget and waits 200 ms, the second for
	// what is left, the rest for nothing.
	if len(waits) != 5 || waits[0] != 300 || waits[1] > 100 || waits[3] != 0 || waits[4] != 0 {
		t.Errorf("the batch's reads asked to wait %v ms", waits)
	}
}
