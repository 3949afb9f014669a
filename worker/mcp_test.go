package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// mcpFixture is a fixture whose conversation objects are real
// conversations (fakeObjects), so MCP calls run the broker's own logic.
type mcpFixture struct {
	*fixture
	objects *fakeObjects
	token   string
}

func newMCPFixture(t *testing.T) *mcpFixture {
	t.Helper()
	f := newFixture(t)
	o := newFakeObjects(t, f.s.Limits)
	f.s.Objects = o
	return &mcpFixture{fixture: f, objects: o, token: f.link.Query().Get("t")}
}

// linkURL is the magic link: an MCP endpoint with the conversation bound.
func (f *mcpFixture) linkURL() string { return f.link.String() }

// ws connects a WebSocket peer of the fixture's account.
func (f *mcpFixture) ws(t *testing.T, name string) *wsPeer {
	t.Helper()
	return f.objects.connectWS(t, f.s, f.connect(map[string]string{wire.HeaderStreamName: name}, nil))
}

const mcpURL = "https://ams.example/mcp"

func postMCP(t *testing.T, s *Service, target, bearerToken, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	if bearerToken != "" {
		r.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

type rpcResponse struct {
	JSONRPC string                     `json:"jsonrpc"`
	ID      json.RawMessage            `json:"id"`
	Result  map[string]json.RawMessage `json:"result"`
	Error   *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

func decodeRPC(t *testing.T, w *httptest.ResponseRecorder) rpcResponse {
	t.Helper()
	var resp rpcResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("%d %q is not a JSON-RPC response: %v", w.Code, w.Body.String(), err)
	}
	if resp.JSONRPC != "2.0" {
		t.Errorf("jsonrpc %q in %s", resp.JSONRPC, w.Body.String())
	}
	if (resp.Error == nil) == (resp.Result == nil) {
		t.Errorf("a response has exactly one of result and error: %s", w.Body.String())
	}
	return resp
}

func rpcBody(id any, method string, params any) string {
	msg := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	raw, _ := json.Marshal(msg)
	return string(raw)
}

func rpc(t *testing.T, s *Service, target, bearerToken, method string, params any, header map[string]string) (rpcResponse, *httptest.ResponseRecorder) {
	t.Helper()
	w := postMCP(t, s, target, bearerToken, rpcBody(1, method, params), header)
	if w.Code != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", method, w.Code, w.Body.String())
	}
	switch ct := w.Header().Get("Content-Type"); {
	case strings.HasPrefix(ct, "text/event-stream"):
		checkNotifications(t, w)
	case !strings.HasPrefix(ct, "application/json"):
		t.Errorf("%s: Content-Type %q", method, ct)
	}
	resp := decodeRPC(t, w)
	if string(resp.ID) != "1" {
		t.Errorf("%s: id %s, want 1", method, resp.ID)
	}
	return resp, w
}

// toolCall calls a tool and returns its structured result and isError. It
// checks the result's shape: one text content holding the same JSON as
// structuredContent.
func toolCall(t *testing.T, s *Service, target, bearerToken, name string, args any) (map[string]json.RawMessage, bool) {
	t.Helper()
	return toolIn(t, s, target, bearerToken, nil, name, args)
}

// toolIn is toolCall with request headers (an Mcp-Session-Id).
func toolIn(t *testing.T, s *Service, target, bearerToken string, header map[string]string, name string, args any) (map[string]json.RawMessage, bool) {
	t.Helper()
	resp, _ := rpc(t, s, target, bearerToken, "tools/call", map[string]any{"name": name, "arguments": args}, header)
	if resp.Error != nil {
		t.Fatalf("%s: JSON-RPC error %+v", name, *resp.Error)
	}
	var content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(resp.Result["content"], &content); err != nil || len(content) != 1 || content[0].Type != "text" {
		t.Fatalf("%s: content %s", name, resp.Result["content"])
	}
	var fromText, fromStructured any
	if err := json.Unmarshal([]byte(content[0].Text), &fromText); err != nil {
		t.Fatalf("%s: content text %q is not JSON", name, content[0].Text)
	}
	if err := json.Unmarshal(resp.Result["structuredContent"], &fromStructured); err != nil {
		t.Fatalf("%s: structuredContent %s", name, resp.Result["structuredContent"])
	}
	if !reflect.DeepEqual(fromText, fromStructured) {
		t.Errorf("%s: content text %s differs from structuredContent %s", name, content[0].Text, resp.Result["structuredContent"])
	}
	if _, ok := fromStructured.(map[string]any); !ok {
		t.Fatalf("%s: structuredContent %s is not an object", name, resp.Result["structuredContent"])
	}
	var out map[string]json.RawMessage
	_ = json.Unmarshal(resp.Result["structuredContent"], &out)
	isError := false
	if raw, ok := resp.Result["isError"]; ok {
		if string(raw) != "true" {
			t.Errorf("%s: isError %s", name, raw)
		}
		isError = true
	}
	return out, isError
}

// toolOK calls a tool that must succeed.
func toolOK(t *testing.T, s *Service, target, bearerToken, name string, args any) map[string]json.RawMessage {
	t.Helper()
	out, isError := toolCall(t, s, target, bearerToken, name, args)
	if isError {
		t.Fatalf("%s(%v) failed: %s %s", name, args, out["error"], out["message"])
	}
	return out
}

// toolErr calls a tool that must fail and returns its error code.
func toolErr(t *testing.T, s *Service, target, bearerToken, name string, args any) string {
	t.Helper()
	out, isError := toolCall(t, s, target, bearerToken, name, args)
	if !isError {
		raw, _ := json.Marshal(out)
		t.Fatalf("%s(%v) succeeded: %s", name, args, raw)
	}
	var code, message string
	if json.Unmarshal(out["error"], &code) != nil || code == "" || json.Unmarshal(out["message"], &message) != nil || message == "" {
		t.Errorf("%s: error result %v lacks error and message", name, out)
	}
	return code
}

func jstr(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a string", raw)
	}
	return s
}

func jint(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		t.Fatalf("%s is not an integer", raw)
	}
	return n
}

// recvFrames decodes the frames of an ams_recv result, each
// {method: "notifications/ams/<type>", params: the wire frame without type},
// back into the wire frame.
func recvFrames(t *testing.T, out map[string]json.RawMessage) []map[string]any {
	t.Helper()
	var notes []struct {
		Method string         `json:"method"`
		Params map[string]any `json:"params"`
	}
	if err := json.Unmarshal(out["frames"], &notes); err != nil || notes == nil {
		t.Fatalf("frames %s: %v", out["frames"], err)
	}
	frames := []map[string]any{}
	for _, n := range notes {
		typ, ok := strings.CutPrefix(n.Method, "notifications/ams/")
		if !ok || n.Params == nil || n.Params["type"] != nil {
			t.Fatalf("frame %+v is not a notification", n)
		}
		if typ == "truncated" {
			continue
		}
		n.Params["type"] = typ
		frames = append(frames, n.Params)
	}
	return frames
}

