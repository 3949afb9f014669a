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

// TestMCPReferenceDialectGoSDK (issue 11) drives the hosted reference's
// dialect with the official Go SDK client: join, then send{data} and
// recv{wait_ms} with no handle; peer identity seen by a WebSocket peer; a
// streamed reply gathered by one read; a second session taking the stream
// over; the session's end making the member leave.
func TestMCPReferenceDialectGoSDK(t *testing.T) {
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{})
	ws, _ := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "human"})
	agent := mcpSession(t, conv.MagicLink, "", "2025-06-18")

	joined := tool(t, agent, "ams_join", map[string]any{"peer_identity": map[string]any{"kind": "agent", "model": "m-1", "client": "Claude Code"}})
	name, _ := joined["stream_name"].(string)
	if joined["ok"] != true || !strings.HasPrefix(name, "claude-code-") || joined["self_subscribe"] != false {
		t.Fatalf("join: %v", joined)
	}
	if peers, _ := joined["peers"].([]any); len(peers) != 1 || peers[0].(map[string]any)["stream_name"] != "human" {
		t.Fatalf("join peers: %v", joined["peers"])
	}
	sj := next(t, ws, wire.TypeStreamJoined)
	if sj.StreamName != name || !strings.Contains(string(sj.Raw), `"peer_identity":{"kind":"agent","model":"m-1","client":"Claude Code"}`) {
		t.Fatalf("the WebSocket peer saw %s", sj.Raw)
	}

	sent := tool(t, agent, "ams_send", map[string]any{"data": "hello <b>&amp; 🦉"})
	if sent["ok"] != true || sent["ts"] == "" {
		t.Fatalf("send: %v", sent)
	}
	if tok := next(t, ws, wire.TypeToken); *tok.Data != "hello <b>&amp; 🦉" || tok.StreamName != name {
		t.Fatalf("token %s", tok.Raw)
	}
	if err := ws.SendToken(testContext(t, 5*time.Second), "hi agent"); err != nil {
		t.Fatal(err)
	}
	got := tool(t, agent, "ams_recv", map[string]any{"wait_ms": 5000})
	frames := got["frames"].([]any)
	if got["ok"] != true || got["truncated"] != false || len(frames) != 1 {
		t.Fatalf("recv: %v", got)
	}
	if f := frames[0].(map[string]any); f["method"] != "notifications/ams/token" || f["params"].(map[string]any)["data"] != "hi agent" {
		t.Fatalf("recv frame %v", frames[0])
	}

	// A peer streams 18 words 40 ms apart: calls per streamed reply.
	words := strings.Fields("the quick brown fox jumps over the lazy dog and then it runs far away from the farm")
	stream := func() {
		go func() {
			for _, w := range words {
				ws.SendToken(context.Background(), w+" ")
				time.Sleep(40 * time.Millisecond)
			}
		}()
	}
	read := func(args map[string]any) (int, string) {
		calls, text := 0, ""
		for n := 0; n < len(words) && calls < 100; {
			calls++
			for _, f := range framesOf(t, tool(t, agent, "ams_recv", args)) {
				if f["type"] == "token" {
					text += f["data"].(string)
					n += 1
					if tokens, ok := f["tokens"].(float64); ok {
						n += int(tokens) - 1
					}
				}
			}
		}
		return calls, text
	}
	stream()
	before, text0 := read(map[string]any{"wait_ms": 5000, "gather_ms": 0})
	stream()
	after, text1 := read(map[string]any{"wait_ms": 5000})
	stream()
	coalesced := tool(t, agent, "ams_recv", map[string]any{"wait_ms": 5000, "coalesce": true, "gather_ms": 1000})
	want := strings.Join(words, " ") + " "
	t.Logf("ams_recv calls per streamed reply of %d words 40 ms apart: %d with gather_ms 0 (as before), %d with the default gather_ms %d",
		len(words), before, after, wire.DefaultGatherMS)
	if text0 != want || text1 != want {
		t.Fatalf("streamed replies read as %q and %q", text0, text1)
	}
	if cf := framesOf(t, coalesced); len(cf) == 0 || cf[0]["seq_from"] == nil {
		t.Fatalf("coalesced read %v", coalesced)
	}

	// Another session naming the same stream takes it over: the first is
	// told why, and never reads the second's frames.
	other := mcpSession(t, conv.MagicLink, "", "2025-06-18")
	tool(t, agent, "ams_recv", map[string]any{"gather_ms": 1000})
	tool(t, other, "ams_join", map[string]any{"stream_name": name})
	if out := tool(t, agent, "ams_recv", map[string]any{}, "not_joined"); !strings.Contains(out["message"].(string), "took it over") {
		t.Fatalf("the first session after takeover: %v", out)
	}
	if err := ws.SendToken(testContext(t, 5*time.Second), "for the new owner"); err != nil {
		t.Fatal(err)
	}
	if f := framesOf(t, tool(t, other, "ams_recv", map[string]any{"wait_ms": 5000})); len(f) != 1 || f[0]["data"] != "for the new owner" {
		t.Fatalf("the new owner reads %v", f)
	}
	// Ending the session (DELETE) makes its member leave.
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if left := next(t, ws, wire.TypeStreamLeft); left.StreamName != name {
		t.Fatalf("after the session ended: %s", left.Raw)
	}
}

