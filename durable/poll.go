package durable

import (
	"sync"
	"time"

	"github.com/ams-dev/ams/wire"
)

// Waiters are the MCP reads waiting for the conversation's next event. A
// read that times out takes itself out, so a quiet conversation polled for
// hours holds no more waiters than it has reads in flight.
type Waiters struct {
	chans map[chan struct{}]struct{}
	// Timer, when set, makes the timeouts: in workerd a JS timer, so the
	// read resumes in its own object's context, which a Go timer (firing
	// from whichever context the program last ran in) does not promise.
	Timer func(d time.Duration) (fired <-chan struct{}, stop func())
}

// Wait blocks until the next Wake or until d passes, and reports whether it
// was woken. With mu, the caller holds mu, and Wait releases it meanwhile.
func (w *Waiters) Wait(d time.Duration, mu sync.Locker) bool {
	if w.chans == nil {
		w.chans = map[chan struct{}]struct{}{}
	}
	ch := make(chan struct{})
	w.chans[ch] = struct{}{}
	if mu != nil {
		mu.Unlock()
	}
	fired, stop := w.timer(d)
	woken := false
	select {
	case <-ch:
		woken = true
	case <-fired:
	}
	stop()
	if mu != nil {
		mu.Lock()
	}
	delete(w.chans, ch)
	return woken
}

func (w *Waiters) timer(d time.Duration) (<-chan struct{}, func()) {
	if w.Timer != nil {
		return w.Timer(d)
	}
	return GoTimer(d)
}

// GoTimer is a timer of the Go runtime, as Waiters.Timer and the push leg
// take it.
func GoTimer(d time.Duration) (<-chan struct{}, func()) {
	fired := make(chan struct{})
	t := time.AfterFunc(d, func() { close(fired) })
	return fired, func() { t.Stop() }
}

// Wake releases every waiting read.
func (w *Waiters) Wake() {
	if len(w.chans) == 0 {
		return // every emit asks: an empty map's iteration is not free
	}
	for ch := range w.chans {
		close(ch)
		delete(w.chans, ch)
	}
}

// Len is the number of reads waiting.
func (w *Waiters) Len() int { return len(w.chans) }

// Poll decides how long one recv waits before it reads. With nothing to
// read it waits up to waitMS for a frame; once something is there it keeps
// gathering while the conversation is busy, until it has been quiet for
// gatherMS, or the bounds of wire.MaxGather* are reached. wait blocks for
// at most d and reports whether an event came; pending counts what the read
// would return.
func Poll(now func() time.Time, wait func(d time.Duration) bool, pending func() (frames, size int), waitMS, gatherMS int) {
	deadline := now().Add(time.Duration(min(waitMS, wire.MaxMemberWait)) * time.Millisecond)
	n, size := pending()
	for n == 0 {
		left := deadline.Sub(now())
		if left <= 0 {
			return
		}
		wait(left)
		n, size = pending()
	}
	gather := time.Duration(min(gatherMS, wire.MaxGatherMS)) * time.Millisecond
	if gather <= 0 {
		return
	}
	end := now().Add(wire.MaxGatherTotalMS * time.Millisecond)
	for n < wire.MaxGatherFrames && size < wire.MaxGatherBytes {
		left := min(gather, end.Sub(now()))
		if left <= 0 || !wait(left) {
			return
		}
		n, size = pending()
	}
}
