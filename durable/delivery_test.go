package durable

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/ams-dev/ams/wire"
)

// seqOf reads the integer seq of a decoded frame.
func seqOf(t *testing.T, f map[string]json.RawMessage) int64 {
	t.Helper()
	raw, ok := f["seq"]
	if !ok {
		t.Fatalf("frame %v has no seq", f)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		t.Fatalf("seq %s is not an integer", raw)
	}
	return n
}

// seqFrames are the frame kinds that carry a seq (PROTOCOL §5).
var seqFrames = []string{wire.TypeToken, wire.TypeStreamJoined, wire.TypeStreamLeft, wire.TypeStreamMetadata}

// received lists the seq-carrying frames sock got, in order: their seqs and
// texts. Every such frame must carry a seq; others must not.
func received(t *testing.T, sock *recordingSocket) (seqs []int64, texts []string) {
	t.Helper()
	for _, text := range sock.frames() {
		f := decodeFrame(t, text)
		typ := str(t, f["type"])
		if !slices.Contains(seqFrames, typ) {
			continue
		}
		seqs = append(seqs, seqOf(t, f))
		texts = append(texts, text)
	}
	return seqs, texts
}

// entitled lists the seqs of the logged events in (after, through] that a
// connection with attachment a hears.
func entitled(l *memLog, a Attachment, after, through int64) []int64 {
	var seqs []int64
	for _, e := range l.all {
		if e.Seq > after && e.Seq <= through && a.Hears(e.StreamID, e.StreamName) {
			seqs = append(seqs, e.Seq)
		}
	}
	return seqs
}

func strictlyIncreasing(seqs []int64) bool {
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			return false
		}
	}
	return true
}

func (h *harness) token(p *Peer, data string) {
	h.t.Helper()
	h.conv.Receive(p.ConnID, []byte(`{"type":"token","data":"`+data+`"}`))
}

func (h *harness) setMetadata(p *Peer, metadata string) {
	h.t.Helper()
	h.conv.Receive(p.ConnID, []byte(`{"type":"set_metadata","metadata":`+metadata+`}`))
}

func resumeRequest(account, name string, self bool, after int64) wire.Join {
	j := joinRequest(account, name, self, "")
	j.ResumeAfter = &after
	return j
}

// joinedFrame decodes the joined frame sock received first.
func joinedFrame(t *testing.T, sock *recordingSocket) map[string]json.RawMessage {
	t.Helper()
	if len(sock.sent) == 0 {
		t.Fatal("no joined frame")
	}
	f := decodeFrame(t, sock.frames()[0])
	if str(t, f["type"]) != wire.TypeJoined {
		t.Fatalf("first frame %q is not joined", sock.frames()[0])
	}
	return f
}

func TestSeqStrictlyIncreasingAcrossFrameKinds(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	_, sObs := h.join("acc_O", "observer", true, "")
	pa, _ := h.join("acc_A", "a", false, `{"v":1}`)
	h.token(pa, "one")
	h.setMetadata(pa, `{"v":2}`)
	pb, sb := h.join("acc_B", "b", false, "")
	h.token(pb, "two")
	h.conv.Receive(pb.ConnID, []byte(`{"type":"ping"}`)) // no seq
	pa2, _ := h.join("acc_A", "a", false, `{"v":3}`)     // takeover, metadata changed
	h.join("acc_A", "a", false, `{"v":3}`)               // takeover, unchanged: no seq
	h.conv.Receive(pb.ConnID, []byte(`not json`))        // ejected: stream_left
	h.conv.Leave(pa2.ConnID)                             // already displaced: no-op
	_ = sb

	n := int64(len(h.log.all))
	if n == 0 || h.conv.Seq() != n {
		t.Fatalf("Seq() = %d with %d events logged", h.conv.Seq(), n)
	}
	kinds := map[string]bool{}
	for i, e := range h.log.all {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: seqs must be 1, 2, 3, ...", i, e.Seq)
		}
		f := decodeFrame(t, string(e.Frame))
		if seqOf(t, f) != e.Seq {
			t.Errorf("frame %s carries a seq other than its event's %d", e.Frame, e.Seq)
		}
		kinds[str(t, f["type"])] = true
		if str(t, f["stream_id"]) != e.StreamID || str(t, f["stream_name"]) != e.StreamName {
			t.Errorf("event %+v logged under another stream than its frame's", e)
		}
	}
	for _, k := range seqFrames {
		if !kinds[k] {
			t.Errorf("no %s was logged; the scenario should produce every kind", k)
		}
	}
	seqs, _ := received(t, sObs)
	if !strictlyIncreasing(seqs) {
		t.Errorf("observer saw seqs %v", seqs)
	}
	// The observer joined first and hears everything but its own joining.
	if want := entitled(h.log, h.conv.Peer("conn0001").Attachment, 1, n); !slices.Equal(seqs, want) {
		t.Errorf("observer saw seqs %v, want %v", seqs, want)
	}
}

