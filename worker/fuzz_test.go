package worker

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/ams-dev/ams/wire"
)

// Fuzz targets of the router, the control-plane body decoders and the MCP
// JSON-RPC server. Each has a seed corpus in testdata/fuzz/<name>/; run one
// with
//
//	go test -run=^$ -fuzz=^FuzzServeHTTPRoutes$ -fuzztime=30s ./worker
//
// Seeds may say CRED, TOKEN and LINK: they stand for the fixture's bearer
// credential, its magic-link token and its magic link, which differ per run.

// protocolErrors are every control-plane error code and its status.
var protocolErrors = map[string]int{}

func init() {
	for _, e := range []wire.Error{
		wire.ErrInvalidJSON, wire.ErrBodyTooLarge, wire.ErrNotFound, wire.ErrMethodNotAllowed, wire.ErrInvalidNamespace,
		wire.ErrNamespaceTaken, wire.ErrMissingCredential, wire.ErrInvalidCredential, wire.ErrNamespaceMismatch,
		wire.ErrInvalidAlias, wire.ErrInvalidStreamName, wire.ErrInvalidMetadata, wire.ErrInvalidStreamMetadata,
		wire.ErrMetadataTooLarge, wire.ErrUnsupportedIDKind, wire.ErrAliasTaken, wire.ErrMissingToken, wire.ErrInvalidToken,
		wire.ErrUpgradeRequired, wire.ErrServerMisconfigured, wire.ErrInternal, wire.ErrNotJoined,
		wire.ErrSessionNotFound, wire.ErrMissingSessionID, wire.ErrInvalidArguments,
	} {
		protocolErrors[e.Code] = e.Status
	}
}

// fuzzFixture is an MCP fixture whose long-polls return at once. Each fuzz
// input gets a fresh one, so inputs do not depend on each other.
func fuzzFixture(t *testing.T) *mcpFixture {
	t.Helper()
	f := newMCPFixture(t)
	f.objects.maxWait = 0
	return f
}

func (f *mcpFixture) expand(s string) string {
	return strings.NewReplacer("CRED", f.credential, "TOKEN", f.token, "LINK", f.linkURL()).Replace(s)
}

// checkErrorBody checks a 4xx/5xx answer is {"error","message"} with a
// protocol code of that status, or (MCP parse errors) a JSON-RPC error.
func checkErrorBody(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%d with Content-Type %q: %q", w.Code, ct, w.Body.String())
	}
	var e map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("%d body %q is not a JSON object", w.Code, w.Body.String())
	}
	if e["jsonrpc"] != nil {
		var rpcErr struct {
			Error *struct{ Code int } `json:"error"`
		}
		if json.Unmarshal(w.Body.Bytes(), &rpcErr) != nil || rpcErr.Error == nil || rpcErr.Error.Code != rpcParseError || w.Code != http.StatusBadRequest {
			t.Fatalf("%d JSON-RPC body %q", w.Code, w.Body.String())
		}
		return "parse_error"
	}
	var code, message string
	if len(e) != 2 || json.Unmarshal(e["error"], &code) != nil || json.Unmarshal(e["message"], &message) != nil || message == "" {
		t.Fatalf("%d error body %q is not {error, message}", w.Code, w.Body.String())
	}
	if status, ok := protocolErrors[code]; !ok || status != w.Code {
		t.Fatalf("%d with error %q (documented status %d)", w.Code, code, status)
	}
	return code
}

