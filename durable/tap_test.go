package durable

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ams-dev/ams/wire"
)

// TestTapLifecycle (11.4): a member's push leg receives exactly what the
// member hears, as it is emitted, without marking it read; it is closed
// with the reason when the member is taken over or leaves; a tap of an
// absent member is refused; a member has one leg.
func TestTapLifecycle(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	_, web := m.ws("acc_W", "web", false, "")
	req := joinRequest("acc_M", "agent", false, "")
	call := wire.MemberCall{ConversationID: convID, AccountID: "acc_M", StreamID: req.StreamID, Reader: "r1", Join: &req}
	if r := m.conv.Member(m.store, "join", call); r.Error != "" {
		t.Fatalf("join: %+v", r)
	}
	if _, refusal := m.conv.Tap(m.store, wire.MemberCall{ConversationID: convID, AccountID: "acc_M", StreamID: req.StreamID, Reader: "other"}, &recordingSocket{}, "tap:x"); refusal == nil {
		t.Fatal("another reader tapped the member")
	}
	tap := &recordingSocket{}
	a, refusal := m.conv.Tap(m.store, call, tap, TapPrefix+"1")
	if refusal != nil || a.TapOf == "" || a.ConnID != TapPrefix+"1" {
		t.Fatalf("tap: %+v %+v", a, refusal)
	}
	web.reset()
	m.conv.Receive(m.conv.peers[0].ConnID, []byte(`{"type":"token","data":"to the leg"}`))
	own := call
	own.Join, own.Data = nil, json.RawMessage(`"own"`)
	if r := m.conv.Member(m.store, "send", own); r.Error != "" { // never heard by the member itself
		t.Fatalf("send: %+v", r)
	}
	if f := tap.frames(); len(f) != 1 || !strings.Contains(f[0], `"data":"to the leg"`) {
		t.Fatalf("the leg got %q", f)
	}
	if r := m.conv.Member(m.store, "recv", wire.MemberCall{ConversationID: convID, AccountID: "acc_M", StreamID: req.StreamID, Reader: "r1"}); len(r.Frames) != 1 {
		t.Errorf("a pushed frame was marked read: %+v", r)
	}
	// A second leg replaces the first.
	second := &recordingSocket{}
	if _, refusal := m.conv.Tap(m.store, call, second, TapPrefix+"2"); refusal != nil || len(tap.closes) != 1 || tap.closes[0] != wire.CloseStreamDisplaced {
		t.Errorf("a second leg: %v, first closed %v", refusal, tap.closes)
	}
	// Takeover by another reader closes the leg, saying so.
	takeover := call
	takeover.Reader = "r2"
	m.conv.Member(m.store, "join", takeover)
	if len(second.closes) != 1 || second.closes[0] != wire.CloseStreamDisplaced {
		t.Errorf("takeover closed the leg with %v", second.closes)
	}
	// Leaving closes the new owner's leg with not_joined.
	third := &recordingSocket{}
	m.conv.Tap(m.store, takeover, third, TapPrefix+"3")
	m.conv.Member(m.store, "leave", takeover)
	if len(third.closes) != 1 || third.closes[0] != wire.CloseNotJoined {
		t.Errorf("leave closed the leg with %v", third.closes)
	}
	if _, refusal := m.conv.Tap(m.store, takeover, &recordingSocket{}, TapPrefix+"4"); refusal == nil || refusal.Error != wire.ErrNotJoined.Code {
		t.Errorf("a tap of a member that left: %+v", refusal)
	}
}

// TestRestoreTaps: after a wake, a tap goes back to its member, a tap whose
// member is gone is closed, and neither becomes a stream.
func TestRestoreTaps(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	req := joinRequest("acc_M", "agent", false, "")
	m.conv.Member(m.store, "join", wire.MemberCall{ConversationID: convID, AccountID: "acc_M", StreamID: req.StreamID, Join: &req})
	memberConn := m.conv.stream(req.StreamID).ConnID
	m.wake()
	live, orphan := &recordingSocket{}, &recordingSocket{}
	found := []Woken{
		{Peer: &Peer{Attachment: Attachment{ConnID: TapPrefix + "a", StreamID: req.StreamID, TapOf: memberConn, Metadata: json.RawMessage(`{}`)}, Socket: live}, Open: true},
		{Peer: &Peer{Attachment: Attachment{ConnID: TapPrefix + "b", StreamID: "str_gone", TapOf: "gone", Metadata: json.RawMessage(`{}`)}, Socket: orphan}, Open: true},
	}
	streams, taps := SplitTaps(found)
	if len(streams) != 0 || len(taps) != 2 {
		t.Fatalf("split %d streams, %d taps", len(streams), len(taps))
	}
	m.conv.RestoreTaps(taps)
	if len(orphan.closes) != 1 || orphan.closes[0] != wire.CloseNotJoined || len(live.closes) != 0 {
		t.Errorf("orphan closed %v, live closed %v", orphan.closes, live.closes)
	}
	m.ws("acc_W", "web", false, "")
	if f := live.frames(); len(f) != 1 || !strings.Contains(f[0], `"type":"stream_joined"`) {
		t.Errorf("the restored leg got %q", f)
	}
	if m.conv.Len() != 2 {
		t.Errorf("taps became streams: %d", m.conv.Len())
	}
}