func TestMCPInitializeVersionNegotiation(t *testing.T) {
	f := newMCPFixture(t)
	tests := []struct{ requested, want string }{
		{"2025-11-25", "2025-11-25"},
		{"2025-06-18", "2025-06-18"},
		{"2025-03-26", "2025-03-26"},
		{"2024-11-05", "2024-11-05"},
		{"1999-01-01", "2025-11-25"},
		{"", "2025-11-25"},
		{"2099-12-31", "2025-11-25"},
		// The stateless revision has no initialize: a client asking for it
		// through initialize gets the latest session-based one.
		{"2026-07-28", "2025-11-25"},
	}
	for _, target := range []string{mcpURL, f.linkURL()} {
		for _, tt := range tests {
			t.Run(tt.requested, func(t *testing.T) {
				resp, w := rpc(t, f.s, target, "", "initialize", map[string]any{
					"protocolVersion": tt.requested,
					"capabilities":    map[string]any{},
					"clientInfo":      map[string]string{"name": "test", "version": "1"},
				}, nil)
				if resp.Error != nil {
					t.Fatalf("initialize: %+v", *resp.Error)
				}
				if got := jstr(t, resp.Result["protocolVersion"]); got != tt.want {
					t.Errorf("protocolVersion %q, want %q", got, tt.want)
				}
				if w.Header().Get("Mcp-Session-Id") == "" {
					t.Error("no Mcp-Session-Id header")
				}
				var info map[string]string
				_ = json.Unmarshal(resp.Result["serverInfo"], &info)
				if info["name"] != "ams" || info["version"] == "" {
					t.Errorf("serverInfo %s", resp.Result["serverInfo"])
				}
				var caps map[string]map[string]any
				if json.Unmarshal(resp.Result["capabilities"], &caps) != nil || caps["tools"] == nil {
					t.Errorf("capabilities %s", resp.Result["capabilities"])
				}
				if !strings.Contains(jstr(t, resp.Result["instructions"]), "ams_join") {
					t.Errorf("instructions %s", resp.Result["instructions"])
				}
				if _, ok := resp.Result["resultType"]; ok {
					t.Error("a session-based initialize carries resultType")
				}
			})
		}
	}
	// Session ids name no state and do not repeat.
	_, w1 := rpc(t, f.s, mcpURL, "", "initialize", map[string]any{"protocolVersion": "2025-06-18"}, nil)
	_, w2 := rpc(t, f.s, mcpURL, "", "initialize", map[string]any{"protocolVersion": "2025-06-18"}, nil)
	if w1.Header().Get("Mcp-Session-Id") == w2.Header().Get("Mcp-Session-Id") {
		t.Error("two initializes got the same session id")
	}
	// The session id exposes itself to browsers.
	if got := w1.Header().Get("Access-Control-Expose-Headers"); !strings.Contains(strings.ToLower(got), "mcp-session-id") {
		t.Errorf("Access-Control-Expose-Headers %q", got)
	}
}

func TestMCPNotificationsAccepted(t *testing.T) {
	f := newMCPFixture(t)
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`,
		`{"jsonrpc":"2.0","id":null,"method":"notifications/initialized"}`,
		`[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}]`,
	} {
		for _, target := range []string{mcpURL, f.linkURL()} {
			w := postMCP(t, f.s, target, "", body, map[string]string{"Mcp-Session-Id": f.s.Peppers.NewSessionID("test")})
			if w.Code != http.StatusAccepted || w.Body.Len() != 0 {
				t.Errorf("%s → %d %q, want 202 with no body", body, w.Code, w.Body.String())
			}
			// A session id this service did not issue is the transport's 404.
			w = postMCP(t, f.s, target, "", body, map[string]string{"Mcp-Session-Id": "anything"})
			if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "session_not_found") {
				t.Errorf("%s with a made-up session → %d %q, want 404", body, w.Code, w.Body.String())
			}
		}
	}
}

// TestMCPResponseMessageAccepted: a JSON-RPC response a client posts (an
// answer to a server request) must get 202 with no body (MCP Streamable
// HTTP), as mcp_rpc.go's comments promise.
func TestMCPResponseMessageAccepted(t *testing.T) {
	f := newMCPFixture(t)
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":5,"result":{}}`,
		`{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"no"}}`,
	} {
		w := postMCP(t, f.s, mcpURL, "", body, nil)
		if w.Code != http.StatusAccepted || w.Body.Len() != 0 {
			t.Errorf("%s → %d %q, want 202", body, w.Code, w.Body.String())
		}
	}
}

func TestMCPServerDiscover(t *testing.T) {
	f := newMCPFixture(t)
	meta := map[string]any{"_meta": map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}
	cases := []struct {
		name   string
		params any
		header map[string]string
	}{
		{"params._meta", meta, nil},
		{"Mcp-Protocol-Version header", nil, map[string]string{"Mcp-Protocol-Version": "2026-07-28"}},
		{"_meta wins over the header", meta, map[string]string{"Mcp-Protocol-Version": "2025-06-18"}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := rpc(t, f.s, mcpURL, "", "server/discover", tt.params, tt.header)
			if resp.Error != nil {
				t.Fatalf("server/discover: %+v", *resp.Error)
			}
			var versions []string
			_ = json.Unmarshal(resp.Result["supportedVersions"], &versions)
			for _, v := range []string{"2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26"} {
				if !slices.Contains(versions, v) {
					t.Errorf("supportedVersions %v lacks %s", versions, v)
				}
			}
			if !strings.Contains(jstr(t, resp.Result["instructions"]), "ams_recv") {
				t.Errorf("instructions %s", resp.Result["instructions"])
			}
			if resp.Result["capabilities"] == nil {
				t.Error("no capabilities")
			}
			if got := string(resp.Result["resultType"]); got != `"complete"` {
				t.Errorf("resultType %s, want complete", got)
			}
			var m map[string]map[string]string
			if json.Unmarshal(resp.Result["_meta"], &m) != nil || m["io.modelcontextprotocol/serverInfo"]["name"] != "ams" {
				t.Errorf("_meta %s lacks serverInfo", resp.Result["_meta"])
			}
		})
	}
	// Every result of the current revision is marked complete.
	resp, _ := rpc(t, f.s, mcpURL, "", "tools/list", meta, nil)
	if string(resp.Result["resultType"]) != `"complete"` {
		t.Errorf("tools/list under 2026-07-28: resultType %s", resp.Result["resultType"])
	}
	out, _ := rpc(t, f.s, mcpURL, "", "tools/call", map[string]any{"name": "ams_leave", "arguments": map[string]any{}, "_meta": meta["_meta"]}, nil)
	if string(out.Result["resultType"]) != `"complete"` || out.Result["isError"] == nil {
		t.Errorf("tools/call under 2026-07-28: %v", out.Result)
	}
	// A legacy request carries neither.
	resp, _ = rpc(t, f.s, mcpURL, "", "tools/list", nil, map[string]string{"Mcp-Protocol-Version": "2025-06-18"})
	if resp.Result["resultType"] != nil || resp.Result["_meta"] != nil {
		t.Errorf("legacy tools/list carries resultType/_meta: %v", resp.Result)
	}
}

