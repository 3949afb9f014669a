package durable

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ams-dev/ams/wire"
)

// TestTapLifecycle (11.4): a member's push leg receives exactly what the
// member hears, as it is emitted, without marking it read; it is closed
// with the reason and why when the member is taken over or leaves; a tap of an
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
	m.conv.Receive(TapPrefix+"1", wire.EncodeTapStart(nil, 0))
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
	if _, refusal := m.conv.Tap(m.store, call, second, TapPrefix+"2"); refusal != nil || len(tap.closes) != 1 || tap.closes[0] != wire.TapClose(wire.CloseStreamDisplaced, wire.TapEndReplaced) {
		t.Errorf("a second leg: %v, first closed %v", refusal, tap.closes)
	}
	m.conv.Receive(TapPrefix+"2", wire.EncodeTapStart(nil, 0))
	// Takeover by another reader closes the leg, saying so.
	takeover := call
	takeover.Reader = "r2"
	m.conv.Member(m.store, "join", takeover)
	if len(second.closes) != 1 || second.closes[0] != wire.TapClose(wire.CloseStreamDisplaced, wire.TapEndTakenOver) {
		t.Errorf("takeover closed the leg with %v", second.closes)
	}
	// Leaving closes the new owner's leg with not_joined.
	third := &recordingSocket{}
	m.conv.Tap(m.store, takeover, third, TapPrefix+"3")
	m.conv.Receive(TapPrefix+"3", wire.EncodeTapStart(nil, 0))
	m.conv.Member(m.store, "leave", takeover)
	if len(third.closes) != 1 || third.closes[0] != wire.TapClose(wire.CloseNotJoined, wire.TapEndLeft) {
		t.Errorf("leave closed the leg with %v", third.closes)
	}
	if _, refusal := m.conv.Tap(m.store, takeover, &recordingSocket{}, TapPrefix+"4"); refusal == nil || refusal.Error != wire.ErrNotJoined.Code {
		t.Errorf("a tap of a member that left: %+v", refusal)
	}
}

