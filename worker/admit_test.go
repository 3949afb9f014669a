package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// memKV is an in-memory KV.
type memKV struct {
	mu sync.Mutex
	m  map[string]string
}

func (k *memKV) Get(_ context.Context, key string) (string, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	return v, ok, nil
}

func (k *memKV) Put(_ context.Context, key, value string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[key] = value
	return nil
}

func (k *memKV) Delete(_ context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
	return nil
}

func newTestService() *Service {
	return &Service{
		KV:         &memKV{m: map[string]string{}},
		Namespaces: &memNamespaces{},
		Peppers:    wire.Peppers{Credential: "cred-pepper", Permissive: "perm-pepper"},
		Limits:     wire.DefaultLimits,
		Now:        func() time.Time { return time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC) },
	}
}

func call(t *testing.T, s *Service, method, target, bearerToken, body string) (int, map[string]json.RawMessage) {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if bearerToken != "" {
		r.Header.Set("Authorization", "Bearer "+bearerToken)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w.Code, m
}

// fixture is a namespace with one conversation.
type fixture struct {
	s              *Service
	credential     string
	accountID      string
	conversationID string
	link           *url.URL
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{s: newTestService()}
	code, acc := call(t, f.s, "POST", "https://ams.example/v1/accounts", "", `{"namespace":"demo"}`)
	if code != http.StatusCreated {
		t.Fatalf("create account: %d %v", code, acc)
	}
	_ = json.Unmarshal(acc["credential"], &f.credential)
	_ = json.Unmarshal(acc["account_id"], &f.accountID)
	code, conv := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential, `{"alias":"calm-otter-1234"}`)
	if code != http.StatusCreated {
		t.Fatalf("create conversation: %d %v", code, conv)
	}
	var link string
	_ = json.Unmarshal(conv["magic_link"], &link)
	_ = json.Unmarshal(conv["conversation_id"], &f.conversationID)
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	f.link = u
	return f
}

// connect builds an upgrade request on the fixture's link with headers and
// extra query parameters.
func (f *fixture) connect(headers map[string]string, query url.Values) *http.Request {
	u := *f.link
	u.Path += "/connect"
	q := u.Query()
	for k, vs := range query {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	r := httptest.NewRequest("GET", u.String(), nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Authorization", "Bearer "+f.credential)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func TestAdmitDeliveryExtensions(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name      string
		headers   map[string]string
		query     url.Values
		resume    *int64
		subscribe []string
		receipts  bool
	}{
		{"none", nil, nil, nil, nil, false},
		{
			"headers",
			map[string]string{"X-AMS-Resume-After": "42", "X-AMS-Subscribe-Streams": "a, b,a", "X-AMS-Receipts": "true"},
			nil, ptr(42), []string{"a", "b"}, true,
		},
		{
			"query forms",
			nil,
			url.Values{"resume_after": {"0"}, "subscribe_streams": {"x.y"}, "receipts": {"1"}},
			ptr(0), []string{"x.y"}, true,
		},
		{
			"header wins over query",
			map[string]string{"X-AMS-Resume-After": "7", "X-AMS-Subscribe-Streams": "h"},
			url.Values{"resume_after": {"8"}, "subscribe_streams": {"q"}},
			ptr(7), []string{"h"}, false,
		},
		{"receipts false", map[string]string{"X-AMS-Receipts": "false"}, nil, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			join, refusal := f.s.Admit(f.connect(tt.headers, tt.query))
			if refusal != nil {
				t.Fatalf("refused %+v", *refusal)
			}
			if join.ConversationID != f.conversationID || join.AccountID != f.accountID {
				t.Errorf("join %+v", join)
			}
			switch {
			case tt.resume == nil && join.ResumeAfter != nil:
				t.Errorf("ResumeAfter = %d, want nil", *join.ResumeAfter)
			case tt.resume != nil && (join.ResumeAfter == nil || *join.ResumeAfter != *tt.resume):
				t.Errorf("ResumeAfter = %v, want %d", join.ResumeAfter, *tt.resume)
			}
			if !slices.Equal(join.SubscribeStreams, tt.subscribe) || (tt.subscribe == nil) != (join.SubscribeStreams == nil) {
				t.Errorf("SubscribeStreams = %#v, want %#v", join.SubscribeStreams, tt.subscribe)
			}
			if join.Receipts != tt.receipts {
				t.Errorf("Receipts = %v, want %v", join.Receipts, tt.receipts)
			}
		})
	}
}