// TestSeqContinuesAfterWakeUp builds a new Conversation over the same log,
// as a Durable Object does after eviction, and checks the seq never goes
// back nor repeats.
func TestSeqContinuesAfterWakeUp(t *testing.T) {
	for _, replay := range []int{1000, 3, 0} {
		t.Run(fmt.Sprint("replay ", replay), func(t *testing.T) {
			limits := wire.DefaultLimits
			limits.ReplayEvents = replay
			h := newHarness(t, limits)
			pa, _ := h.join("acc_A", "a", false, "")
			pb, _ := h.join("acc_B", "b", false, "")
			for i := 0; i < 5; i++ {
				h.token(pa, fmt.Sprint("t", i))
			}
			before := h.conv.Seq()
			if before != 7 {
				t.Fatalf("Seq() = %d after 2 joins and 5 tokens, want 7", before)
			}

			// Wake-up: a fresh object over the same storage and sockets.
			woken := newHarnessOver(t, limits, h.log)
			woken.next = h.next
			peers, socks := restored(t, pa.Attachment, pb.Attachment)
			woken.conv.Restore(awake(peers))
			if woken.conv.Seq() != before {
				t.Fatalf("Seq() after the wake-up = %d, want %d", woken.conv.Seq(), before)
			}
			woken.conv.Receive(pa.ConnID, []byte(`{"type":"token","data":"after"}`))
			got := expectFrames(t, "b after the wake-up", socks[1], "token")
			if seqOf(t, got[0]) != before+1 {
				t.Errorf("first token after the wake-up has seq %d, want %d", seqOf(t, got[0]), before+1)
			}
			woken.join("acc_C", "c", false, "")
			if woken.conv.Seq() != before+2 {
				t.Errorf("Seq() = %d, want %d", woken.conv.Seq(), before+2)
			}
			// And a second wake-up, from the state the first left.
			again := newHarnessOver(t, limits, h.log)
			if again.conv.Seq() != before+2 {
				t.Errorf("Seq() after a second wake-up = %d, want %d", again.conv.Seq(), before+2)
			}
			if replay == 0 {
				if h.log.appends != 0 {
					t.Errorf("%d events stored with replay off", h.log.appends)
				}
				if want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(h.log.saves, want) {
					t.Errorf("SaveSeq calls %v, want %v", h.log.saves, want)
				}
			} else if len(h.log.saves) != 0 {
				t.Errorf("SaveSeq called %v although events are stored", h.log.saves)
			}
		})
	}
}

func TestReplayBufferTrimsLog(t *testing.T) {
	limits := wire.DefaultLimits
	limits.ReplayEvents = 10 // slack 1
	h := newHarness(t, limits)
	pa, _ := h.join("acc_A", "a", false, "")
	for i := 0; i < 49; i++ {
		h.token(pa, "x")
	}
	stored := h.log.storedSeqs()
	if n := len(stored); n < 10 || n > 11 {
		t.Fatalf("%d events stored, want 10 or 11 (10 plus slack)", n)
	}
	if stored[len(stored)-1] != h.conv.Seq() || !strictlyIncreasing(stored) {
		t.Errorf("stored %v, want the newest up to %d", stored, h.conv.Seq())
	}
	if len(h.log.trims) == 0 || len(h.log.trims) > 50/2 {
		t.Errorf("%d trims for 50 events: trims should be batched", len(h.log.trims))
	}

	// Fill exactly to the slack, then wake: the rebuilt buffer must trim on
	// the next event, as the old one would have.
	for i := 0; len(h.log.events) != 11; i++ {
		if i == 20 {
			t.Fatalf("the log never held 10 events plus the slack of 1: %v", h.log.storedSeqs())
		}
		h.token(pa, "x")
	}
	woken := newHarnessOver(t, limits, h.log)
	woken.next = h.next
	peers, _ := restored(t, pa.Attachment)
	woken.conv.Restore(awake(peers))
	woken.conv.Receive(pa.ConnID, []byte(`{"type":"token","data":"y"}`))
	if n := len(h.log.events); n != 10 {
		t.Errorf("after the wake-up, %d events stored, want 10: the buffer forgot what storage holds", n)
	}
}

