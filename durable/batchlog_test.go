package durable

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// memStore is the EventStore double: what survives a crash of the program.
// It counts its writes, the figure batching exists to cut.
type memStore struct {
	t        *testing.T
	events   []Event
	reserved int64
	batches  int
	reserves []int64
	link     wire.LinkState
	// rowCap, when set, refuses a row whose encoding is longer, as SQLite
	// refuses one over its length limit (SQLITE_TOOBIG).
	rowCap int
	rows   []int // the encoded length of every row written
}

func (s *memStore) AppendBatch(events []Event) error {
	meta, frames := EncodeBatch(events, nil, nil)
	n := len(meta) + len(frames)
	if n > RowBytes(events) {
		s.t.Errorf("a row of %d events encodes to %d bytes, over its bound %d", len(events), n, RowBytes(events))
	}
	if s.rowCap > 0 && n > s.rowCap {
		return fmt.Errorf("string or blob too big: %d bytes", n)
	}
	s.rows = append(s.rows, n)
	for _, e := range events {
		if n := len(s.events); n > 0 && e.Seq <= s.events[n-1].Seq {
			s.t.Errorf("AppendBatch seq %d after %d", e.Seq, s.events[n-1].Seq)
		}
		if e.Seq > s.reserved {
			s.t.Errorf("AppendBatch seq %d above the reservation %d", e.Seq, s.reserved)
		}
		e.Frame = slices.Clone(e.Frame)
		s.events = append(s.events, e)
	}
	s.batches++
	return nil
}

func (s *memStore) Reserve(seq int64) {
	if n := len(s.events); n > 0 && seq < s.events[n-1].Seq {
		s.t.Errorf("Reserve(%d) below the stored seq %d", seq, s.events[n-1].Seq)
	}
	s.reserved = seq
	s.reserves = append(s.reserves, seq)
}

func (s *memStore) Since(after int64) []Event { return eventsAfter(s.events, after) }

func (s *memStore) TrimThrough(seq int64) {
	s.events = slices.DeleteFunc(s.events, func(e Event) bool { return e.Seq <= seq })
}

func (s *memStore) Sizes() []EventSize { return sizesOf(s.events) }
func (s *memStore) LastSeq() int64     { return lastSeqOf(s.events, s.reserved) }

// eventsAfter, sizesOf and lastSeqOf are the reads of the test logs.
func eventsAfter(events []Event, after int64) (out []Event) {
	for _, e := range events {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out
}

func sizesOf(events []Event) []EventSize {
	sizes := make([]EventSize, len(events))
	for i, e := range events {
		sizes[i] = EventSize{Seq: e.Seq, Size: len(e.Frame)}
	}
	return sizes
}

func lastSeqOf(events []Event, saved int64) int64 {
	if n := len(events); n > 0 {
		return max(saved, events[n-1].Seq)
	}
	return saved
}

func (s *memStore) Link() wire.LinkState         { return s.link }
func (s *memStore) SaveLink(link wire.LinkState) { s.link = link }

func seqs(events []Event) (out []int64) {
	for _, e := range events {
		out = append(out, e.Seq)
	}
	return out
}

func event(seq int64) Event {
	return Event{Seq: seq, StreamID: "str_a", StreamName: "a", Frame: []byte(fmt.Sprintf(`{"seq":%d}`, seq))}
}

// TestBatchLogWritesInBatches: events reach the store maxBatch at a time,
// or at the timer's Tick; readers see pending events in order meanwhile;
// the reservation is written once per `reserve` seqs, not per event.
func TestBatchLogWritesInBatches(t *testing.T) {
	store := &memStore{t: t}
	l := NewBatchLog(store, 4, 100)
	for seq := int64(1); seq <= 3; seq++ {
		l.Append(event(seq))
	}
	if store.batches != 0 || len(store.events) != 0 {
		t.Fatalf("3 of a batch of 4 written early: %d writes", store.batches)
	}
	if got := seqs(l.Since(1)); !slices.Equal(got, []int64{2, 3}) {
		t.Errorf("Since(1) with 1..3 pending = %v", got)
	}
	l.Append(event(4))
	if store.batches != 1 || len(store.events) != 4 || l.Pending() != 0 {
		t.Fatalf("a full batch: %d writes, %d stored, %d pending", store.batches, len(store.events), l.Pending())
	}
	l.Append(event(5))
	if got := seqs(l.Since(0)); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Errorf("Since(0) over stored and pending = %v", got)
	}
	if !l.Tick() || store.batches != 2 || len(store.events) != 5 {
		t.Fatalf("Tick did not flush the pending event or asked for no further tick: %d writes", store.batches)
	}
	if !slices.Equal(store.reserves, []int64{100}) {
		t.Errorf("reservations %v, want one of 1..100", store.reserves)
	}
	if l.LastSeq() != 5 {
		t.Errorf("LastSeq %d", l.LastSeq())
	}
	for seq := int64(6); seq <= 201; seq++ {
		l.Append(event(seq))
	}
	if !slices.Equal(store.reserves, []int64{100, 200, 300}) {
		t.Errorf("reservations %v after 201 seqs, want every 100", store.reserves)
	}
	if store.batches != 2+196/4 {
		t.Errorf("%d writes for 201 events in batches of 4", store.batches)
	}
}

