// Package durable is the conversation Durable Object: one object per
// conversation fans every token a stream emits out to every other socket.
//
// Design. The object accepts sockets through the WebSocket Hibernation API,
// so an idle conversation is evicted from memory while its sockets stay
// connected. Everything needed to route a socket after a wake-up lives in the
// socket's Attachment (stream id, name, owner, metadata, self-subscribe,
// subscription, receipts), and the socket's hibernation tag is its connection
// id. On wake the runtime builds a fresh object; the adapter then hands
// Restore what it found on each socket of getWebSockets() (its attachment,
// whether it is still open), which is the one place live state is rebuilt
// from, and Restore decides. Waking is invisible on the wire: no peer sees a
// spurious stream_left or stream_joined. Leaving while asleep is invisible
// too: a socket that closed, failed or died while the object slept (the
// close that woke it included) is gone from getWebSockets()'s open set, so
// Restore announces its stream_left with the next seq and frees its stored
// metadata, exactly as an awake object would have.
//
// The same rebuild is how the object survives a panic: an event that does
// not return normally leaves the object's Go state marked unsettled, and
// the next event rebuilds it from the attachments. A panic fallback only
// closes the failing socket 4500 (or answers 101 then 4500 to a connect);
// it touches neither the Go state nor SQLite, so a second failure inside it
// costs nothing but that answer.
//
// Every token, stream_joined, stream_left and stream_metadata gets the next
// seq of the conversation and is appended to the event log before it is
// sent, so a client that reconnects with the last seq it saw gets exactly
// what it missed while the buffer still holds it. In the Durable Object the
// log is a BatchLog (batchlog.go): events reach SQLite in batches (at most
// AMS_REPLAY_FLUSH_EVENTS, at most AMS_REPLAY_FLUSH_MILLIS after the first),
// seqs are reserved durably ahead of use so none is ever reused, and a
// resume across a batch lost in a crash, or one whose write failed (each
// row is bounded by wire.ReplayRowBytes; Lost), is answered recovered:false.
//
// The object owns the conversation's magic link, because Workers KV cannot
// order two writes: each rotation is issued here (the next generation and the
// new token's hash, saved before the Worker writes KV), closes the streams of
// older generations 4001 magic_link_rotated, and from then on a join of an
// older generation is refused. The Worker asks the object (LinkPath) about any
// token its possibly stale KV record does not know.
//
// MCP members (members.go) are streams without a socket: a row of the
// members table each (attachment, read cursor, last call, and the reader —
// the one join that owns it), restored with the sockets on wake. They read
// from the event log, so nothing is lost between two calls; a reader that
// left or was taken over leaves a tombstone for the idle period, so its own
// calls do not rejoin. A member's push leg (tap.go) is a hibernatable socket
// whose attachment names the member (TapOf): once the Worker starts it
// (from the seq its client last saw; the object first sends what the member
// heard since, from the log) it gets the member's fan-out; the Worker acks
// what it wrote, which a push-only member counts as read. A tap is no
// stream, and goes back to its member on wake. Long-polls wait in
// Waiters and Poll (poll.go), and a timed-out one leaves no waiter behind.
//
// Socket messages reach Go through a //go:wasmexport function with the text
// in wasm memory, and Go answers with send/close ops that build/entry.mjs
// performs in one loop (hotpath_js.go): no js.Value per event. Everything
// else (connect, close, members, alarms, the flush timer) is a js.FuncOf
// event.
//
// Memory and input are bounded. The runtime evicts objects without telling
// Go, so the Go side of an object unused for ResidentIdle is forgotten
// (residents.go) and, if the object was in fact alive, rebuilt on its next
// event like a woken one. A text frame longer than Limits.FrameChars is
// never copied into Go: entry.mjs passes only its length, and the socket is
// closed 4400 token_too_large. Listings of the live streams (joined.peers,
// the Worker's inspect) carry metadata verbatim and stay within
// Limits.StreamListBytes.
//
// This file is the logic, in plain Go and testable natively. conversation_js.go,
// hotpath_js.go and eventlog_js.go adapt it to workerd: sockets, attachments,
// tags, storage.
package durable

import (
	"slices"
	"time"

	"github.com/ams-dev/ams/wire"
)

