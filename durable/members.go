package durable

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/ams-dev/ams/wire"
)

// An MCP member is a stream of the conversation with no socket: the MCP
// wrapper joins it, emits on it and reads for it through tool calls. Peers see
// it like any stream (stream_joined, tokens, stream_metadata, stream_left) and
// it hears them under the same rules, but it reads what it hears from the
// event log at its own pace, so nothing is lost between two reads. Its state
// is a MemberRecord in storage: the wrapper keeps none.

// MemberRecord is an MCP member as storage keeps it.
type MemberRecord struct {
	Attachment
	// Cursor is the seq through which the member has read.
	Cursor int64 `json:"cursor"`
	// LastSeen is the time of its last call, in Unix milliseconds.
	LastSeen int64 `json:"last_seen"`
	// Ridden is the seq through which frames rode along on the member's
	// other tool calls (never marked read: that is Cursor).
	Ridden int64 `json:"ridden,omitempty"`
	// Pushed is the seq through which the member's push leg wrote its
	// frames (acked, wire.TapAck). A client that reconnects with an older
	// Last-Event-ID gets those again, never what rode along.
	Pushed int64 `json:"pushed,omitempty"`
	// Reader is the join that owns the member (MemberCall.Reader): one
	// member, one reader, so two sessions never share a read position.
	Reader string `json:"reader,omitempty"`
	// Left, when set, makes the record a tombstone rather than a member: the
	// reader Reader of stream StreamID left (leftExplicitly) or was taken
	// over (leftTakenOver), so its calls do not rejoin on their own.
	Left string `json:"left,omitempty"`
	// PushOnly: what the member's push leg delivered (acked) or what rode
	// along is marked read (wire.DeliveryPush).
	PushOnly bool `json:"push_only,omitempty"`
	// Joined is the seq at the member's join: its leg never starts before.
	Joined int64 `json:"joined,omitempty"`
}

const (
	leftExplicitly = "left"
	leftTakenOver  = "taken_over"
)

// tombstoneID is the storage key of a tombstone.
func tombstoneID(streamID, reader string) string { return "left:" + streamID + ":" + reader }

// MemberStore persists MCP members across hibernation.
type MemberStore interface {
	Put(MemberRecord)
	Delete(connID string)
	List() []MemberRecord
}

// memberSocket is the Socket of an MCP member. Fan-out to it is dropped (the
// member reads the log instead) except while capturing its joined frame.
type memberSocket struct {
	// tap is the member's push leg (tap.go), nil without one.
	tap   Socket
	tapID string
	// tapLive: the tap started (wire.TapStart) and gets the fan-out.
	tapLive   bool
	store     MemberStore
	record    MemberRecord
	capturing bool
	captured  [][]byte
}

func (m *memberSocket) Send(out *Outbound) {
	switch {
	case m.capturing:
		m.captured = append(m.captured, out.Text)
	case m.tap != nil && m.tapLive:
		m.tap.Send(out)
	}
}

func (m *memberSocket) Close(code wire.Close) {
	why := wire.TapEndClosed
	switch code {
	case wire.CloseStreamDisplaced:
		why = wire.TapEndTakenOver
	case wire.CloseMagicLinkRotated:
		why = wire.TapEndRotated
	}
	m.closeTap(wire.TapClose(code, why))
	m.store.Delete(m.record.ConnID)
}

func (m *memberSocket) Save(a Attachment) {
	m.record.Attachment = a
	m.store.Put(m.record)
}

// RestoreMembers turns stored members back into peers for Restore.
func RestoreMembers(store MemberStore) []*Peer {
	var peers []*Peer
	for _, r := range store.List() {
		if r.Left == "" {
			peers = append(peers, &Peer{Attachment: r.Attachment, Socket: &memberSocket{store: store, record: r}})
		}
	}
	return peers
}

// tombstones are the readers that left a member, kept for the idle period
// (after which an absent member rejoins on its own anyway). They are read
// from storage on first use after a wake and pruned whenever they are read.
type tombstones struct {
	loaded bool
	byID   map[string]MemberRecord
}