func TestMCPUnsupportedProtocolVersion(t *testing.T) {
	f := newMCPFixture(t)
	cases := []struct {
		name   string
		params any
		header map[string]string
	}{
		{"_meta", map[string]any{"_meta": map[string]any{"io.modelcontextprotocol/protocolVersion": "2099-01-01"}}, nil},
		{"header", nil, map[string]string{"Mcp-Protocol-Version": "2099-01-01"}},
	}
	for _, tt := range cases {
		for _, method := range []string{"server/discover", "tools/list", "ping"} {
			t.Run(tt.name+" "+method, func(t *testing.T) {
				resp, _ := rpc(t, f.s, mcpURL, "", method, tt.params, tt.header)
				if resp.Error == nil || resp.Error.Code != -32022 {
					t.Fatalf("got %+v, want -32022", resp)
				}
				var data struct {
					Supported []string `json:"supported"`
					Requested string   `json:"requested"`
				}
				if err := json.Unmarshal(resp.Error.Data, &data); err != nil || !slices.Contains(data.Supported, "2026-07-28") ||
					!slices.Contains(data.Supported, "2025-11-25") || data.Requested != "2099-01-01" {
					t.Errorf("error data %s", resp.Error.Data)
				}
			})
		}
	}
}

func TestMCPToolsList(t *testing.T) {
	f := newMCPFixture(t)
	resp, _ := rpc(t, f.s, mcpURL, "", "tools/list", nil, nil)
	var tools []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		InputSchema struct {
			Type       string                    `json:"type"`
			Properties map[string]map[string]any `json:"properties"`
			Required   []string                  `json:"required"`
		} `json:"inputSchema"`
	}
	if err := json.Unmarshal(resp.Result["tools"], &tools); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools {
		names = append(names, tl.Name)
		if tl.Description == "" || tl.InputSchema.Type != "object" || tl.InputSchema.Properties == nil {
			t.Errorf("tool %s: description %q, schema %+v", tl.Name, tl.Description, tl.InputSchema)
		}
		for prop, schema := range tl.InputSchema.Properties {
			if schema["type"] == nil || schema["description"] == nil {
				t.Errorf("tool %s property %s: schema %v lacks type or description", tl.Name, prop, schema)
			}
		}
		for _, r := range tl.InputSchema.Required {
			if tl.InputSchema.Properties[r] == nil {
				t.Errorf("tool %s requires undeclared %s", tl.Name, r)
			}
		}
	}
	want := []string{"ams_create_conversation", "ams_join", "ams_send", "ams_recv", "ams_set_metadata", "ams_leave"}
	if !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}
	byName := map[string]int{}
	for i, tl := range tools {
		byName[tl.Name] = i
	}
	if r := tools[byName["ams_send"]].InputSchema.Required; !slices.Equal(r, []string{"data"}) {
		t.Errorf("ams_send required %v", r)
	}
	if r := tools[byName["ams_set_metadata"]].InputSchema.Required; !slices.Equal(r, []string{"metadata"}) {
		t.Errorf("ams_set_metadata required %v", r)
	}
	wait := tools[byName["ams_recv"]].InputSchema.Properties["wait_ms"]
	if wait["type"] != "integer" || wait["minimum"] != float64(0) || wait["maximum"] != float64(25000) {
		t.Errorf("ams_recv wait_ms schema %v", wait)
	}
	for _, name := range []string{"ams_send", "ams_recv", "ams_set_metadata", "ams_leave"} {
		if tools[byName[name]].InputSchema.Properties["handle"] == nil {
			t.Errorf("%s takes no handle", name)
		}
	}
	join := tools[byName["ams_join"]].InputSchema.Properties
	for _, p := range []string{"magic_link", "stream_name", "stream_metadata", "self_subscribe"} {
		if join[p] == nil {
			t.Errorf("ams_join lacks %s", p)
		}
	}
}

func TestMCPJSONRPCErrors(t *testing.T) {
	f := newMCPFixture(t)
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	deepObject := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":` + strings.Repeat(`{"a":`, 500) + `1` + strings.Repeat(`}`, 500) + `}}`
	tests := []struct {
		name   string
		body   string
		status int
		code   int
		id     string
	}{
		{"truncated", `{"jsonrpc":"2.0","id":1,`, 400, -32700, "null"},
		{"not JSON", `hello`, 400, -32700, "null"},
		{"empty body", ``, 400, -32700, "null"},
		{"invalid UTF-8 is still JSON to encoding/json", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", 200, -32601, "1"},
		{"deeply nested array", deep, 400, -32700, "null"},
		{"unbalanced deep nesting", strings.Repeat(`{"a":[`, 20000), 400, -32700, "null"},
		{"deeply nested params", deepObject, 400, -32700, "null"},
		{"trailing garbage", `{"jsonrpc":"2.0","id":1,"method":"ping"} x`, 400, -32700, "null"},
		{"wrong jsonrpc", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, 200, -32600, "null"},
		{"no jsonrpc", `{"id":1,"method":"ping"}`, 200, -32600, "null"},
		{"a number", `42`, 200, -32600, "null"},
		{"a string", `"ping"`, 200, -32600, "null"},
		{"method of the wrong type", `{"jsonrpc":"2.0","id":1,"method":7}`, 200, -32600, "null"},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage"}`, 200, -32601, "1"},
		{"string id echoed", `{"jsonrpc":"2.0","id":"abc","method":"nope"}`, 200, -32601, `"abc"`},
		{"unknown tool", `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"rm_rf","arguments":{}}}`, 200, -32602, "2"},
		{"tools/call params not an object", `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"ams_send"}`, 200, -32602, "3"},
		{"tools/call name of the wrong type", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":5}}`, 200, -32602, "4"},
		{"tools/call without params", `{"jsonrpc":"2.0","id":5,"method":"tools/call"}`, 200, -32602, "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := postMCP(t, f.s, mcpURL, "", tt.body, nil)
			if w.Code != tt.status {
				t.Errorf("HTTP %d, want %d: %.200s", w.Code, tt.status, w.Body.String())
			}
			resp := decodeRPC(t, w)
			if resp.Error == nil || resp.Error.Code != tt.code || resp.Error.Message == "" {
				t.Fatalf("got %.300s, want error %d", w.Body.String(), tt.code)
			}
			if string(resp.ID) != tt.id {
				t.Errorf("id %s, want %s", resp.ID, tt.id)
			}
		})
	}
	resp, _ := rpc(t, f.s, mcpURL, "", "ping", nil, nil)
	if resp.Error != nil || len(resp.Result) != 0 {
		t.Errorf("ping: %+v", resp)
	}
}

func TestMCPBatch(t *testing.T) {
	f := newMCPFixture(t)
	body := `[` + rpcBody(1, "initialize", map[string]any{"protocolVersion": "2025-03-26"}) + `,` +
		`{"jsonrpc":"2.0","method":"notifications/initialized"},` +
		rpcBody("two", "tools/list", nil) + `,` +
		rpcBody(3, "nope", nil) + `,` +
		`17]`
	w := postMCP(t, f.s, mcpURL, "", body, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("batch: %d %s", w.Code, w.Body.String())
	}
	var replies []rpcResponse
	if err := json.Unmarshal(w.Body.Bytes(), &replies); err != nil {
		t.Fatalf("batch reply %s: %v", w.Body.String(), err)
	}
	if len(replies) != 4 {
		t.Fatalf("%d replies to 4 requests (and a notification): %s", len(replies), w.Body.String())
	}
	if string(replies[0].ID) != "1" || replies[0].Result["protocolVersion"] == nil {
		t.Errorf("reply 1: %+v", replies[0])
	}
	if string(replies[1].ID) != `"two"` || replies[1].Result["tools"] == nil {
		t.Errorf("reply 2: %+v", replies[1])
	}
	if string(replies[2].ID) != "3" || replies[2].Error == nil || replies[2].Error.Code != -32601 {
		t.Errorf("reply 3: %+v", replies[2])
	}
	if string(replies[3].ID) != "null" || replies[3].Error == nil || replies[3].Error.Code != -32600 {
		t.Errorf("reply 4: %+v", replies[3])
	}
	if w.Header().Get("Mcp-Session-Id") == "" {
		t.Error("a batched initialize sets no session id")
	}
}

func TestMCPBodyLimit(t *testing.T) {
	f := newMCPFixture(t)
	const limit = 256 << 10
	envelope := rpcBody(1, "ping", map[string]string{"pad": ""})
	fit := strings.Replace(envelope, `"pad":""`, `"pad":"`+strings.Repeat("x", limit-len(envelope))+`"`, 1)
	if len(fit) != limit {
		t.Fatalf("built %d bytes", len(fit))
	}
	if w := postMCP(t, f.s, mcpURL, "", fit, nil); w.Code != http.StatusOK {
		t.Errorf("exactly %d bytes: %d %.200s", limit, w.Code, w.Body.String())
	}
	over := fit[:len(fit)-2] + `x"}}`
	w := postMCP(t, f.s, mcpURL, "", over, nil)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d bytes: %d, want 413", len(over), w.Code)
	}
	var e map[string]string
	if json.Unmarshal(w.Body.Bytes(), &e) != nil || e["error"] != "body_too_large" || e["message"] == "" {
		t.Errorf("413 body %s", w.Body.String())
	}
	// On the magic link too, and for garbage.
	if w := postMCP(t, f.s, f.linkURL(), "", strings.Repeat("[", limit+1), nil); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("magic link, %d bytes: %d", limit+1, w.Code)
	}
}

