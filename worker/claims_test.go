package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ams-dev/ams/namespace"
	"github.com/ams-dev/ams/wire"
)

// memNamespaces is one namespace object per name, each the real
// namespace.Serve over a namespace.MemoryStore; requests and replies cross
// as bytes, as they cross HTTP to the Durable Object in production.
type memNamespaces struct {
	mu      sync.Mutex
	objects map[string]*namespace.MemoryStore
}

func (m *memNamespaces) Call(_ context.Context, ns, method, path string, body []byte) (int, []byte, error) {
	m.mu.Lock()
	if m.objects == nil {
		m.objects = map[string]*namespace.MemoryStore{}
	}
	store := m.objects[ns]
	if store == nil {
		store = &namespace.MemoryStore{}
		m.objects[ns] = store
	}
	m.mu.Unlock()
	path, query, _ := strings.Cut(path, "?")
	status, reply := namespace.Serve(store, method, path, query, body)
	return status, reply, nil
}

// race runs n copies of fn at once and counts the statuses.
func race(n int, fn func() int) map[int]int {
	var mu sync.Mutex
	counts := map[int]int{}
	var start, done sync.WaitGroup
	start.Add(1)
	for range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			status := fn()
			mu.Lock()
			counts[status]++
			mu.Unlock()
		}()
	}
	start.Done()
	done.Wait()
	return counts
}

// slowKV makes every KV round trip yield, as a real one does, so racing
// requests all read before any writes: the KV check alone lets them all in.
type slowKV struct{ memKV }

func (k *slowKV) Get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := k.memKV.Get(ctx, key)
	yield()
	return v, ok, err
}

func (k *slowKV) Put(ctx context.Context, key, value string) error {
	yield()
	return k.memKV.Put(ctx, key, value)
}

func yield() {
	for range 50 {
		runtime.Gosched()
	}
}

func TestNamespaceClaimRace(t *testing.T) {
	s := newTestService()
	s.KV = &slowKV{memKV{m: map[string]string{}}}
	counts := race(20, func() int {
		code, body := call(t, s, "POST", "https://ams.example/v1/accounts", "", `{"namespace":"contested"}`)
		if code == http.StatusConflict && string(body["error"]) != `"namespace_taken"` {
			t.Errorf("409 body %v", body)
		}
		return code
	})
	if counts[http.StatusCreated] != 1 || counts[http.StatusConflict] != 19 {
		t.Fatalf("20 racing claims: %v, want one 201 and 19 409", counts)
	}
	// The winner's records are all in KV: its credential mints.
	var winner string
	for key, value := range s.KV.(*slowKV).m {
		if strings.HasPrefix(key, "namespace:") {
			winner = value
		}
	}
	if winner == "" {
		t.Fatal("no namespace record in KV")
	}
}

func TestAliasClaimRace(t *testing.T) {
	f := newFixture(t)
	f.s.KV = &slowKV{memKV{m: f.s.KV.(*memKV).m}}
	counts := race(20, func() int {
		code, body := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential, `{"alias":"contested"}`)
		if code == http.StatusConflict && string(body["error"]) != `"alias_taken"` {
			t.Errorf("409 body %v", body)
		}
		return code
	})
	if counts[http.StatusCreated] != 1 || counts[http.StatusConflict] != 19 {
		t.Fatalf("20 racing mints: %v, want one 201 and 19 409", counts)
	}
}

// TestMintServedByOwnerBeforeKV: where KV has not caught up with a mint
// (another location or isolate), inspect and join ask the alias's owner.
func TestMintServedByOwnerBeforeKV(t *testing.T) {
	f := newFixture(t)
	f.s.FaultInjection = true
	f.s.Cache = NewCache()
	f.s.Objects = newFakeObjects(t, f.s.Limits)
	r := newRequest("POST", "https://ams.example/v1/demo/conversations", f.credential, `{"alias":"fresh"}`)
	r.Header.Set(wire.FaultKVLagHeader, "1")
	minted := serve(t, f.s, r, http.StatusCreated)
	if _, found, _ := f.s.KV.Get(context.Background(), aliasKey("demo", "fresh")); found {
		t.Fatal("the lagging mint wrote KV")
	}
	link := jsonString(t, minted["magic_link"])
	token := link[strings.Index(link, "?t=")+3:]
	code, body := call(t, f.s, "GET", "https://ams.example/v1/demo/conversations/fresh?t="+token, "", "")
	if code != http.StatusOK || jsonString(t, body["conversation_id"]) != jsonString(t, minted["conversation_id"]) {
		t.Fatalf("inspect before KV: %d %v", code, body)
	}
	join, refusal := f.s.Admit(connectRequest(link, f.credential))
	if refusal != nil || join.ConversationID != jsonString(t, minted["conversation_id"]) {
		t.Fatalf("join before KV: %+v %+v", join, refusal)
	}
	// The owner also keeps the alias taken.
	if code, body := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential, `{"alias":"fresh"}`); code != http.StatusConflict {
		t.Fatalf("re-mint of an alias KV does not know yet: %d %v", code, body)
	}
}