func TestReplayBytesBound(t *testing.T) {
	limits := wire.DefaultLimits
	limits.ReplayBytes = 2000
	h := newHarness(t, limits)
	pa, _ := h.join("acc_A", "a", false, "")
	for i := 0; i < 40; i++ {
		h.token(pa, fmt.Sprintf("%0200d", i))
	}
	total := 0
	for _, e := range h.log.events {
		total += len(e.Frame)
	}
	if total > limits.ReplayBytes {
		t.Errorf("%d bytes stored, bound %d", total, limits.ReplayBytes)
	}
	if last := h.log.events[len(h.log.events)-1].Seq; last != h.conv.Seq() {
		t.Errorf("newest stored %d, want %d", last, h.conv.Seq())
	}
	// A token larger than the whole bound is still kept, alone.
	big := fmt.Sprintf("%03000d", 0)
	h.token(pa, big)
	if seqs := h.log.storedSeqs(); !slices.Equal(seqs, []int64{h.conv.Seq()}) {
		t.Errorf("stored %v after an oversized token, want only it", seqs)
	}
}

// TestResumeReplaysMissedFrames: a subscriber drops, others keep going, and
// it comes back with the last seq it saw. It must get every frame it is
// entitled to, once, in order, and then the live ones with no gap.
func TestResumeReplaysMissedFrames(t *testing.T) {
	tests := []struct {
		name      string
		self      bool
		subscribe []string
	}{
		{"plain", false, nil},
		{"self-subscribed", true, nil},
		{"subscribed to a and sub", false, []string{"a", "sub"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, wire.DefaultLimits)
			_, sWitness := h.join("acc_W", "witness", false, "")
			pa, _ := h.join("acc_A", "a", false, "")
			req := joinRequest("acc_S", "sub", tt.self, "")
			req.SubscribeStreams = tt.subscribe
			sub, sSub := h.joinWith(req)
			pb, _ := h.join("acc_B", "b", false, "")
			h.token(pa, "a1")
			h.token(pb, "b1")
			h.token(sub, "s1")
			seen, _ := received(t, sSub)
			if len(seen) == 0 {
				t.Fatal("the subscriber heard nothing before dropping")
			}
			lastSeen := seen[len(seen)-1]
			// The socket dies: a token it sent meanwhile never came back to it.
			h.token(sub, "lost")
			h.conv.Leave(sub.ConnID)

			h.token(pa, "a2")
			h.setMetadata(pb, `{"b":2}`)
			pc, _ := h.join("acc_C", "c", false, "")
			h.token(pc, "c1")
			h.token(pa, "a3")
			h.setMetadata(pa, `{"a":3}`)
			h.conv.Leave(pc.ConnID)
			current := h.conv.Seq()

			req.ResumeAfter = &lastSeen
			sub2, sSub2 := h.joinWith(req)
			joined := joinedFrame(t, sSub2)
			if string(joined["recovered"]) != "true" {
				t.Errorf("joined recovered %s, want true", joined["recovered"])
			}
			if seqOf(t, joined) != current {
				t.Errorf("joined seq %d, want the current %d", seqOf(t, joined), current)
			}
			if _, ok := joined["resumed"]; ok {
				t.Error("a resume after a drop is not a takeover: no resumed")
			}
			replayed, texts := received(t, sSub2)
			want := entitled(h.log, sub2.Attachment, lastSeen, current)
			if len(want) == 0 {
				t.Fatal("the scenario left nothing to replay")
			}
			if !slices.Equal(replayed, want) {
				t.Fatalf("replayed seqs %v, want %v", replayed, want)
			}
			// Byte for byte what was sent live.
			for i, text := range texts {
				if e := h.log.all[replayed[i]-1]; string(e.Frame) != text {
					t.Errorf("replayed %s, live was %s", text, e.Frame)
				}
			}
			// The filters apply to the replay.
			ownReplayed := false
			for _, text := range texts {
				f := decodeFrame(t, text)
				if str(t, f["stream_id"]) == sub.StreamID {
					ownReplayed = true
				}
				if tt.subscribe != nil && !slices.Contains(tt.subscribe, str(t, f["stream_name"])) {
					t.Errorf("replayed %s outside the subscription", text)
				}
			}
			if ownReplayed != tt.self {
				t.Errorf("own frames replayed: %v, want %v (self-subscribe)", ownReplayed, tt.self)
			}

			// Live again: the next frames follow with no gap and no duplicate
			// (current+1 is its own stream_joined, which goes to the others
			// only, even for a self-subscriber).
			sSub2.reset()
			h.token(pa, "a4")
			h.token(pb, "b2")
			live, _ := received(t, sSub2)
			if want := entitled(h.log, sub2.Attachment, current+1, h.conv.Seq()); !slices.Equal(live, want) || len(want) == 0 {
				t.Errorf("live seqs after the resume %v, want %v", live, want)
			}
			all := append(append(append([]int64{}, seen...), replayed...), live...)
			if !strictlyIncreasing(all) {
				t.Errorf("seqs across the drop %v repeat or go back", all)
			}
			// Everything it was entitled to from its first join, minus what
			// happened while it held the stream (own joining), is covered.
			first := entitled(h.log, sub2.Attachment, 0, h.conv.Seq())
			for _, s := range first {
				if s > seen[0] && !slices.Contains(all, s) && s != current+1 {
					t.Errorf("seq %d was never delivered across the drop", s)
				}
			}
			// Nobody else got a replay.
			wseqs, _ := received(t, sWitness)
			if !strictlyIncreasing(wseqs) {
				t.Errorf("witness seqs %v", wseqs)
			}
		})
	}
}

