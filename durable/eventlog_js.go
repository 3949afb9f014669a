package durable

import (
	"syscall/js"
	"unsafe"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// sqlEventLog is the EventStore of a BatchLog in the Durable Object's SQLite
// storage. sql.exec is synchronous; the runtime's output gate holds the
// frames sent after a write until the write is durable, which is what makes
// a seq reservation safe to use in the same event.
type sqlEventLog struct {
	sql    sqlStorage
	insert js.Value // the batch INSERT, as a JS string made once
	meta   []byte   // EncodeBatch's buffers, reused
	frames []byte
	legacy int64 // the highest seq in events, 0 once it is empty
}

var uint8Array = js.Global().Get("Uint8Array")

// Events live one row per batch in event_batches (EncodeBatch), keyed by the
// batch's last seq; rows of events are what an older version wrote, one per
// event, and are read and trimmed the same way until they are gone.
func newSQLEventLog(sql sqlStorage) *sqlEventLog {
	l := &sqlEventLog{sql: sql, insert: js.ValueOf("INSERT INTO event_batches (last_seq, meta, frames) VALUES (?, ?, ?)")}
	l.exec(`CREATE TABLE IF NOT EXISTS events (
		seq INTEGER PRIMARY KEY,
		stream_id TEXT NOT NULL,
		stream_name TEXT NOT NULL,
		frame TEXT NOT NULL)`)
	l.exec(`CREATE TABLE IF NOT EXISTS event_batches (
		last_seq INTEGER PRIMARY KEY,
		meta TEXT NOT NULL,
		frames BLOB NOT NULL)`)
	l.exec(`CREATE TABLE IF NOT EXISTS conversation_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)`)
	l.exec(`CREATE TABLE IF NOT EXISTS link (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL, token_hash TEXT NOT NULL)`)
	l.legacy = int64(l.exec("SELECT coalesce(max(seq), 0) AS seq FROM events").Call("one").Get("seq").Float())
	return l
}

func (l *sqlEventLog) exec(query string, bindings ...any) js.Value {
	return l.sql.Exec(query, bindings...)
}

// AppendBatch writes events as one row: three values cross into JS, the
// frames as one byte array. A refused write (the exception sql.exec
// throws) is returned, for BatchLog to account for.
func (l *sqlEventLog) AppendBatch(events []Event) error {
	l.meta, l.frames = EncodeBatch(events, l.meta, l.frames)
	blob := uint8Array.New(len(l.frames))
	js.CopyBytesToJS(blob, l.frames)
	return bridge.Try(func() {
		l.sql.Exec(l.insert, float64(events[len(events)-1].Seq), unsafe.String(unsafe.SliceData(l.meta), len(l.meta)), blob.Get("buffer"))
	})
}

func (l *sqlEventLog) Since(after int64) []Event {
	rows := l.exec("SELECT seq, stream_id, stream_name, frame FROM events WHERE seq > ? ORDER BY seq", float64(after)).Call("toArray")
	events := make([]Event, rows.Length())
	for i := range events {
		row := rows.Index(i)
		events[i] = Event{
			Seq:        int64(row.Get("seq").Float()),
			StreamID:   row.Get("stream_id").String(),
			StreamName: row.Get("stream_name").String(),
			Frame:      []byte(row.Get("frame").String()),
		}
	}
	l.batches(after, func(batch []Event) { events = append(events, batch...) })
	return events
}

// batches calls fn with the events after after of every batch holding one.
func (l *sqlEventLog) batches(after int64, fn func([]Event)) {
	rows := l.exec("SELECT meta, frames FROM event_batches WHERE last_seq > ? ORDER BY last_seq", float64(after)).Call("toArray")
	for i := 0; i < rows.Length(); i++ {
		row := rows.Index(i)
		blob := uint8Array.New(row.Get("frames"))
		frames := make([]byte, blob.Length())
		js.CopyBytesToGo(frames, blob)
		if batch, ok := DecodeBatch([]byte(row.Get("meta").String()), frames, after); ok {
			fn(batch)
		}
	}
}

// TrimThrough deletes what lies at or below seq: a batch only when all of
// it does (Since filters the rest).
func (l *sqlEventLog) TrimThrough(seq int64) {
	if seq >= l.legacy && l.legacy > 0 {
		l.exec("DELETE FROM events")
		l.legacy = 0
	} else if l.legacy > 0 {
		l.exec("DELETE FROM events WHERE seq <= ?", float64(seq))
	}
	l.exec("DELETE FROM event_batches WHERE last_seq <= ?", float64(seq))
}

func (l *sqlEventLog) Sizes() []EventSize {
	rows := l.exec("SELECT seq, length(CAST(frame AS BLOB)) AS size FROM events ORDER BY seq").Call("toArray")
	sizes := make([]EventSize, rows.Length())
	for i := range sizes {
		row := rows.Index(i)
		sizes[i] = EventSize{Seq: int64(row.Get("seq").Float()), Size: row.Get("size").Int()}
	}
	l.batches(0, func(batch []Event) {
		for _, e := range batch {
			sizes = append(sizes, EventSize{Seq: e.Seq, Size: len(e.Frame)})
		}
	})
	return sizes
}

func (l *sqlEventLog) LastSeq() int64 {
	row := l.exec(`SELECT max(
		coalesce((SELECT max(seq) FROM events), 0),
		coalesce((SELECT max(last_seq) FROM event_batches), 0),
		coalesce((SELECT value FROM conversation_state WHERE key = 'seq'), 0)) AS seq`).Call("one")
	return int64(row.Get("seq").Float())
}

func (l *sqlEventLog) Reserve(seq int64) {
	l.exec("INSERT OR REPLACE INTO conversation_state (key, value) VALUES ('seq', ?)", float64(seq))
}

// Link reads the link table; a conversation rotated before the object kept
// hashes has only its generation, in conversation_state.
func (l *sqlEventLog) Link() wire.LinkState {
	rows := l.exec("SELECT generation, token_hash FROM link WHERE id = 1").Call("toArray")
	if rows.Length() > 0 {
		row := rows.Index(0)
		return wire.LinkState{Generation: int64(row.Get("generation").Float()), TokenHash: row.Get("token_hash").String()}
	}
	row := l.exec("SELECT coalesce((SELECT value FROM conversation_state WHERE key = 'link_generation'), 0) AS g").Call("one")
	return wire.LinkState{Generation: int64(row.Get("g").Float())}
}

func (l *sqlEventLog) SaveLink(link wire.LinkState) {
	l.exec("INSERT OR REPLACE INTO link (id, generation, token_hash) VALUES (1, ?, ?)", float64(link.Generation), link.TokenHash)
}