func (c *Conversation) tombs(store MemberStore) map[string]MemberRecord {
	t := &c.memberTombs
	if !t.loaded {
		t.loaded, t.byID = true, map[string]MemberRecord{}
		for _, r := range store.List() {
			if r.Left != "" {
				t.byID[r.ConnID] = r
			}
		}
	}
	cutoff := c.now().Add(-time.Duration(c.limits.MemberIdleSeconds) * time.Second).UnixMilli()
	for id, r := range t.byID {
		if r.LastSeen < cutoff {
			delete(t.byID, id)
			store.Delete(id)
		}
	}
	return t.byID
}

func (c *Conversation) bury(store MemberStore, streamID, reader, why string) {
	r := MemberRecord{Attachment: Attachment{ConnID: tombstoneID(streamID, reader), StreamID: streamID},
		Reader: reader, Left: why, LastSeen: c.now().UnixMilli()}
	c.tombs(store)[r.ConnID] = r
	store.Put(r)
}

// JoinMember makes an MCP member of the sessionless reader live and
// returns its joined frame. A member that joins again takes over its own
// stream.
func (c *Conversation) JoinMember(store MemberStore, conversationID string, req wire.Join) ([]byte, *wire.Close) {
	return c.JoinMemberAs(store, conversationID, req, "")
}

// JoinMemberAs joins the member for reader. If another reader held the
// stream, that reader is taken over: its later calls are not_joined.
func (c *Conversation) JoinMemberAs(store MemberStore, conversationID string, req wire.Join, reader string) ([]byte, *wire.Close) {
	p, refusal := c.Admit(req)
	if refusal != nil {
		return nil, refusal
	}
	if old := c.stream(req.StreamID); old != nil {
		if om, ok := old.Socket.(*memberSocket); ok && om.record.Reader != reader {
			c.bury(store, req.StreamID, om.record.Reader, leftTakenOver)
		}
	}
	if id := tombstoneID(req.StreamID, reader); c.tombs(store)[id].Left != "" {
		delete(c.tombs(store), id)
		store.Delete(id)
	}
	m := &memberSocket{store: store, capturing: true}
	p.Socket = m
	c.Attach(conversationID, p, nil)
	m.capturing = false
	// Its own stream_joined is behind it; everything after is to be read.
	m.record = MemberRecord{Attachment: p.Attachment, Cursor: c.seq, LastSeen: c.now().UnixMilli(), Reader: reader, PushOnly: req.PushOnly, Joined: c.seq}
	store.Put(m.record)
	return m.captured[0], nil
}

// member finds the MCP member streamID of account joined by the
// sessionless reader, refreshing its LastSeen.
func (c *Conversation) member(accountID, streamID string) (*Peer, *memberSocket, *wire.Error) {
	p, m, why := c.memberOf(accountID, streamID, "")
	if why != "" {
		return nil, nil, &wire.ErrNotJoined
	}
	return p, m, nil
}

// memberOf finds the member streamID of account owned by reader; why says,
// for a person to read, why it is not there.
func (c *Conversation) memberOf(accountID, streamID, reader string) (*Peer, *memberSocket, string) {
	p := c.stream(streamID)
	if p == nil {
		return nil, nil, "not joined: call ams_join (or pass magic_link) first"
	}
	if p.Owner != accountID {
		return nil, nil, "this stream belongs to another account"
	}
	m, ok := p.Socket.(*memberSocket)
	if !ok {
		return nil, nil, "this stream is held by a WebSocket connection, not an MCP member"
	}
	if m.record.Reader != reader {
		return nil, nil, "another session joined this stream and took it over: call ams_join to take it back, or omit stream_name for a stream of your own"
	}
	m.record.LastSeen = c.now().UnixMilli()
	return p, m, ""
}

