package durable

import (
	"encoding/json"
	"net/http"
	"syscall/js"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// rotate issues the magic link's next generation for the token hash the
// Worker made; streams admitted by an older link are closed 4001
// magic_link_rotated. The reply is the new wire.LinkState.
func (o *object) rotate(req js.Value) js.Value {
	hash := req.Get("headers").Call("get", wire.LinkTokenHashHeader)
	if hash.Type() != js.TypeString || hash.String() == "" {
		return bridge.NewResponse(http.StatusBadRequest, nil, nil)
	}
	link, _ := o.conv.Rotate(hash.String())
	return linkResponse(link)
}

func linkResponse(link wire.LinkState) js.Value {
	body, _ := json.Marshal(link)
	return bridge.NewResponse(http.StatusOK, http.Header{"Content-Type": {"application/json"}}, body)
}

// subprotocolHeader selects the subprotocol the join offered, if any.
func subprotocolHeader(join wire.Join) http.Header {
	if join.Subprotocol == "" {
		return nil
	}
	return http.Header{"Sec-WebSocket-Protocol": {join.Subprotocol}}
}
