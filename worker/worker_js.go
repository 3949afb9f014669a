package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall/js"
	"time"

	"github.com/syumai/workers/cloudflare"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// Binding names of wrangler.toml.
const (
	KVBinding           = "AMS_KV"
	ConversationBinding = "CONVERSATIONS"
	NamespaceBinding    = "NAMESPACES"
	SessionBinding      = "MCP_SESSIONS"
)

// internalOrigin is the origin of requests from the Worker to a conversation
// object; the object routes on the path alone.
const internalOrigin = "https://conversation.internal"

// isolateCache lives as long as the Go program, one per isolate.
var isolateCache = NewCache()

// Register exports the Worker's fetch handler to build/entry.mjs.
func Register() {
	bridge.ExportAsync("fetch", fetch, func(args []js.Value) js.Value {
		if bridge.Header(args[0].Get("headers")).Get("Upgrade") != "" {
			return bridge.RefuseUpgrade(wire.CloseInternalError.Code, wire.CloseInternalError.Reason, nil)
		}
		return bridge.NewResponse(http.StatusInternalServerError, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"error":"internal_error","message":"unexpected failure"}`))
	})
}

func fetch(args []js.Value) (js.Value, error) {
	env := args[1]
	svc, err := serviceFor(env)
	if err != nil {
		return js.Value{}, err
	}
	req, err := bridge.Request(context.Background(), args[0])
	if err != nil {
		// Only a URL Go cannot parse (a bad escape) fails here, and no route
		// has such a path. The error quotes the URL, link token and all, so
		// it is answered, not logged.
		return notFound(), nil
	}
	defer req.Body.Close()
	if IsConnect(req) {
		join, refusal := svc.Admit(req)
		if refusal != nil {
			var header http.Header
			if sub := Subprotocol(req); sub != "" {
				header = http.Header{"Sec-WebSocket-Protocol": {sub}}
			}
			return bridge.RefuseUpgrade(refusal.Code, refusal.Reason, header), nil
		}
		return forwardJoin(env, join)
	}
	if leg, ok, err := svc.OpenPush(req); ok {
		if err != nil {
			w := bridge.NewResponseWriter()
			w.Header().Set("Access-Control-Allow-Origin", "*")
			respond(w, err)
			return w.JSResponse(), nil
		}
		return servePush(env, leg), nil
	}
	w := bridge.NewResponseWriter()
	svc.ServeHTTP(w, req)
	return w.JSResponse(), nil
}

func notFound() js.Value {
	w := bridge.NewResponseWriter()
	writeError(w, wire.ErrNotFound, "no route for this path")
	return w.JSResponse()
}

// service is the Service of the env it was built from. An isolate's
// requests share one env object, and building a Service reads every limit,
// pepper and binding from it: some sixty calls into JS, on every request,
// joins included. A request with another env gets a Service of its own.
var service struct {
	env js.Value
	svc *Service
}

func serviceFor(env js.Value) (*Service, error) {
	if service.svc != nil && service.env.Equal(env) {
		return service.svc, nil
	}
	svc, err := newService(env)
	if err != nil {
		return nil, err
	}
	service.env, service.svc = env, svc
	return svc, nil
}

func newService(env js.Value) (*Service, error) {
	getenv := bridge.Env(env)
	kv, err := bridge.NewKV(KVBinding)
	if err != nil {
		return nil, err
	}
	return &Service{
		KV:      kv,
		Objects: conversationObjects{},

		Namespaces: namespaceObjects{},
		Peppers:    wire.Peppers{Credential: getenv("AMS_CREDENTIAL_PEPPER"), Permissive: getenv("AMS_PERMISSIVE_TOKEN_PEPPER")},
		Limits:     wire.LimitsFromEnv(getenv),
		Now:        time.Now,

		FaultInjection: getenv(wire.FaultInjectionVar) == "1",
		Cache:          isolateCache,
	}, nil
}

// forwardJoin hands an admitted connect to the conversation's Durable Object
// and returns its 101 response, WebSocket included, untouched.
func forwardJoin(env js.Value, join wire.Join) (js.Value, error) {
	encoded := wire.EncodeJoin(join)
	ns := env.Get(ConversationBinding)
	stub := ns.Call("get", ns.Call("idFromName", join.ConversationID))
	init := js.Global().Get("Object").New()
	init.Set("headers", bridge.JSHeaders(http.Header{"Upgrade": {"websocket"}, wire.JoinHeader: {string(encoded)}}))
	// The object's promise is the answer: Go does not wait for it, which
	// would be one more event into Go on the way of every join. If it
	// fails, joinFailed refuses the upgrade, as fetch's fallback would.
	return stub.Call("fetch", internalOrigin+"/connect", init).Call("catch", joinFailed), nil
}

// joinFailed answers a join whose object could not be reached: 4500, after
// the upgrade (made once, for every join).
var joinFailed = js.FuncOf(func(_ js.Value, args []js.Value) any {
	if len(args) > 0 {
		fmt.Fprintf(os.Stderr, "ams: fetch: %s\n", js.Global().Get("String").Invoke(args[0]).String())
	}
	return bridge.RefuseUpgrade(wire.CloseInternalError.Code, wire.CloseInternalError.Reason, nil)
})

// conversationObjects calls the conversation objects through syumai/workers'
// Durable Object stubs.
type conversationObjects struct{}

func (conversationObjects) Streams(ctx context.Context, conversationID string) ([]wire.StreamInfo, error) {
	var streams []wire.StreamInfo
	err := callObject(ctx, conversationID, http.MethodGet, "/streams", nil, &streams, nil)
	return streams, err
}

func (conversationObjects) Rotate(ctx context.Context, conversationID, tokenHash string) (wire.LinkState, error) {
	var link wire.LinkState
	err := callObject(ctx, conversationID, http.MethodPost, wire.RotatePath, nil, &link,
		http.Header{wire.LinkTokenHashHeader: {tokenHash}})
	return link, err
}

func (conversationObjects) Link(ctx context.Context, conversationID string) (wire.LinkState, error) {
	var link wire.LinkState
	err := callObject(ctx, conversationID, http.MethodGet, wire.LinkPath, nil, &link, nil)
	return link, err
}

func (conversationObjects) Member(ctx context.Context, op string, call wire.MemberCall) (wire.MemberReply, error) {
	var reply wire.MemberReply
	// Verbatim: a token's data crosses byte for byte, without HTML escaping.
	body := wire.MarshalVerbatim(call)
	err := callObject(ctx, call.ConversationID, http.MethodPost, wire.MemberPath+op, body, &reply, nil)
	return reply, err
}

func (conversationObjects) Session(ctx context.Context, nonce, op string, in wire.SessionState) (wire.SessionState, error) {
	var out wire.SessionState
	body, _ := json.Marshal(in)
	res, err := fetchObject(ctx, SessionBinding, "session:"+nonce, http.MethodPost, wire.SessionPath+op, body, nil)
	if err != nil {
		return out, err
	}
	defer res.Body.Close()
	return out, json.NewDecoder(res.Body).Decode(&out)
}

func callObject(ctx context.Context, conversationID, method, path string, body []byte, into any, header http.Header) error {
	res, err := fetchObject(ctx, ConversationBinding, conversationID, method, path, body, header)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(into)
}

// namespaceObjects calls the namespace objects, one per namespace name.
type namespaceObjects struct{}

func (namespaceObjects) Call(ctx context.Context, ns, method, path string, body []byte) (int, []byte, error) {
	res, err := fetchObject(ctx, NamespaceBinding, ns, method, path, body, nil)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	reply, err := io.ReadAll(res.Body)
	return res.StatusCode, reply, err
}

// fetchObject sends one request to the object named name of binding.
func fetchObject(ctx context.Context, binding, name, method, path string, body []byte, header http.Header) (*http.Response, error) {
	ns, err := cloudflare.NewDurableObjectNamespace(binding)
	if err != nil {
		return nil, err
	}
	stub, err := ns.Get(ns.IdFromName(name))
	if err != nil {
		return nil, err
	}
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, internalOrigin+path, reader)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return stub.Fetch(req)
}
