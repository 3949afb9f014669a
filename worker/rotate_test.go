package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ams-dev/ams/wire"
)

const rotateURL = "https://ams.example/v1/demo/conversations/calm-otter-1234/rotate"

// rotate calls the rotate endpoint and returns its status and body.
func rotate(t *testing.T, s *Service, target, bearerToken string) (int, map[string]json.RawMessage) {
	t.Helper()
	return call(t, s, http.MethodPost, target, bearerToken, "")
}

// withLink points the fixture at another magic link.
func (f *fixture) withLink(t *testing.T, link string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	f.link = u
}

func TestRotateLink(t *testing.T) {
	f := newMCPFixture(t)
	oldLink := f.linkURL()
	oldPeer := f.ws(t, "old")
	oldJoin, refusal := f.s.Admit(f.connect(nil, nil))
	if refusal != nil || oldJoin.LinkGeneration != 0 {
		t.Fatalf("before rotation: %+v %v", oldJoin, refusal)
	}
	// An MCP member admitted by the old link, too.
	member := jstr(t, toolOK(t, f.s, oldLink, "", "ams_join", map[string]any{"stream_name": "mcp-old"})["handle"])

	code, body := rotate(t, f.s, rotateURL, f.credential)
	if code != http.StatusOK {
		t.Fatalf("rotate: %d %v", code, body)
	}
	newLink := jstr(t, body["magic_link"])
	if newLink == oldLink || !strings.HasPrefix(newLink, "https://ams.example/demo/conversations/calm-otter-1234?t=") {
		t.Errorf("new link %q (old %q)", newLink, oldLink)
	}
	if jint(t, body["link_generation"]) != 1 || jstr(t, body["conversation_id"]) != f.conversationID || jstr(t, body["alias"]) != "calm-otter-1234" {
		t.Errorf("rotate body %v", body)
	}
	if body["rotated_at"] == nil {
		t.Error("no rotated_at")
	}
	if len(f.objects.rotations) != 1 || f.objects.rotations[0] != 1 {
		t.Errorf("object told rotations %v", f.objects.rotations)
	}
	// Streams admitted by the old link were closed 4001 magic_link_rotated.
	if c := oldPeer.sock.closed(); len(c) != 1 || c[0] != wire.CloseMagicLinkRotated {
		t.Errorf("old socket closes %v", c)
	}
	if code := toolErr(t, f.s, mcpURL, "", "ams_recv", map[string]any{"handle": member}); code != "not_joined" {
		t.Errorf("old member after rotation: %s", code)
	}

	// The old t no longer admits, anywhere.
	if _, refusal := f.s.Admit(f.connect(nil, nil)); refusal == nil || *refusal != wire.CloseInvalidMagicLink {
		t.Errorf("Admit with the old t: %v, want 4001 invalid_magic_link", refusal)
	}
	if w := postMCP(t, f.s, oldLink, "", rpcBody(1, "tools/list", nil), nil); w.Code != http.StatusForbidden {
		t.Errorf("MCP on the old link: %d", w.Code)
	}
	if code, _ := call(t, f.s, http.MethodGet, "https://ams.example/v1/demo/conversations/calm-otter-1234?t="+f.token, "", ""); code != http.StatusForbidden {
		t.Errorf("inspect with the old t: %d", code)
	}
	// A join the Worker admitted from a stale KV read is refused by the object.
	if _, refusal := f.objects.attach(oldJoin); refusal == nil || *refusal != wire.CloseInvalidMagicLink {
		t.Errorf("stale join reaching the object: %v", refusal)
	}

	// The new t admits, carrying the new generation.
	f.withLink(t, newLink)
	join, refusal := f.s.Admit(f.connect(nil, nil))
	if refusal != nil || join.LinkGeneration != 1 || join.ConversationID != f.conversationID {
		t.Fatalf("Admit with the new t: %+v %v", join, refusal)
	}
	newPeer := f.ws(t, "new")
	if c := newPeer.sock.closed(); len(c) != 0 {
		t.Errorf("new socket closed %v", c)
	}
	out := toolOK(t, f.s, newLink, "", "ams_join", map[string]any{"stream_name": "mcp-new"})
	if call, _ := f.objects.lastCall("join"); call.Join.LinkGeneration != 1 {
		t.Errorf("member join generation %d", call.Join.LinkGeneration)
	}
	// The anonymous identity follows the token.
	if jstr(t, out["owner_account_id"]) != anonAccount(f.s.Peppers.Permissive, f.link.Query().Get("t")) {
		t.Errorf("anonymous account after rotation %s", out["owner_account_id"])
	}

	// Rotating again closes generation 1 and counts up.
	code, body = rotate(t, f.s, rotateURL, f.credential)
	if code != http.StatusOK || jint(t, body["link_generation"]) != 2 {
		t.Fatalf("second rotate: %d %v", code, body)
	}
	if c := newPeer.sock.closed(); len(c) != 1 || c[0] != wire.CloseMagicLinkRotated {
		t.Errorf("generation-1 socket closes %v", c)
	}
	if _, refusal := f.s.Admit(f.connect(nil, nil)); refusal == nil || *refusal != wire.CloseInvalidMagicLink {
		t.Errorf("Admit with generation 1's t: %v", refusal)
	}
}

