package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"syscall/js"
	"time"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// servePush answers the push leg with a streamed SSE body that a goroutine
// writes for as long as the client stays (mcp_push.go decides what).
func servePush(env js.Value, leg *PushLeg) js.Value {
	stream := js.Global().Get("TransformStream").New()
	writer := stream.Get("writable").Call("getWriter")
	init := js.Global().Get("Object").New()
	init.Set("status", http.StatusOK)
	init.Set("headers", bridge.JSHeaders(http.Header{
		"Content-Type":                  {"text/event-stream"},
		"Cache-Control":                 {"no-cache"},
		"Access-Control-Allow-Origin":   {"*"},
		"Access-Control-Expose-Headers": {"Mcp-Session-Id"},
	}))
	go func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "ams: push leg: panic %v\n", r)
			}
			writer.Call("close").Call("catch", ignoreRejection)
		}()
		leg.Run(context.Background(), jsPush{env: env, writer: writer}, PushKeepalive)
	}()
	return js.Global().Get("Response").New(stream.Get("readable"), init)
}

// ignoreRejection is the one catch handler of closing a leg's stream.
var ignoreRejection = js.FuncOf(func(js.Value, []js.Value) any { return nil })

type jsPush struct {
	env    js.Value
	writer js.Value
}

func (jsPush) Timer(d time.Duration) (<-chan struct{}, func()) { return bridge.Timer(d) }

func (p jsPush) Write(b []byte) error {
	chunk := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(chunk, b)
	// A client that holds the connection but stops reading blocks the
	// write: past PushWriteTimeout the leg ends (its tap with it).
	done := make(chan error, 1)
	go func() {
		_, err := bridge.Await(p.writer.Call("write", chunk))
		done <- err
	}()
	timeout, stop := bridge.Timer(PushWriteTimeout)
	defer stop()
	select {
	case err := <-done:
		return err
	case <-timeout:
		return errors.New("the client stopped reading")
	}
}

// Tap opens a WebSocket to the member's conversation object.
func (p jsPush) Tap(_ context.Context, call wire.MemberCall) (pushSocket, error) {
	raw := wire.MarshalVerbatim(call)
	ns := p.env.Get(ConversationBinding)
	stub := ns.Call("get", ns.Call("idFromName", call.ConversationID))
	q, err := openSocket(stub, wire.MemberPath+"tap", http.Header{wire.MemberHeader: {string(raw)}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ams: push leg of %s: %v\n", call.ConversationID, err)
	}
	return q, err
}

// Watch opens a WebSocket to the session's object (wire.SessionPath).
func (p jsPush) Watch(_ context.Context, nonce string) (pushSocket, error) {
	ns := p.env.Get(SessionBinding)
	stub := ns.Call("get", ns.Call("idFromName", "session:"+nonce))
	return openSocket(stub, wire.SessionPath+"watch", nil)
}

// openSocket opens a WebSocket to an object; its messages and close are
// queued for the push loop by callbacks that never block.
func openSocket(stub js.Value, path string, header http.Header) (*socketQueue, error) {
	h := http.Header{"Upgrade": {"websocket"}}
	for k, v := range header {
		h[k] = v
	}
	init := js.Global().Get("Object").New()
	init.Set("headers", bridge.JSHeaders(h))
	res, err := bridge.Await(stub.Call("fetch", internalOrigin+path, init))
	if err != nil {
		return nil, err
	}
	ws := res.Get("webSocket")
	if ws.IsNull() || ws.IsUndefined() {
		return nil, fmt.Errorf("%s: no WebSocket in the answer (%d)", path, res.Get("status").Int())
	}
	// The callbacks are released once: at the close event, or when the leg
	// stops the socket (the close event may never come once the leg's
	// request is gone), after which JS no longer calls them.
	var onMessage, onClose js.Func
	released := false
	release := func() {
		if !released {
			released = true
			_ = bridge.Try(func() {
				ws.Call("removeEventListener", "message", onMessage)
				ws.Call("removeEventListener", "close", onClose)
			})
			onMessage.Release()
			onClose.Release()
		}
	}
	q := newSocketQueue(func(msg []byte) {
		_ = bridge.Try(func() { ws.Call("send", string(msg)) })
	}, func() {
		_ = bridge.Try(func() { ws.Call("close", 1000) })
		release()
	})
	onMessage = js.FuncOf(func(_ js.Value, args []js.Value) any {
		if data := args[0].Get("data"); data.Type() == js.TypeString {
			q.Frame([]byte(data.String()))
		}
		return nil
	})
	onClose = js.FuncOf(func(_ js.Value, args []js.Value) any {
		code, reason := 1006, ""
		if len(args) > 0 && args[0].Get("code").Type() == js.TypeNumber {
			code, reason = args[0].Get("code").Int(), args[0].Get("reason").String()
		}
		q.Closed(wire.Close{Code: code, Reason: reason})
		release()
		return nil
	})
	ws.Call("addEventListener", "message", onMessage)
	ws.Call("addEventListener", "close", onClose)
	ws.Call("accept")
	return q, nil
}
