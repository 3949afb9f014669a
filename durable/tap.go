package durable

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/ams-dev/ams/wire"
)

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
//
// A tap starts silent. The Worker's start message (wire.TapStart) names
// where its client is — the seq after which it has seen nothing (the SSE
// Last-Event-ID), or nothing, meaning after what the member read or was
// last delivered — and the object answers, within that one event, with
// what the member heard since (from the log, a truncated frame first if the
// buffer no longer covers it) and then makes the tap live. Fan-out skips a
// tap until then, so the client gets every frame once, in seq order, however
// the join, the leg and the first frames interleave. The Worker acks what it
// wrote (wire.TapAck): acked frames are not offered along again (Pushed),
// and for a push-only member they are read (Cursor), so a push-only member
// that loses its leg still reads, or is pushed on its next leg, everything
// no leg delivered.

// TapPrefix starts a tap's connection id, which is its hibernation tag.
const TapPrefix = "tap:"

func (m *memberSocket) closeTap(code wire.Close) {
	if m.tap != nil {
		m.tap.Close(code)
		m.tap, m.tapID, m.tapLive = nil, "", false
	}
}

// tapOwner finds the member whose tap is tapID.
func (c *Conversation) tapOwner(tapID string) (*Peer, *memberSocket) {
	for _, p := range c.peers {
		if m, ok := p.Socket.(*memberSocket); ok && m.tap != nil && m.tapID == tapID {
			return p, m
		}
	}
	return nil, nil
}

// TapMessage handles a control message of the tap tapID (wire.TapStart,
// wire.TapAck); anything else, or a tap whose member is gone, is ignored.
func (c *Conversation) TapMessage(tapID string, msg []byte) {
	p, m := c.tapOwner(tapID)
	if m == nil || !gjson.ValidBytes(msg) {
		return
	}
	parsed := gjson.ParseBytes(msg)
	switch parsed.Get("tap").Str {
	case wire.TapStart:
		if ack := parsed.Get("ack"); ack.Type == gjson.Number {
			c.tapAck(m, ack.Int())
		}
		if m.tapLive {
			return
		}
		from := max(m.record.Cursor, m.record.Ridden, m.record.Pushed)
		if after := parsed.Get("after"); after.Type == gjson.Number {
			// Where the client says it is, but never before what rode
			// along on its tool answers.
			from = max(after.Int(), m.record.Ridden)
		}
		c.startTap(p, m, from)
	case wire.TapAck:
		c.tapAck(m, parsed.Get("seq").Int())
	}
}

// tapAck records that the member's leg wrote its frames through seq.
func (c *Conversation) tapAck(m *memberSocket, seq int64) {
	seq = min(seq, c.seq)
	changed := false
	if seq > m.record.Pushed {
		m.record.Pushed, changed = seq, true
	}
	if m.record.PushOnly && seq > m.record.Cursor {
		m.record.Cursor, changed = seq, true
	}
	if changed {
		m.store.Put(m.record)
	}
}

// startTap sends the tap what the member heard after from (never before
// its join, never past now), at most wire.TapPage frames, and makes it
// live once nothing more is due; otherwise it says where more is due.
func (c *Conversation) startTap(p *Peer, m *memberSocket, from int64) {
	from = min(max(from, m.record.Joined, 0), c.seq)
	if from < c.seq && c.buffer.Enabled() {
		if !c.buffer.Covers(from, c.seq) {
			m.tap.Send(&Outbound{Text: append(strconv.AppendInt([]byte(`{"type":"`+wire.TypeTapTruncated+`","after":`), from, 10), '}')})
		}
		sent := 0
		for _, e := range c.log.Since(from) {
			if sent == wire.TapPage {
				m.tap.Send(&Outbound{Text: wire.EncodeTapMore(from)})
				return
			}
			if p.Hears(e.StreamID, e.StreamName) {
				m.tap.Send(&Outbound{Text: e.Frame})
				sent++
			}
			from = e.Seq
		}
	}
	m.tapLive = true
}

// isTap says whether connID names a tap.
func isTap(connID string) bool { return strings.HasPrefix(connID, TapPrefix) }

// Tap makes socket, of connection tapID, the push leg of the member the
// call names (never joining it); a member has one leg, so an older one is
// closed. It returns the attachment to store on socket, or why not.
func (c *Conversation) Tap(store MemberStore, call wire.MemberCall, socket Socket, tapID string) (Attachment, *wire.MemberReply) {
	call.Rejoin = nil
	p, m, _, refusal := c.resolve(store, call)
	if refusal != nil {
		return Attachment{}, refusal
	}
	m.closeTap(wire.TapClose(wire.CloseStreamDisplaced, wire.TapEndReplaced))
	m.tap, m.tapID, m.tapLive = socket, tapID, !c.buffer.Enabled()
	return Attachment{ConnID: tapID, StreamID: p.StreamID, Name: p.Name, Owner: p.Owner, Metadata: wire.EmptyObject, TapOf: p.ConnID}, nil
}

// Untap forgets the tap tapID after its socket closed, and returns it (nil
// for none). A push-only member is idle from then on.
func (c *Conversation) Untap(tapID string) Socket {
	for _, p := range c.peers {
		if m, ok := p.Socket.(*memberSocket); ok && m.tap != nil && m.tapID == tapID {
			tap := m.tap
			m.tap, m.tapID, m.tapLive = nil, "", false
			if m.record.PushOnly {
				m.record.LastSeen = c.now().UnixMilli()
				m.store.Put(m.record)
			}
			return tap
		}
	}
	return nil
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
		m.closeTap(wire.TapClose(wire.CloseStreamDisplaced, wire.TapEndReplaced))
		// Silent until the Worker, which knows what it wrote, starts it again.
		m.tap, m.tapID, m.tapLive = t.Socket, t.ConnID, false
		m.tap.Send(&Outbound{Text: []byte(`{"tap":"` + wire.TapRestart + `"}`)})
	}
}

// TapOf returns the live tap of the member socket s, if it is one with a
// leg that started.
func TapOf(s Socket) Socket {
	if m, ok := s.(*memberSocket); ok && m.tapLive {
		return m.tap
	}
	return nil
}