// TestBatchLogIdleGivesBackReservation: a tick with no seq used since the
// previous one cuts the reservation back to the last seq, so a restart then
// continues right after it.
func TestBatchLogIdleGivesBackReservation(t *testing.T) {
	store := &memStore{t: t}
	l := NewBatchLog(store, 64, 1000)
	l.Append(event(1))
	l.Append(event(2))
	if !l.Tick() {
		t.Fatal("a tick after new events wants no other")
	}
	if store.reserved != 1000 {
		t.Fatalf("reserved %d while busy", store.reserved)
	}
	if l.Tick() {
		t.Error("an idle tick wants another")
	}
	if store.reserved != 2 || NewBatchLog(store, 64, 1000).LastSeq() != 2 {
		t.Errorf("idle: reserved %d, a restart continues after %d", store.reserved, store.LastSeq())
	}
	l.Append(event(3)) // the next seq reserves again before it is used
	if store.reserved != 1002 {
		t.Errorf("reserved %d after the idle cut", store.reserved)
	}
}

func TestBatchLogTrimCoversPending(t *testing.T) {
	store := &memStore{t: t}
	l := NewBatchLog(store, 4, 100)
	for seq := int64(1); seq <= 6; seq++ {
		l.Append(event(seq))
	}
	l.TrimThrough(5)
	if got := seqs(l.Since(0)); !slices.Equal(got, []int64{6}) {
		t.Errorf("after TrimThrough(5): %v", got)
	}
	l.Flush()
	if got := seqs(store.events); !slices.Equal(got, []int64{6}) {
		t.Errorf("stored after the trim and a flush: %v", got)
	}
}

// TestBatchLogCrashNeverReusesSeq: the program dies with a batch pending
// (sent to peers, not stored). The conversation rebuilt over the same store
// never gives out a seq it used before, and a resume across the lost batch
// is answered recovered:false, while one from after the restart is complete.
func TestBatchLogCrashNeverReusesSeq(t *testing.T) {
	store := &memStore{t: t}
	limits := wire.DefaultLimits
	open := func() *harness {
		h := &harness{t: t, limits: limits}
		h.conv = NewConversation(limits, func() time.Time { return testTime }, func() string {
			h.next++
			return fmt.Sprintf("conn%04d", h.next)
		}, NewBatchLog(store, 16, 64))
		return h
	}
	h := open()
	req := joinRequest("acc_A", "a", false, "")
	req.Receipts = true
	pa, _ := h.joinWith(req)
	_, sb := h.join("acc_B", "b", false, "")
	h.token(pa, "stored")
	h.conv.log.(*BatchLog).Tick()
	stored := h.conv.Seq()
	for i := 0; i < 5; i++ {
		h.token(pa, fmt.Sprint("lost ", i))
	}
	used := h.conv.Seq()
	if got := strings.Count(strings.Join(sb.frames(), ""), `"type":"token"`); got != 6 {
		t.Fatalf("b heard %d tokens live", got)
	}

	// Crash: the pending batch is gone with the program.
	h = open()
	if h.conv.Seq() < used {
		t.Fatalf("after the crash the conversation is at seq %d, below the %d already used", h.conv.Seq(), used)
	}
	for _, after := range []int64{stored, stored + 2} {
		_, s := h.joinWith(resumeRequest("acc_C", fmt.Sprint("c", after), false, after))
		if f := joinedFrame(t, s); string(f["recovered"]) != "false" {
			t.Errorf("resume from %d across the lost batch %d..%d: recovered %s", after, stored+1, used, f["recovered"])
		}
	}
	pa2, sa2 := h.joinWith(req)
	sa2.reset()
	h.token(pa2, "after")
	receipt := decodeFrame(t, sa2.frames()[0])
	if seqOf(t, receipt) <= used {
		t.Errorf("seq %d reused after the crash (used up to %d)", seqOf(t, receipt), used)
	}
	from := h.conv.Seq() - 1
	_, s := h.joinWith(resumeRequest("acc_D", "d", false, from))
	if f := joinedFrame(t, s); string(f["recovered"]) != "true" {
		t.Errorf("resume from %d, after the restart: recovered %s", from, f["recovered"])
	}
}