// Socket is an accepted WebSocket as the conversation drives it.
type Socket interface {
	// Send delivers an encoded frame; the same Outbound goes to many sockets.
	Send(*Outbound)
	// Close closes the socket with a protocol close code.
	Close(wire.Close)
	// Save stores the updated attachment on the socket.
	Save(Attachment)
}

// Outbound is a frame encoded once and sent to any number of sockets.
// Adapters may cache their platform form of it in prepared.
type Outbound struct {
	Text     []byte
	prepared any
}

// Peer is one live stream: its attachment and its socket.
type Peer struct {
	Attachment
	Socket Socket
	// flow accounts unacknowledged frames when the connection acknowledges.
	flow *flowWindow
	// tokenFields is wire.TokenFields of the stream, made on its first token.
	tokenFields []byte
}

// Conversation is the in-memory view of one conversation: its live streams,
// its seq and its replay buffer.
type Conversation struct {
	// FaultInjection lets the crash-recovery tests make Receive fail (wire/faults.go).
	FaultInjection bool
	// OnEmit, if set, runs after every event: MCP members waiting in a
	// long-poll read from the log then.
	OnEmit func()
	// Broadcast, if set, sends one event's frame to all its recipients at
	// once (the workerd adapter crosses into JS once per frame, not once per
	// socket); otherwise each recipient's Send is called in turn.
	Broadcast func(out *Outbound, to []Socket)

	limits wire.Limits
	now    func() time.Time
	newID  func() string
	log    EventLog
	buffer *ReplayBuffer
	seq    int64
	// link is the current magic link: joins of an older generation are refused.
	link   wire.LinkState
	peers  []*Peer // join order
	byConn map[string]*Peer
	// memberTombs are the MCP readers that left (members.go).
	memberTombs tombstones
	to          []Socket // emit's recipients, reused
	ts          string   // the last timestamp made, of millisecond tsMilli
	tsMilli     int64
	tsMinute    string // wire.Timestamp's first 17 bytes ("2006-01-02T15:04:") in minute tsMinuteOf
	tsMinuteOf  int64
}

// timestamp is wire.Timestamp of now. time.Format costs more than the rest
// of a token's handling in WebAssembly, so only the date and minute come
// from it, once a minute; seconds and milliseconds are appended here.
func (c *Conversation) timestamp() string {
	ms := c.now().UnixMilli()
	if ms == c.tsMilli && c.ts != "" {
		return c.ts
	}
	if ms < 0 {
		return wire.Timestamp(time.UnixMilli(ms))
	}
	if minute := ms / 60000; minute != c.tsMinuteOf || c.tsMinute == "" {
		c.tsMinuteOf, c.tsMinute = minute, wire.Timestamp(time.UnixMilli(ms))[:17]
	}
	sec, milli := ms%60000/1000, ms%1000
	b := make([]byte, 0, 24)
	b = append(b, c.tsMinute...)
	b = append(b, byte('0'+sec/10), byte('0'+sec%10), '.', byte('0'+milli/100), byte('0'+milli/10%10), byte('0'+milli%10), 'Z')
	c.tsMilli, c.ts = ms, string(b)
	return c.ts
}

// NewConversation returns a conversation whose events go to log; its seq and
// buffer continue from what log already holds. newID mints connection ids,
// which must sort in creation order.
func NewConversation(limits wire.Limits, now func() time.Time, newID func() string, log EventLog) *Conversation {
	return &Conversation{
		limits: limits,
		now:    now,
		newID:  newID,
		log:    log,
		buffer: NewReplayBuffer(limits.ReplayEvents, limits.ReplayBytes, log.Sizes()),
		seq:    log.LastSeq(),
		link:   log.Link(),
		byConn: map[string]*Peer{},
	}
}

// Seq is the conversation's latest seq.
func (c *Conversation) Seq() int64 { return c.seq }

// Woken is a socket that getWebSockets() returned after a wake-up, with
// what the adapter found on it; Restore decides what becomes of it.
type Woken struct {
	*Peer
	// Open is false for a socket that closed, failed, or died without a
	// close frame while the object slept; the close that woke the object
	// is one of these.
	Open bool
	// Unreadable says the socket's attachment did not decode: Peer holds
	// only its socket.
	Unreadable bool
}