// TestReferenceRecords: KV records written by the hosted reference (20-
// character ULIDs, no link generation, never claimed in a namespace object)
// are read: the account authenticates and mints, its conversation is
// inspected and joined, and its names stay taken.
func TestReferenceRecords(t *testing.T) {
	s := newTestService()
	s.Objects = newFakeObjects(t, s.Limits)
	kv := s.KV.(*memKV)
	const (
		accountID      = "acc_01HZX3K9QW7M2N4P5R"
		conversationID = "conv_01HZX3KA1B2C3D4E5F"
		credential     = "ams_sk_referenceCredential0123456789abcdefghij"
		token          = "referenceToken0123456789abcdefghijklmnop"
	)
	acc := fmt.Sprintf(`{"account_id":%q,"namespace":"legacy","credential_hash":%q,"created_at":"2026-05-02T10:00:00.000Z"}`,
		accountID, s.Peppers.CredentialHash(credential))
	conv := fmt.Sprintf(`{"conversation_id":%q,"alias":"old-room","namespace":"legacy","owner_account_id":%q,"id_kind":"uuid","permissive_token_hash":%q,"metadata":{"topic":"x"},"created_at":"2026-05-02T10:01:00.000Z"}`,
		conversationID, accountID, s.Peppers.PermissiveTokenHash(token))
	kv.m["account:"+accountID] = acc
	kv.m["namespace:legacy"] = accountID
	kv.m["credindex:"+s.Peppers.CredentialHash(credential)] = accountID
	kv.m["conversation:"+conversationID] = conv
	kv.m["alias:legacy:old-room"] = conversationID

	code, body := call(t, s, "GET", "https://ams.example/v1/legacy/conversations/old-room?t="+token, "", "")
	if code != http.StatusOK || jsonString(t, body["conversation_id"]) != conversationID || string(body["metadata"]) != `{"topic":"x"}` {
		t.Fatalf("inspect a reference conversation: %d %v", code, body)
	}
	join, refusal := s.Admit(connectRequest("https://ams.example/legacy/conversations/old-room?t="+token, credential))
	if refusal != nil || join.AccountID != accountID || join.ConversationID != conversationID {
		t.Fatalf("join a reference conversation: %+v %+v", join, refusal)
	}
	if code, body := call(t, s, "POST", "https://ams.example/v1/legacy/conversations", credential, `{"alias":"new-room"}`); code != http.StatusCreated {
		t.Fatalf("mint with a reference account: %d %v", code, body)
	}
	if code, body := call(t, s, "POST", "https://ams.example/v1/legacy/conversations", credential, `{"alias":"old-room"}`); code != http.StatusConflict || string(body["error"]) != `"alias_taken"` {
		t.Fatalf("re-mint a reference alias: %d %v", code, body)
	}
	if code, body := call(t, s, "POST", "https://ams.example/v1/accounts", "", `{"namespace":"legacy"}`); code != http.StatusConflict || string(body["error"]) != `"namespace_taken"` {
		t.Fatalf("claim a reference namespace: %d %v", code, body)
	}
}

func jsonString(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a JSON string", raw)
	}
	return s
}

