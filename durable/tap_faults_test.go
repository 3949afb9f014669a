package durable

// Faults of the push leg found in review of 69741ca..ebf8d8f (each test
// failed there).

import (
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// TestPushOnlyLegKeepsMemberAlive: a push-only member (delivery
// "push": a client that acts on pushed notifications and need not poll)
// whose leg is open and acking every frame is still expired after
// MemberIdle without a tool call: acks never touch LastSeen, so the leg is
// closed not_joined and nothing more is pushed until the client calls.
func TestPushOnlyLegKeepsMemberAlive(t *testing.T) {
	const idle = 10 * time.Minute
	m := newMemberHarness(t, wire.DefaultLimits)
	web, _, tap, _ := tappedMember(t, m, "pusher", true)
	m.conv.Receive(TapPrefix+"1", wire.EncodeTapStart(nil, 0))
	for i := 0; i < 15; i++ { // a frame a minute, each written and acked
		m.now = m.now.Add(time.Minute)
		m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"tick"}`))
		m.conv.Receive(TapPrefix+"1", wire.EncodeTapAck(m.conv.Seq()))
		m.conv.ExpireMembers(idle)
	}
	if len(tap.closes) != 0 {
		t.Errorf("a push-only member whose leg delivers (and acks) every minute was expired: leg closed %v", tap.closes)
	}
}

// TestRestoredTapStartsAgain: a tap that was accepted but had not started
// when the object was rebuilt (hibernation, or the rebuild after a
// recovered panic) still gets, at its start, the frames between the join
// and the tap (it failed on ebf8d8f, where a restored tap was live).
func TestRestoredTapStartsAgain(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	web, _ := m.ws("acc_W", "web", false, "")
	req := joinRequest("acc_M", "agent", false, "")
	call := wire.MemberCall{ConversationID: convID, AccountID: "acc_M", StreamID: req.StreamID, Reader: "r", Join: &req}
	m.conv.Member(m.store, "join", call)
	call.Join = nil
	m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"x"}`))
	m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"y"}`))
	tap := &recordingSocket{}
	a, refusal := m.conv.Tap(m.store, call, tap, TapPrefix+"1")
	if refusal != nil {
		t.Fatal(refusal)
	}
	m.wake()
	encoded, _ := a.Encode()
	back, _ := DecodeAttachment(encoded)
	_, taps := SplitTaps([]Woken{{Peer: &Peer{Attachment: back, Socket: tap}, Open: true}})
	m.conv.RestoreTaps(taps)
	m.conv.Receive(TapPrefix+"1", wire.EncodeTapStart(nil, 0))
	if got := strings.Join(datas(tap.frames()), ","); got != "x,y" {
		t.Errorf("the leg's start after a rebuild sent %q, want x,y", got)
	}
}