func TestRotateLinkRefusals(t *testing.T) {
	f := newMCPFixture(t)
	code, other := call(t, f.s, http.MethodPost, "https://ams.example/v1/accounts", "", `{"namespace":"other"}`)
	if code != http.StatusCreated {
		t.Fatal(code)
	}
	otherCredential := jstr(t, other["credential"])
	tests := []struct {
		name, method, target, bearer string
		status                       int
		code                         string
	}{
		{"no bearer", "POST", rotateURL, "", 401, "missing_credential"},
		{"invalid bearer", "POST", rotateURL, "ams_sk_nope", 401, "invalid_credential"},
		{"another namespace's owner", "POST", rotateURL, otherCredential, 403, "namespace_mismatch"},
		{"unknown alias", "POST", "https://ams.example/v1/demo/conversations/no-such-1/rotate", f.credential, 404, "not_found"},
		{"GET", "GET", rotateURL, f.credential, 405, "method_not_allowed"},
		{"DELETE", "DELETE", rotateURL, f.credential, 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := call(t, f.s, tt.method, tt.target, tt.bearer, "")
			if code != tt.status || jstr(t, body["error"]) != tt.code || jstr(t, body["message"]) == "" {
				t.Errorf("%d %v, want %d %s", code, body, tt.status, tt.code)
			}
		})
	}
	// The other account rotating its own namespace's path finds nothing.
	code, body := call(t, f.s, http.MethodPost, "https://ams.example/v1/other/conversations/calm-otter-1234/rotate", otherCredential, "")
	if code != http.StatusNotFound {
		t.Errorf("other namespace: %d %v", code, body)
	}
	// Nothing rotated: the original link still admits.
	if len(f.objects.rotations) != 0 {
		t.Errorf("refused rotations reached the object: %v", f.objects.rotations)
	}
	if _, refusal := f.s.Admit(f.connect(nil, nil)); refusal != nil {
		t.Errorf("original link refused after refused rotations: %+v", *refusal)
	}
}

// TestRotateLinkOwnerOnly: an account owning the namespace but not the
// conversation (a record written by hand: the API never mints one) may not
// rotate it.
func TestRotateLinkOwnerOnly(t *testing.T) {
	f := newMCPFixture(t)
	ctx := t.Context()
	var rec ConversationRecord
	if err := getJSON(ctx, f.s.KV, conversationKey(f.conversationID), &rec); err != nil {
		t.Fatal(err)
	}
	rec.OwnerAccountID = "acc_SOMEONEELSE"
	if err := putJSON(ctx, f.s.KV, conversationKey(f.conversationID), rec); err != nil {
		t.Fatal(err)
	}
	code, body := rotate(t, f.s, rotateURL, f.credential)
	if code != http.StatusForbidden || jstr(t, body["error"]) != "namespace_mismatch" {
		t.Errorf("non-owner rotate: %d %v", code, body)
	}
}