func newRequest(method, target, bearerToken, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if bearerToken != "" {
		r.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	return r
}

// serve sends r and checks its status.
func serve(t *testing.T, s *Service, r *http.Request, status int) map[string]json.RawMessage {
	t.Helper()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	if w.Code != status {
		t.Fatalf("%s %s: %d %s, want %d", r.Method, r.URL, w.Code, w.Body, status)
	}
	return m
}

// connectRequest is the upgrade request of a magic link, with a bearer.
func connectRequest(link, credential string) *http.Request {
	base, query, _ := strings.Cut(link, "?")
	r := httptest.NewRequest("GET", base+"/connect?"+query, nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Authorization", "Bearer "+credential)
	return r
}

// TestAccountServedByOwnerBeforeKV: a credential KV does not know yet (its
// index nor its account record) is resolved by its own object: it mints in
// its namespace, and joins its own conversations and another account's, in
// this isolate and in a fresh one. A forged credential is still refused.
func TestAccountServedByOwnerBeforeKV(t *testing.T) {
	f := newFixture(t)
	f.s.FaultInjection = true
	f.s.Objects = newFakeObjects(t, f.s.Limits)
	r := newRequest("POST", "https://ams.example/v1/accounts", "", `{"namespace":"fresh"}`)
	r.Header.Set(wire.FaultKVLagHeader, "1")
	created := serve(t, f.s, r, http.StatusCreated)
	credential := jsonString(t, created["credential"])
	accountID := jsonString(t, created["account_id"])
	for _, key := range []string{credentialIndexKey(f.s.Peppers.CredentialHash(credential)), accountKey(accountID)} {
		if _, found, _ := f.s.KV.Get(context.Background(), key); found {
			t.Fatalf("the lagging account wrote %s", key)
		}
	}
	fresh := *f.s
	fresh.Cache = NewCache()
	for _, s := range []*Service{f.s, &fresh} {
		minted := serve(t, s, newRequest("POST", "https://ams.example/v1/fresh/conversations", credential, `{}`), http.StatusCreated)
		link := jsonString(t, minted["magic_link"])
		if join, refusal := s.Admit(connectRequest(link, credential)); refusal != nil || join.AccountID != accountID {
			t.Fatalf("join of its own conversation: %+v %+v", join, refusal)
		}
		if join, refusal := s.Admit(connectRequest("https://ams.example"+f.link.RequestURI(), credential)); refusal != nil || join.AccountID != accountID {
			t.Fatalf("join of another account's conversation: %+v %+v", join, refusal)
		}
		// It is authenticated, and still owns only its own namespace.
		serve(t, s, newRequest("POST", "https://ams.example/v1/demo/conversations", credential, `{}`), http.StatusForbidden)
	}
	// A forged credential is refused, by KV and by its (empty) object alike.
	for _, forged := range []string{wire.NewCredential(), wire.CredentialPrefix + "forged", "forged"} {
		serve(t, f.s, newRequest("POST", "https://ams.example/v1/fresh/conversations", forged, `{}`), http.StatusUnauthorized)
		if _, refusal := f.s.Admit(connectRequest("https://ams.example"+f.link.RequestURI(), forged)); refusal == nil || *refusal != wire.CloseInvalidCredential {
			t.Fatalf("join with a forged credential: %+v", refusal)
		}
	}
}

// TestMintKVWriteFails: the alias is claimed but its KV records fail to
// land. The mint stands (the owner holds the record): its link is answered,
// inspects and joins, and the alias stays taken.
func TestMintKVWriteFails(t *testing.T) {
	f := newFixture(t)
	f.s.Objects = newFakeObjects(t, f.s.Limits)
	f.s.Cache = NewCache()
	f.s.KV = failingKV{f.s.KV, "conversation:"}
	minted := serve(t, f.s, newRequest("POST", "https://ams.example/v1/demo/conversations", f.credential, `{"alias":"shaky"}`), http.StatusCreated)
	link := jsonString(t, minted["magic_link"])
	other := *f.s
	other.Cache = NewCache()
	for _, s := range []*Service{f.s, &other} {
		if join, refusal := s.Admit(connectRequest(link, f.credential)); refusal != nil || join.ConversationID != jsonString(t, minted["conversation_id"]) {
			t.Fatalf("join: %+v %+v", join, refusal)
		}
		serve(t, s, newRequest("GET", "https://ams.example/v1/demo/conversations/shaky?t="+strings.SplitN(link, "?t=", 2)[1], "", ""), http.StatusOK)
		serve(t, s, newRequest("POST", "https://ams.example/v1/demo/conversations", f.credential, `{"alias":"shaky"}`), http.StatusConflict)
	}
}

// TestAccountKVWriteFails: an account whose KV writes fail is not created:
// its namespace is free again and its credential's object holds nothing, so
// no credential nobody received authenticates anywhere.
func TestAccountKVWriteFails(t *testing.T) {
	s := newTestService()
	objects := &memNamespaces{}
	s.Namespaces = objects
	healthy := s.KV
	s.KV = failingKV{healthy, "namespace:"} // the last of an account's KV writes
	if code, body := call(t, s, "POST", "https://ams.example/v1/accounts", "", `{"namespace":"shaky"}`); code < 500 {
		t.Fatalf("account with failing KV: %d %v", code, body)
	}
	if len(objects.objects) != 2 {
		t.Fatalf("objects %v, want the namespace's and the credential's", objects.objects)
	}
	for name, store := range objects.objects {
		if _, found := store.Get("account"); found {
			t.Errorf("object %s still holds the account", name)
		}
	}
	s.KV = healthy
	if code, body := call(t, s, "POST", "https://ams.example/v1/accounts", "", `{"namespace":"shaky"}`); code != http.StatusCreated {
		t.Fatalf("the freed namespace: %d %v", code, body)
	}
}
