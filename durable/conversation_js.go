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
// isolate, keyed by the incarnation number entry.mjs gives each JS object
// and passes with every event, so finding it costs no call into JS. After
// hibernation the runtime constructs a new JS object; its first event
// rebuilds the entry from the sockets' attachments and drops the entry of
// the previous incarnation of the same Durable Object id.
var (
	objects      = map[int]*object{}
	incarnations = map[string]int{} // Durable Object id -> live incarnation
)

type object struct {
	incarnation int
	state       js.Value // DurableObjectState
	sql         sqlStorage
	texts       jsTexts
	sendArgs    []any // bridge.SendAll's arguments, reused
	conv        *Conversation
	members     *sqlMemberStore
	memberIdle  time.Duration
	waiters     []chan struct{} // MCP reads waiting for the next event
}

// Register exports the Durable Object's handlers to build/entry.mjs. Each
// takes the JS object and its incarnation first; socket events then take the
// socket's hibernation tag (its connection id), which entry.mjs reads.
func Register() {
	bridge.Export("conversationFetch", conversationFetch, func(args []js.Value) any {
		forget(args)
		return bridge.NewResponse(http.StatusInternalServerError, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"error":"internal_error","message":"unexpected failure"}`))
	})
	bridge.Export("conversationMessage", conversationMessage, closeOnPanic)
	bridge.Export("conversationClose", conversationClose, closeOnPanic)
	bridge.Export("conversationError", conversationError, closeOnPanic)
	bridge.Export("conversationAlarm", conversationAlarm, func(args []js.Value) any {
		forget(args)
		return nil
	})
}

// closeOnPanic handles a socket event that panicked: the in-memory view may
// be inconsistent, so it is rebuilt from the attachments, and the socket is
// closed 4500 with a stream_left to its peers.
func closeOnPanic(args []js.Value) any {
	forget(args)
	o := load(args)
	tag := tagOf(args[2])
	if p := o.conv.Peer(tag); p != nil {
		o.conv.Eject(p, wire.CloseInternalError)
		return nil
	}
	sockets := o.state.Call("getWebSockets", tag)
	for i := 0; i < sockets.Length(); i++ {
		bridge.CloseWebSocket(sockets.Index(i), wire.CloseInternalError.Code, wire.CloseInternalError.Reason)
	}
	return nil
}

func forget(args []js.Value) {
	delete(objects, args[1].Int())
}

// tagOf is a socket's hibernation tag as entry.mjs passed it.
func tagOf(v js.Value) string {
	if v.Type() != js.TypeString {
		return ""
	}
	return v.String()
}

// load returns the conversation of the JS object args[0], of incarnation
// args[1], rebuilding it from getWebSockets() on the incarnation's first event.
func load(args []js.Value) *object {
	incarnation := args[1].Int()
	if o := objects[incarnation]; o != nil {
		return o
	}
	self := args[0]
	state := self.Get("ctx")
	id := state.Get("id").Call("toString").String()
	delete(objects, incarnations[id])
	env := bridge.Env(self.Get("env"))
	limits := wire.LimitsFromEnv(env)
	o := &object{
		incarnation: incarnation,
		state:       state,
		sql:         newSQLStorage(state.Get("storage")),
		members:     newSQLMemberStore(state.Get("storage")),
		memberIdle:  time.Duration(limits.MemberIdleSeconds) * time.Second,
	}
	o.conv = NewConversation(limits, time.Now, func() string { return ulid.Make().String() },
		newSQLEventLog(o.sql, &o.texts))
	o.conv.OnEmit = o.wake
	o.conv.Broadcast = o.broadcast
	o.conv.FaultInjection = env(wire.FaultInjectionVar) == "1"
	o.sql.Exec("CREATE TABLE IF NOT EXISTS stream_metadata (conn_id TEXT PRIMARY KEY, metadata TEXT NOT NULL)")
	pair := js.Global().Get("WebSocketRequestResponsePair").New(wire.PingFrame, wire.PongFrame)
	state.Call("setWebSocketAutoResponse", pair)
	peers := append(o.restorePeers(), RestoreMembers(o.members)...)
	o.conv.Restore(peers)
	if len(peers) > 0 {
		// Operators (and the hibernation test) see each wake-up; ids only.
		fmt.Printf("ams: conversation object woke with %d streams %v\n", len(peers), streamIDs(peers))
	}
	objects[incarnation] = o
	incarnations[id] = incarnation
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
		peers = append(peers, &Peer{Attachment: a, Socket: newSocket(ws, o, a.ConnID, a.MetadataStored)})
	}
	return peers
}

func (o *object) storedMetadata(connID string) json.RawMessage {
	rows := o.sql.Exec("SELECT metadata FROM stream_metadata WHERE conn_id = ?", connID).Call("toArray")
	if rows.Length() == 0 {
		return json.RawMessage(wire.EmptyObject)
	}
	return json.RawMessage(rows.Index(0).Get("metadata").String())
}

func conversationFetch(args []js.Value) any {
	o := load(args)
	req := args[2]
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
	case wire.LinkPath:
		return linkResponse(o.conv.Link())
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
	s := newSocket(server, o, peer.ConnID, false)
	peer.Socket = s
	s.Save(peer.Attachment)
	o.conv.Attach(join.ConversationID, peer, join.ResumeAfter)
	return bridge.UpgradeResponse(client, subprotocolHeader(join))
}

// conversationMessage takes (self, incarnation, tag, message).
func conversationMessage(args []js.Value) any {
	o := load(args)
	id, msg := tagOf(args[2]), args[3]
	if msg.Type() == js.TypeString {
		o.conv.Receive(id, []byte(msg.String()))
	} else {
		o.conv.ReceiveBinary(id)
	}
	return nil
}

// conversationClose takes (self, incarnation, tag, ws, code, reason): the
// stream leaves, and the close is reciprocated, which the Hibernation API
// leaves to the object.
func conversationClose(args []js.Value) any {
	o := load(args)
	o.leave(tagOf(args[2]))
	bridge.CloseWebSocket(args[3], args[4].Int(), args[5].String())
	return nil
}

// conversationError takes (self, incarnation, tag).
func conversationError(args []js.Value) any {
	o := load(args)
	o.leave(tagOf(args[2]))
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
	wsArg  any // ws boxed once, as bridge.SendAll takes it
	owner  *object
	connID string
	stored bool // metadata lives in storage
}

func newSocket(ws js.Value, owner *object, connID string, stored bool) *socket {
	return &socket{ws: ws, wsArg: ws, owner: owner, connID: connID, stored: stored}
}

func (s *socket) Send(out *Outbound) {
	s.owner.broadcast(out, []Socket{s})
}

// broadcast sends out to every socket of to in one call into JS (members,
// which read the log instead, get theirs in Go).
func (o *object) broadcast(out *Outbound, to []Socket) {
	text, ok := out.prepared.(js.Value)
	if !ok {
		text = o.texts.Frame(out.Text)
		out.prepared = text
	}
	args := append(o.sendArgs[:0], text)
	for _, s := range to {
		if ws, ok := s.(*socket); ok {
			args = append(args, ws.wsArg)
		} else {
			s.Send(out)
		}
	}
	if len(args) > 1 {
		bridge.SendAll(args)
	}
	clear(args)
	o.sendArgs = args
}

func (s *socket) Close(code wire.Close) {
	s.dropStoredMetadata()
	bridge.CloseWebSocket(s.ws, code.Code, code.Reason)
}

func (s *socket) Save(a Attachment) {
	encoded, overflow := a.Encode()
	if overflow != nil {
		s.owner.sql.Exec("INSERT OR REPLACE INTO stream_metadata (conn_id, metadata) VALUES (?, ?)", s.connID, string(overflow))
		s.stored = true
	} else {
		s.dropStoredMetadata()
	}
	s.ws.Call("serializeAttachment", string(encoded))
}

func (s *socket) dropStoredMetadata() {
	if s.stored {
		s.owner.sql.Exec("DELETE FROM stream_metadata WHERE conn_id = ?", s.connID)
		s.stored = false
	}
}