// TestMCPSelfRehydrationSessionless (11.2): a runtime without sessions sends
// with magic_link and stream_name and no join; after ams_leave it must join.
func TestMCPSelfRehydrationSessionless(t *testing.T) {
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{})
	ws, _ := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "human"})
	callTool := func(name string, args map[string]any) map[string]any {
		raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
			"params": map[string]any{"name": name, "arguments": args, "_meta": map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}})
		req, _ := http.NewRequest("POST", broker.URL+"/mcp", strings.NewReader(string(raw)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		var reply struct {
			Result struct {
				StructuredContent map[string]any `json:"structuredContent"`
			} `json:"result"`
		}
		if err := json.Unmarshal(body, &reply); err != nil {
			t.Fatalf("%s: %s", name, body)
		}
		return reply.Result.StructuredContent
	}
	args := map[string]any{"magic_link": conv.MagicLink, "stream_name": "chatgpt", "data": "no join needed"}
	if out := callTool("ams_send", args); out["ok"] != true || out["rejoined"] != true {
		t.Fatalf("send without join: %v", out)
	}
	if sj := next(t, ws, wire.TypeStreamJoined); sj.StreamName != "chatgpt" {
		t.Fatalf("%s", sj.Raw)
	}
	if tok := next(t, ws, wire.TypeToken); *tok.Data != "no join needed" {
		t.Fatalf("%s", tok.Raw)
	}
	ws.SendToken(testContext(t, 5*time.Second), "reply")
	out := callTool("ams_recv", map[string]any{"magic_link": conv.MagicLink, "wait_ms": 5000})
	if frames, _ := out["frames"].([]any); len(frames) != 1 || frames[0].(map[string]any)["params"].(map[string]any)["data"] != "reply" {
		t.Fatalf("recv by the caller's one member: %v", out)
	}
	callTool("ams_leave", map[string]any{"magic_link": conv.MagicLink, "stream_name": "chatgpt"})
	if out := callTool("ams_send", args); out["error"] != "not_joined" {
		t.Fatalf("send after leave: %v", out)
	}
}

// TestMCPPromptsAndResourcesGoSDK (11.5) through the official Go SDK.
func TestMCPPromptsAndResourcesGoSDK(t *testing.T) {
	acc := newAccount(t)
	meta := json.RawMessage(`{"instructions":"Be kind.","prompts":[{"name":"greet","description":"Say hello","messages":[{"role":"user","content":{"type":"text","text":"Greet the room."}}]}]}`)
	conv := mint(t, acc, client.NewConversation{Metadata: meta})
	sess := mcpSession(t, conv.MagicLink, "", "2025-06-18")
	ctx := testContext(t, 20*time.Second)
	caps := sess.InitializeResult().Capabilities
	if caps.Prompts == nil || caps.Resources == nil {
		t.Fatalf("capabilities %+v", caps)
	}
	prompts, err := sess.ListPrompts(ctx, nil)
	if err != nil || len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != "greet" {
		t.Fatalf("prompts %+v %v", prompts, err)
	}
	p, err := sess.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet"})
	if err != nil || len(p.Messages) != 1 || p.Messages[0].Content.(*mcp.TextContent).Text != "Greet the room." {
		t.Fatalf("prompt %+v %v", p, err)
	}
	tool(t, sess, "ams_join", map[string]any{"stream_name": "reader"})
	res, err := sess.ListResources(ctx, nil)
	if err != nil || len(res.Resources) != 4 {
		t.Fatalf("resources %+v %v", res, err)
	}
	for _, r := range res.Resources {
		read, err := sess.ReadResource(ctx, &mcp.ReadResourceParams{URI: r.URI})
		if err != nil || len(read.Contents) != 1 || read.Contents[0].Text == "" {
			t.Fatalf("read %s: %+v %v", r.URI, read, err)
		}
		if strings.HasSuffix(r.URI, "/peers") && !strings.Contains(read.Contents[0].Text, `"reader"`) {
			t.Fatalf("peers %s", read.Contents[0].Text)
		}
	}
}