func TestMCPBearerRefusedNeverDowngraded(t *testing.T) {
	f := newMCPFixture(t)
	for _, target := range []string{mcpURL, f.linkURL()} {
		for _, credential := range []string{"ams_sk_nope", "garbage", f.credential + "x"} {
			w := postMCP(t, f.s, target, credential, rpcBody(1, "tools/list", nil), nil)
			var e map[string]string
			_ = json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != http.StatusUnauthorized || e["error"] != "invalid_credential" {
				t.Errorf("%s with bearer %q: %d %s, want 401 invalid_credential", target, credential, w.Code, w.Body.String())
			}
		}
	}
	// No join happened on anyone's behalf.
	if _, ok := f.objects.lastCall("join"); ok {
		t.Error("a refused bearer reached the conversation")
	}
	// A valid bearer works on both.
	for _, target := range []string{mcpURL, f.linkURL()} {
		if resp, _ := rpc(t, f.s, target, f.credential, "tools/list", nil, nil); resp.Error != nil {
			t.Errorf("%s with a valid bearer: %+v", target, *resp.Error)
		}
	}
}

func TestMCPMagicLinkRoute(t *testing.T) {
	f := newMCPFixture(t)
	base := "https://ams.example/demo/conversations/calm-otter-1234"
	tests := []struct {
		name   string
		target string
		status int
		code   string
	}{
		{"wrong token", base + "?t=" + wire.NewPermissiveToken(), 403, "invalid_token"},
		{"token of another length", base + "?t=x", 403, "invalid_token"},
		{"missing token", base, 400, "missing_token"},
		{"empty token", base + "?t=", 400, "missing_token"},
		{"unknown alias", "https://ams.example/demo/conversations/no-such-1234?t=" + f.token, 404, "not_found"},
		{"unknown namespace", "https://ams.example/nobody/conversations/calm-otter-1234?t=" + f.token, 404, "not_found"},
		{"invalid alias", "https://ams.example/demo/conversations/UPPER?t=" + f.token, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := postMCP(t, f.s, tt.target, "", rpcBody(1, "initialize", map[string]any{"protocolVersion": "2025-06-18"}), nil)
			var e map[string]string
			_ = json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != tt.status || e["error"] != tt.code || e["message"] == "" {
				t.Errorf("%d %s, want %d %s", w.Code, w.Body.String(), tt.status, tt.code)
			}
		})
	}
	// The token is checked even with the owner's bearer.
	w := postMCP(t, f.s, base+"?t=wrong", f.credential, rpcBody(1, "tools/list", nil), nil)
	if w.Code != http.StatusForbidden {
		t.Errorf("owner's bearer with a wrong token: %d", w.Code)
	}
	// GET of the link is a page, DELETE ends nothing, OPTIONS is CORS.
	r := httptest.NewRequest(http.MethodGet, f.linkURL(), nil)
	r.Header.Set("Accept", "text/html")
	rec := httptest.NewRecorder()
	f.s.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Errorf("GET magic link: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	r = httptest.NewRequest(http.MethodOptions, f.linkURL(), nil)
	rec = httptest.NewRecorder()
	f.s.ServeHTTP(rec, r)
	allow := strings.ToLower(rec.Header().Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type", "mcp-session-id", "mcp-protocol-version", "accept"} {
		if !strings.Contains(allow, h) {
			t.Errorf("CORS allow headers %q lack %s", allow, h)
		}
	}
	for _, target := range []string{mcpURL, f.linkURL()} {
		for id, want := range map[string]int{"": http.StatusBadRequest, "made-up": http.StatusNotFound, f.s.Peppers.NewSessionID(""): http.StatusNoContent} {
			r = httptest.NewRequest(http.MethodDelete, target, nil)
			if id != "" {
				r.Header.Set("Mcp-Session-Id", id)
			}
			rec = httptest.NewRecorder()
			f.s.ServeHTTP(rec, r)
			if rec.Code != want {
				t.Errorf("DELETE %s with session %q: %d, want %d", target, id, rec.Code, want)
			}
		}
	}
}

// anonAccount is PROTOCOL §6's formula, computed independently.
func anonAccount(pepper, token string) string {
	sum := sha256.Sum256([]byte(pepper + ":" + "anon-account|" + token))
	return "acc_anon_" + hex.EncodeToString(sum[:])[:26]
}

func streamIDFormula(pepper, conversationID, accountID, name string) string {
	sum := sha256.Sum256([]byte(pepper + ":" + "stream|" + conversationID + "|" + accountID + "|" + name))
	return "str_" + hex.EncodeToString(sum[:])[:26]
}