// FuzzServeHTTPRoutes: any method, path, query and credential is answered
// without a panic: a 2xx, or JSON with a protocol error code of its status.
// match captures only whole segments.
func FuzzServeHTTPRoutes(f *testing.F) {
	for _, seed := range []struct{ method, path, query, auth string }{
		{"GET", "/healthz", "", ""},
		{"HEAD", "/healthz", "", ""},
		{"OPTIONS", "/mcp", "", ""},
		{"GET", "/v1/demo/conversations/calm-otter-1234", "t=TOKEN", ""},
		{"GET", "/v1/demo/conversations/calm-otter-1234", "", "Bearer CRED"},
		{"POST", "/v1/demo/conversations/calm-otter-1234/rotate", "", "Bearer CRED"},
		{"GET", "/demo/conversations/calm-otter-1234", "t=TOKEN", ""},
		{"GET", "/demo/conversations/calm-otter-1234/connect", "t=TOKEN", "Bearer CRED"},
		{"POST", "/demo/conversations/calm-otter-1234", "t=wrong", ""},
		{"DELETE", "/mcp", "", ""},
		{"PUT", "/v1/accounts", "", ""},
		{"GET", "/../../etc/passwd", "", ""},
		{"GET", "/v1/%2e%2e/conversations/x", "", ""},
		{"GET", "/v1//conversations/", "", ""},
		{"BREW", "//", "", "Bearer "},
		{"GET", "", "", ""},
		{"POST", "/mcp", "", "Bearer ams_sk_x"},
	} {
		f.Add(seed.method, seed.path, seed.query, seed.auth)
	}
	f.Fuzz(func(t *testing.T, method, path, query, auth string) {
		fx := fuzzFixture(t)
		path, query, auth = fx.expand(path), fx.expand(query), fx.expand(auth)
		for _, route := range Routes {
			p, ok := match(route.Pattern, path)
			if !ok {
				continue
			}
			want := strings.Split(strings.Trim(route.Pattern, "/"), "/")
			got := strings.Split(strings.Trim(path, "/"), "/")
			if !strings.HasPrefix(path, "/") || len(want) != len(got) {
				t.Fatalf("%q matched %q", path, route.Pattern)
			}
			if i := slices.Index(want, "{ns}"); i >= 0 && p.ns != got[i] {
				t.Fatalf("%q on %q: ns %q", path, route.Pattern, p.ns)
			}
			if i := slices.Index(want, "{alias}"); i >= 0 && p.alias != got[i] {
				t.Fatalf("%q on %q: alias %q", path, route.Pattern, p.alias)
			}
			if strings.Contains(p.ns, "/") || strings.Contains(p.alias, "/") {
				t.Fatalf("%q: a capture holds a slash", path)
			}
		}
		r := &http.Request{
			Method:     method,
			URL:        &url.URL{Scheme: "https", Host: "ams.example", Path: path, RawQuery: query},
			Host:       "ams.example",
			Header:     http.Header{},
			Body:       http.NoBody,
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
		}
		r = r.WithContext(t.Context())
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		fx.s.ServeHTTP(w, r)
		switch {
		case w.Code >= 200 && w.Code < 300:
		case w.Code >= 500:
			t.Fatalf("%s %q?%q: %d %s", method, path, query, w.Code, w.Body.String())
		default:
			checkErrorBody(t, w)
		}
		if w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s %q: no CORS header", method, path)
		}
	})
}

