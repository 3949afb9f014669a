//go:build e2e

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// call sends a raw HTTP request to the shared broker.
func call(t testing.TB, method, path string, header map[string]string, body string) (int, http.Header, map[string]any) {
	t.Helper()
	return callURL(t, broker.URL, method, path, header, body)
}

func callURL(t testing.TB, base, method, path string, header map[string]string, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var decoded map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &decoded); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %q", method, path, raw)
		}
	}
	return res.StatusCode, res.Header, decoded
}

// wantError checks a protocol error response.
func wantError(t testing.TB, status int, body map[string]any, want wire.Error) {
	t.Helper()
	if status != want.Status || body["error"] != want.Code {
		t.Fatalf("want %d %s, got %d %v", want.Status, want.Code, status, body)
	}
	if msg, _ := body["message"].(string); msg == "" {
		t.Fatalf("error %s has no message", want.Code)
	}
}

var timestampPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestHealthz(t *testing.T) {
	status, header, body := call(t, "GET", "/healthz", map[string]string{"Host": "ams.example.test"}, "")
	if status != 200 || body["ok"] != true || body["host"] != "ams.example.test" {
		t.Fatalf("healthz: %d %v", status, body)
	}
	ts, _ := body["ts"].(string)
	if !timestampPattern.MatchString(ts) {
		t.Fatalf("ts %q is not RFC 3339 UTC with ms", ts)
	}
	if header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("healthz lacks CORS *")
	}
	if status, _, _ := call(t, "HEAD", "/healthz", nil, ""); status != 200 {
		t.Fatalf("HEAD healthz: %d", status)
	}
	status, header, _ = call(t, "OPTIONS", "/healthz", map[string]string{"Origin": "https://x.test", "Access-Control-Request-Method": "GET"}, "")
	if status >= 300 || header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Fatalf("OPTIONS healthz: %d %v", status, header)
	}
}

func TestRoutingErrors(t *testing.T) {
	status, _, body := call(t, "GET", "/nope", nil, "")
	wantError(t, status, body, wire.ErrNotFound)
	status, _, body = call(t, "GET", "/v1/accounts", nil, "")
	wantError(t, status, body, wire.ErrMethodNotAllowed)
	status, _, body = call(t, "DELETE", "/v1/demo/conversations/x", nil, "")
	wantError(t, status, body, wire.ErrMethodNotAllowed)
}

func TestCreateAccount(t *testing.T) {
	ns := "t-" + randomHex(6)
	status, _, body := call(t, "POST", "/v1/accounts", nil, `{"namespace":"`+ns+`"}`)
	if status != 201 || body["namespace"] != ns {
		t.Fatalf("create: %d %v", status, body)
	}
	if id, _ := body["account_id"].(string); !regexp.MustCompile(`^acc_[0-9A-HJKMNP-TV-Z]{26}$`).MatchString(id) {
		t.Fatalf("account_id %q", id)
	}
	if cred, _ := body["credential"].(string); !regexp.MustCompile(`^ams_sk_[A-Za-z0-9_-]{43}$`).MatchString(cred) {
		t.Fatalf("credential %q", cred)
	}
	if !timestampPattern.MatchString(body["created_at"].(string)) {
		t.Fatalf("created_at %v", body["created_at"])
	}
	status, _, body = call(t, "POST", "/v1/accounts", nil, `{"namespace":"`+ns+`"}`)
	wantError(t, status, body, wire.ErrNamespaceTaken)

	for _, bad := range []string{"", "not json", "[]", `"demo"`, `{"namespace":`} {
		status, _, body = call(t, "POST", "/v1/accounts", nil, bad)
		wantError(t, status, body, wire.ErrInvalidJSON)
	}
	for _, ns := range []string{"", "-lead", "UPPER", "has_underscore", strings.Repeat("a", 64), "dot.ted"} {
		status, _, body = call(t, "POST", "/v1/accounts", nil, string(mustJSON(t, map[string]string{"namespace": ns})))
		wantError(t, status, body, wire.ErrInvalidNamespace)
	}
	// A namespace of the wrong type is an invalid namespace, as in the reference.
	status, _, body = call(t, "POST", "/v1/accounts", nil, `{"namespace":123}`)
	wantError(t, status, body, wire.ErrInvalidNamespace)
	huge := `{"namespace":"x","pad":"` + strings.Repeat("a", wire.DefaultLimits.BodyBytes) + `"}`
	status, _, body = call(t, "POST", "/v1/accounts", nil, huge)
	wantError(t, status, body, wire.ErrBodyTooLarge)
}

