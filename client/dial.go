//go:build !js

package client

import (
	"net/http"

	"github.com/coder/websocket"
)

// wsDialOptions carries the request headers and refuses redirects: Go
// re-sends Authorization to the same host on another port, and the link's
// t to any host.
func wsDialOptions(header http.Header, subprotocols []string) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: header, Subprotocols: subprotocols, HTTPClient: noRedirects(nil)}
}