func TestAdmitBrowserSubprotocol(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name          string
		authorization string
		protocols     string
		account       bool
		subprotocol   string
		refusal       *wire.Close
	}{
		{"bearer as subprotocol beside ams.v1", "", "ams.v1, ams.bearer." + f.credential, true, "ams.v1", nil},
		{"bearer first", "", "ams.bearer." + f.credential + ",ams.v1", true, "ams.v1", nil},
		{"bearer subprotocol without ams.v1", "", "ams.bearer." + f.credential, true, "", nil},
		{"header bearer, ams.v1 offered", "Bearer " + f.credential, "ams.v1", true, "ams.v1", nil},
		{"header bearer, nothing offered", "Bearer " + f.credential, "", true, "", nil},
		{"header bearer wins over a bad subprotocol bearer", "Bearer " + f.credential, "ams.v1, ams.bearer.ams_sk_bad", true, "ams.v1", nil},
		{"invalid subprotocol bearer", "", "ams.v1, ams.bearer.ams_sk_bad", false, "", &wire.CloseInvalidCredential},
		{"empty subprotocol bearer", "", "ams.v1, ams.bearer.", false, "", &wire.CloseInvalidCredential},
		{"only ams.v1", "", "ams.v1", false, "", &wire.CloseInvalidCredential},
		{"nothing", "", "", false, "", &wire.CloseInvalidCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.connect(nil, nil)
			r.Header.Del("Authorization")
			if tt.authorization != "" {
				r.Header.Set("Authorization", tt.authorization)
			}
			if tt.protocols != "" {
				r.Header.Set("Sec-WebSocket-Protocol", tt.protocols)
			}
			join, refusal := f.s.Admit(r)
			if tt.refusal != nil {
				if refusal == nil || *refusal != *tt.refusal {
					t.Fatalf("got %+v %v, want %+v", join, refusal, *tt.refusal)
				}
				// The refusal's 101 still selects ams.v1 when offered.
				want := ""
				if strings.Contains(tt.protocols, "ams.v1") {
					want = "ams.v1"
				}
				if got := Subprotocol(r); got != want {
					t.Errorf("Subprotocol = %q, want %q", got, want)
				}
				return
			}
			if refusal != nil {
				t.Fatalf("refused %+v", *refusal)
			}
			if join.AccountID != f.accountID {
				t.Errorf("account %s, want %s", join.AccountID, f.accountID)
			}
			if join.Subprotocol != tt.subprotocol || Subprotocol(r) != tt.subprotocol {
				t.Errorf("Subprotocol %q / %q, want %q", join.Subprotocol, Subprotocol(r), tt.subprotocol)
			}
			// The credential never travels to the object.
			raw, _ := json.Marshal(join)
			if strings.Contains(string(raw), f.credential) {
				t.Errorf("the join carries the credential: %s", raw)
			}
		})
	}
}

// TestAdmitBrowserQueryForms: a browser join with every header as a query
// parameter and the bearer as a subprotocol.
func TestAdmitBrowserQueryForms(t *testing.T) {
	f := newFixture(t)
	q := url.Values{
		"stream_name":     {"browser"},
		"stream_metadata": {"eyJhIjoxfQ=="}, // {"a":1}
		"self_subscribe":  {"true"},
	}
	r := f.connect(nil, q)
	r.Header.Del("Authorization")
	r.Header.Set("Sec-WebSocket-Protocol", "ams.v1, ams.bearer."+f.credential)
	join, refusal := f.s.Admit(r)
	if refusal != nil {
		t.Fatalf("refused %+v", *refusal)
	}
	if join.StreamName != "browser" || string(join.Metadata) != `{"a":1}` || !join.SelfSubscribe || join.Subprotocol != "ams.v1" {
		t.Errorf("join %+v", join)
	}
}

// TestConnectWithoutUpgrade: the connect route answers JSON 426 over plain
// HTTP.
func TestConnectWithoutUpgrade(t *testing.T) {
	f := newFixture(t)
	r := f.connect(nil, nil)
	r.Header.Del("Upgrade")
	w := httptest.NewRecorder()
	f.s.ServeHTTP(w, r)
	var e map[string]string
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	if w.Code != http.StatusUpgradeRequired || e["error"] != "upgrade_required" {
		t.Errorf("plain GET of connect: %d %s", w.Code, w.Body.String())
	}
}

// isolate is another Worker isolate of the same deployment: its own cache
// over the same KV, objects and namespace owners.
func (f *mcpFixture) isolate() *Service {
	s := *f.s
	s.Cache = NewCache()
	return &s
}

