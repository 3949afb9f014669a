package durable

import "time"

// workerd gives a Durable Object no view of a socket's send queue: there is
// no bufferedAmount, send() never fails for a full queue, and the queue has
// no bound (docs/DELIVERY.md, "Slow subscribers"). A subscriber that stops
// reading would make the object's memory grow without limit. So the broker
// counts what it sent to a connection that acknowledges (X-AMS-Acks), and
// closes it 4290 subscriber_backpressure when it falls behind: over its
// window with no acknowledgement for the grace period, or over four windows.

// hardWindows is how many windows behind a connection is closed at once.
const hardWindows = 4

// flowWindow is the unacknowledged frames of one flow-controlled connection.
type flowWindow struct {
	maxBytes, maxFrames int
	grace               time.Duration
	inflight            []EventSize // sent, not yet acknowledged, oldest first
	bytes               int
	lastAck             time.Time
}

func newFlowWindow(maxBytes, maxFrames int, grace time.Duration, now time.Time) *flowWindow {
	return &flowWindow{maxBytes: maxBytes, maxFrames: maxFrames, grace: grace, lastAck: now}
}

// send accounts a frame about to be sent and reports whether the connection
// may have it; a frame refused is not accounted, and the connection must go.
func (w *flowWindow) send(seq int64, size int, now time.Time) bool {
	frames, bytes := len(w.inflight)+1, w.bytes+size
	if frames > w.maxFrames || bytes > w.maxBytes {
		stale := now.Sub(w.lastAck) > w.grace
		if stale || frames > hardWindows*w.maxFrames || bytes > hardWindows*w.maxBytes {
			return false
		}
	}
	w.inflight = append(w.inflight, EventSize{Seq: seq, Size: size})
	w.bytes = bytes
	return true
}

// ack releases every frame through seq.
func (w *flowWindow) ack(seq int64, now time.Time) {
	w.lastAck = now
	n := 0
	for n < len(w.inflight) && w.inflight[n].Seq <= seq {
		w.bytes -= w.inflight[n].Size
		n++
	}
	w.inflight = append(w.inflight[:0], w.inflight[n:]...)
}