// FuzzControlPlaneBodies: POST /v1/accounts and /v1/{ns}/conversations with
// any body never answer 5xx (but server_misconfigured without peppers), and
// every refusal is {error, message} with a code the route documents.
func FuzzControlPlaneBodies(f *testing.F) {
	for _, seed := range []struct {
		route int
		body  string
	}{
		{0, `{"namespace":"demo-9421"}`},
		{0, `{"namespace":"demo"}`},
		{0, `{"namespace":"Bad"}`},
		{0, `{"namespace":5}`},
		{0, `[]`},
		{0, ``},
		{0, `{"namespace":"x","namespace":"y"}`},
		{1, ``},
		{1, `{}`},
		{1, `{"alias":"calm-otter-1234"}`},
		{1, `{"alias":"fresh-1","stream_name":"me","metadata":{"instructions":"hi"},"stream_metadata":{"a":[1]}}`},
		{1, `{"id_kind":"ulid"}`},
		{1, `{"metadata":[1]}`},
		{1, `{"metadata":null,"stream_metadata":"x"}`},
		{1, `{"alias":null}`},
		{1, `{"stream_name":"-x"}`},
		{1, "{\"metadata\":{\"a\":\"\xff\"}}"},
		{1, `{"metadata":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70) + `}`},
		{2, `{}`},
		{3, `{}`},
		{4, `{"namespace":"demo"}`},
	} {
		f.Add(seed.route, []byte(seed.body))
	}
	misconfigured := newTestService()
	misconfigured.Peppers = wire.Peppers{}
	documented := map[int][]string{
		0: {"invalid_json", "body_too_large", "invalid_namespace", "namespace_taken"},
		1: {"missing_credential", "invalid_credential", "namespace_mismatch", "invalid_json", "body_too_large", "invalid_alias",
			"invalid_stream_name", "invalid_metadata", "invalid_stream_metadata", "metadata_too_large", "alias_taken", "unsupported_id_kind"},
	}
	f.Fuzz(func(t *testing.T, route int, body []byte) {
		fx := fuzzFixture(t)
		route = (route%5 + 5) % 5
		s, target, credential := fx.s, "https://ams.example/v1/accounts", ""
		switch route {
		case 1:
			target, credential = "https://ams.example/v1/demo/conversations", fx.credential
		case 2: // no bearer
			target = "https://ams.example/v1/demo/conversations"
		case 3: // another namespace
			target, credential = "https://ams.example/v1/other/conversations", fx.credential
		case 4:
			s = misconfigured
		}
		r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, target, bytes.NewReader(body))
		if credential != "" {
			r.Header.Set("Authorization", "Bearer "+credential)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code >= 500 {
			if code := checkErrorBody(t, w); route != 4 || code != "server_misconfigured" {
				t.Fatalf("route %d body %q: %d %s", route, body, w.Code, w.Body.String())
			}
			return
		}
		if route == 4 {
			t.Fatalf("a deployment without peppers answered %d", w.Code)
		}
		if w.Code >= 400 {
			code := checkErrorBody(t, w)
			switch route {
			case 2:
				if code != "missing_credential" {
					t.Fatalf("no bearer: %s", code)
				}
			case 3:
				if code != "namespace_mismatch" {
					t.Fatalf("other namespace: %s", code)
				}
			default:
				if !slices.Contains(documented[route], code) {
					t.Fatalf("route %d body %q: undocumented %d %s", route, body, w.Code, code)
				}
			}
			return
		}
		if w.Code != http.StatusCreated || (route != 0 && route != 1) {
			t.Fatalf("route %d body %q: %d %s", route, body, w.Code, w.Body.String())
		}
		// Accepted: the body was a JSON object (or empty for a conversation).
		if !(route == 1 && len(bytes.TrimSpace(body)) == 0) && !wire.IsJSONObject(body) {
			t.Fatalf("accepted a body that is not a JSON object: %q", body)
		}
		var out map[string]json.RawMessage
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		keys := []string{"account_id", "namespace", "credential", "created_at"}
		if route == 1 {
			keys = []string{"conversation_id", "alias", "magic_link", "stream_id", "stream_name", "metadata", "stream_metadata", "created_at"}
			for _, k := range []string{"metadata", "stream_metadata"} {
				if !wire.IsJSONObject(out[k]) {
					t.Fatalf("%s %s is not an object", k, out[k])
				}
			}
		}
		for _, k := range keys {
			if out[k] == nil {
				t.Fatalf("201 %s lacks %s", w.Body.String(), k)
			}
		}
	})
}

// FuzzServeRPC: any JSON-RPC body, on /mcp or on the magic link, with or
// without a bearer, is answered without a panic: JSON-RPC JSON (200), 202
// with no body, a parse error (400) or 413. No tool reports internal_error,
// which would be a recovered panic or an unexpected failure.
func FuzzServeRPC(f *testing.F) {
	for _, seed := range []struct {
		body          string
		bound, bearer bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}`, false, false},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, true, false},
		{`{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, false, false},
		{`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, true, true},
		{`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ams_join","arguments":{"stream_name":"fz"}}}`, true, false},
		{`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ams_join","arguments":{"magic_link":"LINK","stream_name":"fz","self_subscribe":true}}}`, false, true},
		{`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"ams_send","arguments":{"stream_name":"fz","data":"hi \u0000 😀"}}}`, true, false},
		{`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ams_recv","arguments":{"stream_name":"fz","wait_ms":10,"cursor":-1}}}`, true, false},
		{`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"ams_set_metadata","arguments":{"stream_name":"fz","metadata":{"a":1}}}}`, true, false},
		{`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ams_leave","arguments":{"handle":"e30"}}}`, true, false},
		{`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"ams_create_conversation","arguments":{"alias":"fz-1"}}}`, false, true},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"x"},7]`, false, false},
		{`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"1"}}}`, false, false},
		{`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`, false, false},
		{`{"jsonrpc":"2.0","id":{"a":[]},"method":"tools/call","params":{"name":"ams_recv","arguments":{"handle":null}}}`, true, false},
		{"\xff\xfe", false, false},
		{``, true, true},
	} {
		f.Add([]byte(seed.body), seed.bound, seed.bearer)
	}
	f.Fuzz(func(t *testing.T, body []byte, bound, withBearer bool) {
		fx := fuzzFixture(t)
		body = []byte(fx.expand(string(body)))
		target := mcpURL
		if bound {
			target = fx.linkURL()
		}
		r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, target, bytes.NewReader(body))
		if withBearer {
			r.Header.Set("Authorization", "Bearer "+fx.credential)
		}
		w := httptest.NewRecorder()
		fx.s.ServeHTTP(w, r)
		out := w.Body.Bytes()
		switch w.Code {
		case http.StatusAccepted:
			if len(out) != 0 {
				t.Fatalf("202 with a body %q", out)
			}
			return
		case http.StatusBadRequest:
			if checkErrorBody(t, w) != "parse_error" {
				t.Fatalf("400 %s", out)
			}
			if json.Valid(body) && wire.ShallowJSON(body, wire.MaxJSONDepth) {
				t.Fatalf("parse error on valid, shallow JSON %q", body)
			}
			return
		case http.StatusRequestEntityTooLarge:
			if checkErrorBody(t, w) != "body_too_large" || len(body) <= wire.MCPBodyBytes {
				t.Fatalf("413 for %d bytes", len(body))
			}
			return
		case http.StatusOK:
		default:
			t.Fatalf("%q: %d %s", body, w.Code, out)
		}
		if !json.Valid(out) {
			t.Fatalf("200 body %q is not JSON", out)
		}
		var replies []json.RawMessage
		if bytes.HasPrefix(out, []byte("[")) {
			_ = json.Unmarshal(out, &replies)
		} else {
			replies = []json.RawMessage{out}
		}
		for _, raw := range replies {
			var reply struct {
				JSONRPC string          `json:"jsonrpc"`
				ID      json.RawMessage `json:"id"`
				Result  *struct {
					StructuredContent json.RawMessage `json:"structuredContent"`
					Content           []struct {
						Text string `json:"text"`
					} `json:"content"`
				} `json:"result"`
				Error *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(raw, &reply); err != nil || reply.JSONRPC != "2.0" || reply.ID == nil {
				t.Fatalf("reply %s: %v", raw, err)
			}
			if (reply.Result == nil) == (reply.Error == nil) {
				t.Fatalf("reply %s has both or neither of result and error", raw)
			}
			if reply.Error != nil {
				if !slices.Contains([]int{rpcInvalidRequest, rpcMethodNotFound, rpcInvalidParams, rpcUnsupportedProtocol}, reply.Error.Code) {
					t.Fatalf("reply %s: unexpected error code", raw)
				}
				continue
			}
			if sc := reply.Result.StructuredContent; sc != nil {
				var fromText, fromSC map[string]any
				if len(reply.Result.Content) != 1 || json.Unmarshal([]byte(reply.Result.Content[0].Text), &fromText) != nil ||
					json.Unmarshal(sc, &fromSC) != nil {
					t.Fatalf("tool result %s", raw)
				}
				if fromSC["error"] == wire.ErrInternal.Code {
					t.Fatalf("tool failed unexpectedly for %q: %s", body, raw)
				}
			}
		}
	})
}

// TestFuzzSeedsExpand keeps the placeholders honest: the fixture's seeds
// reach real state.
func TestFuzzSeedsExpand(t *testing.T) {
	fx := fuzzFixture(t)
	r := httptest.NewRequest(http.MethodGet, fx.expand("https://ams.example/v1/demo/conversations/calm-otter-1234?t=TOKEN"), nil)
	w := httptest.NewRecorder()
	fx.s.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		body, _ := io.ReadAll(w.Result().Body)
		t.Errorf("TOKEN seed: %d %s", w.Code, body)
	}
}

// TestFuzzSeedBatchReachesMembers: the batch seed of FuzzServeRPC drives a
// member through every tool on a bound endpoint, so the fuzzer starts from
// inputs that reach the conversation's logic, not only refusals.
func TestFuzzSeedBatchReachesMembers(t *testing.T) {
	fx := fuzzFixture(t)
	var calls []string
	for i, c := range []string{
		`{"name":"ams_join","arguments":{"stream_name":"fz","self_subscribe":true}}`,
		`{"name":"ams_send","arguments":{"stream_name":"fz","data":"hi \"there\" 😀"}}`,
		`{"name":"ams_recv","arguments":{"stream_name":"fz","cursor":0}}`,
		`{"name":"ams_set_metadata","arguments":{"stream_name":"fz","metadata":{"k":"v"}}}`,
		`{"name":"ams_leave","arguments":{"stream_name":"fz"}}`,
	} {
		calls = append(calls, `{"jsonrpc":"2.0","id":`+string(rune('1'+i))+`,"method":"tools/call","params":`+c+`}`)
	}
	w := postMCP(t, fx.s, fx.linkURL(), "", "["+strings.Join(calls, ",")+"]", nil)
	var replies []rpcResponse
	if err := json.Unmarshal(w.Body.Bytes(), &replies); err != nil || len(replies) != 5 {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	for i, r := range replies {
		if r.Error != nil || r.Result["isError"] != nil {
			t.Errorf("call %d: %+v %s", i+1, r.Error, r.Result["structuredContent"])
		}
	}
	if !strings.Contains(string(replies[2].Result["structuredContent"]), `hi \"there\"`) {
		t.Errorf("recv %s", replies[2].Result["structuredContent"])
	}
}