func TestCreateConversation(t *testing.T) {
	acc := newAccount(t)
	auth := map[string]string{"Authorization": "Bearer " + acc.Credential}
	path := "/v1/" + acc.Namespace + "/conversations"

	status, _, body := call(t, "POST", path, nil, "")
	wantError(t, status, body, wire.ErrMissingCredential)
	status, _, body = call(t, "POST", path, map[string]string{"Authorization": "Bearer ams_sk_wrong"}, "")
	wantError(t, status, body, wire.ErrInvalidCredential)
	other := newAccount(t)
	status, _, body = call(t, "POST", "/v1/"+other.Namespace+"/conversations", auth, "")
	wantError(t, status, body, wire.ErrNamespaceMismatch)

	for _, c := range []struct {
		body string
		want wire.Error
	}{
		{"nope", wire.ErrInvalidJSON},
		{`[1]`, wire.ErrInvalidJSON},
		{`{"alias":"Bad Alias"}`, wire.ErrInvalidAlias},
		{`{"stream_name":"-x"}`, wire.ErrInvalidStreamName},
		{`{"metadata":[1]}`, wire.ErrInvalidMetadata},
		{`{"metadata":"s"}`, wire.ErrInvalidMetadata},
		{`{"stream_metadata":7}`, wire.ErrInvalidStreamMetadata},
		{`{"id_kind":"ulid"}`, wire.ErrUnsupportedIDKind},
	} {
		status, _, body = call(t, "POST", path, auth, c.body)
		wantError(t, status, body, c.want)
	}

	// An empty body mints with a generated alias and stream name, on the host called.
	status, _, body = call(t, "POST", path, map[string]string{"Authorization": "Bearer " + acc.Credential, "Host": "agents.example.test"}, "")
	if status != 201 {
		t.Fatalf("mint: %d %v", status, body)
	}
	alias := body["alias"].(string)
	if !regexp.MustCompile(`^[a-z]+-[a-z]+-[1-9]\d{3}$`).MatchString(alias) {
		t.Fatalf("generated alias %q", alias)
	}
	if !regexp.MustCompile(`^stream-[A-Za-z0-9_-]{8}$`).MatchString(body["stream_name"].(string)) {
		t.Fatalf("generated stream name %v", body["stream_name"])
	}
	link := body["magic_link"].(string)
	if !regexp.MustCompile(`^http://agents\.example\.test/` + acc.Namespace + `/conversations/` + alias + `\?t=[A-Za-z0-9_-]{43}$`).MatchString(link) {
		t.Fatalf("magic_link %q", link)
	}
	if !regexp.MustCompile(`^conv_[0-9A-HJKMNP-TV-Z]{26}$`).MatchString(body["conversation_id"].(string)) {
		t.Fatalf("conversation_id %v", body["conversation_id"])
	}
	for _, k := range []string{"metadata", "stream_metadata"} {
		if m, ok := body[k].(map[string]any); !ok || len(m) != 0 {
			t.Fatalf("%s = %v, want {}", k, body[k])
		}
	}

	// Chosen fields are kept, and the stream id is the peppered hash of PROTOCOL §1.
	conv := mint(t, acc, client.NewConversation{
		Alias: "chosen-" + randomHex(3), StreamName: "planner", IDKind: "uuid",
		Metadata:       json.RawMessage(`{"instructions":"be brief","n":[1,2,{"deep":true}]}`),
		StreamMetadata: json.RawMessage(`{"role":"planner"}`),
	})
	sum := sha256.Sum256([]byte(broker.Peppers["AMS_PERMISSIVE_TOKEN_PEPPER"] + ":stream|" + conv.ConversationID + "|" + acc.AccountID + "|planner"))
	if want := "str_" + hex.EncodeToString(sum[:])[:26]; conv.StreamID != want {
		t.Fatalf("stream_id %s, want %s", conv.StreamID, want)
	}
	if !jsonEqual(conv.Metadata, `{"instructions":"be brief","n":[1,2,{"deep":true}]}`) || !jsonEqual(conv.StreamMetadata, `{"role":"planner"}`) {
		t.Fatalf("metadata not kept: %s %s", conv.Metadata, conv.StreamMetadata)
	}
	status, _, body = call(t, "POST", path, auth, `{"alias":"`+conv.Alias+`"}`)
	wantError(t, status, body, wire.ErrAliasTaken)
}