// admits reports whether link joins through s: Admit and then the object.
func (f *mcpFixture) admits(t *testing.T, s *Service, link string) bool {
	t.Helper()
	join, refusal := s.Admit(connectRequest(link, f.credential))
	if refusal != nil {
		return false
	}
	_, refusal = f.objects.attach(join)
	return refusal == nil
}

func (f *mcpFixture) inspects(t *testing.T, s *Service, link string) int {
	t.Helper()
	code, _ := call(t, s, "GET", "https://ams.example/v1/demo/conversations/calm-otter-1234?t="+link[strings.Index(link, "?t=")+3:], "", "")
	return code
}

// TestRotationsFromStaleCaches: two isolates whose caches both hold the
// unrotated record rotate one after the other. Each gets its own generation
// and only the second link is valid, from either isolate.
func TestRotationsFromStaleCaches(t *testing.T) {
	f := newMCPFixture(t)
	f.s.Cache = NewCache()
	a, b := f.isolate(), f.isolate()
	original := f.linkURL()
	for _, s := range []*Service{a, b} {
		if !f.admits(t, s, original) {
			t.Fatal("original link refused before any rotation")
		}
	}
	code, first := rotate(t, a, rotateURL, f.credential)
	if code != http.StatusOK {
		t.Fatalf("rotate on a: %d %v", code, first)
	}
	code, second := rotate(t, b, rotateURL, f.credential)
	if code != http.StatusOK {
		t.Fatalf("rotate on b: %d %v", code, second)
	}
	if g1, g2 := jint(t, first["link_generation"]), jint(t, second["link_generation"]); g1 != 1 || g2 != 2 {
		t.Fatalf("generations %d and %d, want 1 and 2", g1, g2)
	}
	// KV ends with the first rotation's record, as when two writes land
	// out of order.
	var rec ConversationRecord
	if err := getJSON(t.Context(), f.s.KV, conversationKey(f.conversationID), &rec); err != nil {
		t.Fatal(err)
	}
	rec.PermissiveTokenHash = f.s.Peppers.PermissiveTokenHash(strings.SplitN(jstr(t, first["magic_link"]), "?t=", 2)[1])
	rec.LinkGeneration = 1
	if err := putJSON(t.Context(), f.s.KV, conversationKey(f.conversationID), rec); err != nil {
		t.Fatal(err)
	}
	fresh := f.isolate()
	for name, s := range map[string]*Service{"a": a, "b": b, "fresh": fresh} {
		for link, valid := range map[string]bool{original: false, jstr(t, first["magic_link"]): false, jstr(t, second["magic_link"]): true} {
			if got := f.admits(t, s, link); got != valid {
				t.Errorf("isolate %s: link of generation %s admits %v, want %v", name, link[len(link)-6:], got, valid)
			}
			if code, want := f.inspects(t, s, link), map[bool]int{true: 200, false: 403}[valid]; code != want {
				t.Errorf("isolate %s: inspect with %s: %d, want %d", name, link[len(link)-6:], code, want)
			}
		}
	}
}

// failingKV fails every write of a key starting with prefix.
type failingKV struct {
	KV
	prefix string
}

func (k failingKV) Put(ctx context.Context, key, value string) error {
	if strings.HasPrefix(key, k.prefix) {
		return errors.New("KV unavailable")
	}
	return k.KV.Put(ctx, key, value)
}

// TestRotationKVWriteFails: the object rotated but KV kept the old record.
// The caller still gets the new link, which is the one valid link.
func TestRotationKVWriteFails(t *testing.T) {
	f := newMCPFixture(t)
	f.s.KV = failingKV{f.s.KV, "conversation:"}
	original := f.linkURL()
	code, body := rotate(t, f.s, rotateURL, f.credential)
	if code != http.StatusOK {
		t.Fatalf("rotate with KV failing: %d %v", code, body)
	}
	rotated := jstr(t, body["magic_link"])
	for _, s := range []*Service{f.s, f.isolate()} {
		if f.admits(t, s, original) || f.inspects(t, s, original) != http.StatusForbidden {
			t.Error("the original link still admits")
		}
		if !f.admits(t, s, rotated) || f.inspects(t, s, rotated) != http.StatusOK {
			t.Error("the rotated link does not admit")
		}
	}
	// An MCP join with the rotated link works too.
	toolOK(t, f.isolate(), rotated, "", "ams_join", map[string]any{"stream_name": "mcp-new"})
}
