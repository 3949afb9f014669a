//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// bearerTransport adds a credential to every request of an MCP client.
type bearerTransport struct {
	credential string
	sessionIDs *[]string
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.credential != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.credential)
	}
	res, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && b.sessionIDs != nil {
		if id := res.Header.Get("Mcp-Session-Id"); id != "" {
			*b.sessionIDs = append(*b.sessionIDs, id)
		}
	}
	return res, err
}

// mcpSession connects the official MCP Go SDK client to endpoint. An empty
// version speaks the newest revision; "2025-03-26" opens with initialize.
func mcpSession(t *testing.T, endpoint, credential, version string) *mcp.ClientSession {
	t.Helper()
	sess, err := mcpConnect(endpoint, credential, version, nil)
	if err != nil {
		t.Fatalf("MCP connect to %s: %v", endpoint, err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

func mcpConnect(endpoint, credential, version string, sessionIDs *[]string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "ams-e2e", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             endpoint,
		HTTPClient:           &http.Client{Transport: bearerTransport{credential: credential, sessionIDs: sessionIDs}},
		DisableStandaloneSSE: true,
		MaxRetries:           -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
}

// tool calls name and returns its structured result; isError results fail
// the test unless wantError names their code.
func tool(t *testing.T, sess *mcp.ClientSession, name string, args map[string]any, wantError ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	res, err := sess.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	raw, _ := json.Marshal(res.StructuredContent)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: structuredContent %s", name, raw)
	}
	if len(res.Content) != 1 {
		t.Fatalf("%s: %d content items", name, len(res.Content))
	}
	if text, ok := res.Content[0].(*mcp.TextContent); !ok || !jsonEqual([]byte(text.Text), string(raw)) {
		t.Fatalf("%s: text content differs from structuredContent", name)
	}
	switch {
	case len(wantError) > 0 && (!res.IsError || out["error"] != wantError[0]):
		t.Fatalf("%s: want error %s, got %s", name, wantError[0], raw)
	case len(wantError) == 0 && res.IsError:
		t.Fatalf("%s failed: %s", name, raw)
	}
	return out
}

// framesOf decodes ams_recv's frames, each {method:
// "notifications/ams/<type>", params: the wire frame without type}, back into
// wire frames (a truncated marker is left out).
func framesOf(t *testing.T, out map[string]any) []map[string]any {
	t.Helper()
	list, ok := out["frames"].([]any)
	if !ok || out["ok"] != true {
		t.Fatalf("recv without frames: %v", out)
	}
	frames := []map[string]any{}
	for _, f := range list {
		note, _ := f.(map[string]any)
		method, _ := note["method"].(string)
		params, _ := note["params"].(map[string]any)
		typ, ok := strings.CutPrefix(method, "notifications/ams/")
		if !ok || params == nil || len(note) != 2 {
			t.Fatalf("recv frame %v is not a notification", f)
		}
		if typ != "truncated" {
			params["type"] = typ
			frames = append(frames, params)
		}
	}
	return frames
}

func TestMCPCurrentRevisionWithWebSocketPeer(t *testing.T) {
	acc := newAccount(t)
	owner := mcpSession(t, broker.URL+"/mcp", acc.Credential, "")
	if got := owner.InitializeResult(); got != nil && got.ProtocolVersion != "" && got.ProtocolVersion < "2026-07-28" {
		t.Logf("negotiated %s", got.ProtocolVersion)
	}
	tools, err := owner.ListTools(testContext(t, 10*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
		if tl.Description == "" || tl.InputSchema == nil {
			t.Fatalf("tool %s lacks a description or schema", tl.Name)
		}
	}
	if strings.Join(names, ",") != "ams_create_conversation,ams_join,ams_send,ams_recv,ams_set_metadata,ams_leave" {
		t.Fatalf("tools: %v", names)
	}
	created := tool(t, owner, "ams_create_conversation", map[string]any{
		"metadata": map[string]any{"instructions": "Answer in haiku."}, "stream_name": "owner",
	})
	link, _ := created["magic_link"].(string)
	if !strings.HasPrefix(link, broker.URL+"/"+acc.Namespace+"/conversations/") {
		t.Fatalf("created: %v", created)
	}

	// An agent with nothing but the link: no bearer, the anonymous identity.
	agent := mcpSession(t, link, "", "")
	if instr := agent.InitializeResult().Instructions; !strings.Contains(instr, "ams_join") || !strings.Contains(instr, "Answer in haiku.") {
		t.Fatalf("instructions: %q", instr)
	}
	ws, _ := join(t, link, client.DialOptions{Credential: acc.Credential, StreamName: "human"})
	joined := tool(t, agent, "ams_join", map[string]any{"stream_name": "claude", "stream_metadata": map[string]any{"model": "x"}})
	handle, _ := joined["handle"].(string)
	anon, _ := joined["owner_account_id"].(string)
	if handle == "" || !strings.HasPrefix(anon, wire.AnonAccountPrefix) || len(anon) != len(wire.AnonAccountPrefix)+26 {
		t.Fatalf("join: %v", joined)
	}
	if peers := joined["peers"].([]any); len(peers) != 1 || peers[0].(map[string]any)["stream_name"] != "human" {
		t.Fatalf("join peers: %v", joined["peers"])
	}
	sj := next(t, ws, wire.TypeStreamJoined)
	if sj.StreamName != "claude" || sj.OwnerAccountID != anon || !jsonEqual(sj.Metadata, `{"model":"x"}`) {
		t.Fatalf("the WebSocket peer saw %s", sj.Raw)
	}

	// MCP → WebSocket.
	sent := tool(t, agent, "ams_send", map[string]any{"handle": handle, "data": "hello from MCP 🦉"})
	tok := next(t, ws, wire.TypeToken)
	if *tok.Data != "hello from MCP 🦉" || tok.StreamName != "claude" || float64(tok.Seq) != sent["seq"] {
		t.Fatalf("token %s after send %v", tok.Raw, sent)
	}
	// WebSocket → MCP, in wire shape, without the member's own token.
	if err := ws.SendToken(testContext(t, 5*time.Second), "hello from WS"); err != nil {
		t.Fatal(err)
	}
	got := framesOf(t, tool(t, agent, "ams_recv", map[string]any{"handle": handle, "wait_ms": 5000}))
	if len(got) != 1 || got[0]["type"] != "token" || got[0]["data"] != "hello from WS" || got[0]["stream_name"] != "human" {
		t.Fatalf("recv: %v", got)
	}
	for _, k := range []string{"seq", "stream_id", "owner_account_id", "ts"} {
		if _, ok := got[0][k]; !ok {
			t.Fatalf("recv frame lacks %s: %v", k, got[0])
		}
	}

	// A long-poll with nothing to read waits, then returns empty.
	start := time.Now()
	empty := tool(t, agent, "ams_recv", map[string]any{"handle": handle, "wait_ms": 1500})
	if len(framesOf(t, empty)) != 0 || time.Since(start) < 1400*time.Millisecond {
		t.Fatalf("idle recv returned %v after %s", empty, time.Since(start))
	}
	// A frame arriving during the wait ends it early.
	go func() {
		time.Sleep(500 * time.Millisecond)
		ws.SendToken(context.Background(), "during the wait")
	}()
	start = time.Now()
	during := framesOf(t, tool(t, agent, "ams_recv", map[string]any{"handle": handle, "wait_ms": 20000}))
	if len(during) != 1 || during[0]["data"] != "during the wait" || time.Since(start) > 10*time.Second {
		t.Fatalf("recv during wait: %v after %s", during, time.Since(start))
	}

	tool(t, agent, "ams_set_metadata", map[string]any{"handle": handle, "metadata": map[string]any{"mood": "curious"}})
	if sm := next(t, ws, wire.TypeStreamMetadata); !jsonEqual(sm.Metadata, `{"mood":"curious"}`) {
		t.Fatalf("stream_metadata: %s", sm.Raw)
	}
	info, err := broker.client("").Inspect(testContext(t, 10*time.Second), link)
	if err != nil || len(info.Streams) != 2 {
		t.Fatalf("inspect lists %+v %v", info, err)
	}
	tool(t, agent, "ams_leave", map[string]any{"handle": handle})
	if left := next(t, ws, wire.TypeStreamLeft); left.StreamName != "claude" {
		t.Fatalf("stream_left: %s", left.Raw)
	}
	tool(t, agent, "ams_send", map[string]any{"handle": handle, "data": "ghost"}, "not_joined")
	quiet(t, ws)
}

func TestMCPLegacyInitializeAndErrors(t *testing.T) {
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{})
	var sessionIDs []string
	sess, err := mcpConnect(conv.MagicLink, acc.Credential, "2025-03-26", &sessionIDs)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if v := sess.InitializeResult().ProtocolVersion; v != "2025-03-26" {
		t.Fatalf("negotiated %s", v)
	}
	if len(sessionIDs) == 0 {
		t.Fatal("initialize gave no Mcp-Session-Id")
	}
	joined := tool(t, sess, "ams_join", map[string]any{"stream_name": "legacy"})
	if joined["owner_account_id"] != acc.AccountID {
		t.Fatalf("a bearer's member is its account: %v", joined)
	}
	// On the magic-link endpoint the stream name alone addresses the member.
	tool(t, sess, "ams_send", map[string]any{"stream_name": "legacy", "data": "x"})
	tool(t, sess, "ams_join", map[string]any{"magic_link": "http://elsewhere/x/conversations/y?t=z"}, "not_found")
	tool(t, sess, "ams_send", map[string]any{"handle": "garbage", "data": "x"}, "not_joined")
	tool(t, sess, "ams_send", map[string]any{"stream_name": "legacy", "data": strings.Repeat("x", wire.DefaultLimits.TokenBytes+1)}, "token_too_large")
	tool(t, sess, "ams_set_metadata", map[string]any{"stream_name": "legacy", "metadata": []int{1}}, "invalid_metadata")
	tool(t, sess, "ams_recv", map[string]any{"stream_name": "legacy", "wait_ms": "soon"}, "invalid_arguments")

	anon := mcpSession(t, conv.MagicLink, "", "2025-06-18")
	tool(t, anon, "ams_create_conversation", map[string]any{}, "missing_credential")
	// The anonymous member cannot act as the bearer's stream.
	tool(t, anon, "ams_send", map[string]any{"stream_name": "legacy", "data": "x"}, "stream_name_owner_conflict")

	// An invalid bearer is refused, never downgraded.
	if _, err := mcpConnect(conv.MagicLink, "ams_sk_invalid", "", nil); err == nil {
		t.Fatal("an invalid bearer connected")
	}
	raw := func(path, body string, header map[string]string) (int, string) {
		req, _ := http.NewRequest("POST", broker.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if status, body := raw("/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, map[string]string{"Authorization": "Bearer ams_sk_invalid"}); status != 401 || !strings.Contains(body, "invalid_credential") {
		t.Fatalf("invalid bearer: %d %s", status, body)
	}
	link, _ := client.ParseMagicLink(conv.MagicLink)
	path := "/" + link.Namespace + "/conversations/" + link.Alias
	if status, body := raw(path+"?t=wrong", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, nil); status != 403 || !strings.Contains(body, "invalid_token") {
		t.Fatalf("wrong link token: %d %s", status, body)
	}
	for body, want := range map[string]string{
		`{"jsonrpc":"2.0","id":1,`:                                                `-32700`,
		`{"jsonrpc":"2.0","id":1,"method":"nope"}`:                                `-32601`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}}`: `-32602`,
		`{"id":1,"method":"ping"}`:                                                `-32600`,
		strings.Repeat("[", 1000) + strings.Repeat("]", 1000):                     `-32700`,
	} {
		if _, got := raw("/mcp", body, nil); !strings.Contains(got, want) {
			t.Fatalf("%.40s answered %s, want %s", body, got, want)
		}
	}
	if status, body := raw("/mcp", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil); status != 202 || body != "" {
		t.Fatalf("notification: %d %q", status, body)
	}

	// A browser opening the link gets a page, not an error.
	req, _ := http.NewRequest("GET", conv.MagicLink, nil)
	req.Header.Set("Accept", "text/html")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), "mcpServers") {
		t.Fatalf("link page: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	// CORS for browser MCP clients.
	status, header, _ := call(t, "OPTIONS", path+"?t="+link.Token, map[string]string{"Origin": "https://app.test", "Access-Control-Request-Method": "POST"}, "")
	if status >= 300 || !strings.Contains(header.Get("Access-Control-Allow-Headers"), "mcp-session-id") || !strings.Contains(header.Get("Access-Control-Allow-Headers"), "mcp-protocol-version") {
		t.Fatalf("CORS preflight: %d %v", status, header)
	}
}

// TestTwoAgentsTalk: two MCP agents, one link, no copy-paste.
func TestTwoAgentsTalk(t *testing.T) {
	acc := newAccount(t)
	alice := mcpSession(t, broker.URL+"/mcp", acc.Credential, "")
	link := tool(t, alice, "ams_create_conversation", map[string]any{"stream_name": "alice"})["magic_link"].(string)
	a := tool(t, alice, "ams_join", map[string]any{"magic_link": link, "stream_name": "alice"})["handle"].(string)

	bob := mcpSession(t, link, "", "2025-11-25")
	b := tool(t, bob, "ams_join", map[string]any{"stream_name": "bob"})["handle"].(string)
	hello := framesOf(t, tool(t, alice, "ams_recv", map[string]any{"handle": a, "wait_ms": 5000}))
	if len(hello) != 1 || hello[0]["type"] != "stream_joined" || hello[0]["stream_name"] != "bob" {
		t.Fatalf("alice sees %v", hello)
	}
	for i := 0; i < 3; i++ {
		tool(t, alice, "ams_send", map[string]any{"handle": a, "data": "ping " + string(rune('0'+i))})
		got := framesOf(t, tool(t, bob, "ams_recv", map[string]any{"handle": b, "wait_ms": 5000}))
		if len(got) != 1 || got[0]["data"] != "ping "+string(rune('0'+i)) {
			t.Fatalf("bob got %v", got)
		}
		tool(t, bob, "ams_send", map[string]any{"handle": b, "data": "pong " + string(rune('0'+i))})
		got = framesOf(t, tool(t, alice, "ams_recv", map[string]any{"handle": a, "wait_ms": 5000}))
		if len(got) != 1 || got[0]["data"] != "pong "+string(rune('0'+i)) {
			t.Fatalf("alice got %v", got)
		}
	}
	// Neither heard itself.
	if got := framesOf(t, tool(t, alice, "ams_recv", map[string]any{"handle": a})); len(got) != 0 {
		t.Fatalf("alice heard more: %v", got)
	}
}

// TestMCPMemberAcrossHibernation: frames emitted while the member is not
// reading survive the object's hibernation; nothing is lost between reads.
func TestMCPMemberAcrossHibernation(t *testing.T) {
	if testing.Short() {
		t.Skip("hibernation needs a real idle period")
	}
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{})
	agent := mcpSession(t, conv.MagicLink, "", "")
	joined := tool(t, agent, "ams_join", map[string]any{"stream_name": "sleeper"})
	handle := joined["handle"].(string)
	ws, _ := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "talker"})
	for i := 0; i < 5; i++ {
		ws.SendToken(testContext(t, 5*time.Second), "before "+string(rune('0'+i)))
	}
	quiet(t, ws)
	waitForWake(t, broker, []string{joined["stream_id"].(string)}, func() {
		ws.SendToken(testContext(t, 5*time.Second), "after")
	})
	got := framesOf(t, tool(t, agent, "ams_recv", map[string]any{"handle": handle}))
	var data []string
	for _, f := range got {
		if f["type"] == "token" {
			data = append(data, f["data"].(string))
		}
	}
	if strings.Join(data, "|") != "before 0|before 1|before 2|before 3|before 4|after" {
		t.Fatalf("after hibernation the member read %v", data)
	}
	tool(t, agent, "ams_send", map[string]any{"handle": handle, "data": "awake"})
	if tok := next(t, ws, wire.TypeToken); *tok.Data != "awake" {
		t.Fatalf("ws: %s", tok.Raw)
	}
}

// TestMCPMemberIdleExpiry runs a broker whose members expire after 2 s.
func TestMCPMemberIdleExpiry(t *testing.T) {
	b, err := StartBroker(BrokerOptions{Vars: map[string]string{
		"AMS_CREDENTIAL_PEPPER":       randomHex(16),
		"AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(16),
		"AMS_MCP_IDLE_SECONDS":        "2",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	ctx := testContext(t, 60*time.Second)
	acc, err := b.client("").CreateAccount(ctx, "idle")
	if err != nil {
		t.Fatal(err)
	}
	conv, err := b.client(acc.Credential).CreateConversation(ctx, acc.Namespace, client.NewConversation{})
	if err != nil {
		t.Fatal(err)
	}
	agent := mcpSession(t, conv.MagicLink, "", "")
	handle := tool(t, agent, "ams_join", map[string]any{"stream_name": "forgetful"})["handle"].(string)
	ws, _ := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "watcher"})
	start := time.Now()
	left := next(t, ws, wire.TypeStreamLeft)
	if left.StreamName != "forgetful" || time.Since(start) > 15*time.Second {
		t.Fatalf("stream_left %s after %s", left.Raw, time.Since(start))
	}
	// The member's next call joins it again (self-rehydration), with the
	// session's name and reader, and peers see it come back.
	back := tool(t, agent, "ams_send", map[string]any{"handle": handle, "data": "still here"})
	if back["rejoined"] != true {
		t.Fatalf("send after expiry: %v", back)
	}
	if sj := next(t, ws, wire.TypeStreamJoined); sj.StreamName != "forgetful" {
		t.Fatalf("rejoin: %s", sj.Raw)
	}
	if tok := next(t, ws, wire.TypeToken); *tok.Data != "still here" {
		t.Fatalf("token after rejoin: %s", tok.Raw)
	}
}

// TestMCPNotificationsOnTheStream: a client that accepts an event stream gets
// each frame of an ams_recv also as notifications/ams/{type} before the result.
func TestMCPNotificationsOnTheStream(t *testing.T) {
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{})
	post := func(body string) (string, string) {
		req, _ := http.NewRequest("POST", conv.MagicLink, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.Header.Get("Content-Type"), string(raw)
	}
	post(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ams_join","arguments":{"stream_name":"listener"}}}`)
	ws, _ := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "talker"})
	ws.SendToken(testContext(t, 5*time.Second), "notify me")
	quiet(t, ws)
	ct, body := post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ams_recv","arguments":{"stream_name":"listener","wait_ms":5000}}}`)
	events := strings.Split(strings.TrimSpace(body), "\n\n")
	if !strings.HasPrefix(ct, "text/event-stream") || len(events) != 3 {
		t.Fatalf("%s with %d events: %s", ct, len(events), body)
	}
	for i, want := range []string{`"method":"notifications/ams/stream_joined"`, `"method":"notifications/ams/token"`, `"id":2`} {
		if !strings.HasPrefix(events[i], "event: message\ndata: ") || !strings.Contains(events[i], want) {
			t.Fatalf("event %d lacks %s: %s", i, want, events[i])
		}
	}
	if !strings.Contains(events[1], `"data":"notify me"`) || strings.Contains(events[1], `"type"`) {
		t.Fatalf("the token notification's params: %s", events[1])
	}
}