func ptr(n int64) *int64 { return &n }

func TestAdmitDeliveryRefusals(t *testing.T) {
	f := newFixture(t)
	tooMany := make([]string, f.s.Limits.SubscribeStreams+1)
	for i := range tooMany {
		tooMany[i] = "s" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
	}
	tests := []struct {
		name    string
		headers map[string]string
		query   url.Values
		want    wire.Close
	}{
		{"subscribe: invalid name", map[string]string{"X-AMS-Subscribe-Streams": "a,-b"}, nil, wire.CloseInvalidSubscribeStreams},
		{"subscribe: empty element", map[string]string{"X-AMS-Subscribe-Streams": "a,,b"}, nil, wire.CloseInvalidSubscribeStreams},
		{"subscribe: too many", map[string]string{"X-AMS-Subscribe-Streams": strings.Join(tooMany, ",")}, nil, wire.CloseInvalidSubscribeStreams},
		{"subscribe: query form", nil, url.Values{"subscribe_streams": {"a b"}}, wire.CloseInvalidSubscribeStreams},
		{"resume: negative", map[string]string{"X-AMS-Resume-After": "-1"}, nil, wire.CloseInvalidResumeAfter},
		{"resume: not a number", map[string]string{"X-AMS-Resume-After": "latest"}, nil, wire.CloseInvalidResumeAfter},
		{"resume: query form", nil, url.Values{"resume_after": {"1.5"}}, wire.CloseInvalidResumeAfter},
		{
			"stream name checked before the extensions",
			map[string]string{"X-AMS-Stream-Name": "-bad", "X-AMS-Subscribe-Streams": "-x", "X-AMS-Resume-After": "x"},
			nil, wire.CloseInvalidStreamNameHeader,
		},
		{
			"metadata checked before the extensions",
			map[string]string{"X-AMS-Stream-Metadata": "!!", "X-AMS-Subscribe-Streams": "-x", "X-AMS-Resume-After": "x"},
			nil, wire.CloseInvalidStreamMetadata,
		},
		{
			"bearer checked before the extensions",
			map[string]string{"Authorization": "Bearer ams_sk_nope", "X-AMS-Subscribe-Streams": "-x"},
			nil, wire.CloseInvalidCredential,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			join, refusal := f.s.Admit(f.connect(tt.headers, tt.query))
			if refusal == nil || *refusal != tt.want {
				t.Fatalf("got %+v, %v; want %+v", join, refusal, tt.want)
			}
		})
	}
	// Exactly the limit is fine.
	join, refusal := f.s.Admit(f.connect(map[string]string{"X-AMS-Subscribe-Streams": strings.Join(tooMany[1:], ",")}, nil))
	if refusal != nil || len(join.SubscribeStreams) != f.s.Limits.SubscribeStreams {
		t.Errorf("a subscription of exactly the limit: %v, %d names", refusal, len(join.SubscribeStreams))
	}
}

func TestReservedNamespaceRefused(t *testing.T) {
	s := newTestService()
	for _, ns := range wire.ReservedNamespaces {
		code, body := call(t, s, "POST", "https://ams.example/v1/accounts", "", `{"namespace":"`+ns+`"}`)
		if code != http.StatusBadRequest || string(body["error"]) != `"invalid_namespace"` {
			t.Errorf("namespace %q: %d %s, want 400 invalid_namespace", ns, code, body["error"])
		}
	}
	// A reserved word is still a fine alias.
	f := newFixture(t)
	code, body := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential, `{"alias":"api"}`)
	if code != http.StatusCreated {
		t.Errorf("alias api: %d %v", code, body)
	}
}
