package durable

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"syscall/js"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// objects holds the Go side of every conversation object alive in this
// isolate, keyed by Durable Object id. An entry is valid for one incarnation
// of the JS object: after hibernation the runtime constructs a new one and
// the entry is rebuilt from the sockets' attachments.
var objects = map[string]*object{}

type object struct {
	incarnation int
	state       js.Value // DurableObjectState
	conv        *Conversation
	members     *sqlMemberStore
	memberIdle  time.Duration
	waiters     []chan struct{} // MCP reads waiting for the next event
}

// Register exports the Durable Object's handlers to build/entry.mjs.
func Register() {
	bridge.Export("conversationFetch", conversationFetch, func(args []js.Value) any {
		forget(args[0])
		return bridge.NewResponse(http.StatusInternalServerError, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"error":"internal_error","message":"unexpected failure"}`))
	})
	bridge.Export("conversationMessage", conversationMessage, closeOnPanic)
	bridge.Export("conversationClose", conversationClose, closeOnPanic)
	bridge.Export("conversationError", conversationError, closeOnPanic)
	bridge.Export("conversationAlarm", conversationAlarm, func(args []js.Value) any {
		forget(args[0])
		return nil
	})
}

// closeOnPanic handles a socket event that panicked: the in-memory view may
// be inconsistent, so it is rebuilt from the attachments, and the socket is
// closed 4500 with a stream_left to its peers.
func closeOnPanic(args []js.Value) any {
	self, ws := args[0], args[1]
	forget(self)
	o := load(self)
	if p := o.conv.Peer(o.connID(ws)); p != nil {
		o.conv.Eject(p, wire.CloseInternalError)
	} else {
		bridge.CloseWebSocket(ws, wire.CloseInternalError.Code, wire.CloseInternalError.Reason)
	}
	return nil
}

func forget(self js.Value) {
	delete(objects, self.Get("ctx").Get("id").Call("toString").String())
}

// load returns the conversation of the JS object self, rebuilding it from
// getWebSockets() on the first event of an incarnation.
func load(self js.Value) *object {
	state := self.Get("ctx")
	id := state.Get("id").Call("toString").String()
	incarnation := self.Get("incarnation").Int()
	if o := objects[id]; o != nil && o.incarnation == incarnation {
		return o
	}
	env := bridge.Env(self.Get("env"))
	limits := wire.LimitsFromEnv(env)
	o := &object{
		incarnation: incarnation,
		state:       state,
		conv: NewConversation(limits, time.Now, func() string { return ulid.Make().String() },
			newSQLEventLog(state.Get("storage"))),
		members:    newSQLMemberStore(state.Get("storage")),
		memberIdle: time.Duration(limits.MemberIdleSeconds) * time.Second,
	}
	o.conv.OnEmit = o.wake
	o.conv.FaultInjection = env(wire.FaultInjectionVar) == "1"
	o.sql("CREATE TABLE IF NOT EXISTS stream_metadata (conn_id TEXT PRIMARY KEY, metadata TEXT NOT NULL)")
	pair := js.Global().Get("WebSocketRequestResponsePair").New(wire.PingFrame, wire.PongFrame)
	state.Call("setWebSocketAutoResponse", pair)
	peers := append(o.restorePeers(), RestoreMembers(o.members)...)
	o.conv.Restore(peers)
	if len(peers) > 0 {
		// Operators (and the hibernation test) see each wake-up; ids only.
		fmt.Printf("ams: conversation object woke with %d streams %v\n", len(peers), streamIDs(peers))
	}
	objects[id] = o
	return o
}

func streamIDs(peers []*Peer) []string {
	ids := make([]string, len(peers))
	for i, p := range peers {
		ids[i] = p.StreamID
	}
	return ids
}

func (o *object) restorePeers() []*Peer {
	sockets := o.state.Call("getWebSockets")
	var peers []*Peer
	for i := 0; i < sockets.Length(); i++ {
		ws := sockets.Index(i)
		if ws.Get("readyState").Int() != 1 { // OPEN
			continue
		}
		raw := ws.Call("deserializeAttachment")
		if raw.Type() != js.TypeString {
			continue
		}
		a, err := DecodeAttachment([]byte(raw.String()))
		if err != nil {
			bridge.CloseWebSocket(ws, wire.CloseInternalError.Code, wire.CloseInternalError.Reason)
			continue
		}
		if a.MetadataStored {
			a.Metadata = o.storedMetadata(a.ConnID)
		}
		peers = append(peers, &Peer{Attachment: a, Socket: &socket{ws: ws, owner: o, connID: a.ConnID, stored: a.MetadataStored}})
	}
	return peers
}

func (o *object) sql(query string, bindings ...any) js.Value {
	args := append([]any{query}, bindings...)
	return o.state.Get("storage").Get("sql").Call("exec", args...)
}

func (o *object) storedMetadata(connID string) json.RawMessage {
	rows := o.sql("SELECT metadata FROM stream_metadata WHERE conn_id = ?", connID).Call("toArray")
	if rows.Length() == 0 {
		return json.RawMessage(wire.EmptyObject)
	}
	return json.RawMessage(rows.Index(0).Get("metadata").String())
}

func conversationFetch(args []js.Value) any {
	o := load(args[0])
	req := args[1]
	u, err := url.Parse(req.Get("url").String())
	if err != nil {
		return bridge.NewResponse(http.StatusBadRequest, nil, nil)
	}
	switch u.Path {
	case "/connect":
		return o.connect(req)
	case "/streams":
		body, _ := json.Marshal(o.conv.Streams())
		return bridge.NewResponse(http.StatusOK, http.Header{"Content-Type": {"application/json"}}, body)
	case wire.RotatePath:
		return o.rotate(req)
	}
	if op, ok := memberOp(u.Path); ok {
		return o.memberFetch(op, req)
	}
	return bridge.NewResponse(http.StatusNotFound, nil, nil)
}

// connect admits the Join the Worker forwarded and accepts its socket for
// hibernation, tagged with its connection id.
func (o *object) connect(req js.Value) js.Value {
	var join wire.Join
	if err := json.Unmarshal([]byte(req.Get("headers").Call("get", wire.JoinHeader).String()), &join); err != nil {
		return bridge.RefuseUpgrade(wire.CloseInternalError.Code, wire.CloseInternalError.Reason, nil)
	}
	peer, refusal := o.conv.Admit(join)
	if refusal != nil {
		return bridge.RefuseUpgrade(refusal.Code, refusal.Reason, subprotocolHeader(join))
	}
	client, server := bridge.WebSocketPair()
	o.state.Call("acceptWebSocket", server, []any{peer.ConnID})
	s := &socket{ws: server, owner: o, connID: peer.ConnID}
	peer.Socket = s
	s.Save(peer.Attachment)
	o.conv.Attach(join.ConversationID, peer, join.ResumeAfter)
	return bridge.UpgradeResponse(client, subprotocolHeader(join))
}

// connID is the hibernation tag of ws, set when it was accepted.
func (o *object) connID(ws js.Value) string {
	tags := o.state.Call("getTags", ws)
	if tags.Length() == 0 {
		return ""
	}
	return tags.Index(0).String()
}

func conversationMessage(args []js.Value) any {
	o := load(args[0])
	ws, msg := args[1], args[2]
	id := o.connID(ws)
	if msg.Type() == js.TypeString {
		o.conv.Receive(id, []byte(msg.String()))
	} else {
		o.conv.ReceiveBinary(id)
	}
	return nil
}

// conversationClose handles a client's close: the stream leaves, and the
// close is reciprocated, which the Hibernation API leaves to the object.
func conversationClose(args []js.Value) any {
	o := load(args[0])
	ws := args[1]
	o.leave(o.connID(ws))
	bridge.CloseWebSocket(ws, args[2].Int(), args[3].String())
	return nil
}

func conversationError(args []js.Value) any {
	o := load(args[0])
	o.leave(o.connID(args[1]))
	return nil
}

func (o *object) leave(connID string) {
	if p := o.conv.Peer(connID); p != nil {
		o.conv.Leave(connID)
		p.Socket.(*socket).dropStoredMetadata()
	}
}

// socket is a hibernatable workerd WebSocket.
type socket struct {
	ws     js.Value
	owner  *object
	connID string
	stored bool // metadata lives in storage
}

func (s *socket) Send(out *Outbound) {
	text, ok := out.prepared.(js.Value)
	if !ok {
		text = js.ValueOf(string(out.Text))
		out.prepared = text
	}
	// A socket that closed under us throws; its close event removes it.
	_ = bridge.Try(func() { s.ws.Call("send", text) })
}

func (s *socket) Close(code wire.Close) {
	s.dropStoredMetadata()
	bridge.CloseWebSocket(s.ws, code.Code, code.Reason)
}

func (s *socket) Save(a Attachment) {
	encoded, overflow := a.Encode()
	if overflow != nil {
		s.owner.sql("INSERT OR REPLACE INTO stream_metadata (conn_id, metadata) VALUES (?, ?)", s.connID, string(overflow))
		s.stored = true
	} else {
		s.dropStoredMetadata()
	}
	s.ws.Call("serializeAttachment", string(encoded))
}

func (s *socket) dropStoredMetadata() {
	if s.stored {
		s.owner.sql("DELETE FROM stream_metadata WHERE conn_id = ?", s.connID)
		s.stored = false
	}
}
