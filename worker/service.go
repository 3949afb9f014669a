// Package worker is the AMS control plane: the HTTP API of PROTOCOL §2 over
// Workers KV, and the admission of /connect requests, which it authenticates
// before handing them to the conversation's Durable Object.
//
// The package is plain Go; worker_js.go wires it to workerd.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ams-dev/ams/wire"
)

// Objects reaches the conversations' Durable Objects.
type Objects interface {
	// Streams reads the live streams of a conversation.
	Streams(ctx context.Context, conversationID string) ([]wire.StreamInfo, error)
	// Member runs an MCP member operation (wire.MemberPath + op).
	Member(ctx context.Context, op string, call wire.MemberCall) (wire.MemberReply, error)
	// Rotate has the object issue the link's next generation, whose token
	// hashes to tokenHash, and close the streams of older links.
	Rotate(ctx context.Context, conversationID, tokenHash string) (wire.LinkState, error)
	// Link reads the conversation's current link.
	Link(ctx context.Context, conversationID string) (wire.LinkState, error)
	// Session runs op (get, bind, end) on the object of the MCP session
	// named by nonce (wire.SessionPath).
	Session(ctx context.Context, nonce, op string, in wire.SessionState) (wire.SessionState, error)
}

// Service serves the control plane.
type Service struct {
	KV      KV
	Objects Objects
	// Namespaces owns the namespace and alias claims (claims.go).
	Namespaces Namespaces
	Peppers    wire.Peppers
	Limits     wire.Limits
	Now        func() time.Time
	// FaultInjection lets the crash-recovery tests make a request fail (wire/faults.go).
	FaultInjection bool
	// Cache, shared by the requests of an isolate, saves KV reads; nil is none.
	Cache *Cache
}

// Route is one endpoint of the API. The table below is the single source of
// the routes: the router, the 405 answers and the documentation read it.
type Route struct {
	Pattern string
	Methods map[string]handler
	// Doc, when set, puts the route in the page's protocol section: what it
	// does, and the example request (Example, a JSON body or a header list).
	Doc     string
	Example string
	// Public routes hold no secrets and serve even without the peppers.
	Public bool
}

type handler func(s *Service, w http.ResponseWriter, r *http.Request, p params)

// params holds the {ns} and {alias} segments of a matched route.
type params struct{ ns, alias, asset string }

// Routes is the API, in PROTOCOL §2 order. It is filled in init because
// the home page renders it.
var Routes []Route

func init() {
	Routes = []Route{
		{Pattern: "/", Methods: map[string]handler{"GET": (*Service).homePage, "HEAD": (*Service).homePage}, Public: true},
		{Pattern: "/site/{asset}", Methods: map[string]handler{"GET": (*Service).siteAsset}, Public: true},
		{Pattern: "/healthz", Methods: map[string]handler{"GET": (*Service).healthz, "HEAD": (*Service).healthz},
			Doc: "Liveness probe; names the host you called.", Public: true},
		{Pattern: "/v1/accounts", Methods: map[string]handler{"POST": (*Service).createAccount},
			Doc: "Create an account under a namespace. The credential comes back exactly once.", Example: `{"namespace":"demo-9421"}`},
		{Pattern: "/v1/{ns}/conversations", Methods: map[string]handler{"POST": (*Service).createConversation},
			Doc: "Mint a conversation in your namespace (bearer). The magic link comes back: share it.", Example: `{}`},
		{Pattern: "/v1/{ns}/conversations/{alias}", Methods: map[string]handler{"GET": (*Service).getConversation},
			Doc: "Inspect a conversation and its live streams (?t= or the owner's bearer)."},
		{Pattern: "/v1/{ns}/conversations/{alias}/rotate", Methods: map[string]handler{"POST": (*Service).rotateLink}},
		{Pattern: "/{ns}/conversations/{alias}/connect", Methods: map[string]handler{"GET": (*Service).connectWithoutUpgrade},
			Doc:     "Append /connect to a magic link and upgrade to WebSocket: tokens in, tokens out.",
			Example: "Authorization: Bearer ams_sk_…\nX-AMS-Stream-Name: agent-a"},
		{Pattern: "/{ns}/conversations/{alias}", Methods: map[string]handler{"GET": (*Service).linkPage, "POST": (*Service).serveMCP, "DELETE": (*Service).endMCPSession}},
		{Pattern: "/mcp", Methods: map[string]handler{"GET": (*Service).getMCP, "POST": (*Service).serveMCP, "DELETE": (*Service).endMCPSession}},
	}
}

