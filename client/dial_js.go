package client

import (
	"net/http"

	"github.com/coder/websocket"
)

// wsDialOptions under js/wasm: the browser's WebSocket sets no headers and
// follows no redirects for a WebSocket; the bearer travels as a
// subprotocol (PROTOCOL §5, browser join).
func wsDialOptions(_ http.Header, subprotocols []string) *websocket.DialOptions {
	return &websocket.DialOptions{Subprotocols: subprotocols}
}