// Restore rebuilds the live streams from the sockets found after
// hibernation. An open socket's stream is live again; a stream held by two
// open sockets (a takeover interrupted by eviction) keeps the newest and
// closes the other. A stream whose socket left while the object slept
// leaves now: the others get its stream_left with the next seq, as if the
// object had been awake, and the socket's resources are released. An open
// socket whose attachment is unreadable is closed 4500.
func (c *Conversation) Restore(found []Woken) {
	c.peers, c.byConn = nil, map[string]*Peer{}
	var gone []*Peer
	for _, w := range found {
		switch {
		case w.Unreadable:
			if w.Open {
				w.Socket.Close(wire.CloseInternalError)
			}
		case !w.Open:
			gone = append(gone, w.Peer)
		default:
			c.restore(w.Peer)
		}
	}
	left := map[string]bool{}
	for _, p := range gone {
		if c.stream(p.StreamID) == nil && !left[p.StreamID] {
			// After every live stream is back, so they all hear it.
			left[p.StreamID] = true
			c.emit(p, func(seq int64) []byte { return wire.EncodeStreamLeft(p.Stream(), seq) })
		}
		release(p.Socket)
	}
}

func (c *Conversation) restore(p *Peer) {
	if old := c.stream(p.StreamID); old != nil {
		if old.ConnID > p.ConnID {
			p.Socket.Close(wire.CloseStreamDisplaced)
			return
		}
		c.remove(old)
		old.Socket.Close(wire.CloseStreamDisplaced)
	}
	c.add(p)
}

// releaser is a Socket holding something besides its attachment (workerd's
// overflow metadata row) that must go once its stream has left.
type releaser interface {
	Release()
}

func release(s Socket) {
	if r, ok := s.(releaser); ok {
		r.Release()
	}
}

// Len is the number of live streams.
func (c *Conversation) Len() int { return len(c.peers) }

// Streams lists the live streams in join order.
func (c *Conversation) Streams() []wire.StreamInfo {
	out := make([]wire.StreamInfo, len(c.peers))
	for i, p := range c.peers {
		out[i] = p.Stream()
	}
	return out
}

// EncodeStreams is the object's answer to the Worker's streams request:
// the listing as JSON with each metadata verbatim (no HTML escaping), so it
// stays within wire.Limits.StreamListBytes.
func EncodeStreams(streams []wire.StreamInfo) []byte {
	return wire.MarshalVerbatim(streams)
}

// Admit decides a join without side effects, in the order of the refusal
// table: name owned by another account, the account's stream limit, then the
// conversation's connection limit. A takeover of the caller's own stream is
// always admitted.
func (c *Conversation) Admit(req wire.Join) (*Peer, *wire.Close) {
	if req.LinkGeneration < c.link.Generation {
		// Admitted by a rotated link that a stale KV read still trusted.
		return nil, &wire.CloseInvalidMagicLink
	}
	takeover := false
	owned := 0
	for _, p := range c.peers {
		if p.Name == req.StreamName {
			if p.Owner != req.AccountID {
				return nil, &wire.CloseStreamNameOwnerConflict
			}
			takeover = true
		}
		if p.Owner == req.AccountID {
			owned++
		}
	}
	if !takeover {
		if owned >= c.limits.StreamsPerAccount {
			return nil, &wire.CloseConcurrencyLimit
		}
		if len(c.peers) >= c.limits.ConnectionsPerConversation {
			return nil, &wire.CloseConversationFull
		}
	}
	metadata := req.Metadata
	if len(metadata) == 0 {
		metadata = wire.EmptyObject
	}
	return &Peer{Attachment: Attachment{
		ConnID:     c.newID(),
		StreamID:   req.StreamID,
		Name:       req.StreamName,
		Owner:      req.AccountID,
		Self:       req.SelfSubscribe,
		Metadata:   metadata,
		Subscribed: req.SubscribeStreams,
		Receipts:   req.Receipts,
		Generation: req.LinkGeneration,
		Acks:       req.Acks,

		PeerIdentity: req.PeerIdentity,
	}}, nil
}

