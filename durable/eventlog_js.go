package durable

import (
	"strconv"
	"syscall/js"
	"unsafe"

	"github.com/ams-dev/ams/wire"
)

// sqlEventLog is the EventStore of a BatchLog in the Durable Object's SQLite
// storage. sql.exec is synchronous; the runtime's output gate holds the
// frames sent after a write until the write is durable, which is what makes
// a seq reservation safe to use in the same event.
type sqlEventLog struct {
	sql    sqlStorage
	insert js.Value // the batch INSERT, as a JS string made once
	meta   []byte   // a batch's [[seq, stream_id, stream_name, offset, length], ...], reused
	frames []byte   // its frames, back to back, reused
}

var uint8Array = js.Global().Get("Uint8Array")

func newSQLEventLog(sql sqlStorage) *sqlEventLog {
	// A batch crosses into JS as two values, its frames as one byte array
	// (a BLOB, so SQLite cuts it by byte offsets) and the rest as JSON;
	// SQLite unpacks them: cheaper than four bound values per event, and
	// the frames need no escaping.
	l := &sqlEventLog{sql: sql, insert: js.ValueOf(`INSERT INTO events (seq, stream_id, stream_name, frame)
		SELECT value ->> 0, value ->> 1, value ->> 2, CAST(substr(?, value ->> 3, value ->> 4) AS TEXT) FROM json_each(?)`)}
	l.exec(`CREATE TABLE IF NOT EXISTS events (
		seq INTEGER PRIMARY KEY,
		stream_id TEXT NOT NULL,
		stream_name TEXT NOT NULL,
		frame TEXT NOT NULL)`)
	l.exec(`CREATE TABLE IF NOT EXISTS conversation_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)`)
	l.exec(`CREATE TABLE IF NOT EXISTS link (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL, token_hash TEXT NOT NULL)`)
	return l
}

func (l *sqlEventLog) exec(query string, bindings ...any) js.Value {
	return l.sql.Exec(query, bindings...)
}

// AppendBatch writes events in one statement.
func (l *sqlEventLog) AppendBatch(events []Event) {
	meta, frames := append(l.meta[:0], '['), l.frames[:0]
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
		meta = strconv.AppendInt(meta, int64(len(frames)+1), 10) // substr counts from 1
		meta = append(meta, ',')
		meta = strconv.AppendInt(meta, int64(len(e.Frame)), 10)
		meta = append(meta, ']')
		frames = append(frames, e.Frame...)
	}
	meta = append(meta, ']')
	l.meta, l.frames = meta, frames
	blob := uint8Array.New(len(frames))
	js.CopyBytesToJS(blob, frames)
	l.sql.Exec(l.insert, blob.Get("buffer"), unsafe.String(unsafe.SliceData(meta), len(meta)))
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
	return events
}

func (l *sqlEventLog) TrimThrough(seq int64) {
	l.exec("DELETE FROM events WHERE seq <= ?", float64(seq))
}

func (l *sqlEventLog) Sizes() []EventSize {
	rows := l.exec("SELECT seq, length(CAST(frame AS BLOB)) AS size FROM events ORDER BY seq").Call("toArray")
	sizes := make([]EventSize, rows.Length())
	for i := range sizes {
		row := rows.Index(i)
		sizes[i] = EventSize{Seq: int64(row.Get("seq").Float()), Size: row.Get("size").Int()}
	}
	return sizes
}

func (l *sqlEventLog) LastSeq() int64 {
	row := l.exec(`SELECT max(
		coalesce((SELECT max(seq) FROM events), 0),
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
