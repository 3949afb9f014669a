package durable

import (
	"cmp"
	"slices"

	"github.com/ams-dev/ams/wire"
)

// Event is one seq-carrying frame as the replay buffer keeps it.
type Event struct {
	Seq        int64
	StreamID   string
	StreamName string
	Frame      []byte
}

// EventLog is the conversation's durable event storage: the Durable
// Object's SQLite database in production.
type EventLog interface {
	// Append stores e. Seq values only grow.
	Append(e Event)
	// Since returns the stored events with Seq > after, in order.
	Since(after int64) []Event
	// TrimThrough deletes the events with Seq <= seq.
	TrimThrough(seq int64)
	// Sizes lists the stored events' seqs and frame sizes in order, for
	// rebuilding the buffer's bounds after a wake-up.
	Sizes() []EventSize
	// LastSeq returns the highest seq ever assigned, even when no event is
	// stored (a buffer of size zero); it persists the seq itself then.
	LastSeq() int64
	// SaveSeq persists seq when events are not stored.
	SaveSeq(seq int64)
	// Lost returns the highest seq of an event that was appended but could
	// not be stored (0 if none): a resume from before it is not complete.
	Lost() int64
	// Link returns the conversation's current magic link (zero before any
	// rotation); SaveLink persists the next one.
	Link() wire.LinkState
	SaveLink(wire.LinkState)
}

// EventSize is the bookkeeping entry of one stored event.
type EventSize struct {
	Seq  int64
	Size int
}

// ReplayBuffer decides what the event log keeps: at most maxEvents events
// and maxBytes of frames, trimming the oldest in batches so a busy
// conversation does not pay a delete per token.
type ReplayBuffer struct {
	maxEvents int
	maxBytes  int
	entries   []EventSize // oldest first
	bytes     int
}

// NewReplayBuffer returns a buffer bounded by maxEvents and maxBytes,
// holding the entries already stored.
func NewReplayBuffer(maxEvents, maxBytes int, stored []EventSize) *ReplayBuffer {
	b := &ReplayBuffer{maxEvents: maxEvents, maxBytes: maxBytes}
	for _, e := range stored {
		b.entries = append(b.entries, e)
		b.bytes += e.Size
	}
	return b
}

// Enabled reports whether events are stored at all.
func (b *ReplayBuffer) Enabled() bool { return b.maxEvents > 0 }

// Add records a stored event and returns the seq through which the log
// must be trimmed, or 0 when nothing needs trimming yet.
func (b *ReplayBuffer) Add(e EventSize) (trimThrough int64) {
	b.entries = append(b.entries, e)
	b.bytes += e.Size
	slack := b.maxEvents / 10
	if len(b.entries) <= b.maxEvents+slack && b.bytes <= b.maxBytes {
		return 0
	}
	drop := 0
	for len(b.entries)-drop > b.maxEvents || b.bytes > b.maxBytes {
		if len(b.entries)-drop == 1 {
			break // the newest event always stays: it anchors the seq
		}
		b.bytes -= b.entries[drop].Size
		drop++
	}
	if drop == 0 {
		return 0
	}
	trimThrough = b.entries[drop-1].Seq
	b.entries = append(b.entries[:0:0], b.entries[drop:]...)
	return trimThrough
}

// Covers reports whether every event after seq after is still stored, given
// the conversation's current seq: a resume from after is then complete. The
// stored seqs after it must run without a hole up to current: a change of
// AMS_REPLAY_EVENTS on a live conversation, or a batch of events lost with
// the program before it reached storage (BatchLog), leaves one.
func (b *ReplayBuffer) Covers(after, current int64) bool {
	if after > current || after < 0 {
		return false
	}
	if after == current {
		return true
	}
	n := len(b.entries)
	if !b.Enabled() || n == 0 {
		return false
	}
	i, found := slices.BinarySearchFunc(b.entries, after+1, func(e EventSize, seq int64) int { return cmp.Compare(e.Seq, seq) })
	return found && b.entries[n-1].Seq == current && int64(n-i) == current-after
}
