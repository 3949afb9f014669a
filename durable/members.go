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
}

// MemberStore persists MCP members across hibernation.
type MemberStore interface {
	Put(MemberRecord)
	Delete(connID string)
	List() []MemberRecord
}

// memberSocket is the Socket of an MCP member. Fan-out to it is dropped (the
// member reads the log instead) except while capturing its joined frame.
type memberSocket struct {
	store     MemberStore
	record    MemberRecord
	capturing bool
	captured  [][]byte
}

func (m *memberSocket) Send(out *Outbound) {
	if m.capturing {
		m.captured = append(m.captured, out.Text)
	}
}

func (m *memberSocket) Close(wire.Close) { m.store.Delete(m.record.ConnID) }

func (m *memberSocket) Save(a Attachment) {
	m.record.Attachment = a
	m.store.Put(m.record)
}

// RestoreMembers turns stored members back into peers for Restore.
func RestoreMembers(store MemberStore) []*Peer {
	records := store.List()
	peers := make([]*Peer, len(records))
	for i, r := range records {
		peers[i] = &Peer{Attachment: r.Attachment, Socket: &memberSocket{store: store, record: r}}
	}
	return peers
}

// JoinMember makes an MCP member live and returns its joined frame. A
// member that joins again takes over its own stream.
func (c *Conversation) JoinMember(store MemberStore, conversationID string, req wire.Join) ([]byte, *wire.Close) {
	p, refusal := c.Admit(req)
	if refusal != nil {
		return nil, refusal
	}
	m := &memberSocket{store: store, capturing: true}
	p.Socket = m
	c.Attach(conversationID, p, nil)
	m.capturing = false
	// Its own stream_joined is behind it; everything after is to be read.
	m.record = MemberRecord{Attachment: p.Attachment, Cursor: c.seq, LastSeen: c.now().UnixMilli()}
	store.Put(m.record)
	return m.captured[0], nil
}

// member finds the MCP member streamID of account, refreshing its LastSeen.
func (c *Conversation) member(accountID, streamID string) (*Peer, *memberSocket, *wire.Error) {
	p := c.stream(streamID)
	if p == nil || p.Owner != accountID {
		return nil, nil, &wire.ErrNotJoined
	}
	m, ok := p.Socket.(*memberSocket)
	if !ok {
		return nil, nil, &wire.ErrNotJoined
	}
	m.record.LastSeen = c.now().UnixMilli()
	return p, m, nil
}

// MemberSend emits data on the member's stream and returns its seq. The
// frame passes the same checks as a socket's (token_too_large).
func (c *Conversation) MemberSend(accountID, streamID, data string) (int64, *wire.Error, *wire.Close) {
	p, m, err := c.member(accountID, streamID)
	if err != nil {
		return 0, err, nil
	}
	msg := wire.AppendJSONString([]byte(`{"type":"token","data":`), data)
	frame, refusal := wire.DecodeClientFrame(append(msg, '}'), c.limits)
	if refusal != nil {
		return 0, nil, refusal
	}
	m.store.Put(m.record)
	return c.apply(p, frame), nil, nil
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
	return r, nil
}

// MemberLeave removes the member's stream; peers see stream_left.
func (c *Conversation) MemberLeave(accountID, streamID string) *wire.Error {
	p, m, err := c.member(accountID, streamID)
	if err != nil {
		return err
	}
	c.Leave(p.ConnID)
	m.store.Delete(p.ConnID)
	return nil
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
		if !deadline.After(now) {
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
	refused := func(e *wire.Error, cl *wire.Close) wire.MemberReply {
		if e != nil {
			return wire.MemberReply{Error: e.Code, Message: "the caller has not joined this stream through MCP"}
		}
		return wire.MemberReply{Error: cl.Reason, Message: "refused"}
	}
	switch op {
	case "join":
		if call.Join == nil {
			return wire.MemberReply{Error: wire.ErrInvalidJSON.Code, Message: "join is missing"}
		}
		joined, refusal := c.JoinMember(store, call.ConversationID, *call.Join)
		if refusal != nil {
			return refused(nil, refusal)
		}
		return wire.MemberReply{Joined: joined, Cursor: c.Seq()}
	case "send":
		if call.Data == nil {
			return wire.MemberReply{Error: wire.ErrInvalidJSON.Code, Message: "data is missing"}
		}
		seq, e, cl := c.MemberSend(call.AccountID, call.StreamID, *call.Data)
		if e != nil || cl != nil {
			return refused(e, cl)
		}
		return wire.MemberReply{Seq: seq}
	case "metadata":
		if !wire.IsJSONObject(call.Metadata) {
			return wire.MemberReply{Error: wire.ErrInvalidMetadata.Code, Message: "metadata must be a JSON object"}
		}
		seq, e := c.MemberSetMetadata(call.AccountID, call.StreamID, call.Metadata)
		if e != nil {
			return refused(e, nil)
		}
		return wire.MemberReply{Seq: seq}
	case "recv":
		r, e := c.MemberRecv(call.AccountID, call.StreamID, call.Cursor)
		if e != nil {
			return refused(e, nil)
		}
		reply := wire.MemberReply{Cursor: r.Cursor, Truncated: r.Truncated}
		for _, f := range r.Frames {
			reply.Frames = append(reply.Frames, json.RawMessage(f))
		}
		return reply
	case "leave":
		if e := c.MemberLeave(call.AccountID, call.StreamID); e != nil {
			return refused(e, nil)
		}
		return wire.MemberReply{}
	}
	return wire.MemberReply{Error: wire.ErrNotFound.Code, Message: "no member operation " + op}
}