// resolve finds the member a call names, joining it first when it is absent
// and the call may rejoin (self-rehydration). rejoined says it did.
func (c *Conversation) resolve(store MemberStore, call wire.MemberCall) (p *Peer, m *memberSocket, rejoined bool, refusal *wire.MemberReply) {
	streamID := call.StreamID
	if streamID == "" {
		var found []*Peer
		for _, q := range c.peers {
			if qm, ok := q.Socket.(*memberSocket); ok && q.Owner == call.AccountID && qm.record.Reader == call.Reader {
				found = append(found, q)
			}
		}
		switch {
		case len(found) == 1:
			streamID = found[0].StreamID
		case len(found) > 1:
			return nil, nil, false, &wire.MemberReply{Error: wire.ErrNotJoined.Code, Message: "you hold several streams here: pass stream_name"}
		case call.Rejoin != nil:
			streamID = call.Rejoin.StreamID
		}
	}
	p, m, why := c.memberOf(call.AccountID, streamID, call.Reader)
	if why == "" {
		return p, m, false, nil
	}
	if p := c.stream(streamID); p != nil || call.Rejoin == nil || call.Rejoin.StreamID != streamID || call.Rejoin.AccountID != call.AccountID {
		return nil, nil, false, &wire.MemberReply{Error: wire.ErrNotJoined.Code, Message: why}
	}
	switch c.tombs(store)[tombstoneID(streamID, call.Reader)].Left {
	case leftExplicitly:
		return nil, nil, false, &wire.MemberReply{Error: wire.ErrNotJoined.Code, Message: "you left this conversation: call ams_join to join again"}
	case leftTakenOver:
		return nil, nil, false, &wire.MemberReply{Error: wire.ErrNotJoined.Code, Message: "another session joined this stream and took it over: call ams_join to take it back, or omit stream_name for a stream of your own"}
	}
	if _, refused := c.JoinMemberAs(store, call.ConversationID, *call.Rejoin, call.Reader); refused != nil {
		return nil, nil, false, &wire.MemberReply{Error: refused.Reason, Message: "could not join the stream again"}
	}
	p, m, _ = c.memberOf(call.AccountID, streamID, call.Reader)
	return p, m, true, nil
}

// MemberSend emits data on the member's stream and returns its seq. The
// frame passes the same checks as a socket's (token_too_large).
func (c *Conversation) MemberSend(accountID, streamID, data string) (int64, *wire.Error, *wire.Close) {
	p, m, err := c.member(accountID, streamID)
	if err != nil {
		return 0, err, nil
	}
	seq, _, refusal := c.sendRaw(p, m, wire.AppendJSONString(nil, data))
	return seq, nil, refusal
}

// sendRaw emits data, a raw JSON string literal, exactly as given (the same
// checks as a socket's frame: a string, valid UTF-8, token_too_large).
func (c *Conversation) sendRaw(p *Peer, m *memberSocket, data []byte) (int64, string, *wire.Close) {
	msg := append(append([]byte(`{"type":"token","data":`), data...), '}')
	frame, refusal := wire.DecodeClientFrame(msg, c.limits)
	if refusal != nil {
		return 0, "", refusal
	}
	if frame.Type != wire.TypeToken {
		return 0, "", &wire.CloseMalformedFrame
	}
	m.store.Put(m.record)
	ts := wire.Timestamp(c.now())
	return c.emit(p, func(seq int64) []byte { return wire.EncodeToken(p.Stream(), seq, ts, frame.Data) }), ts, nil
}

// MemberSetMetadata replaces the member's metadata and returns the seq of
// its stream_metadata.
func (c *Conversation) MemberSetMetadata(accountID, streamID string, metadata []byte) (int64, *wire.Error) {
	p, _, err := c.member(accountID, streamID)
	if err != nil {
		return 0, err
	}
	return c.apply(p, wire.ClientFrame{Type: wire.TypeSetMetadata, Metadata: metadata}), nil
}

// Reading is what an MCP member reads in one call.
type Reading struct {
	// Frames are the wire frames the member hears, in seq order.
	Frames [][]byte
	// Cursor is the seq to read after next time.
	Cursor int64
	// Truncated says frames after the requested cursor had already left the
	// replay buffer: the reading is not complete.
	Truncated bool
}