func TestResumeNotRecovered(t *testing.T) {
	tests := []struct {
		name   string
		limits func(*wire.Limits)
		after  func(seen, current int64) int64
	}{
		{"buffer overflowed in count", func(l *wire.Limits) { l.ReplayEvents = 5 }, func(seen, _ int64) int64 { return seen }},
		{"buffer overflowed in bytes", func(l *wire.Limits) { l.ReplayBytes = 600 }, func(seen, _ int64) int64 { return seen }},
		{"from zero after an overflow", func(l *wire.Limits) { l.ReplayEvents = 5 }, func(_, _ int64) int64 { return 0 }},
		{"ahead of the current seq", func(*wire.Limits) {}, func(_, current int64) int64 { return current + 1 }},
		{"far ahead of the current seq", func(*wire.Limits) {}, func(_, current int64) int64 { return current + 1000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limits := wire.DefaultLimits
			tt.limits(&limits)
			h := newHarness(t, limits)
			pa, _ := h.join("acc_A", "a", false, "")
			sub, sSub := h.join("acc_S", "sub", false, "")
			h.token(pa, "seen")
			seen, _ := received(t, sSub)
			h.conv.Leave(sub.ConnID)
			for i := 0; i < 20; i++ {
				h.token(pa, fmt.Sprintf("missed-%03d", i))
			}
			current := h.conv.Seq()
			after := tt.after(seen[len(seen)-1], current)

			sub2, sSub2 := h.joinWith(resumeRequest("acc_S", "sub", false, after))
			joined := joinedFrame(t, sSub2)
			if string(joined["recovered"]) != "false" {
				t.Errorf("joined recovered %s, want false", joined["recovered"])
			}
			if seqOf(t, joined) != current {
				t.Errorf("joined seq %d, want %d", seqOf(t, joined), current)
			}
			// Whatever is replayed is in order, within the request, and
			// cannot pass for the complete gap.
			replayed, _ := received(t, sSub2)
			want := entitled(h.log, sub2.Attachment, after, current)
			if !strictlyIncreasing(replayed) {
				t.Errorf("replayed %v out of order", replayed)
			}
			for _, s := range replayed {
				if !slices.Contains(want, s) {
					t.Errorf("replayed seq %d, not missed or not entitled", s)
				}
			}
			if len(want) > 0 && slices.Equal(replayed, want) {
				t.Errorf("a complete replay %v was reported as not recovered", replayed)
			}
			if after > current && len(replayed) != 0 {
				t.Errorf("resume from the future replayed %v", replayed)
			}
		})
	}
}