// Attach makes an admitted peer live. It displaces the stream's previous
// socket, if any; sends the peer its joined frame, then, for a resume, every
// frame it missed that is still buffered; and announces it to the others.
// A takeover is invisible to peers unless it changed the stream's metadata.
// Everything happens in one event, so no live frame can slip between the
// replay and the peer joining the fan-out: no gap, no duplicate.
func (c *Conversation) Attach(conversationID string, p *Peer, resumeAfter *int64) {
	old := c.stream(p.StreamID)
	if old != nil {
		c.remove(old)
		old.Socket.Close(wire.CloseStreamDisplaced)
	}
	joined := wire.Joined{
		ConversationID: conversationID,
		Stream:         p.Stream(),
		SelfSubscribe:  p.Self,
		Peers:          c.Streams(),
		Resumed:        old != nil,
		Seq:            c.seq,
	}
	if p.Subscribed != nil {
		joined.SubscribedStreams = p.Subscribed
	}
	var replay []Event
	if resumeAfter != nil {
		recovered := c.buffer.Covers(*resumeAfter, c.seq) && *resumeAfter >= c.log.Lost()
		joined.Recovered = &recovered
		if c.buffer.Enabled() && *resumeAfter < c.seq {
			replay = c.log.Since(*resumeAfter)
		}
	}
	p.Socket.Send(&Outbound{Text: joined.Encode()})
	for _, e := range replay {
		if p.Hears(e.StreamID, e.StreamName) {
			p.Socket.Send(&Outbound{Text: e.Frame})
		}
	}
	switch {
	case old == nil:
		// Before add: stream_joined is for everyone else, even a self-subscriber.
		c.emit(p, func(seq int64) []byte { return wire.EncodeStreamJoined(p.Stream(), seq) })
	case string(old.Metadata) != string(p.Metadata):
		c.emit(p, func(seq int64) []byte { return wire.EncodeStreamMetadata(p.Stream(), seq, c.timestamp()) })
	}
	c.add(p)
}

// Rotate issues the magic link's next generation, whose token hashes to
// tokenHash, and closes every stream admitted by an older link with 4001
// magic_link_rotated; peers see them leave. Generations are issued here
// alone, so rotations racing from Worker isolates with stale records still
// each get their own, and only the last one's link admits. It returns the
// new link and how many streams it closed.
func (c *Conversation) Rotate(tokenHash string) (wire.LinkState, int) {
	c.link = wire.LinkState{Generation: c.link.Generation + 1, TokenHash: tokenHash}
	c.log.SaveLink(c.link)
	closed := 0
	for _, p := range slices.Clone(c.peers) {
		if p.Generation < c.link.Generation {
			c.Eject(p, wire.CloseMagicLinkRotated)
			closed++
		}
	}
	return c.link, closed
}

// Link is the current magic link.
func (c *Conversation) Link() wire.LinkState { return c.link }

// Receive handles one text message from the socket connID.
func (c *Conversation) Receive(connID string, msg []byte) {
	p := c.byConn[connID]
	if p == nil {
		if isTap(connID) {
			c.TapMessage(connID, msg)
		}
		return // a displaced or already closed socket: its stream is gone
	}
	if c.FaultInjection {
		wire.InjectFault(string(msg))
	}
	frame, refusal := wire.DecodeClientFrame(msg, c.limits)
	if refusal != nil {
		c.Eject(p, *refusal)
		return
	}
	if frame.Type == wire.TypeAck {
		if p.flow != nil {
			p.flow.ack(frame.Seq, c.now())
		}
		return
	}
	seq := c.apply(p, frame)
	switch {
	case frame.Type == wire.TypePing:
		p.Socket.Send(&Outbound{Text: []byte(wire.PongFrame)})
	case frame.Type == wire.TypeToken && p.Receipts:
		p.Socket.Send(&Outbound{Text: wire.EncodeReceipt(seq)})
	}
}