// MemberRecv reads what the member hears after cursor (nil: after its
// stored cursor) and advances its cursor.
func (c *Conversation) MemberRecv(accountID, streamID string, cursor *int64) (Reading, *wire.Error) {
	p, m, err := c.member(accountID, streamID)
	if err != nil {
		return Reading{}, err
	}
	return c.read(p, m, cursor), nil
}

// Pending counts the frames, and their bytes, that the member of call would
// read now, without reading them: a gathering recv waits on it.
// The first call may rejoin the member (rejoined); a refusal stops the read.
func (c *Conversation) Pending(store MemberStore, call wire.MemberCall) (frames, size int, rejoined bool, refusal *wire.MemberReply) {
	p, m, rejoined, refusal := c.resolve(store, call)
	if refusal != nil || !c.buffer.Enabled() {
		return 0, 0, rejoined, refusal
	}
	from := m.record.Cursor
	if call.Cursor != nil {
		from = *call.Cursor
	}
	if from >= c.seq {
		return 0, 0, rejoined, nil
	}
	for _, e := range c.log.Since(from) {
		if p.Hears(e.StreamID, e.StreamName) {
			frames++
			size += len(e.Frame)
		}
	}
	return frames, size, rejoined, nil
}

// Recv is a whole ams_recv: Poll waits (through wait) for what to read, then
// the member reads it.
func (c *Conversation) Recv(store MemberStore, call wire.MemberCall, wait func(time.Duration) bool) wire.MemberReply {
	var refused *wire.MemberReply
	rejoined := false
	pending := func() (int, int) {
		if refused == nil {
			n, size, joined, refusal := c.Pending(store, call)
			rejoined, refused = rejoined || joined, refusal
			if refused == nil {
				return n, size
			}
		}
		return wire.MaxGatherFrames, 0 // stop waiting: the answer is the refusal
	}
	Poll(c.now, wait, pending, call.WaitMS, call.GatherMS)
	if refused != nil {
		return *refused
	}
	reply := c.Member(store, "recv", call)
	reply.Rejoined = reply.Rejoined || rejoined
	return reply
}

func (c *Conversation) read(p *Peer, m *memberSocket, cursor *int64) Reading {
	from := m.record.Cursor
	if cursor != nil {
		from = *cursor
	}
	r := Reading{Cursor: c.seq, Truncated: !c.buffer.Covers(from, c.seq)}
	if from < c.seq && c.buffer.Enabled() {
		for _, e := range c.log.Since(from) {
			if p.Hears(e.StreamID, e.StreamName) {
				r.Frames = append(r.Frames, e.Frame)
			}
		}
	}
	if from > c.seq {
		r.Cursor = from // a cursor from the future stays where it was put
	}
	m.record.Cursor = r.Cursor
	m.store.Put(m.record)
	return r
}

// MemberLeave removes the member's stream; peers see stream_left.
func (c *Conversation) MemberLeave(accountID, streamID string) *wire.Error {
	p, m, err := c.member(accountID, streamID)
	if err != nil {
		return err
	}
	c.leaveMember(p, m)
	return nil
}

func (c *Conversation) leaveMember(p *Peer, m *memberSocket) {
	m.closeTap(wire.TapClose(wire.CloseNotJoined, wire.TapEndLeft))
	c.Leave(p.ConnID)
	m.store.Delete(p.ConnID)
	c.bury(m.store, p.StreamID, m.record.Reader, leftExplicitly)
}

// ExpireMembers removes the members idle for longer than idle and returns
// when the next one would expire (zero when no member is left).
func (c *Conversation) ExpireMembers(idle time.Duration) time.Time {
	now := c.now()
	var next time.Time
	for _, p := range slices.Clone(c.peers) {
		m, ok := p.Socket.(*memberSocket)
		if !ok {
			continue
		}
		deadline := time.UnixMilli(m.record.LastSeen).Add(idle)
		if m.record.PushOnly && m.tap != nil {
			// A push-only member reads through its leg: alive while it is
			// open, idle from when it closes (Untap).
			deadline = now.Add(idle)
		}
		if !deadline.After(now) {
			m.closeTap(wire.TapClose(wire.CloseNotJoined, wire.TapEndExpired))
			c.Leave(p.ConnID)
			m.store.Delete(p.ConnID)
			continue
		}
		if next.IsZero() || deadline.Before(next) {
			next = deadline
		}
	}
	return next
}

