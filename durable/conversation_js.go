package durable

import (
	"encoding/json"
	"fmt"
	"net/http"
	"syscall/js"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// residents holds the Go side of every conversation object alive in this
// isolate, keyed by the incarnation number entry.mjs gives each JS object
// and passes with every event, so finding it costs no call into JS. After
// hibernation the runtime constructs a new JS object; its first event
// rebuilds the entry from the sockets' attachments and drops the entry of
// the previous incarnation of the same Durable Object id. An object the
// runtime evicted for good is forgotten once unused for ResidentIdle,
// unless it still holds work (MCP reads waiting, events or seqs not yet
// given back to storage).
var residents = NewResidents(ResidentIdle, func(o *object) bool {
	return o.waiters.waiting() || !o.log.Settled()
})

type object struct {
	incarnation int
	self        js.Value // the JS object (build/entry.mjs's Conversation)
	state       js.Value // DurableObjectState
	sql         sqlStorage
	texts       jsTexts
	sendArgs    []any // bridge.SendAll's arguments, reused
	hotTo       []*socket
	slots       map[int32]string // adopted socket slot -> connection id
	log         *BatchLog
	conv        *Conversation
	members     *sqlMemberStore
	memberIdle  time.Duration
	waiters     Waiters // MCP reads waiting for the next event
	// unsettled says an event is running or ended in a panic: the next
	// event rebuilds the object instead of using it.
	unsettled bool
}

// Register exports the Durable Object's handlers to build/entry.mjs. Each
// takes the JS object and its incarnation first; socket events then take the
// socket's hibernation tag (its connection id), which entry.mjs reads.
func Register() {
	bridge.Export("conversationFetch", settled(conversationFetch), fetchOnPanic)
	bridge.Export("conversationMessage", settled(conversationMessage), closeOnPanic)
	bridge.Export("conversationClose", settled(conversationClose), closeOnPanic)
	bridge.Export("conversationError", settled(conversationError), closeOnPanic)
	bridge.Export("conversationAlarm", settled(conversationAlarm), func([]js.Value) any {
		wire.InjectFallbackFault()
		return nil
	})
	bridge.Export("conversationFlush", conversationFlush, func([]js.Value) any { return 0 })
}

// Seqs are reserved this many at a time (BatchLog): one small write per
// seqReserve events. idleMillis is how long after a flush entry.mjs calls
// again (conversationFlush) to find the conversation idle and give back the unused seqs.
const (
	seqReserve = 1024
	idleMillis = 1000
)

// conversationFlush takes (self, incarnation): entry.mjs's timer, at most
// AMS_REPLAY_FLUSH_MILLIS after a message. It writes the pending events and
// returns in how many milliseconds to call again (0: not before the next
// event). It is a js.FuncOf event, not an export, so that Go's scheduler runs
// in this object's context: the finalizers of the js.Values the hot path made
// run here.
func conversationFlush(args []js.Value) any {
	o, ok := residents.Get(args[1].Int())
	if !ok || !o.log.Tick() {
		return 0
	}
	return idleMillis
}

// settled runs an event of the object args[0]. The object is marked
// unsettled while the event runs and settled only when it returns: one that
// panics leaves the mark, and the next event rebuilds the object's Go state
// from the attachments instead of trusting what the panic cut short.
func settled(handle func(o *object, args []js.Value) any) func(args []js.Value) any {
	return func(args []js.Value) any {
		o := load(args)
		o.unsettled = true
		result := handle(o, args)
		o.unsettled = false
		return result
	}
}

// closeOnPanic answers a socket event that panicked: the socket is closed
// 4500. It reads nothing of the object's Go state and writes no storage,
// so it cannot fail on what the panic left. The object stays unsettled;
// the event of this close (or any next event) rebuilds it, and Restore then
// announces the closed socket's stream_left.
func closeOnPanic(args []js.Value) any {
	wire.InjectFallbackFault()
	sockets := args[0].Get("ctx").Call("getWebSockets", tagOf(args[2]))
	for i := 0; i < sockets.Length(); i++ {
		bridge.CloseWebSocket(sockets.Index(i), wire.CloseInternalError.Code, wire.CloseInternalError.Reason)
	}
	return nil
}

// fetchOnPanic answers a request that panicked: a connect is upgraded and
// closed 4500, as every refusal is; anything else is a 500.
func fetchOnPanic(args []js.Value) any {
	wire.InjectFallbackFault()
	req := args[2]
	if path, err := requestPath(req.Get("url").String()); err == nil && path == "/connect" {
		join, _ := wire.DecodeJoin([]byte(req.Get("headers").Call("get", wire.JoinHeader).String()))
		return bridge.RefuseUpgrade(wire.CloseInternalError.Code, wire.CloseInternalError.Reason, subprotocolHeader(join))
	}
	return bridge.NewResponse(http.StatusInternalServerError, http.Header{"Content-Type": {"application/json"}},
		[]byte(`{"error":"internal_error","message":"unexpected failure"}`))
}

// tagOf is a socket's hibernation tag as entry.mjs passed it.
func tagOf(v js.Value) string {
	if v.Type() != js.TypeString {
		return ""
	}
	return v.String()
}

// load returns the conversation of the JS object args[0], of incarnation
// args[1], rebuilding it from getWebSockets() on the incarnation's first
// event and after an event that panicked.
func load(args []js.Value) *object {
	incarnation := args[1].Int()
	if o, ok := residents.Get(incarnation); ok && !o.unsettled {
		return o
	}
	self := args[0]
	state := self.Get("ctx")
	id := state.Get("id").Call("toString").String()
	if old, ok := residents.Live(id); ok {
		// The same incarnation after a panic, or the previous one after a
		// wake (its timer flushed long before it hibernated): its pending
		// events are written and its unused seqs given back, so the new
		// object continues right after its last seq.
		_ = bridge.Try(old.log.Close)
	}
	env := bridge.Env(self.Get("env"))
	limits := wire.LimitsFromEnv(env)
	o := &object{
		incarnation: incarnation,
		self:        self,
		state:       state,
		sql:         newSQLStorage(state.Get("storage")),
		slots:       map[int32]string{},
		members:     newSQLMemberStore(state.Get("storage")),
		waiters:     Waiters{Timer: bridge.Timer},
		memberIdle:  time.Duration(limits.MemberIdleSeconds) * time.Second,
	}
	self.Set("flushMillis", limits.ReplayFlushMillis)
	self.Set("maxFrame", limits.FrameChars())
	o.log = NewBatchLog(newSQLEventLog(o.sql), limits.ReplayFlushEvents, seqReserve)
	o.conv = NewConversation(limits, o.now, func() string { return ulid.Make().String() }, o.log)
	o.conv.OnEmit = o.emitted
	o.conv.Broadcast = o.broadcast
	o.conv.FaultInjection = env(wire.FaultInjectionVar) == "1"
	o.sql.Exec("CREATE TABLE IF NOT EXISTS stream_metadata (conn_id TEXT PRIMARY KEY, metadata TEXT NOT NULL)")
	pair := js.Global().Get("WebSocketRequestResponsePair").New(wire.PingFrame, wire.PongFrame)
	state.Call("setWebSocketAutoResponse", pair)
	found, taps := SplitTaps(o.found())
	for _, m := range RestoreMembers(o.members) {
		found = append(found, Woken{Peer: m, Open: true})
	}
	o.conv.Restore(found)
	o.conv.RestoreTaps(taps)
	if len(found) > 0 {
		// Operators (and the hibernation tests) see each wake-up; ids only.
		fmt.Printf("ams: conversation object woke with %d streams of sockets %v\n", o.conv.Len(), streamIDs(found))
	}
	residents.Put(id, incarnation, o, time.Now())
	return o
}

// emitted runs after every event: MCP reads waiting for one are woken, and
// outside the hot path (whose caller does it) entry.mjs is asked to start
// the flush timer.
func (o *object) emitted() {
	o.wake()
	if !hot.active(o) {
		o.self.Call("kick")
	}
}

func streamIDs(found []Woken) []string {
	ids := make([]string, len(found))
	for i, w := range found {
		ids[i] = w.StreamID
	}
	return ids
}

// found reports every socket of getWebSockets() as it is; Restore decides
// which become peers and which leave.
func (o *object) found() []Woken {
	sockets := o.state.Call("getWebSockets")
	found := make([]Woken, sockets.Length())
	for i := range found {
		ws := sockets.Index(i)
		open := ws.Get("readyState").Int() == 1 // OPEN
		raw := ws.Call("deserializeAttachment")
		var a Attachment
		var err error
		if raw.Type() == js.TypeString {
			a, err = DecodeAttachment([]byte(raw.String()))
		}
		if raw.Type() != js.TypeString || err != nil {
			found[i] = Woken{Peer: &Peer{Socket: newSocket(ws, o, "", false)}, Open: open, Unreadable: true}
			continue
		}
		if a.MetadataStored && open {
			a.Metadata = o.storedMetadata(a.ConnID)
		}
		found[i] = Woken{Peer: &Peer{Attachment: a, Socket: newSocket(ws, o, a.ConnID, a.MetadataStored)}, Open: open}
	}
	return found
}

func (o *object) storedMetadata(connID string) json.RawMessage {
	rows := o.sql.Exec("SELECT metadata FROM stream_metadata WHERE conn_id = ?", connID).Call("toArray")
	if rows.Length() == 0 {
		return json.RawMessage(wire.EmptyObject)
	}
	return json.RawMessage(rows.Index(0).Get("metadata").String())
}

func conversationFetch(o *object, args []js.Value) any {
	req := args[2]
	path, err := requestPath(req.Get("url").String())
	if err != nil {
		return bridge.NewResponse(http.StatusBadRequest, nil, nil)
	}
	switch path {
	case "/connect":
		return o.connect(req)
	case "/streams":
		body := EncodeStreams(o.conv.Streams())
		return bridge.NewResponse(http.StatusOK, http.Header{"Content-Type": {"application/json"}}, body)
	case wire.RotatePath:
		return o.rotate(req)
	case wire.LinkPath:
		return linkResponse(o.conv.Link())
	}
	if path == wire.MemberPath+"tap" {
		return o.tap(req)
	}
	if op, ok := memberOp(path); ok {
		return o.memberFetch(op, req)
	}
	return bridge.NewResponse(http.StatusNotFound, nil, nil)
}

// connect admits the Join the Worker forwarded and accepts its socket for
// hibernation, tagged with its connection id.
func (o *object) connect(req js.Value) js.Value {
	join, err := wire.DecodeJoin([]byte(req.Get("headers").Call("get", wire.JoinHeader).String()))
	if err != nil {
		return bridge.RefuseUpgrade(wire.CloseInternalError.Code, wire.CloseInternalError.Reason, nil)
	}
	if o.conv.FaultInjection {
		wire.InjectFault(join.StreamName)
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
func conversationMessage(o *object, args []js.Value) any {
	id, msg := tagOf(args[2]), args[3]
	switch msg.Type() {
	case js.TypeString:
		o.conv.Receive(id, []byte(msg.String()))
	case js.TypeNumber: // the length of a text over maxFrame, left in JS
		o.conv.ReceiveOversized(id, msg.Int())
	default:
		o.conv.ReceiveBinary(id)
	}
	return nil
}

// conversationClose takes (self, incarnation, tag, ws, code, reason): the
// stream leaves, and the close is reciprocated, which the Hibernation API
// leaves to the object.
func conversationClose(o *object, args []js.Value) any {
	o.leave(tagOf(args[2]))
	bridge.CloseWebSocket(args[3], args[4].Int(), args[5].String())
	return nil
}

// conversationError takes (self, incarnation, tag).
func conversationError(o *object, args []js.Value) any {
	o.leave(tagOf(args[2]))
	return nil
}

func (o *object) leave(connID string) {
	if p := o.conv.Peer(connID); p != nil {
		if s, ok := p.Socket.(*socket); ok {
			delete(o.slots, s.slot)
		}
	}
	o.conv.Leave(connID)
	if s, ok := o.conv.Untap(connID).(*socket); ok {
		delete(o.slots, s.slot)
	}
}

// socket is a hibernatable workerd WebSocket. entry.mjs adopts it under a
// slot number, by which the hot path names it in both directions.
type socket struct {
	ws     js.Value
	wsArg  any // ws boxed once, as bridge.SendAll takes it
	owner  *object
	connID string
	slot   int32
	stored bool // metadata lives in storage
}

func newSocket(ws js.Value, owner *object, connID string, stored bool) *socket {
	slot := int32(owner.self.Call("adopt", ws).Int())
	owner.slots[slot] = connID
	return &socket{ws: ws, wsArg: ws, owner: owner, connID: connID, slot: slot, stored: stored}
}

func (s *socket) Send(out *Outbound) {
	s.owner.broadcast(out, []Socket{s})
}

// broadcast sends out to every socket of to: in the hot path as one op in
// hotOut, otherwise in one call into JS (members, which read the log
// instead, get theirs in Go).
func (o *object) broadcast(out *Outbound, to []Socket) {
	if hot.active(o) {
		sockets := o.hotTo[:0]
		for _, s := range to {
			if tap := TapOf(s); tap != nil {
				s = tap // a member's push leg
			}
			if ws, ok := s.(*socket); ok {
				sockets = append(sockets, ws)
			} else {
				s.Send(out)
			}
		}
		sent := len(sockets) == 0 || hot.send(out.Text, sockets)
		clear(sockets)
		o.hotTo = sockets
		if sent {
			return
		}
	}
	text, ok := out.prepared.(js.Value)
	if !ok {
		text = o.texts.Frame(out.Text)
		out.prepared = text
	}
	args := append(o.sendArgs[:0], text)
	for _, s := range to {
		if tap := TapOf(s); tap != nil {
			s = tap
		}
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
	delete(s.owner.slots, s.slot)
	if !hot.active(s.owner) || !hot.close(s.slot, code.Code, code.Reason) {
		bridge.CloseWebSocket(s.ws, code.Code, code.Reason)
	}
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

// Release drops the stream's stored metadata once the stream has left.
func (s *socket) Release() { s.dropStoredMetadata() }

func (s *socket) dropStoredMetadata() {
	if s.stored {
		s.owner.sql.Exec("DELETE FROM stream_metadata WHERE conn_id = ?", s.connID)
		s.stored = false
	}
}
