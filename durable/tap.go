package durable

import "github.com/ams-dev/ams/wire"

// A tap is the push leg of an MCP member: a hibernatable socket that the
// Worker holds open behind the SSE answer of GET /mcp. Fan-out to the
// member goes to its tap as to any socket, so the member's frames reach the
// Worker within the event, and an idle conversation hibernates as it does
// with any socket. The member still reads every frame from the log: nothing
// pushed is marked read. A tap is no stream: peers never see it. Its
// attachment names the member's connection (TapOf), so a woken object
// hands it back to its member; a tap whose member is gone is closed, and so
// is the tap of a member that leaves, expires, is rotated out or is taken
// over, with that reason as the close reason.

// TapPrefix starts a tap's connection id, which is its hibernation tag.
const TapPrefix = "tap:"

func (m *memberSocket) closeTap(code wire.Close) {
	if m.tap != nil {
		m.tap.Close(code)
		m.tap, m.tapID = nil, ""
	}
}

// Tap makes socket, of connection tapID, the push leg of the member the
// call names (never joining it); a member has one leg, so an older one is
// closed. It returns the attachment to store on socket, or why not.
func (c *Conversation) Tap(store MemberStore, call wire.MemberCall, socket Socket, tapID string) (Attachment, *wire.MemberReply) {
	call.Rejoin = nil
	p, m, _, refusal := c.resolve(store, call)
	if refusal != nil {
		return Attachment{}, refusal
	}
	m.closeTap(wire.CloseStreamDisplaced)
	m.tap, m.tapID = socket, tapID
	return Attachment{ConnID: tapID, StreamID: p.StreamID, Name: p.Name, Owner: p.Owner, Metadata: wire.EmptyObject, TapOf: p.ConnID}, nil
}

// Untap forgets the tap tapID after its socket closed.
func (c *Conversation) Untap(tapID string) {
	for _, p := range c.peers {
		if m, ok := p.Socket.(*memberSocket); ok && m.tapID == tapID {
			m.tap, m.tapID = nil, ""
		}
	}
}

// SplitTaps separates the taps among the sockets a woken object found from
// the streams, which Restore takes.
func SplitTaps(found []Woken) (streams, taps []Woken) {
	for _, w := range found {
		if !w.Unreadable && w.TapOf != "" {
			taps = append(taps, w)
		} else {
			streams = append(streams, w)
		}
	}
	return streams, taps
}

// RestoreTaps hands woken taps back to their members (after Restore) and
// closes those whose member is gone.
func (c *Conversation) RestoreTaps(taps []Woken) {
	for _, t := range taps {
		if !t.Open {
			continue
		}
		var m *memberSocket
		if p := c.byConn[t.TapOf]; p != nil {
			m, _ = p.Socket.(*memberSocket)
		}
		if m == nil {
			t.Socket.Close(wire.CloseNotJoined)
			continue
		}
		m.closeTap(wire.CloseStreamDisplaced)
		m.tap, m.tapID = t.Socket, t.ConnID
	}
}

// TapOf returns the tap of the member socket s, if it is one with a leg.
func TapOf(s Socket) Socket {
	if m, ok := s.(*memberSocket); ok {
		return m.tap
	}
	return nil
}