func TestInspect(t *testing.T) {
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{Metadata: json.RawMessage(`{"topic":"inspect"}`)})
	link, _ := client.ParseMagicLink(conv.MagicLink)
	path := "/v1/" + acc.Namespace + "/conversations/" + conv.Alias

	status, _, body := call(t, "GET", path, nil, "")
	wantError(t, status, body, wire.ErrMissingToken)
	status, _, body = call(t, "GET", path+"?t=wrong", nil, "")
	wantError(t, status, body, wire.ErrInvalidToken)
	status, _, body = call(t, "GET", "/v1/"+acc.Namespace+"/conversations/no-such-alias?t="+link.Token, nil, "")
	wantError(t, status, body, wire.ErrNotFound)
	stranger := newAccount(t)
	status, _, body = call(t, "GET", path, map[string]string{"Authorization": "Bearer " + stranger.Credential}, "")
	if status != 403 {
		t.Fatalf("a stranger's bearer inspected: %d %v", status, body)
	}

	info, err := broker.client("").Inspect(testContext(t, 10*time.Second), conv.MagicLink)
	if err != nil {
		t.Fatal(err)
	}
	if info.ConversationID != conv.ConversationID || info.Namespace != acc.Namespace || info.Alias != conv.Alias ||
		info.IDKind != "uuid" || !jsonEqual(info.Metadata, `{"topic":"inspect"}`) || len(info.Streams) != 0 {
		t.Fatalf("inspect: %+v", info)
	}

	_, joined := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "watcher", Metadata: json.RawMessage(`{"k":"v"}`)})
	status, _, body = call(t, "GET", path, map[string]string{"Authorization": "Bearer " + acc.Credential}, "")
	if status != 200 {
		t.Fatalf("owner inspect: %d %v", status, body)
	}
	streams := body["streams"].([]any)
	if len(streams) != 1 {
		t.Fatalf("streams: %v", streams)
	}
	s := streams[0].(map[string]any)
	if s["stream_id"] != joined.StreamID || s["stream_name"] != "watcher" || s["owner_account_id"] != acc.AccountID || s["metadata"].(map[string]any)["k"] != "v" {
		t.Fatalf("stream entry: %v", s)
	}
}

// TestMissingPeppers runs a deployment without its secrets: it must refuse
// loudly instead of hashing with a default.
func TestMissingPeppers(t *testing.T) {
	b, err := StartBroker(BrokerOptions{Vars: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	status, _, body := callURL(t, b.URL, "POST", "/v1/accounts", nil, `{"namespace":"demo"}`)
	wantError(t, status, body, wire.ErrServerMisconfigured)
	status, _, body = callURL(t, b.URL, "POST", "/v1/demo/conversations", map[string]string{"Authorization": "Bearer ams_sk_x"}, "")
	wantError(t, status, body, wire.ErrServerMisconfigured)
	conn, err := client.Dial(testContext(t, 10*time.Second), b.URL+"/demo/conversations/x?t=abc", client.DialOptions{Credential: "ams_sk_x"})
	if err != nil {
		t.Fatal(err)
	}
	closedWith(t, conn, wire.CloseInternalError)
}

func jsonEqual(raw []byte, want string) bool {
	var a, b any
	if json.Unmarshal(raw, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return bytes.Equal(ra, rb)
}
