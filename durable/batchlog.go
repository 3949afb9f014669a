package durable

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/ams-dev/ams/wire"
)

// EventStore is the durable half of a BatchLog: the Durable Object's SQLite
// storage in production (eventlog_js.go).
type EventStore interface {
	// AppendBatch stores events (in seq order) in one write, one row of at
	// most wire.ReplayRowBytes as EncodeBatch lays it out (RowBytes bounds
	// it), or stores none of them and says why.
	AppendBatch(events []Event) error
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
//
// A flush is written in rows of at most wire.ReplayRowBytes (SplitRows), so
// a burst of large tokens never makes one value too big for SQLite. A row
// whose write fails all the same (storage full, or one event over the bound
// with a raised AMS_LIMIT_TOKEN_BYTES) is not retried: its events are gone
// from the log, the failure is logged, and Lost reports the highest seq
// lost, so a resume from before it is answered recovered:false, as after a
// crash.
type BatchLog struct {
	store    EventStore
	maxBatch int
	reserve  int64
	pending  []Event
	reserved int64 // the highest seq the store has reserved
	last     int64 // the highest seq appended or saved
	ticked   int64 // last, at the previous Tick
	trim     int64 // the store is to be trimmed through this seq at the next flush
	lost     int64 // the highest seq of an event whose write failed
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

// Flush writes the pending events, and a trim asked for since the last
// flush: together, one transaction instead of one per statement.
func (l *BatchLog) Flush() {
	if l.trim > 0 {
		l.store.TrimThrough(l.trim)
		l.trim = 0
	}
	if len(l.pending) == 0 {
		return
	}
	for _, row := range SplitRows(l.pending, wire.ReplayRowBytes) {
		if err := l.store.AppendBatch(row); err != nil {
			l.lost = max(l.lost, row[len(row)-1].Seq)
			fmt.Fprintf(os.Stderr, "ams: replay buffer lost events %d..%d (%d events): %v\n", row[0].Seq, row[len(row)-1].Seq, len(row), err)
		}
	}
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
	events := l.store.Since(max(after, l.trim))
	for _, e := range l.pending {
		if e.Seq > after {
			events = append(events, e)
		}
	}
	return events
}

// TrimThrough drops pending events at or below seq at once, and stored ones
// at the next flush (Since skips them meanwhile).
func (l *BatchLog) TrimThrough(seq int64) {
	l.trim = max(l.trim, seq)
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

// Lost is the highest seq of an event whose write failed, 0 if none did.
func (l *BatchLog) Lost() int64 { return l.lost }

// SplitRows cuts events into consecutive rows whose EncodeBatch encoding
// is at most maxBytes each (RowBytes), keeping their order; an event too
// big for a row on its own gets a row of its own.
func SplitRows(events []Event, maxBytes int) [][]Event {
	var rows [][]Event
	start, size := 0, rowOverhead
	for i, e := range events {
		n := eventBytes(e)
		if i > start && size+n > maxBytes {
			rows = append(rows, events[start:i:i])
			start, size = i, rowOverhead
		}
		size += n
	}
	if start < len(events) {
		rows = append(rows, events[start:])
	}
	return rows
}

// RowBytes bounds the bytes of the row EncodeBatch makes of events, meta
// and frames together: SplitRows keeps it at most its maxBytes.
func RowBytes(events []Event) int {
	size := rowOverhead
	for _, e := range events {
		size += eventBytes(e)
	}
	return size
}

// rowOverhead is the meta's brackets and SQLite's row header, rounded up;
// eventBytes bounds what one event adds: its frame, its [seq,index,length]
// (three integers of at most 20 digits) and, if its stream is new to the
// row, the stream's [id,name] with every byte escaped (6 a byte).
const rowOverhead = 64

func eventBytes(e Event) int {
	return len(e.Frame) + 3*20 + 4 + 6*(len(e.StreamID)+len(e.StreamName)) + 8
}

func (l *BatchLog) Link() wire.LinkState { return l.store.Link() }

func (l *BatchLog) SaveLink(link wire.LinkState) { l.store.SaveLink(link) }

// EncodeBatch is how a store keeps one batch in one row: the frames back to
// back, and meta, the JSON [streams, events]: streams lists each stream of
// the batch once as [stream_id, stream_name], events has [seq, index into
// streams, frame length] per event. One row per batch, not per event, is
// what makes a batch cheap to write (BENCHMARKS.md).
func EncodeBatch(events []Event, meta, frames []byte) ([]byte, []byte) {
	meta = append(meta[:0], "[["...)
	frames = frames[:0]
	var streams []Event // one event of each stream, in order of appearance
	index := make([]int, len(events))
	for i, e := range events {
		k := slices.IndexFunc(streams, func(s Event) bool { return s.StreamID == e.StreamID && s.StreamName == e.StreamName })
		if k < 0 {
			k = len(streams)
			if k > 0 {
				meta = append(meta, ',')
			}
			meta = append(meta, '[')
			meta = wire.AppendJSONString(meta, e.StreamID)
			meta = append(meta, ',')
			meta = wire.AppendJSONString(meta, e.StreamName)
			meta = append(meta, ']')
			streams = append(streams, e)
		}
		index[i] = k
	}
	meta = append(meta, "],["...)
	for i, e := range events {
		if i > 0 {
			meta = append(meta, ',')
		}
		meta = append(meta, '[')
		meta = strconv.AppendInt(meta, e.Seq, 10)
		meta = append(meta, ',')
		meta = strconv.AppendInt(meta, int64(index[i]), 10)
		meta = append(meta, ',')
		meta = strconv.AppendInt(meta, int64(len(e.Frame)), 10)
		meta = append(meta, ']')
		frames = append(frames, e.Frame...)
	}
	return append(meta, "]]"...), frames
}

// DecodeBatch returns the events of a batch with Seq > after, or false if
// the row is not one EncodeBatch wrote.
func DecodeBatch(meta, frames []byte, after int64) ([]Event, bool) {
	if !gjson.ValidBytes(meta) {
		return nil, false
	}
	parts := gjson.ParseBytes(meta).Array()
	if len(parts) != 2 {
		return nil, false
	}
	var streams [][2]string
	for _, s := range parts[0].Array() {
		f := s.Array()
		if len(f) != 2 {
			return nil, false
		}
		streams = append(streams, [2]string{f[0].String(), f[1].String()})
	}
	var events []Event
	at := 0
	for _, e := range parts[1].Array() {
		f := e.Array()
		if len(f) != 3 {
			return nil, false
		}
		k, n := f[1].Int(), f[2].Int()
		if k < 0 || k >= int64(len(streams)) || n < 0 || int64(at)+n > int64(len(frames)) {
			return nil, false
		}
		if seq := f[0].Int(); seq > after {
			events = append(events, Event{Seq: seq, StreamID: streams[k][0], StreamName: streams[k][1], Frame: frames[at : at+int(n) : at+int(n)]})
		}
		at += int(n)
	}
	return events, at == len(frames)
}
