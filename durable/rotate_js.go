package durable

import (
	"net/http"
	"strconv"
	"syscall/js"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// rotate applies a magic-link rotation the Worker made: streams admitted by
// an older link are closed 4001 magic_link_rotated.
func (o *object) rotate(req js.Value) js.Value {
	generation, err := strconv.ParseInt(req.Get("headers").Call("get", wire.LinkGenerationHeader).String(), 10, 64)
	if err != nil {
		return bridge.NewResponse(http.StatusBadRequest, nil, nil)
	}
	closed := o.conv.Rotate(generation)
	return bridge.NewResponse(http.StatusOK, http.Header{"Content-Type": {"application/json"}},
		[]byte(`{"closed":`+strconv.Itoa(closed)+`}`))
}

// subprotocolHeader selects the subprotocol the join offered, if any.
func subprotocolHeader(join wire.Join) http.Header {
	if join.Subprotocol == "" {
		return nil
	}
	return http.Header{"Sec-WebSocket-Protocol": {join.Subprotocol}}
}
