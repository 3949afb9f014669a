package durable

import (
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// TestWaitersRemoveThemselves: a read that times out leaves no waiter
// behind (before, every timed-out long-poll stayed until the next event).
func TestWaitersRemoveThemselves(t *testing.T) {
	var w Waiters
	for i := 0; i < 100; i++ {
		if w.Wait(time.Microsecond, nil) {
			t.Fatal("woken with no event")
		}
	}
	if w.Len() != 0 {
		t.Fatalf("%d timed-out waiters kept", w.Len())
	}
	done := make(chan bool)
	go func() { done <- w.Wait(time.Minute, nil) }()
	for w.Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	w.Wake()
	if !<-done || w.Len() != 0 {
		t.Fatalf("a woken waiter: %d left", w.Len())
	}
}

// stream is a peer emitting n frames every gap, from first on, against a
// simulated clock that Poll's wait advances.
type stream struct {
	now         time.Time
	first, gap  time.Duration
	n, size     int
	start       time.Time
	read, waits int
}

func (s *stream) at(i int) time.Time { return s.start.Add(s.first + time.Duration(i)*s.gap) }

func (s *stream) emitted() int {
	n := 0
	for i := 0; i < s.n && !s.at(i).After(s.now); i++ {
		n++
	}
	return n
}

func (s *stream) wait(d time.Duration) bool {
	s.waits++
	next := s.emitted()
	if next < s.n && !s.at(next).After(s.now.Add(d)) {
		s.now = s.at(next)
		return true
	}
	s.now = s.now.Add(d)
	return false
}

// reads counts the recv calls an agent needs to read the whole stream.
func (s *stream) reads(gatherMS int) int {
	calls := 0
	for s.read < s.n {
		calls++
		Poll(func() time.Time { return s.now }, s.wait, func() (int, int) {
			return s.emitted() - s.read, (s.emitted() - s.read) * s.size
		}, wire.MaxMemberWait, gatherMS)
		s.read = s.emitted()
	}
	return calls
}

// TestPollGathersAStreamedReply (11.8): a peer streaming 18 words 40 ms
// apart is read in one call with the default gather interval; without
// gathering it took one call per word.
func TestPollGathersAStreamedReply(t *testing.T) {
	newStream := func() *stream {
		return &stream{now: testTime, start: testTime, first: 100 * time.Millisecond, gap: 40 * time.Millisecond, n: 18, size: 200}
	}
	before, after := newStream().reads(0), newStream().reads(wire.DefaultGatherMS)
	t.Logf("recv calls per streamed reply of 18 words 40 ms apart: %d without gathering, %d with gather_ms %d", before, after, wire.DefaultGatherMS)
	if before != 18 || after != 1 {
		t.Fatalf("calls: %d without gathering, %d with", before, after)
	}
	// A pause longer than the interval ends the read: two bursts, two reads.
	s := newStream()
	s.gap = time.Duration(wire.DefaultGatherMS+50) * time.Millisecond
	s.n = 2
	if got := s.reads(wire.DefaultGatherMS); got != 2 {
		t.Errorf("two words %s apart took %d reads", s.gap, got)
	}
}

// TestPollBounds: gathering stops at the frame bound and the total time
// bound, and an idle wait ends at wait_ms.
func TestPollBounds(t *testing.T) {
	s := &stream{now: testTime, start: testTime, gap: time.Millisecond, n: wire.MaxGatherFrames * 4, size: 10}
	Poll(func() time.Time { return s.now }, s.wait, func() (int, int) { return s.emitted(), s.emitted() * s.size }, 0, wire.MaxGatherMS)
	if got := s.emitted(); got != wire.MaxGatherFrames {
		t.Errorf("gathered %d frames, bound %d", got, wire.MaxGatherFrames)
	}
	slow := &stream{now: testTime, start: testTime, gap: time.Duration(wire.MaxGatherMS-1) * time.Millisecond, n: 1000, size: 1}
	Poll(func() time.Time { return slow.now }, slow.wait, func() (int, int) { return slow.emitted(), slow.emitted() }, 0, wire.MaxGatherMS)
	if took := slow.now.Sub(testTime); took > (wire.MaxGatherTotalMS+wire.MaxGatherMS)*time.Millisecond {
		t.Errorf("gathering went on for %s", took)
	}
	idle := &stream{now: testTime, start: testTime, n: 0}
	Poll(func() time.Time { return idle.now }, idle.wait, func() (int, int) { return 0, 0 }, 1500, wire.DefaultGatherMS)
	if took := idle.now.Sub(testTime); took != 1500*time.Millisecond {
		t.Errorf("an idle read waited %s", took)
	}
}