// TestTapStart (11.4): a tap is silent until it starts; its start sends
// what the member heard after the member's position (or after the client's
// Last-Event-ID), once, in order, then the live frames; a start from before
// the buffer is announced as truncated; acks mark frames delivered, so a
// later leg and ride-along skip them, and read only for a push-only member.
func TestTapStart(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	web, _ := m.ws("acc_W", "web", false, "")
	token := func(data string) { m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"`+data+`"}`)) }
	for _, pushOnly := range []bool{false, true} {
		name := "agent"
		if pushOnly {
			name = "pusher"
		}
		req := joinRequest("acc_M", name, false, "")
		req.PushOnly = pushOnly
		call := wire.MemberCall{ConversationID: convID, AccountID: "acc_M", StreamID: req.StreamID, Reader: "r", Join: &req}
		if r := m.conv.Member(m.store, "join", call); r.Error != "" {
			t.Fatalf("join: %+v", r)
		}
		call.Join = nil
		tap := &recordingSocket{}
		tapID := TapPrefix + name
		if _, refusal := m.conv.Tap(m.store, call, tap, tapID); refusal != nil {
			t.Fatal(refusal)
		}
		token("a")
		token("b")
		if f := tap.frames(); len(f) != 0 {
			t.Fatalf("a tap that did not start got %q", f)
		}
		m.conv.Receive(tapID, wire.EncodeTapStart(nil, 0))
		token("c")
		got := datas(tap.frames())
		if strings.Join(got, ",") != "a,b,c" {
			t.Fatalf("pushOnly %v: the leg got %v", pushOnly, got)
		}
		// With the tap live nothing rides along, acked or not: the leg has it.
		ride := call
		ride.Data, ride.RideAlong = json.RawMessage(`"x"`), true
		if r := m.conv.Member(m.store, "send", ride); r.Error != "" || len(r.Frames) != 0 {
			t.Errorf("pushOnly %v: rode along with a live tap: %+v", pushOnly, r)
		}
		lastSeq := m.conv.Seq() - 1                         // before the member's own x
		m.conv.Receive(tapID, wire.EncodeTapAck(lastSeq-1)) // a and b written
		r := m.conv.Member(m.store, "recv", call)
		want := "a,b,c"
		if pushOnly {
			want = "c"
		}
		if strings.Join(datas(frameTexts(r.Frames)), ",") != want {
			t.Errorf("pushOnly %v: recv after the ack %v, want %s", pushOnly, datas(frameTexts(r.Frames)), want)
		}
		// A new leg without Last-Event-ID starts after what was delivered or
		// read (c, by that recv); with one, after that seq.
		token("d")
		next := &recordingSocket{}
		m.conv.Tap(m.store, call, next, tapID+"2")
		m.conv.Receive(tapID+"2", wire.EncodeTapStart(nil, 0))
		if got := strings.Join(datas(next.frames()), ","); got != "d" {
			t.Errorf("pushOnly %v: a new leg got %s", pushOnly, got)
		}
		resumed := &recordingSocket{}
		from := lastSeq - 2
		m.conv.Tap(m.store, call, resumed, tapID+"3")
		m.conv.Receive(tapID+"3", wire.EncodeTapStart(&from, 0))
		if got := strings.Join(datas(resumed.frames()), ","); got != "b,c,d" {
			t.Errorf("pushOnly %v: a leg resumed after a got %s", pushOnly, got)
		}
		m.conv.Receive(tapID+"3", wire.EncodeTapStart(nil, 0)) // a second start does nothing
		if n := len(resumed.frames()); n != 3 {
			t.Errorf("a second start sent again: %d frames", n)
		}
		m.conv.Member(m.store, "leave", call)
	}
	// Before the buffer: truncated first.
	small := wire.DefaultLimits
	small.ReplayEvents = 2
	m = newMemberHarness(t, small)
	web, _ = m.ws("acc_W", "web", false, "")
	req := joinRequest("acc_M", "agent", false, "")
	call := wire.MemberCall{ConversationID: convID, AccountID: "acc_M", StreamID: req.StreamID, Join: &req}
	m.conv.Member(m.store, "join", call)
	call.Join = nil
	for _, d := range []string{"1", "2", "3", "4"} {
		m.conv.Receive(web.ConnID, []byte(`{"type":"token","data":"`+d+`"}`))
	}
	tap := &recordingSocket{}
	m.conv.Tap(m.store, call, tap, TapPrefix+"t")
	m.conv.Receive(TapPrefix+"t", wire.EncodeTapStart(nil, 0))
	f := tap.frames()
	if len(f) != 3 || !strings.HasPrefix(f[0], `{"type":"truncated","after":`) || strings.Join(datas(f[1:]), ",") != "3,4" {
		t.Errorf("a start before the buffer got %q", f)
	}
}

// datas is the data of each token frame of frames.
func datas(frames []string) []string {
	var out []string
	for _, f := range frames {
		var v struct{ Type, Data string }
		if json.Unmarshal([]byte(f), &v) == nil && v.Type == wire.TypeToken {
			out = append(out, v.Data)
		}
	}
	return out
}

func frameTexts(frames []json.RawMessage) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f)
	}
	return out
}

// TestRestoreTaps: after a wake, a tap goes back to its member, silent until
// the Worker starts it again (wire.TapRestart); a tap whose member is gone
// is closed, and neither becomes a stream.
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
	// Silent, asking the Worker to start it again, then live after the start.
	m.ws("acc_W", "web", false, "")
	if f := live.frames(); len(f) != 1 || f[0] != `{"tap":"restart"}` {
		t.Fatalf("the restored leg got %q before its start", f)
	}
	joinedSeq := m.conv.Seq()
	m.conv.Receive(TapPrefix+"a", wire.EncodeTapStart(nil, 0))
	m.ws("acc_W", "web2", false, "")
	if f := live.frames(); len(f) != 3 || !strings.Contains(f[1], `"stream_name":"web"`) || !strings.Contains(f[2], `"stream_name":"web2"`) {
		t.Errorf("the restarted leg got %q (web joined at %d)", f, joinedSeq)
	}
	if m.conv.Len() != 3 { // the member, web and web2
		t.Errorf("taps became streams: %d", m.conv.Len())
	}
}