func TestResumeRecoveredWithoutReplay(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	pa, _ := h.join("acc_A", "a", false, "")
	h.token(pa, "x")
	current := h.conv.Seq()
	_, s := h.joinWith(resumeRequest("acc_S", "sub", false, current))
	joined := joinedFrame(t, s)
	if string(joined["recovered"]) != "true" || seqOf(t, joined) != current {
		t.Errorf("resume from the current seq: %q", s.frames()[0])
	}
	if len(s.sent) != 1 {
		t.Errorf("resume from the current seq replayed %q", s.frames()[1:])
	}
	// Without a resume, joined says nothing about recovery.
	_, s = h.join("acc_T", "plain", false, "")
	if _, ok := joinedFrame(t, s)["recovered"]; ok {
		t.Errorf("joined without resume carries recovered: %q", s.frames()[0])
	}
	if seqOf(t, joinedFrame(t, s)) != h.conv.Seq()-1 {
		t.Errorf("joined seq %q, want the seq before its own stream_joined", s.frames()[0])
	}
}

// TestResumeFromZeroReplaysEverything: a client that saw nothing (seq 0)
// gets the whole history while the buffer still holds it all.
func TestResumeFromZeroReplaysEverything(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	pa, _ := h.join("acc_A", "a", false, "")
	h.token(pa, "1")
	h.token(pa, "2")
	p, s := h.joinWith(resumeRequest("acc_S", "sub", false, 0))
	if string(joinedFrame(t, s)["recovered"]) != "true" {
		t.Errorf("joined %q, want recovered true", s.frames()[0])
	}
	got, _ := received(t, s)
	if want := entitled(h.log, p.Attachment, 0, 3); !slices.Equal(got, want) || len(want) != 3 {
		t.Errorf("replayed %v, want %v", got, want)
	}
}

func TestReplayOff(t *testing.T) {
	limits := wire.DefaultLimits
	limits.ReplayEvents = 0
	h := newHarness(t, limits)
	pa, _ := h.join("acc_A", "a", false, "")
	sub, sSub := h.join("acc_S", "sub", false, "")
	h.token(pa, "1")
	h.conv.Leave(sub.ConnID)
	h.token(pa, "2")
	h.setMetadata(pa, `{"m":1}`)
	current := h.conv.Seq()
	if h.log.appends != 0 || len(h.log.events) != 0 {
		t.Errorf("%d events stored with replay off", h.log.appends)
	}
	if h.log.saved != current || int64(len(h.log.saves)) != current {
		t.Errorf("saved seq %d over %d saves, want %d each time", h.log.saved, len(h.log.saves), current)
	}
	// Live delivery still carries seq.
	if seqs, _ := received(t, sSub); !slices.Equal(seqs, []int64{3}) {
		t.Errorf("live seqs %v, want [3]", seqs)
	}
	_, s := h.joinWith(resumeRequest("acc_S", "sub", false, 3))
	if string(joinedFrame(t, s)["recovered"]) != "false" || len(s.sent) != 1 {
		t.Errorf("resume from an older seq with replay off: %q, want recovered false and no replay", s.frames())
	}
	now := h.conv.Seq()
	_, s = h.joinWith(resumeRequest("acc_T", "t", false, now))
	if string(joinedFrame(t, s)["recovered"]) != "true" || len(s.sent) != 1 {
		t.Errorf("resume from the current seq with replay off: %q, want recovered true", s.frames())
	}
	if newHarnessOver(t, limits, h.log).conv.Seq() != h.conv.Seq() {
		t.Error("the seq did not survive a wake-up with replay off")
	}
}

// TestReplayTurnedOffOverStoredEvents: a deployment that sets
// AMS_REPLAY_EVENTS=0 while conversations still hold events from before.
func TestReplayTurnedOffOverStoredEvents(t *testing.T) {
	log := newMemLog(t)
	h := newHarnessOver(t, wire.DefaultLimits, log)
	pa, _ := h.join("acc_A", "a", false, "")
	h.token(pa, "stored")
	stored := h.conv.Seq()

	off := wire.DefaultLimits
	off.ReplayEvents = 0
	woken := newHarnessOver(t, off, log)
	woken.next = h.next
	peers, _ := restored(t, pa.Attachment)
	woken.conv.Restore(awake(peers))
	woken.conv.Receive(pa.ConnID, []byte(`{"type":"token","data":"not stored"}`))
	if woken.conv.Seq() != stored+1 {
		t.Fatalf("Seq() = %d, want %d", woken.conv.Seq(), stored+1)
	}
	_, s := woken.joinWith(resumeRequest("acc_S", "sub", false, stored))
	joined := joinedFrame(t, s)
	replayed, _ := received(t, s)
	if string(joined["recovered"]) == "true" && len(replayed) == 0 {
		t.Fatalf("recovered true but the token of seq %d was never stored nor replayed (ReplayBuffer.Covers trusts events left from before replay was turned off)", stored+1)
	}
}

