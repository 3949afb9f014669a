package durable

import (
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/ams-dev/ams/wire"
)

// EventStore is the durable half of a BatchLog: the Durable Object's SQLite
// storage in production (eventlog_js.go).
type EventStore interface {
	// AppendBatch stores events (in seq order) in one write.
	AppendBatch(events []Event)
	// Reserve persists seq as the highest seq that may have been assigned.
	// It may be lower than a previous reservation once every seq up to it
	// is stored.
	Reserve(seq int64)
	// Since, TrimThrough, Sizes, Link and SaveLink are EventLog's, on what
	// is stored; LastSeq is the highest of the stored seqs and the
	// reservation.
	Since(after int64) []Event
	TrimThrough(seq int64)
	Sizes() []EventSize
	LastSeq() int64
	Link() wire.LinkState
	SaveLink(wire.LinkState)
}

// BatchLog is the EventLog of the Durable Object. A write to SQLite costs
// more than handling a token (BENCHMARKS.md), so appended events are kept in
// memory and written to the store together, at the latest when maxBatch are
// pending or when the adapter's timer calls Tick (the adapter states the
// time bound). Readers see the pending events too.
//
// What a crash can cost: the pending events (at most maxBatch, at most the
// time bound old) may have been sent to peers and then be lost from the
// buffer. Their seqs are never reused: before any seq is used, a durable
// reservation of the next `reserve` seqs covers it (one small write per
// `reserve` events, in the event that needs it, so the runtime holds that
// event's frames until it is durable). After a restart the conversation
// continues above the reservation, which leaves a hole in the stored seqs
// where the lost events were; ReplayBuffer.Covers then answers a resume
// across the hole `recovered: false`. An idle conversation hands the unused
// part of its reservation back (Tick), so a wake-up after a clean
// hibernation leaves no hole and resumes stay complete.
type BatchLog struct {
	store    EventStore
	maxBatch int
	reserve  int64
	pending  []Event
	reserved int64 // the highest seq the store has reserved
	last     int64 // the highest seq appended or saved
	ticked   int64 // last, at the previous Tick
}

// NewBatchLog returns a log over store that writes at most maxBatch events
// at a time and reserves seqs `reserve` at a time.
func NewBatchLog(store EventStore, maxBatch int, reserve int64) *BatchLog {
	last := store.LastSeq()
	return &BatchLog{store: store, maxBatch: max(maxBatch, 1), reserve: max(reserve, 1), reserved: last, last: last, ticked: last}
}

// claim makes seq safe to send: covered by a durable reservation.
func (l *BatchLog) claim(seq int64) {
	if seq > l.reserved {
		l.reserved = seq + l.reserve - 1
		l.store.Reserve(l.reserved)
	}
	l.last = max(l.last, seq)
}

func (l *BatchLog) Append(e Event) {
	l.claim(e.Seq)
	l.pending = append(l.pending, e)
	if len(l.pending) >= l.maxBatch {
		l.Flush()
	}
}

// SaveSeq records a seq used with the buffer off; only the reservation is written.
func (l *BatchLog) SaveSeq(seq int64) { l.claim(seq) }

// Pending is the number of events not yet written.
func (l *BatchLog) Pending() int { return len(l.pending) }

// Settled reports that everything is in the store and no reserved seq is
// left unused: the log's object could be dropped without Close.
func (l *BatchLog) Settled() bool { return len(l.pending) == 0 && l.reserved <= l.last }

// Flush writes the pending events.
func (l *BatchLog) Flush() {
	if len(l.pending) == 0 {
		return
	}
	l.store.AppendBatch(l.pending)
	clear(l.pending)
	l.pending = l.pending[:0]
}

// Tick is the adapter timer's call: it flushes and reports whether it wants
// another tick later. When no seq was used since the previous tick, the
// conversation is idle: the reservation is cut back to the last seq used
// (everything up to it is stored), so a clean shutdown leaves no hole.
func (l *BatchLog) Tick() (again bool) {
	if l.last != l.ticked {
		l.Flush()
		l.ticked = l.last
		return true
	}
	l.Close()
	return false
}

// Close flushes and gives back the unused reservation: the log's object is
// being replaced by a new one over the same store (a rebuild), which then
// continues right after the last seq used.
func (l *BatchLog) Close() {
	l.Flush()
	if l.reserved > l.last {
		l.reserved = l.last
		l.store.Reserve(l.last)
	}
}

func (l *BatchLog) Since(after int64) []Event {
	events := l.store.Since(after)
	for _, e := range l.pending {
		if e.Seq > after {
			events = append(events, e)
		}
	}
	return events
}

func (l *BatchLog) TrimThrough(seq int64) {
	l.store.TrimThrough(seq)
	kept := l.pending[:0]
	for _, e := range l.pending {
		if e.Seq > seq {
			kept = append(kept, e)
		}
	}
	clear(l.pending[len(kept):])
	l.pending = kept
}

func (l *BatchLog) Sizes() []EventSize {
	sizes := l.store.Sizes()
	for _, e := range l.pending {
		sizes = append(sizes, EventSize{Seq: e.Seq, Size: len(e.Frame)})
	}
	return sizes
}

func (l *BatchLog) LastSeq() int64 { return l.last }

func (l *BatchLog) Link() wire.LinkState { return l.store.Link() }

func (l *BatchLog) SaveLink(link wire.LinkState) { l.store.SaveLink(link) }

// EncodeBatch is how a store keeps one batch in one row: the frames back to
// back, and meta, a JSON array of [seq, stream_id, stream_name, frame
// length] per event. One row per batch, not per event, is what makes a
// batch cheap to write (BENCHMARKS.md).
func EncodeBatch(events []Event, meta, frames []byte) ([]byte, []byte) {
	meta = append(meta[:0], '[')
	frames = frames[:0]
	for i, e := range events {
		if i > 0 {
			meta = append(meta, ',')
		}
		meta = append(meta, '[')
		meta = strconv.AppendInt(meta, e.Seq, 10)
		meta = append(meta, ',')
		meta = wire.AppendJSONString(meta, e.StreamID)
		meta = append(meta, ',')
		meta = wire.AppendJSONString(meta, e.StreamName)
		meta = append(meta, ',')
		meta = strconv.AppendInt(meta, int64(len(e.Frame)), 10)
		meta = append(meta, ']')
		frames = append(frames, e.Frame...)
	}
	return append(meta, ']'), frames
}

// DecodeBatch returns the events of a batch with Seq > after, or false if
// the row is not one EncodeBatch wrote.
func DecodeBatch(meta, frames []byte, after int64) ([]Event, bool) {
	if !gjson.ValidBytes(meta) {
		return nil, false
	}
	var events []Event
	at, ok := 0, true
	gjson.ParseBytes(meta).ForEach(func(_, e gjson.Result) bool {
		f := e.Array()
		if len(f) != 4 || f[3].Int() < 0 || at+int(f[3].Int()) > len(frames) {
			ok = false
			return false
		}
		n := int(f[3].Int())
		if seq := f[0].Int(); seq > after {
			events = append(events, Event{Seq: seq, StreamID: f[1].String(), StreamName: f[2].String(), Frame: frames[at : at+n : at+n]})
		}
		at += n
		return true
	})
	return events, ok && at == len(frames)
}
