package bridge

import (
	"net/http"
	"syscall/js"
)

// sendAll is entry.mjs's fan-out helper.
var sendAll = js.Global().Get("context").Get("sendAll")

// SendAll sends the JS string args[0] to every WebSocket of args[1:] in one
// call into JS, instead of one call (and one recover) per socket. A socket
// that closed under us is skipped; its close event removes it.
func SendAll(args []any) {
	sendAll.Invoke(args...)
}

// WebSocketPair returns the two ends of a new workerd WebSocketPair.
func WebSocketPair() (client, server js.Value) {
	pair := js.Global().Get("WebSocketPair").New()
	return pair.Index(0), pair.Index(1)
}

// UpgradeResponse is the 101 response that hands client to the caller.
func UpgradeResponse(client js.Value, header http.Header) js.Value {
	init := objectClass.New()
	init.Set("status", http.StatusSwitchingProtocols)
	init.Set("webSocket", client)
	if len(header) > 0 {
		init.Set("headers", JSHeaders(header))
	}
	return responseClass.New(js.Null(), init)
}

// refuse is entry.mjs's helper that accepts and closes a refused socket.
var refuse = js.Global().Get("context").Get("refuse")

// RefuseUpgrade completes the upgrade and closes the socket at once with
// code and reason: how the stream plane delivers a refusal. The server end
// is accepted and closed by entry.mjs's refuse on a timer, once the runtime
// has coupled the client end to the caller: closed before that, workerd
// tears the pair's pipe down under the coupling after the closing handshake
// and reports "Uncaught Error: Network connection lost." for every refusal.
func RefuseUpgrade(code int, reason string, header http.Header) js.Value {
	client, server := WebSocketPair()
	code, reason = ServerCloseCode(code, reason)
	refuse.Invoke(server, code, reason)
	return UpgradeResponse(client, header)
}

// CloseWebSocket closes ws with ServerCloseCode(code, reason), ignoring a
// socket that is already closed.
func CloseWebSocket(ws js.Value, code int, reason string) {
	code, reason = ServerCloseCode(code, reason)
	_ = Try(func() { ws.Call("close", code, reason) })
}

// ServerCloseCode maps the codes a server may not send (1005, 1006, 1015)
// to 1000.
func ServerCloseCode(code int, reason string) (int, string) {
	switch code {
	case 1005, 1006, 1015:
		return 1000, ""
	}
	return code, reason
}