// TestBatchRowRoundTrip: a batch row gives back its events byte for byte,
// from any seq on, and a row that is not one EncodeBatch wrote is refused.
func TestBatchRowRoundTrip(t *testing.T) {
	events := []Event{
		{Seq: 7, StreamID: "str_a", StreamName: "a", Frame: []byte(`{"type":"token","data":"\u00e9\"q\\"}`)},
		{Seq: 8, StreamID: "str_\"b", StreamName: "b\n", Frame: []byte(`{}`)},
		{Seq: 10, StreamID: "str_c", StreamName: "c", Frame: []byte("{\"data\":\"日本\"}")},
		{Seq: 11, StreamID: "str_a", StreamName: "a", Frame: []byte(`{"again":1}`)},
	}
	meta, frames := EncodeBatch(events, nil, nil)
	for after, want := range map[int64][]Event{0: events, 7: events[1:], 9: events[2:], 11: nil} {
		got, ok := DecodeBatch(meta, frames, after)
		if !ok || len(got) != len(want) {
			t.Fatalf("after %d: %d events, ok %v", after, len(got), ok)
		}
		for i := range got {
			if got[i].Seq != want[i].Seq || got[i].StreamID != want[i].StreamID || got[i].StreamName != want[i].StreamName || string(got[i].Frame) != string(want[i].Frame) {
				t.Errorf("after %d: event %d = %+v, want %+v", after, i, got[i], want[i])
			}
		}
	}
	for name, bad := range map[string][2][]byte{
		"frames cut short":  {meta, frames[:len(frames)-1]},
		"frames too long":   {meta, append(slices.Clone(frames), 'x')},
		"not json":          {[]byte(`[[["a","a"]],[[1,0,2]]`), []byte(`{}`)},
		"negative length":   {[]byte(`[[["a","a"]],[[1,0,-2]]]`), nil},
		"wrong field count": {[]byte(`[[["a","a"]],[[1,2]]]`), []byte(`{}`)},
		"no such stream":    {[]byte(`[[["a","a"]],[[1,1,2]]]`), []byte(`{}`)},
		"not two parts":     {[]byte(`[[[1,0,2]]]`), []byte(`{}`)},
	} {
		if _, ok := DecodeBatch(bad[0], bad[1], 0); ok {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestTimestampMatchesWire: the conversation's own timestamp formatting is
// wire.Timestamp's, across seconds, minutes, days and years.
func TestTimestampMatchesWire(t *testing.T) {
	var now time.Time
	c := NewConversation(wire.DefaultLimits, func() time.Time { return now }, func() string { return "x" }, newMemLog(t))
	start := time.Date(2023, 12, 31, 23, 58, 58, 0, time.UTC).UnixMilli()
	for ms := start; ms < start+190_000; ms += 997 {
		for _, at := range []int64{ms, ms + 1, ms} {
			now = time.UnixMilli(at).In(time.FixedZone("x", 5*3600))
			if got, want := c.timestamp(), wire.Timestamp(now); got != want {
				t.Fatalf("timestamp at %d = %s, want %s", at, got, want)
			}
		}
	}
}

// harnessOverBatchLog is the harness over a BatchLog flushing at most 512
// events at a time, as the Durable Object runs it.
func harnessOverBatchLog(t *testing.T, limits wire.Limits, store *memStore) (*harness, *BatchLog) {
	log := NewBatchLog(store, 512, 1024)
	h := &harness{t: t, limits: limits}
	h.conv = NewConversation(limits, func() time.Time { return testTime }, func() string {
		h.next++
		return fmt.Sprintf("conn%04d", h.next)
	}, log)
	return h, log
}

// TestFlushSplitsRowsByBytes: a burst of 200 tokens of 60 KiB pending at
// once (the flush bound counts events) is written in rows that each fit
// under wire.ReplayRowBytes, so under SQLite's limit; every event is stored
// in order, and a resume over the burst replays all of it, recovered.
func TestFlushSplitsRowsByBytes(t *testing.T) {
	limits := wire.DefaultLimits
	limits.ReplayBytes = 32 << 20
	store := &memStore{t: t, rowCap: 2_199_992} // workerd's limit, measured
	h, log := harnessOverBatchLog(t, limits, store)
	pub, _ := h.join("acc_A", "pub", false, "")
	sub, _ := h.join("acc_S", "sub", false, "")
	h.conv.Leave(sub.ConnID)
	from := h.conv.Seq()
	big := strings.Repeat("x", 60<<10)
	for i := range 200 {
		h.token(pub, fmt.Sprintf("%03d%s", i, big))
	}
	log.Flush()
	if log.Pending() != 0 || log.Lost() != 0 {
		t.Fatalf("after the flush: %d pending, lost through %d", log.Pending(), log.Lost())
	}
	for _, n := range store.rows {
		if n > wire.ReplayRowBytes {
			t.Errorf("a row of %d bytes, over wire.ReplayRowBytes %d", n, wire.ReplayRowBytes)
		}
	}
	if len(store.rows) < 200*len(big)/wire.ReplayRowBytes {
		t.Errorf("%d rows hold %d MiB of frames", len(store.rows), 200*len(big)>>20)
	}
	_, sock := h.joinWith(resumeRequest("acc_S", "sub", false, from))
	if joined := joinedFrame(t, sock); string(joined["recovered"]) != "true" {
		t.Fatalf("a resume over the stored burst: recovered %s", joined["recovered"])
	}
	_, texts := received(t, sock)
	if len(texts) != 200 {
		t.Fatalf("replayed %d of 200 tokens", len(texts))
	}
	for i, text := range texts {
		if !strings.Contains(text, fmt.Sprintf(`"data":"%03d%s"`, i, big)) {
			t.Fatalf("replayed token %d is not the %dth sent", i, i)
		}
	}
}

// TestSplitRows: rows keep the events' order and bound, and an event too
// big for any row still gets one of its own.
func TestSplitRows(t *testing.T) {
	ev := func(seq int64, n int) Event {
		return Event{Seq: seq, StreamID: "s", StreamName: "n", Frame: make([]byte, n)}
	}
	events := []Event{ev(1, 10), ev(2, 500), ev(3, 10), ev(4, 2000), ev(5, 10), ev(6, 10)}
	rows := SplitRows(events, 1000)
	var seqs []int64
	for _, row := range rows {
		if len(row) == 0 {
			t.Fatal("an empty row")
		}
		if len(row) > 1 && RowBytes(row) > 1000 {
			t.Errorf("row %v is %d bytes, over 1000", row[0].Seq, RowBytes(row))
		}
		for _, e := range row {
			seqs = append(seqs, e.Seq)
		}
	}
	if !slices.Equal(seqs, []int64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("rows hold seqs %v", seqs)
	}
	if len(rows) != 3 || len(rows[1]) != 1 || rows[1][0].Seq != 4 {
		t.Errorf("want rows [1 2 3] [4] [5 6], got %d rows", len(rows))
	}
	if SplitRows(nil, 1000) != nil {
		t.Error("rows of nothing")
	}
}

// TestFailedRowIsNotRecovered: a row the store refuses is neither retried
// nor silently dropped: the log goes on, the other rows are stored, and a
// resume from before the lost event says recovered:false while one from
// after it is complete.
func TestFailedRowIsNotRecovered(t *testing.T) {
	limits := wire.DefaultLimits
	limits.TokenBytes = 4 << 20 // a deployment's raised limit: one frame over SQLite's
	store := &memStore{t: t, rowCap: 2_199_992}
	h, log := harnessOverBatchLog(t, limits, store)
	pub, _ := h.join("acc_A", "pub", false, "")
	big := strings.Repeat("x", 60<<10)
	for range 4 {
		h.token(pub, big)
	}
	before := h.conv.Seq()
	h.token(pub, strings.Repeat("y", 2_200_000))
	lost := h.conv.Seq()
	h.token(pub, "after")
	log.Flush()
	if log.Lost() != lost {
		t.Fatalf("Lost() = %d, want %d", log.Lost(), lost)
	}
	if got := storedSeqsOf(store.events); slices.Contains(got, lost) || !slices.Contains(got, lost+1) || !slices.Contains(got, before) {
		t.Fatalf("stored seqs %v: want all but %d", got, lost)
	}
	for _, tc := range []struct {
		after int64
		want  string
	}{{before - 1, "false"}, {before, "false"}, {lost, "true"}} {
		_, sock := h.joinWith(resumeRequest("acc_S", fmt.Sprint("sub", tc.after), false, tc.after))
		if got := string(joinedFrame(t, sock)["recovered"]); got != tc.want {
			t.Errorf("resume after %d: recovered %s, want %s", tc.after, got, tc.want)
		}
	}
}

func storedSeqsOf(events []Event) []int64 {
	var seqs []int64
	for _, e := range events {
		seqs = append(seqs, e.Seq)
	}
	return seqs
}
