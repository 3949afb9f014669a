// Package durable is the conversation Durable Object: one object per
// conversation fans every token a stream emits out to every other socket.
//
// Design. The object accepts sockets through the WebSocket Hibernation API,
// so an idle conversation is evicted from memory while its sockets stay
// connected. Everything needed to route a socket after a wake-up lives in the
// socket's Attachment (stream id, name, owner, metadata, self-subscribe), and
// the socket's hibernation tag is its connection id. On wake the runtime
// builds a fresh object; the adapter then hands Restore the attachments of
// getWebSockets(), which is the one place state is rebuilt from. Nothing else
// is kept: a peer never sees a spurious stream_left or stream_joined because
// waking is invisible on the wire.
//
// This file is the logic, in plain Go and testable natively. conversation_js.go
// adapts it to workerd: sockets, attachments, tags and storage.
package durable

import (
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
}

// Conversation is the in-memory view of one conversation's live streams.
type Conversation struct {
	// FaultInjection lets the crash-recovery tests make Receive fail (wire/faults.go).
	FaultInjection bool

	limits wire.Limits
	now    func() time.Time
	newID  func() string
	peers  []*Peer // join order
	byConn map[string]*Peer
}

// NewConversation returns an empty conversation. newID mints connection ids.
func NewConversation(limits wire.Limits, now func() time.Time, newID func() string) *Conversation {
	return &Conversation{limits: limits, now: now, newID: newID, byConn: map[string]*Peer{}}
}

// Restore rebuilds the conversation from the sockets that survived
// hibernation. A stream held by two sockets (a takeover interrupted by
// eviction) keeps the newest and closes the other.
func (c *Conversation) Restore(peers []*Peer) {
	c.peers, c.byConn = nil, map[string]*Peer{}
	for _, p := range peers {
		if old := c.stream(p.StreamID); old != nil {
			if old.ConnID > p.ConnID {
				p.Socket.Close(wire.CloseStreamDisplaced)
				continue
			}
			c.remove(old)
			old.Socket.Close(wire.CloseStreamDisplaced)
		}
		c.add(p)
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

// Admit decides a join without side effects, in the order of the refusal
// table: name owned by another account, the account's stream limit, then the
// conversation's connection limit. A takeover of the caller's own stream is
// always admitted.
func (c *Conversation) Admit(req wire.Join) (*Peer, *wire.Close) {
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
		ConnID:   c.newID(),
		StreamID: req.StreamID,
		Name:     req.StreamName,
		Owner:    req.AccountID,
		Self:     req.SelfSubscribe,
		Metadata: metadata,
	}}, nil
}

// Attach makes an admitted peer live: it displaces the stream's previous
// socket, if any, sends the peer its joined frame and announces it to the
// others (unless it is a takeover, which peers do not see).
func (c *Conversation) Attach(conversationID string, p *Peer) {
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
	}
	p.Socket.Send(&Outbound{Text: joined.Encode()})
	if old == nil {
		// Before add: stream_joined is for everyone else, even a self-subscriber.
		c.broadcast(p, &Outbound{Text: wire.EncodeStreamJoined(p.Stream())})
	}
	c.add(p)
}

// Receive handles one text message from the socket connID.
func (c *Conversation) Receive(connID string, msg []byte) {
	p := c.byConn[connID]
	if p == nil {
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
	switch frame.Type {
	case wire.TypeToken:
		ts := wire.Timestamp(c.now())
		c.broadcast(p, &Outbound{Text: wire.EncodeToken(p.Stream(), ts, frame.Data)})
	case wire.TypeSetMetadata:
		p.Metadata = append([]byte(nil), frame.Metadata...)
		p.Socket.Save(p.Attachment)
		ts := wire.Timestamp(c.now())
		c.broadcast(p, &Outbound{Text: wire.EncodeStreamMetadata(p.Stream(), ts)})
	case wire.TypePing:
		p.Socket.Send(&Outbound{Text: []byte(wire.PongFrame)})
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
	c.broadcast(p, &Outbound{Text: wire.EncodeStreamLeft(p.Stream())})
	return true
}

// Peer returns the live peer of socket connID, if any.
func (c *Conversation) Peer(connID string) *Peer { return c.byConn[connID] }

// broadcast sends out to every socket except the sender's own stream, which
// only hears itself when it opted in (self-subscribe).
func (c *Conversation) broadcast(from *Peer, out *Outbound) {
	for _, p := range c.peers {
		if p.StreamID == from.StreamID && !p.Self {
			continue
		}
		p.Socket.Send(out)
	}
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