// TestReplayOffThenOnLeavesGap: events stored, replay turned off for a
// while (seqs persisted only), then on again. The stored events now have a
// hole, which a resume from before it must not report as recovered.
func TestReplayOffThenOnLeavesGap(t *testing.T) {
	log := newMemLog(t)
	on, off := wire.DefaultLimits, wire.DefaultLimits
	off.ReplayEvents = 0
	h := newHarnessOver(t, on, log)
	pa, _ := h.join("acc_A", "a", false, "") // seq 1
	h.token(pa, "stored")                    // seq 2
	for _, limits := range []wire.Limits{off, on} {
		woken := newHarnessOver(t, limits, log)
		woken.next = h.next + 10
		peers, _ := restored(t, pa.Attachment)
		woken.conv.Restore(awake(peers))
		woken.conv.Receive(pa.ConnID, []byte(`{"type":"token","data":"x"}`)) // seq 3 not stored, then seq 4 stored
		h = woken
	}
	if h.conv.Seq() != 4 || !slices.Equal(log.storedSeqs(), []int64{1, 2, 4}) {
		t.Fatalf("Seq() = %d, stored %v; want 4 and [1 2 4]", h.conv.Seq(), log.storedSeqs())
	}
	_, s := h.joinWith(resumeRequest("acc_S", "sub", false, 1))
	replayed, _ := received(t, s)
	if string(joinedFrame(t, s)["recovered"]) == "true" && !slices.Contains(replayed, 3) {
		t.Fatalf("recovered true but seq 3 was never stored; replayed %v (ReplayBuffer.Covers does not check the stored seqs are contiguous up to current)", replayed)
	}
}

func TestSelectiveSubscriptionLive(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	req := joinRequest("acc_S", "sub", false, "")
	req.SubscribeStreams = []string{"a", "c"}
	_, sSub := h.joinWith(req)
	_, sAll := h.join("acc_X", "all", false, "")
	var names []string
	if err := json.Unmarshal(joinedFrame(t, sSub)["subscribed_streams"], &names); err != nil || !slices.Equal(names, []string{"a", "c"}) {
		t.Errorf("joined %q, want subscribed_streams [a c]", sSub.frames()[0])
	}
	if _, ok := joinedFrame(t, sAll)["subscribed_streams"]; ok {
		t.Errorf("joined without subscription carries subscribed_streams: %q", sAll.frames()[0])
	}
	sSub.reset()
	sAll.reset()

	pa, _ := h.join("acc_A", "a", false, "")
	pb, _ := h.join("acc_B", "b", false, "")
	pc, _ := h.join("acc_A", "c", false, "") // subscribed before it existed
	for _, p := range []*Peer{pa, pb, pc} {
		h.token(p, p.Name)
	}
	h.setMetadata(pb, `{"b":1}`)
	h.setMetadata(pa, `{"a":1}`)
	pb2, _ := h.join("acc_B", "b", false, `{"b":2}`) // takeover with new metadata
	h.join("acc_A", "a", false, `{"a":2}`)           // likewise
	h.conv.Leave(pb2.ConnID)
	h.conv.Leave(pc.ConnID)

	type frame struct{ typ, name string }
	list := func(sock *recordingSocket) (out []frame) {
		for _, text := range sock.frames() {
			f := decodeFrame(t, text)
			out = append(out, frame{str(t, f["type"]), str(t, f["stream_name"])})
		}
		return out
	}
	want := []frame{
		{"stream_joined", "a"}, {"stream_joined", "c"},
		{"token", "a"}, {"token", "c"},
		{"stream_metadata", "a"},
		{"stream_metadata", "a"},
		{"stream_left", "c"},
	}
	if got := list(sSub); !slices.Equal(got, want) {
		t.Errorf("subscriber got %v, want %v", got, want)
	}
	wantAll := []frame{
		{"stream_joined", "a"}, {"stream_joined", "b"}, {"stream_joined", "c"},
		{"token", "a"}, {"token", "b"}, {"token", "c"},
		{"stream_metadata", "b"}, {"stream_metadata", "a"},
		{"stream_metadata", "b"}, {"stream_metadata", "a"},
		{"stream_left", "b"}, {"stream_left", "c"},
	}
	if got := list(sAll); !slices.Equal(got, wantAll) {
		t.Errorf("unfiltered peer got %v, want %v", got, wantAll)
	}
}