// ServeHTTP routes r. CORS is open: the API authenticates with bearer
// credentials and link tokens, never cookies.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Mcp-Session-Id")
	if s.FaultInjection {
		wire.InjectFault(r.URL.Path)
	}
	for _, route := range Routes {
		p, ok := match(route.Pattern, r.URL.Path)
		if !ok {
			continue
		}
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", allowed(route)+", OPTIONS")
			h.Set("Access-Control-Allow-Headers", "authorization, content-type, mcp-session-id, mcp-protocol-version, last-event-id, accept")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fn := route.Methods[r.Method]
		if fn == nil {
			h.Set("Allow", allowed(route))
			writeError(w, wire.ErrMethodNotAllowed, r.Method+" is not allowed on "+route.Pattern)
			return
		}
		if !route.Public && !s.Peppers.Complete() {
			writeError(w, wire.ErrServerMisconfigured, "the deployment lacks AMS_CREDENTIAL_PEPPER or AMS_PERMISSIVE_TOKEN_PEPPER")
			return
		}
		fn(s, w, r, p)
		return
	}
	writeError(w, wire.ErrNotFound, "no route for "+r.URL.Path)
}

func allowed(route Route) string {
	var names []string
	for _, m := range []string{"GET", "HEAD", "POST", "DELETE"} {
		if route.Methods[m] != nil {
			names = append(names, m)
		}
	}
	return strings.Join(names, ", ")
}

// match reports whether path fits pattern, capturing {ns} and {alias}.
// Captured segments are returned raw; handlers validate them.
func match(pattern, path string) (params, bool) {
	var p params
	want := strings.Split(strings.Trim(pattern, "/"), "/")
	got := strings.Split(strings.Trim(path, "/"), "/")
	if len(want) != len(got) || path == "" || path[0] != '/' {
		return p, false
	}
	for i, seg := range want {
		switch seg {
		case "{ns}":
			p.ns = got[i]
		case "{alias}":
			p.alias = got[i]
		case "{asset}":
			p.asset = got[i]
		default:
			if seg != got[i] {
				return p, false
			}
		}
	}
	return p, true
}

func (s *Service) healthz(w http.ResponseWriter, r *http.Request, _ params) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "host": r.Host, "ts": wire.Timestamp(s.Now())})
}

// apiError carries a protocol error out of a helper.
type apiError struct {
	code    wire.Error
	message string
}

func (e *apiError) Error() string { return e.code.Code + ": " + e.message }

func fail(code wire.Error, message string) error { return &apiError{code, message} }

// respond writes err as its protocol error; unexpected errors are 500s whose
// detail stays out of the response.
func respond(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae.code, ae.message)
		return
	}
	writeError(w, wire.ErrInternal, "unexpected failure")
}

func writeError(w http.ResponseWriter, code wire.Error, message string) {
	writeJSON(w, code.Status, map[string]string{"error": code.Code, "message": message})
}

// writeJSON answers body as JSON. Nothing is HTML-escaped: client data
// (metadata in an inspect reply) comes back as it was sent, and no longer
// (wire.Limits.StreamListBytes).
func writeJSON(w http.ResponseWriter, status int, body any) {
	raw := wire.MarshalVerbatim(body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// readObject reads a JSON object body of at most Limits.BodyBytes. An empty
// body is the empty object when allowEmpty.
func (s *Service) readObject(r *http.Request, allowEmpty bool, into any) error {
	if r.ContentLength > int64(s.Limits.BodyBytes) {
		return fail(wire.ErrBodyTooLarge, "request body exceeds the limit")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.Limits.BodyBytes)+1))
	if err != nil {
		return fail(wire.ErrInvalidJSON, "request body could not be read")
	}
	if len(body) > s.Limits.BodyBytes {
		return fail(wire.ErrBodyTooLarge, "request body exceeds the limit")
	}
	if len(strings.TrimSpace(string(body))) == 0 && allowEmpty {
		body = wire.EmptyObject
	}
	if !wire.IsJSONObject(body) {
		return fail(wire.ErrInvalidJSON, "request body must be a JSON object")
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fail(wire.ErrInvalidJSON, "request body has a field of the wrong type")
	}
	return nil
}

// bearer returns the credential of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	v := r.Header.Get("Authorization")
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// authenticate resolves a bearer credential to its account: from the
// isolate's cache, KV, or (where KV has not caught up with a new account,
// in any namespace) the credential's object.
func (s *Service) authenticate(ctx context.Context, credential string) (*Account, error) {
	if credential == "" {
		return nil, fail(wire.ErrMissingCredential, "Authorization: Bearer ams_sk_... is required")
	}
	invalid := fail(wire.ErrInvalidCredential, "the credential is not valid")
	hash := s.Peppers.CredentialHash(credential)
	if acc := s.Cache.account(hash, s.Now()); acc != nil && wire.HashesEqual(acc.CredentialHash, hash) {
		return acc, nil
	}
	id, found, err := s.KV.Get(ctx, credentialIndexKey(hash))
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(credential, wire.CredentialPrefix) {
		return nil, invalid
	}
	var acc Account
	err = errNotFound
	if found {
		err = getJSON(ctx, s.KV, accountKey(id), &acc)
	}
	if errors.Is(err, errNotFound) {
		err = s.credentialAccount(ctx, hash, &acc)
	}
	if errors.Is(err, errNotFound) {
		return nil, invalid
	} else if err != nil {
		return nil, err
	}
	if !wire.HashesEqual(acc.CredentialHash, hash) {
		return nil, invalid
	}
	s.Cache.keepAccount(hash, &acc, s.Now())
	return &acc, nil
}
