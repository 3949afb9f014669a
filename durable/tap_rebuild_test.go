package durable

// The push leg across a rebuilt object and a closing tap: faults found in a
// second review (each test failed on d8e8143).

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/ams-dev/ams/wire"
)

// tappedMember joins a WebSocket peer web and the member name (push-only if
// asked), and opens the member's tap tap:1 (not started).
func tappedMember(t *testing.T, m *memberHarness, name string, pushOnly bool) (*Peer, wire.MemberCall, *recordingSocket, Attachment) {
	t.Helper()
	web, _ := m.ws("acc_W", "web", false, "")
	req := joinRequest("acc_M", name, false, "")
	req.PushOnly = pushOnly
	call := wire.MemberCall{ConversationID: convID, AccountID: "acc_M", StreamID: req.StreamID, Reader: "r", Join: &req}
	if r := m.conv.Member(m.store, "join", call); r.Error != "" {
		t.Fatal(r)
	}
	call.Join = nil
	tap := &recordingSocket{}
	a, refusal := m.conv.Tap(m.store, call, tap, TapPrefix+"1")
	if refusal != nil {
		t.Fatal(refusal)
	}
	return web, call, tap, a
}

func restoreTap(t *testing.T, m *memberHarness, tap *recordingSocket, a Attachment) {
	m.wake()
	encoded, _ := a.Encode()
	back, _ := DecodeAttachment(encoded)
	_, taps := SplitTaps([]Woken{{Peer: &Peer{Attachment: back, Socket: tap}, Open: true}})
	m.conv.RestoreTaps(taps)
}

func seqCounts(frames []string) (dups []int64) {
	seen := map[int64]int{}
	for _, f := range frames {
		if s := gjson.Get(f, "seq").Int(); s > 0 {
			seen[s]++
			if seen[s] == 2 {
				dups = append(dups, s)
			}
		}
	}
	return dups
}

// TestRestoreSendsNoFrameTwice: a live tap got frame y, the Worker has
// not acked it yet (its Write to a slow client is pending, or the ack is in
// flight), and the object is rebuilt (hibernation, panic rebuild):
// RestoreTaps starts the tap again after Ridden and sends y a second time.
// The Worker's render does not drop seq <= lastSeq, so the client gets y
// twice with the same SSE id.
func TestRestoreSendsNoFrameTwice(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	web, _, tap, a := tappedMember(t, m, "agent", false)
	m.conv.Receive(TapPrefix+"1", wire.EncodeTapStart(nil, 0))
	m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"x"}`))
	m.conv.Receive(TapPrefix+"1", wire.EncodeTapAck(m.conv.Seq()))    // x written and acked
	m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"y"}`)) // y in flight, not acked
	restoreTap(t, m, tap, a)
	if dups := seqCounts(tap.frames()); len(dups) != 0 {
		t.Errorf("after a rebuild the tap got seq %v twice: %q", dups, datas(tap.frames()))
	}
}

// TestRestoreMidPagingSendsNoPageTwice: the object sent page 1 and
// {"tap":"more"}; before the Worker's ack and start(more) arrive the object
// is rebuilt. RestoreTaps sends page 1 again (from Ridden) with its own
// "more"; the Worker's pending start then sends page 2; the Worker answers
// each "more" with a start, so two chains of pages run and every page is
// delivered twice until one chain goes live.
func TestRestoreMidPagingSendsNoPageTwice(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	web, _, tap, a := tappedMember(t, m, "agent", false)
	for i := 0; i < 3*wire.TapPage; i++ {
		m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"b`+strconv.Itoa(i)+`"}`))
	}
	m.conv.Receive(TapPrefix+"1", wire.EncodeTapStart(nil, 0)) // page 1 + more
	restoreTap(t, m, tap, a)                                   // page 1 again + more
	// The Worker, having written page 1, acks it and starts after "more";
	// then answers every further "more" it reads, as Run does.
	handled := 0
	for guard := 0; guard < 20; guard++ {
		var mores []int64
		sent := tap.frames()
		for _, f := range sent[handled:] {
			if gjson.Get(f, "tap").Str == wire.TapMore {
				mores = append(mores, gjson.Get(f, "after").Int())
			}
		}
		handled = len(sent)
		if len(mores) == 0 {
			break
		}
		for _, after := range mores {
			m.conv.Receive(TapPrefix+"1", wire.EncodeTapAck(after))
			m.conv.Receive(TapPrefix+"1", wire.EncodeTapStart(&after, 0))
		}
	}
	if dups := seqCounts(tap.frames()); len(dups) != 0 {
		t.Errorf("a rebuild mid-paging delivered %d frames twice (first %d)", len(dups), dups[0])
	}
}

// TestPushOnlyLivesThroughAWakeWithABacklog: a push-only member lives on
// its leg for longer than MemberIdle (no tool call; ExpireMembers keeps it
// because tapLive, and nothing persists a fresher LastSeen). Its client is
// slow, so more than a page is unacked when the object hibernates. The
// alarm wakes it: RestoreTaps pages (tapLive false until the Worker's
// start(more) arrives), and the alarm's ExpireMembers then finds the stored
// LastSeen of the join and expires the member whose leg is open.
func TestPushOnlyLivesThroughAWakeWithABacklog(t *testing.T) {
	const idle = 10 * time.Minute
	m := newMemberHarness(t, wire.DefaultLimits)
	web, _, tap, a := tappedMember(t, m, "pusher", true)
	m.conv.Receive(TapPrefix+"1", wire.EncodeTapStart(nil, 0))
	for i := 0; i < 30; i++ { // half an hour on the leg alone, every frame acked
		m.now = m.now.Add(time.Minute)
		m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"tick"}`))
		m.conv.Receive(TapPrefix+"1", wire.EncodeTapAck(m.conv.Seq()))
		m.conv.ExpireMembers(idle)
	}
	for i := 0; i < wire.TapPage+10; i++ { // the client falls behind
		m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"b`+strconv.Itoa(i)+`"}`))
	}
	m.now = m.now.Add(time.Minute)
	restoreTap(t, m, tap, a) // the alarm wakes the object
	m.conv.ExpireMembers(idle)
	if len(tap.closes) != 0 {
		t.Errorf("the open leg of a push-only member was closed after a wake: %v", tap.closes)
	}
}

// TestRestoreBeforeStartKeepsLastEventID: the previous leg wrote x and y
// (acked: Ridden is y) but its client got only x, and reconnects with
// Last-Event-ID x. The new tap is accepted; the object is rebuilt before
// the tap's start arrives (a panic rebuild of another event, or a wake).
// RestoreTaps starts the tap itself after Ridden and makes it live, so the
// Worker's start(after=x) is ignored and y never reaches the client.
func TestRestoreBeforeStartKeepsLastEventID(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	web, call, old, _ := tappedMember(t, m, "agent", false)
	_ = old
	m.conv.Receive(TapPrefix+"1", wire.EncodeTapStart(nil, 0))
	m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"x"}`))
	x := m.conv.Seq()
	m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"y"}`))
	m.conv.Receive(TapPrefix+"1", wire.EncodeTapAck(m.conv.Seq()))
	tap := &recordingSocket{}
	a, refusal := m.conv.Tap(m.store, call, tap, TapPrefix+"2")
	if refusal != nil {
		t.Fatal(refusal)
	}
	restoreTap(t, m, tap, a)
	m.conv.Receive(TapPrefix+"2", wire.EncodeTapStart(&x, 0))
	if got := strings.Join(datas(tap.frames()), ","); got != "y" {
		t.Errorf("a leg resuming after x, rebuilt before its start, got %q, want y", got)
	}
}