func TestHears(t *testing.T) {
	me := Attachment{StreamID: "str_me", Name: "me"}
	tests := []struct {
		name       string
		self       bool
		subscribed []string
		fromID     string
		fromName   string
		want       bool
	}{
		{"another stream", false, nil, "str_x", "x", true},
		{"own stream", false, nil, "str_me", "me", false},
		{"own stream, self-subscribed", true, nil, "str_me", "me", true},
		{"subscribed name", false, []string{"x"}, "str_x", "x", true},
		{"name not subscribed", false, []string{"x"}, "str_y", "y", false},
		{"own name subscribed, not self", false, []string{"me"}, "str_me", "me", false},
		{"own name subscribed, self", true, []string{"me"}, "str_me", "me", true},
		{"own name not subscribed, self", true, []string{"x"}, "str_me", "me", false},
		{"empty subscription is all", false, []string{}, "str_x", "x", true},
		{"names are case sensitive", false, []string{"X"}, "str_x", "x", false},
		{"same name, another stream id", false, nil, "str_other", "me", true},
		{"subscribed stream id", false, []string{"str_x"}, "str_x", "x", true},
		{"stream id not subscribed", false, []string{"str_x"}, "str_y", "y", false},
		{"ids and names mixed", false, []string{"str_x", "y"}, "str_y", "y", true},
		{"own id subscribed, not self", false, []string{"str_me"}, "str_me", "me", false},
	}
	for _, tt := range tests {
		a := me
		a.Self, a.Subscribed = tt.self, tt.subscribed
		if got := a.Hears(tt.fromID, tt.fromName); got != tt.want {
			t.Errorf("%s: Hears(%s, %s) = %v, want %v", tt.name, tt.fromID, tt.fromName, got, tt.want)
		}
	}
}

func TestReceipts(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	req := joinRequest("acc_E", "emitter", false, "")
	req.Receipts = true
	pe, sE := h.joinWith(req)
	req = joinRequest("acc_R", "other-with-receipts", false, "")
	req.Receipts = true
	po, sO := h.joinWith(req)
	req = joinRequest("acc_E", "self-with-receipts", true, "")
	req.Receipts = true
	ps, sS := h.joinWith(req)
	pPlain, sPlain := h.join("acc_P", "plain", false, "")
	for _, s := range []*recordingSocket{sE, sO, sS, sPlain} {
		s.reset()
	}

	h.token(pe, "one")
	h.token(pe, "two")
	h.setMetadata(pe, `{"x":1}`)
	h.conv.Receive(pe.ConnID, []byte(`{"type":"ping"}`))
	tokens := entitled(h.log, po.Attachment, 0, h.conv.Seq())
	got := sE.frames()
	want := []string{
		`{"type":"x_receipt","seq":` + strconv.FormatInt(tokens[len(tokens)-3], 10) + `}`,
		`{"type":"x_receipt","seq":` + strconv.FormatInt(tokens[len(tokens)-2], 10) + `}`,
		wire.PongFrame,
	}
	if !slices.Equal(got, want) {
		t.Errorf("emitter got %q, want %q", got, want)
	}
	// The receipts name the seqs the peers saw on the tokens.
	frames := expectFrames(t, "other", sO, "token", "token", "stream_metadata")
	if seqOf(t, frames[0]) != tokens[len(tokens)-3] || seqOf(t, frames[1]) != tokens[len(tokens)-2] {
		t.Errorf("token seqs %s, %s do not match the receipts %q", frames[0]["seq"], frames[1]["seq"], got)
	}
	expectFrames(t, "plain", sPlain, "token", "token", "stream_metadata")

	// A self-subscribed emitter gets its token, then the receipt.
	for _, s := range []*recordingSocket{sE, sO, sS, sPlain} {
		s.reset()
	}
	h.token(ps, "mine")
	f := expectFrames(t, "self emitter", sS, "token", "x_receipt")
	if seqOf(t, f[0]) != seqOf(t, f[1]) || seqOf(t, f[1]) != h.conv.Seq() {
		t.Errorf("self emitter got %q", sS.frames())
	}
	expectFrames(t, "emitter", sE, "token")
	expectFrames(t, "other", sO, "token")

	// An emitter that did not ask gets none.
	sPlain.reset()
	h.token(pPlain, "no receipt please")
	if len(sPlain.sent) != 0 {
		t.Errorf("emitter without receipts got %q", sPlain.frames())
	}

	// A refused token gets no receipt.
	sO.reset()
	h.conv.Receive(po.ConnID, []byte(`{"type":"token","data":1}`))
	for _, text := range sO.frames() {
		if str(t, decodeFrame(t, text)["type"]) == wire.TypeReceipt {
			t.Errorf("refused token got a receipt: %q", sO.frames())
		}
	}
}