func TestMCPAnonymousIdentity(t *testing.T) {
	f := newMCPFixture(t)
	out := toolOK(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"stream_name": "anon-agent"})
	want := anonAccount(f.s.Peppers.Permissive, f.token)
	got := jstr(t, out["owner_account_id"])
	if got != want {
		t.Errorf("anonymous account %s, want %s", got, want)
	}
	if !regexp.MustCompile(`^acc_anon_[0-9a-f]{26}$`).MatchString(got) {
		t.Errorf("anonymous account %q has the wrong shape", got)
	}
	if id := jstr(t, out["stream_id"]); id != streamIDFormula(f.s.Peppers.Permissive, f.conversationID, want, "anon-agent") {
		t.Errorf("stream_id %s", id)
	}
	if call, _ := f.objects.lastCall("join"); call.AccountID != want || call.Join.AccountID != want {
		t.Errorf("the object was told account %s / %s", call.AccountID, call.Join.AccountID)
	}
	// The same token is the same identity, in any call: joining again resumes.
	out = toolOK(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"stream_name": "anon-agent"})
	if jstr(t, out["owner_account_id"]) != want || string(out["resumed"]) != "true" {
		t.Errorf("second join: %v", out)
	}
	// With a bearer the caller is the bearer's account, on the same link.
	out = toolOK(t, f.s, f.linkURL(), f.credential, "ams_join", map[string]any{"stream_name": "owned"})
	if jstr(t, out["owner_account_id"]) != f.accountID {
		t.Errorf("bearer join as %s, want %s", out["owner_account_id"], f.accountID)
	}
	// Anonymous identities may not create conversations.
	if code := toolErr(t, f.s, f.linkURL(), "", "ams_create_conversation", map[string]any{}); code != "missing_credential" {
		t.Errorf("anonymous create: %s", code)
	}
	if code := toolErr(t, f.s, mcpURL, "", "ams_create_conversation", map[string]any{}); code != "missing_credential" {
		t.Errorf("anonymous create on /mcp: %s", code)
	}
}