// apply carries out a valid frame of p's stream and returns the seq it got
// (zero for a ping).
func (c *Conversation) apply(p *Peer, frame wire.ClientFrame) int64 {
	switch frame.Type {
	case wire.TypeToken:
		ts := c.timestamp()
		if p.tokenFields == nil {
			p.tokenFields = wire.TokenFields(p.Stream())
		}
		return c.emit(p, func(seq int64) []byte { return wire.EncodeTokenWith(p.tokenFields, seq, ts, frame.Data) })
	case wire.TypeSetMetadata:
		p.Metadata = slices.Clone(frame.Metadata)
		p.Socket.Save(p.Attachment)
		ts := c.timestamp()
		return c.emit(p, func(seq int64) []byte { return wire.EncodeStreamMetadata(p.Stream(), seq, ts) })
	}
	return 0
}

// ReceiveOversized handles a text message of chars UTF-16 code units that
// the adapter did not copy because it is over the limits' FrameChars: no
// admissible frame is that long, so the socket is closed 4400
// token_too_large and its stream leaves.
func (c *Conversation) ReceiveOversized(connID string, chars int) {
	if p := c.byConn[connID]; p != nil && chars > c.limits.FrameChars() {
		c.Eject(p, wire.CloseTokenTooLarge)
	}
}

// ReceiveBinary handles a binary message, which the protocol does not allow.
func (c *Conversation) ReceiveBinary(connID string) {
	if p := c.byConn[connID]; p != nil {
		c.Eject(p, wire.CloseMalformedFrame)
	}
}

// Eject closes p's socket with code and tells the others its stream left.
func (c *Conversation) Eject(p *Peer, code wire.Close) {
	c.Leave(p.ConnID)
	p.Socket.Close(code)
}

// Leave removes the stream of socket connID after its socket closed; peers
// see stream_left. It reports whether connID was live.
func (c *Conversation) Leave(connID string) bool {
	p := c.byConn[connID]
	if p == nil {
		return false
	}
	c.remove(p)
	release(p.Socket)
	c.emit(p, func(seq int64) []byte { return wire.EncodeStreamLeft(p.Stream(), seq) })
	return true
}

// Peer returns the live peer of socket connID, if any.
func (c *Conversation) Peer(connID string) *Peer { return c.byConn[connID] }

// emit gives a frame about stream from the next seq, logs it, and sends it
// to every live socket that hears from. It returns the seq.
func (c *Conversation) emit(from *Peer, encode func(seq int64) []byte) int64 {
	c.seq++
	frame := encode(c.seq)
	if c.buffer.Enabled() {
		c.log.Append(Event{Seq: c.seq, StreamID: from.StreamID, StreamName: from.Name, Frame: frame})
		if through := c.buffer.Add(EventSize{Seq: c.seq, Size: len(frame)}); through > 0 {
			c.log.TrimThrough(through)
		}
	} else {
		c.log.SaveSeq(c.seq)
	}
	out := &Outbound{Text: frame}
	to := c.to[:0]
	var behind []*Peer
	var now time.Time
	for _, p := range c.peers {
		if !p.Hears(from.StreamID, from.Name) {
			continue
		}
		if p.flow != nil && now.IsZero() {
			now = c.now()
		}
		if p.flow != nil && !p.flow.send(c.seq, len(frame), now) {
			behind = append(behind, p)
			continue
		}
		to = append(to, p.Socket)
	}
	if c.Broadcast != nil {
		c.Broadcast(out, to)
	} else {
		for _, s := range to {
			s.Send(out)
		}
	}
	clear(to) // holds no socket past the event
	c.to = to
	for _, p := range behind {
		c.Eject(p, wire.CloseSubscriberBackpressure)
	}
	if c.OnEmit != nil {
		c.OnEmit()
	}
	return c.seq
}

func (c *Conversation) stream(streamID string) *Peer {
	for _, p := range c.peers {
		if p.StreamID == streamID {
			return p
		}
	}
	return nil
}

func (c *Conversation) add(p *Peer) {
	if p.Acks && p.flow == nil {
		p.flow = newFlowWindow(c.limits.AckWindowBytes, c.limits.AckWindowFrames,
			time.Duration(c.limits.AckGraceMillis)*time.Millisecond, c.now())
	}
	c.peers = append(c.peers, p)
	c.byConn[p.ConnID] = p
}

func (c *Conversation) remove(p *Peer) {
	delete(c.byConn, p.ConnID)
	for i, q := range c.peers {
		if q == p {
			c.peers = append(c.peers[:i], c.peers[i+1:]...)
			return
		}
	}
}
