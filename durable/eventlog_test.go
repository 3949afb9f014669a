package durable

import (
	"slices"
	"testing"

	"github.com/ams-dev/ams/wire"
)

// memLog is the in-memory EventLog of the tests: the double of the Durable
// Object's SQLite storage (eventlog_js.go), which survives a new
// Conversation the way storage survives a wake-up. Besides what it stores
// it keeps every event ever appended (all), to check replays against, and
// fails the test on a seq that does not grow.
type memLog struct {
	t       *testing.T
	events  []Event // stored, oldest first
	all     []Event // every event appended, never trimmed
	saved   int64   // the seq persisted by SaveSeq
	saves   []int64 // every SaveSeq call
	trims   []int64 // every TrimThrough call
	appends int
	// link is the magic link persisted by SaveLink.
	link wire.LinkState
}

func newMemLog(t *testing.T) *memLog { return &memLog{t: t} }

func (l *memLog) Append(e Event) {
	if n := len(l.all); n > 0 && e.Seq <= l.all[n-1].Seq {
		l.t.Errorf("Append seq %d after %d: seq must only grow", e.Seq, l.all[n-1].Seq)
	}
	if e.Seq <= l.saved {
		l.t.Errorf("Append seq %d at or below the saved seq %d", e.Seq, l.saved)
	}
	e.Frame = slices.Clone(e.Frame)
	l.events = append(l.events, e)
	l.all = append(l.all, e)
	l.appends++
}

func (l *memLog) Since(after int64) []Event { return eventsAfter(l.events, after) }

func (l *memLog) TrimThrough(seq int64) {
	l.trims = append(l.trims, seq)
	l.events = slices.DeleteFunc(l.events, func(e Event) bool { return e.Seq <= seq })
}

func (l *memLog) Sizes() []EventSize { return sizesOf(l.events) }

func (l *memLog) LastSeq() int64 { return lastSeqOf(l.events, l.saved) }

func (l *memLog) Link() wire.LinkState { return l.link }

func (l *memLog) SaveLink(link wire.LinkState) {
	if link.Generation != l.link.Generation+1 {
		l.t.Errorf("SaveLink(%d) after %d: each rotation issues the next generation", link.Generation, l.link.Generation)
	}
	l.link = link
}

func (l *memLog) SaveSeq(seq int64) {
	if seq <= l.saved {
		l.t.Errorf("SaveSeq(%d) after %d: seq must only grow", seq, l.saved)
	}
	l.saved = seq
	l.saves = append(l.saves, seq)
}

// Lost: every append is stored.
func (l *memLog) Lost() int64 { return 0 }

// storedSeqs lists the seqs the log holds.
func (l *memLog) storedSeqs() []int64 {
	var seqs []int64
	for _, e := range l.events {
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

// TestMemLog checks the double behaves as the SQLite log does, so the
// conversation tests built on it mean something.
func TestMemLog(t *testing.T) {
	l := newMemLog(t)
	if l.LastSeq() != 0 || len(l.Since(0)) != 0 || len(l.Sizes()) != 0 {
		t.Fatal("a new log is not empty")
	}
	for seq := int64(1); seq <= 5; seq++ {
		l.Append(Event{Seq: seq, StreamID: "s", StreamName: "n", Frame: make([]byte, seq)})
	}
	if got := l.Since(3); len(got) != 2 || got[0].Seq != 4 || got[1].Seq != 5 {
		t.Errorf("Since(3) = %+v", got)
	}
	l.TrimThrough(2)
	if !slices.Equal(l.storedSeqs(), []int64{3, 4, 5}) {
		t.Errorf("after TrimThrough(2): %v", l.storedSeqs())
	}
	if got := l.Sizes(); !slices.Equal(got, []EventSize{{3, 3}, {4, 4}, {5, 5}}) {
		t.Errorf("Sizes() = %v", got)
	}
	if l.LastSeq() != 5 {
		t.Errorf("LastSeq() = %d", l.LastSeq())
	}
	l.SaveSeq(9)
	if l.LastSeq() != 9 {
		t.Errorf("LastSeq() after SaveSeq(9) = %d", l.LastSeq())
	}
}