// TestReceiptsNeedNoListener: a receipt says the token was accepted, even
// when nobody hears it.
func TestReceiptsNeedNoListener(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	req := joinRequest("acc_E", "alone", false, "")
	req.Receipts = true
	p, s := h.joinWith(req)
	s.reset()
	h.token(p, "x")
	if got := s.frames(); len(got) != 1 || got[0] != `{"type":"x_receipt","seq":2}` {
		t.Errorf("lone emitter got %q, want the receipt of seq 2", got)
	}
}

func TestTakeoverMetadataChange(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	old, sOld := h.join("acc_A", "a", false, `{"v":1}`)
	_, sb := h.join("acc_B", "b", false, "")
	req := joinRequest("acc_C", "c", false, "")
	req.SubscribeStreams = []string{"b"}
	_, sc := h.joinWith(req)
	sOld.reset()
	sb.reset()
	sc.reset()

	p, sNew := h.join("acc_A", "a", false, `{"v":2}`)
	if !slices.Equal(sOld.closes, []wire.Close{wire.CloseStreamDisplaced}) || len(sOld.sent) != 0 {
		t.Errorf("old socket: %q %v, want only stream_displaced", sOld.frames(), sOld.closes)
	}
	f := expectFrames(t, "b", sb, "stream_metadata")[0]
	if str(t, f["stream_id"]) != old.StreamID || string(f["metadata"]) != `{"v":2}` || str(t, f["ts"]) != testTS || seqOf(t, f) != h.conv.Seq() {
		t.Errorf("stream_metadata %q", sb.frames())
	}
	if e := h.log.all[len(h.log.all)-1]; e.Seq != h.conv.Seq() || e.StreamID != old.StreamID {
		t.Errorf("the takeover's stream_metadata was not logged: %+v", e)
	}
	if !sc.quiet() {
		t.Errorf("a subscriber of b only saw %q", sc.frames())
	}
	joined := expectFrames(t, "new socket", sNew, "joined")[0]
	if string(joined["resumed"]) != "true" || string(joined["metadata"]) != `{"v":2}` {
		t.Errorf("joined %q", sNew.frames())
	}
	if s := h.conv.Streams(); string(s[len(s)-1].Metadata) != `{"v":2}` || h.conv.Peer(p.ConnID) == nil {
		t.Errorf("Streams() after the takeover: %+v", s)
	}

	// Same metadata again: nothing, and no seq spent.
	sb.reset()
	seq := h.conv.Seq()
	h.join("acc_A", "a", false, `{"v":2}`)
	if !sb.quiet() || h.conv.Seq() != seq {
		t.Errorf("takeover with unchanged metadata: b got %q, seq %d → %d", sb.frames(), seq, h.conv.Seq())
	}
}

// TestTakeoverWithResume: a takeover that asks for a resume gets the frames
// its stream missed, as any resume.
func TestTakeoverWithResume(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	pa, _ := h.join("acc_A", "a", false, "")
	_, sOld := h.join("acc_S", "sub", false, "")
	h.token(pa, "seen")
	seen, _ := received(t, sOld)
	h.token(pa, "in flight") // the old socket is half dead: assume lost
	p, sNew := h.joinWith(resumeRequest("acc_S", "sub", false, seen[len(seen)-1]))
	joined := joinedFrame(t, sNew)
	if string(joined["resumed"]) != "true" || string(joined["recovered"]) != "true" {
		t.Errorf("joined %q, want resumed and recovered", sNew.frames()[0])
	}
	got, _ := received(t, sNew)
	if want := entitled(h.log, p.Attachment, seen[len(seen)-1], h.conv.Seq()); !slices.Equal(got, want) || len(want) != 1 {
		t.Errorf("replayed %v, want %v", got, want)
	}
}