func TestMCPInstructionsIncludeConversation(t *testing.T) {
	f := newMCPFixture(t)
	code, conv := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential,
		`{"alias":"haiku-room","metadata":{"instructions":"Speak only in haiku.","topic":"x"}}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, conv)
	}
	link := jstr(t, conv["magic_link"])
	resp, _ := rpc(t, f.s, link, "", "initialize", map[string]any{"protocolVersion": "2025-06-18"}, nil)
	text := jstr(t, resp.Result["instructions"])
	if !strings.Contains(text, "Speak only in haiku.") || !strings.Contains(text, "haiku-room") {
		t.Errorf("bound instructions %q", text)
	}
	resp, _ = rpc(t, f.s, link, "", "server/discover", nil, map[string]string{"Mcp-Protocol-Version": "2026-07-28"})
	if !strings.Contains(jstr(t, resp.Result["instructions"]), "Speak only in haiku.") {
		t.Errorf("server/discover instructions %s", resp.Result["instructions"])
	}
	// Unbound, or bound to a conversation without instructions: the tools only.
	resp, _ = rpc(t, f.s, mcpURL, "", "initialize", map[string]any{"protocolVersion": "2025-06-18"}, nil)
	if strings.Contains(jstr(t, resp.Result["instructions"]), "haiku") {
		t.Error("/mcp instructions mention a conversation")
	}
	resp, _ = rpc(t, f.s, f.linkURL(), "", "initialize", map[string]any{"protocolVersion": "2025-06-18"}, nil)
	if strings.Contains(jstr(t, resp.Result["instructions"]), "own instructions") {
		t.Errorf("conversation without instructions: %s", resp.Result["instructions"])
	}
}

// TestMCPMemberWithWebSocketPeers drives every member tool through the MCP
// endpoint against a real conversation with a WebSocket peer.
func TestMCPMemberWithWebSocketPeers(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	obs := f.objects.connectWS(t, f.s, f.connect(map[string]string{wire.HeaderStreamName: "obs"}, nil))
	peer.sock.reset()
	link := f.linkURL()

	out := toolOK(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "agent", "stream_metadata": map[string]any{"role": "mcp"}})
	handle := jstr(t, out["handle"])
	agentID := jstr(t, out["stream_id"])
	if handle == "" || jstr(t, out["conversation_id"]) != f.conversationID || jstr(t, out["alias"]) != "calm-otter-1234" {
		t.Fatalf("join result %v", out)
	}
	var peers []wire.StreamInfo
	_ = json.Unmarshal(out["peers"], &peers)
	if len(peers) != 2 || peers[0].Name != "web" || peers[0].Owner != f.accountID || peers[1].Name != "obs" {
		t.Errorf("join peers %s", out["peers"])
	}
	joinCursor := jint(t, out["cursor"])
	sj := peer.framesOf(t, "stream_joined")
	if len(sj) != 1 || sj[0]["stream_id"] != agentID || sj[0]["stream_name"] != "agent" || !reflect.DeepEqual(sj[0]["metadata"], map[string]any{"role": "mcp"}) {
		t.Fatalf("WebSocket peer got %q", peer.sock.frames())
	}
	if int64(sj[0]["seq"].(float64)) != joinCursor {
		t.Errorf("stream_joined seq %v, join cursor %d", sj[0]["seq"], joinCursor)
	}

	// Inspect lists the member.
	code, insp := call(t, f.s, "GET", "https://ams.example/v1/demo/conversations/calm-otter-1234?t="+f.token, "", "")
	var streams []wire.StreamInfo
	_ = json.Unmarshal(insp["streams"], &streams)
	if code != http.StatusOK || len(streams) != 3 || streams[2].ID != agentID {
		t.Errorf("inspect: %d %s", code, insp["streams"])
	}

	// MCP → WebSocket, data byte-identical.
	data := "tricky \"quotes\" \\ 😀 \x00\x1f </script> \u2028"
	out = toolOK(t, f.s, link, "", "ams_send", map[string]any{"handle": handle, "data": data})
	seq := jint(t, out["seq"])
	tok := peer.framesOf(t, "token")
	if len(tok) != 1 || tok[0]["data"] != data || tok[0]["stream_id"] != agentID || int64(tok[0]["seq"].(float64)) != seq {
		t.Fatalf("peer got %q", peer.sock.frames())
	}

	// WebSocket → MCP, in wire shape, without the member's own token.
	peer.token("from the web " + data)
	peer.emit(`{"type":"set_metadata","metadata":{"mood":"ok"}}`)
	out = toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": handle})
	frames := recvFrames(t, out)
	if len(frames) != 2 || frames[0]["type"] != "token" || frames[0]["data"] != "from the web "+data || frames[1]["type"] != "stream_metadata" {
		t.Fatalf("recv frames %s", out["frames"])
	}
	// Each frame is the JSON a WebSocket observer got live for that seq.
	live := map[float64]map[string]any{}
	for _, typ := range []string{"token", "stream_metadata"} {
		for _, fr := range obs.framesOf(t, typ) {
			live[fr["seq"].(float64)] = fr
		}
	}
	for _, fr := range frames {
		if want := live[fr["seq"].(float64)]; !reflect.DeepEqual(fr, want) {
			t.Errorf("member read %v, observer got %v live", fr, want)
		}
		if fr["stream_id"] != peer.join.StreamID {
			t.Errorf("frame from %v", fr["stream_id"])
		}
		for _, k := range []string{"seq", "stream_id", "stream_name", "owner_account_id"} {
			if fr[k] == nil {
				t.Errorf("frame %v lacks %s", fr, k)
			}
		}
	}
	if cur := jint(t, out["cursor"]); cur != seq+2 || string(out["truncated"]) != "false" {
		t.Errorf("cursor %d truncated %s, want %d false", cur, out["truncated"], seq+2)
	}
	// Nothing new: an immediate empty read, frames an empty array.
	out = toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": handle, "wait_ms": 0})
	if string(out["frames"]) != "[]" {
		t.Errorf("empty read frames %s", out["frames"])
	}
	// An explicit cursor rereads.
	out = toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": handle, "cursor": seq})
	if len(recvFrames(t, out)) != 2 {
		t.Errorf("reread from %d: %s", seq, out["frames"])
	}

	// Metadata.
	peer.sock.reset()
	out = toolOK(t, f.s, link, "", "ams_set_metadata", map[string]any{"handle": handle, "metadata": map[string]any{"role": "critic"}})
	sm := peer.framesOf(t, "stream_metadata")
	if len(sm) != 1 || !reflect.DeepEqual(sm[0]["metadata"], map[string]any{"role": "critic"}) || int64(sm[0]["seq"].(float64)) != jint(t, out["seq"]) {
		t.Errorf("peer got %q", peer.sock.frames())
	}
	for _, bad := range []any{"str", []int{1}, 5, true} {
		if code := toolErr(t, f.s, link, "", "ams_set_metadata", map[string]any{"handle": handle, "metadata": bad}); code != "invalid_metadata" {
			t.Errorf("metadata %v: %s", bad, code)
		}
	}
	big := map[string]string{"x": strings.Repeat("y", f.s.Limits.MetadataBytes)}
	if code := toolErr(t, f.s, link, "", "ams_set_metadata", map[string]any{"handle": handle, "metadata": big}); code != wire.ErrMetadataTooLarge.Code {
		t.Errorf("metadata over the limit: %s", code)
	}

	// Sending over the token limit is refused with the protocol code.
	if code := toolErr(t, f.s, link, "", "ams_send", map[string]any{"handle": handle, "data": strings.Repeat("x", f.s.Limits.TokenBytes+1)}); code != "token_too_large" {
		t.Errorf("oversized send: %s", code)
	}
	toolOK(t, f.s, link, "", "ams_send", map[string]any{"handle": handle, "data": strings.Repeat("x", f.s.Limits.TokenBytes)})
	if code := toolErr(t, f.s, link, "", "ams_send", map[string]any{"handle": handle, "data": 5}); code != "invalid_arguments" {
		t.Errorf("data of the wrong type: %s", code)
	}

	// stream_name instead of handle, on the bound endpoint.
	peer.sock.reset()
	toolOK(t, f.s, link, "", "ams_send", map[string]any{"stream_name": "agent", "data": "by name"})
	if tok := peer.framesOf(t, "token"); len(tok) != 1 || tok[0]["stream_id"] != agentID {
		t.Errorf("send by stream_name: %q", peer.sock.frames())
	}
	// The handle works on /mcp too: it carries the conversation.
	toolOK(t, f.s, mcpURL, "", "ams_send", map[string]any{"handle": handle, "data": "via /mcp"})

	// Not joined: a garbage handle. A name never joined joins on its own
	// (self-rehydration, TestMCPSelfRehydration), unless another account
	// holds it: a WebSocket stream, or the anonymous agent for the bearer.
	if code := toolErr(t, f.s, link, "", "ams_send", map[string]any{"handle": "garbage", "data": "x"}); code != "not_joined" {
		t.Errorf("send with a garbage handle: %s, want not_joined", code)
	}
	if code := toolErr(t, f.s, link, "", "ams_send", map[string]any{"stream_name": "web", "data": "x"}); code != "stream_name_owner_conflict" {
		t.Errorf("send as a WebSocket's stream: %s", code)
	}
	if code := toolErr(t, f.s, link, f.credential, "ams_send", map[string]any{"stream_name": "agent", "data": "x"}); code != "stream_name_owner_conflict" {
		t.Errorf("other identity: %s", code)
	}

	// Leave.
	peer.sock.reset()
	out = toolOK(t, f.s, link, "", "ams_leave", map[string]any{"handle": handle})
	if string(out["left"]) != "true" {
		t.Errorf("leave %v", out)
	}
	if sl := peer.framesOf(t, "stream_left"); len(sl) != 1 || sl[0]["stream_id"] != agentID {
		t.Errorf("peer got %q", peer.sock.frames())
	}
	for _, tool := range []string{"ams_send", "ams_recv", "ams_leave", "ams_set_metadata"} {
		if code := toolErr(t, f.s, link, "", tool, map[string]any{"handle": handle, "data": "x", "metadata": map[string]any{}}); code != "not_joined" {
			t.Errorf("%s after leave: %s", tool, code)
		}
	}
	if len(peer.sock.closed()) != 0 {
		t.Errorf("the WebSocket peer was closed: %v", peer.sock.closed())
	}
}

func TestMCPNoSelfEchoAndSelfSubscribe(t *testing.T) {
	f := newMCPFixture(t)
	link := f.linkURL()
	a := jstr(t, toolOK(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "a"})["handle"])
	b := jstr(t, toolOK(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "b", "self_subscribe": true})["handle"])
	toolOK(t, f.s, link, "", "ams_send", map[string]any{"handle": a, "data": "from a"})
	toolOK(t, f.s, link, "", "ams_send", map[string]any{"handle": b, "data": "from b"})
	fa := recvFrames(t, toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": a}))
	fb := recvFrames(t, toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": b}))
	var da, db []any
	for _, fr := range fa {
		if fr["type"] == "token" {
			da = append(da, fr["data"])
		}
	}
	for _, fr := range fb {
		if fr["type"] == "token" {
			db = append(db, fr["data"])
		}
	}
	if !reflect.DeepEqual(da, []any{"from b"}) {
		t.Errorf("a read %v: own token echoed or peer's lost", da)
	}
	if !reflect.DeepEqual(db, []any{"from a", "from b"}) {
		t.Errorf("self-subscribed b read %v", db)
	}
}

func TestMCPSubscribeStreams(t *testing.T) {
	f := newMCPFixture(t)
	link := f.linkURL()
	web := f.ws(t, "web")
	other := f.ws(t, "other")
	out := toolOK(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "agent", "subscribe_streams": []string{"web"}})
	if string(out["subscribed_streams"]) != `["web"]` {
		t.Errorf("joined %v", out)
	}
	h := jstr(t, out["handle"])
	web.token("w")
	other.token("o")
	frames := recvFrames(t, toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": h}))
	if len(frames) != 1 || frames[0]["data"] != "w" {
		t.Errorf("filtered read %v", frames)
	}
	for _, bad := range [][]string{{"-x"}, {"a b"}, {"web", ""}} {
		if code := toolErr(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "z", "subscribe_streams": bad}); code != "invalid_subscribe_streams_header" {
			t.Errorf("subscribe %q: %s", bad, code)
		}
	}
}

func TestMCPJoinRefusals(t *testing.T) {
	f := newMCPFixture(t)
	link := f.linkURL()
	f.ws(t, "taken")
	tests := []struct {
		name   string
		target string
		bearer string
		args   map[string]any
		code   string
	}{
		{"invalid stream name", link, "", map[string]any{"stream_name": "-bad"}, "invalid_stream_name"},
		{"stream name too long", link, "", map[string]any{"stream_name": strings.Repeat("a", 64)}, "invalid_stream_name"},
		{"metadata not an object", link, "", map[string]any{"stream_metadata": []int{1}}, "invalid_stream_metadata"},
		{"metadata a string", link, "", map[string]any{"stream_metadata": "{}"}, "invalid_stream_metadata"},
		{"name held by another account", link, "", map[string]any{"stream_name": "taken"}, "stream_name_owner_conflict"},
		{"no magic link on /mcp", mcpURL, f.credential, map[string]any{}, "invalid_magic_link"},
		{"not a magic link", mcpURL, f.credential, map[string]any{"magic_link": "https://ams.example/elsewhere"}, "invalid_magic_link"},
		{"magic link without t", mcpURL, f.credential, map[string]any{"magic_link": "https://ams.example/demo/conversations/calm-otter-1234"}, "invalid_magic_link"},
		{"magic link with a wrong t", mcpURL, f.credential, map[string]any{"magic_link": "https://ams.example/demo/conversations/calm-otter-1234?t=nope"}, "invalid_token"},
		{"magic link of an unknown alias", mcpURL, "", map[string]any{"magic_link": "https://ams.example/demo/conversations/gone-1234?t=" + f.token}, "not_found"},
		{"arguments of the wrong type", link, "", map[string]any{"stream_name": 7}, "invalid_arguments"},
		{"self_subscribe of the wrong type", link, "", map[string]any{"self_subscribe": "yes"}, "invalid_arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := toolErr(t, f.s, tt.target, tt.bearer, "ams_join", tt.args); code != tt.code {
				t.Errorf("code %s, want %s", code, tt.code)
			}
		})
	}
	// Arguments that are not an object at all.
	resp, _ := rpc(t, f.s, link, "", "tools/call", map[string]any{"name": "ams_join", "arguments": []int{1}}, nil)
	if resp.Error != nil || string(resp.Result["isError"]) != "true" {
		t.Errorf("array arguments: %+v", resp)
	}
	// A default stream name is <client slug>-<4 hex>, derived from the
	// identity without a session: the same caller gets the same name.
	out := toolOK(t, f.s, link, "", "ams_join", nil)
	name := jstr(t, out["stream_name"])
	if !regexp.MustCompile(`^peer-[0-9a-f]{4}$`).MatchString(name) || !wire.ValidStreamName(name) {
		t.Errorf("default stream name %q", name)
	}
	out = toolOK(t, f.s, link, "", "ams_join", map[string]any{"peer_identity": map[string]any{"kind": "agent", "client": "Claude Code"}})
	if got := jstr(t, out["stream_name"]); !regexp.MustCompile(`^claude-code-[0-9a-f]{4}$`).MatchString(got) || got[len(got)-4:] != name[len(name)-4:] {
		t.Errorf("default stream name with a client %q (without: %q)", got, name)
	}
}

func TestMCPCreateConversation(t *testing.T) {
	f := newMCPFixture(t)
	out := toolOK(t, f.s, mcpURL, f.credential, "ams_create_conversation", map[string]any{
		"alias": "made-by-mcp", "stream_name": "me", "metadata": map[string]any{"instructions": "be brief"},
	})
	link := jstr(t, out["magic_link"])
	if jstr(t, out["alias"]) != "made-by-mcp" || !strings.HasPrefix(link, "https://ams.example/demo/conversations/made-by-mcp?t=") {
		t.Errorf("create result %v", out)
	}
	if !strings.HasPrefix(jstr(t, out["conversation_id"]), "conv_") || jstr(t, out["stream_name"]) != "me" {
		t.Errorf("create result %v", out)
	}
	// The new link is an MCP endpoint at once, and a WebSocket address.
	resp, _ := rpc(t, f.s, link, "", "initialize", map[string]any{"protocolVersion": "2025-06-18"}, nil)
	if !strings.Contains(jstr(t, resp.Result["instructions"]), "be brief") {
		t.Errorf("instructions %s", resp.Result["instructions"])
	}
	joined := toolOK(t, f.s, mcpURL, "", "ams_join", map[string]any{"magic_link": link, "stream_name": "guest"})
	if jstr(t, joined["conversation_id"]) != jstr(t, out["conversation_id"]) {
		t.Errorf("joined %v", joined)
	}
	for _, tt := range []struct {
		args map[string]any
		code string
	}{
		{map[string]any{"alias": "made-by-mcp"}, "alias_taken"},
		{map[string]any{"alias": "Bad Alias"}, "invalid_alias"},
		{map[string]any{"stream_name": "-x"}, "invalid_stream_name"},
		{map[string]any{"metadata": "x"}, "invalid_metadata"},
		{map[string]any{"stream_metadata": []int{}}, "invalid_stream_metadata"},
		// A member of the wrong type gets that member's code, as POST
		// /v1/{ns}/conversations answers it, in the same order.
		{map[string]any{"alias": 5}, "invalid_alias"},
		{map[string]any{"alias": []string{"x"}, "stream_name": true}, "invalid_alias"},
		{map[string]any{"stream_name": true}, "invalid_stream_name"},
		{map[string]any{"stream_name": map[string]any{}, "id_kind": 7}, "invalid_stream_name"},
		{map[string]any{"id_kind": 7}, "unsupported_id_kind"},
		{map[string]any{"id_kind": "ulid"}, "unsupported_id_kind"},
		{map[string]any{"metadata": []int{1}}, "invalid_metadata"},
		{map[string]any{"metadata": 3, "stream_metadata": "x"}, "invalid_metadata"},
		{map[string]any{"stream_metadata": false}, "invalid_stream_metadata"},
	} {
		if code := toolErr(t, f.s, mcpURL, f.credential, "ams_create_conversation", tt.args); code != tt.code {
			t.Errorf("create %v: %s, want %s", tt.args, code, tt.code)
		}
		body, _ := json.Marshal(tt.args)
		if _, reply := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential, string(body)); jstr(t, reply["error"]) != tt.code {
			t.Errorf("POST %s: %s, want %s as on MCP", body, reply["error"], tt.code)
		}
	}
}

func TestMCPRecvLongPoll(t *testing.T) {
	f := newMCPFixture(t)
	f.objects.maxWait = 300 * time.Millisecond
	link := f.linkURL()
	peer := f.ws(t, "web")
	h := jstr(t, toolOK(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "agent"})["handle"])

	// wait_ms is clamped to 0..25000 before it reaches the object.
	for _, tt := range []struct{ in, want int }{{-5, 0}, {0, 0}, {100, 100}, {25000, 25000}, {999999, 25000}} {
		start := time.Now()
		toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": h, "wait_ms": tt.in})
		c, _ := f.objects.lastCall("recv")
		if c.WaitMS != tt.want {
			t.Errorf("wait_ms %d reached the object as %d, want %d", tt.in, c.WaitMS, tt.want)
		}
		if tt.want == 0 && time.Since(start) > 200*time.Millisecond {
			t.Errorf("wait_ms %d waited %v", tt.in, time.Since(start))
		}
	}

	// A token arriving during the wait ends it with that token.
	go func() {
		time.Sleep(50 * time.Millisecond)
		peer.token("woke you")
	}()
	f.objects.maxWait = 5 * time.Second
	start := time.Now()
	frames := recvFrames(t, toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": h, "wait_ms": 5000}))
	if len(frames) != 1 || frames[0]["data"] != "woke you" {
		t.Errorf("long-poll read %v", frames)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("long-poll returned after %v", d)
	}
	// A timeout is an empty read with the cursor unchanged.
	f.objects.maxWait = 100 * time.Millisecond
	out := toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": h, "wait_ms": 100})
	if string(out["frames"]) != "[]" || string(out["truncated"]) != "false" {
		t.Errorf("timed-out read %v", out)
	}
}

// TestMCPTwoAgents: two MCP agents, one anonymous through the magic link and
// one with a bearer through /mcp, talk through one conversation, with a
// WebSocket peer listening to both.
func TestMCPTwoAgents(t *testing.T) {
	f := newMCPFixture(t)
	link := f.linkURL()
	web := f.ws(t, "web")
	alice := jstr(t, toolOK(t, f.s, link, "", "ams_join", map[string]any{"stream_name": "alice"})["handle"])
	bob := jstr(t, toolOK(t, f.s, mcpURL, f.credential, "ams_join", map[string]any{"magic_link": link, "stream_name": "bob"})["handle"])
	var aliceHeard, bobHeard []string
	for i := range 5 {
		toolOK(t, f.s, link, "", "ams_send", map[string]any{"handle": alice, "data": fmt.Sprint("a", i)})
		for _, fr := range recvFrames(t, toolOK(t, f.s, mcpURL, f.credential, "ams_recv", map[string]any{"handle": bob})) {
			if fr["type"] == "token" {
				bobHeard = append(bobHeard, fr["data"].(string))
			}
		}
		toolOK(t, f.s, mcpURL, f.credential, "ams_send", map[string]any{"handle": bob, "data": fmt.Sprint("b", i)})
		for _, fr := range recvFrames(t, toolOK(t, f.s, link, "", "ams_recv", map[string]any{"handle": alice})) {
			if fr["type"] == "token" {
				aliceHeard = append(aliceHeard, fr["data"].(string))
			}
		}
	}
	if !slices.Equal(bobHeard, []string{"a0", "a1", "a2", "a3", "a4"}) || !slices.Equal(aliceHeard, []string{"b0", "b1", "b2", "b3", "b4"}) {
		t.Errorf("alice heard %v, bob heard %v", aliceHeard, bobHeard)
	}
	var webHeard []string
	for _, fr := range web.framesOf(t, "token") {
		webHeard = append(webHeard, fr["data"].(string))
	}
	if len(webHeard) != 10 {
		t.Errorf("web heard %v", webHeard)
	}
	// A bearer handle is of no use anonymously: the identity differs.
	if code := toolErr(t, f.s, link, "", "ams_send", map[string]any{"handle": bob, "data": "x"}); code != "missing_credential" {
		t.Errorf("bob's handle without bob's bearer: %s", code)
	}
}

// TestMCPSetMetadataNull: ams_set_metadata requires a metadata object; a
// JSON null is not one.
func TestMCPSetMetadataNull(t *testing.T) {
	f := newMCPFixture(t)
	h := jstr(t, toolOK(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"stream_name": "a", "stream_metadata": map[string]any{"k": 1}})["handle"])
	if code := toolErr(t, f.s, f.linkURL(), "", "ams_set_metadata", map[string]any{"handle": h, "metadata": nil}); code != "invalid_metadata" {
		t.Errorf("metadata null: %s, want invalid_metadata", code)
	}
}

// TestMCPSubscribeStreamsElements: each subscribe_streams element must be
// one valid stream name.
func TestMCPSubscribeStreamsElements(t *testing.T) {
	f := newMCPFixture(t)
	for _, bad := range [][]string{{""}, {"a,b"}, {" a"}} {
		if code := toolErr(t, f.s, f.linkURL(), "", "ams_join", map[string]any{"stream_name": "z", "subscribe_streams": bad}); code != "invalid_subscribe_streams_header" {
			t.Errorf("subscribe %q: %s", bad, code)
		}
	}
}

// checkNotifications reads an event-stream answer to ams_recv: every event but
// the last is a notifications/ams/{type} whose params are a returned frame
// without its type, in order (after a notifications/ams/truncated when the
// reading was truncated), for the frames not delivered as notifications
// before (by a ride-along: the first frames of the reading); the last
// event, left in w.Body, is the response.
func checkNotifications(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	var events []string
	for _, block := range strings.Split(strings.TrimSpace(w.Body.String()), "\n\n") {
		if !strings.HasPrefix(block, "event: message\ndata: ") {
			t.Fatalf("malformed event %q", block)
		}
		events = append(events, strings.TrimPrefix(block, "event: message\ndata: "))
	}
	last := events[len(events)-1]
	var result struct {
		Result struct {
			StructuredContent struct {
				Frames    []map[string]json.RawMessage `json:"frames"`
				Truncated bool                         `json:"truncated"`
			} `json:"structuredContent"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(last), &result); err != nil {
		t.Fatalf("last event %q: %v", last, err)
	}
	notes := events[:len(events)-1]
	frames := result.Result.StructuredContent.Frames
	if frames == nil {
		// Not a read: what rides along is the member's unread frames.
		for _, note := range notes {
			var n struct {
				JSONRPC string         `json:"jsonrpc"`
				Method  string         `json:"method"`
				Params  map[string]any `json:"params"`
			}
			if json.Unmarshal([]byte(note), &n) != nil || n.JSONRPC != "2.0" || !strings.HasPrefix(n.Method, "notifications/ams/") || n.Params == nil {
				t.Fatalf("ride-along %q", note)
			}
		}
		w.Body.Reset()
		w.Body.WriteString(last)
		return
	}
	if result.Result.StructuredContent.Truncated {
		if len(notes) == 0 || !strings.Contains(notes[0], `"notifications/ams/truncated"`) {
			t.Fatalf("a truncated reading without its notification: %v", notes)
		}
		notes = notes[1:]
	}
	if len(notes) > len(frames) {
		t.Fatalf("%d notifications for %d frames", len(notes), len(frames))
	}
	frames = frames[len(frames)-len(notes):]
	for i, note := range notes {
		var n struct {
			Method string                     `json:"method"`
			Params map[string]json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal([]byte(note), &n); err != nil {
			t.Fatalf("notification %q: %v", note, err)
		}
		var method string
		_ = json.Unmarshal(frames[i]["method"], &method)
		if n.Method != method || !jsonEqualRaw(frames[i]["params"], mustJSON(n.Params)) {
			t.Fatalf("notification %d %s does not carry frame %v", i, n.Method, frames[i])
		}
	}
	w.Body.Reset()
	w.Body.WriteString(last)
}

func mustJSON(v any) json.RawMessage {
	raw, _ := json.Marshal(v)
	return raw
}

func jsonEqualRaw(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ra, _ := json.Marshal(x)
	rb, _ := json.Marshal(y)
	return string(ra) == string(rb)
}