// Member runs the member operation op (wire.MemberPath + op) that the
// Worker forwarded, and answers it; a refusal carries its protocol code.
func (c *Conversation) Member(store MemberStore, op string, call wire.MemberCall) wire.MemberReply {
	if op == "join" {
		if call.Join == nil {
			return wire.MemberReply{Error: wire.ErrInvalidJSON.Code, Message: "join is missing"}
		}
		joined, refusal := c.JoinMemberAs(store, call.ConversationID, *call.Join, call.Reader)
		if refusal != nil {
			return wire.MemberReply{Error: refusal.Reason, Message: "refused"}
		}
		return wire.MemberReply{Joined: joined, Cursor: c.Seq(), StreamID: call.Join.StreamID, StreamName: call.Join.StreamName}
	}
	if op == "metadata" && !wire.IsJSONObject(call.Metadata) {
		return wire.MemberReply{Error: wire.ErrInvalidMetadata.Code, Message: "metadata must be a JSON object"}
	}
	if op == "send" && len(call.Data) == 0 {
		return wire.MemberReply{Error: wire.ErrInvalidJSON.Code, Message: "data is missing"}
	}
	if op != "send" && op != "recv" {
		call.Rejoin = nil // only send and recv rejoin on their own
	}
	if op != "send" && op != "recv" && op != "metadata" && op != "leave" {
		return wire.MemberReply{Error: wire.ErrNotFound.Code, Message: "no member operation " + op}
	}
	p, m, rejoined, refusal := c.resolve(store, call)
	if refusal != nil {
		return *refusal
	}
	reply := wire.MemberReply{StreamID: p.StreamID, StreamName: p.Name, Rejoined: rejoined}
	switch op {
	case "send":
		seq, ts, refused := c.sendRaw(p, m, call.Data)
		if refused != nil {
			return wire.MemberReply{Error: refused.Reason, Message: "the token was refused"}
		}
		reply.Seq, reply.TS = seq, ts
	case "metadata":
		reply.Seq = c.apply(p, wire.ClientFrame{Type: wire.TypeSetMetadata, Metadata: call.Metadata})
	case "recv":
		reply.Delivered = max(m.record.Ridden, m.record.Pushed)
		r := c.read(p, m, call.Cursor)
		reply.Cursor, reply.Truncated = r.Cursor, r.Truncated
		for _, f := range r.Frames {
			reply.Frames = append(reply.Frames, json.RawMessage(f))
		}
	case "leave":
		c.leaveMember(p, m)
	}
	if call.RideAlong && op != "recv" && op != "leave" {
		reply.Frames = c.rideAlong(p, m)
	}
	return reply
}

// rideAlong returns what the member has not read and has not been offered
// along or pushed yet, up to wire.RideAlongFrames, without marking it read.
// A member with a push leg has nothing to carry along: the leg gets all of
// it (once started, from where its client is).
func (c *Conversation) rideAlong(p *Peer, m *memberSocket) []json.RawMessage {
	from := max(m.record.Cursor, m.record.Ridden, m.record.Pushed)
	if from >= c.seq || !c.buffer.Enabled() || m.tap != nil {
		return nil
	}
	var frames []json.RawMessage
	for _, e := range c.log.Since(from) {
		if len(frames) == wire.RideAlongFrames {
			break
		}
		if p.Hears(e.StreamID, e.StreamName) {
			frames = append(frames, json.RawMessage(e.Frame))
		}
		m.record.Ridden = e.Seq
	}
	if m.record.PushOnly {
		m.record.Cursor = m.record.Ridden // delivered in the answer: read
	}
	m.store.Put(m.record)
	return frames
}
