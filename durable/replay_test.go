package durable

import (
	"fmt"
	"slices"
	"testing"
)

// TestReplayBufferCountWithSlack adds many events and checks the count bound
// against a model of the log: trims come in batches of maxEvents/10, cut the
// log back to exactly maxEvents, and never remove the newest.
func TestReplayBufferCountWithSlack(t *testing.T) {
	for _, maxEvents := range []int{1, 3, 10, 20, 1000} {
		t.Run(fmt.Sprint(maxEvents), func(t *testing.T) {
			b := NewReplayBuffer(maxEvents, 1<<30, nil)
			if !b.Enabled() {
				t.Fatal("a positive buffer is not enabled")
			}
			slack := maxEvents / 10
			var stored []int64
			var lastTrim int64
			trims := 0
			total := int64(3*maxEvents + 7)
			for seq := int64(1); seq <= total; seq++ {
				stored = append(stored, seq)
				through := b.Add(EventSize{Seq: seq, Size: 10})
				if through == 0 {
					if len(stored) > maxEvents+slack {
						t.Fatalf("seq %d: %d events stored, no trim (bound %d + slack %d)", seq, len(stored), maxEvents, slack)
					}
					continue
				}
				trims++
				if len(stored) <= maxEvents+slack {
					t.Fatalf("seq %d: trimmed at %d events, within the slack", seq, len(stored))
				}
				if through <= lastTrim || through >= seq {
					t.Fatalf("seq %d: trim through %d after %d", seq, through, lastTrim)
				}
				lastTrim = through
				stored = slices.DeleteFunc(stored, func(s int64) bool { return s <= through })
				if len(stored) != maxEvents {
					t.Fatalf("seq %d: %d events after the trim, want %d", seq, len(stored), maxEvents)
				}
				if stored[len(stored)-1] != seq {
					t.Fatalf("seq %d: the newest event was trimmed", seq)
				}
			}
			// One trim per slack+1 events past the bound.
			if want := int(total-int64(maxEvents)) / (slack + 1); trims != want {
				t.Errorf("%d trims for %d events, want %d (batches of %d)", trims, total, want, slack+1)
			}
			if !b.Covers(stored[0]-1, total) || b.Covers(stored[0]-2, total) {
				t.Errorf("Covers does not match the stored range %d..%d", stored[0], total)
			}
		})
	}
}

func TestReplayBufferBytes(t *testing.T) {
	b := NewReplayBuffer(100, 100, nil)
	steps := []struct {
		size int
		want int64
	}{
		{40, 0},  // 40
		{40, 0},  // 80
		{20, 0},  // 100: exactly the bound
		{1, 1},   // 101: drop seq 1 → 61
		{39, 0},  // 100
		{100, 5}, // 200: drop 2..5 → 100, the newest alone
		{0, 0},   // 100
		{250, 7}, // larger than the bound: kept alone
		{1, 8},   // 251: drop 8 → 1
	}
	for i, st := range steps {
		seq := int64(i + 1)
		if got := b.Add(EventSize{Seq: seq, Size: st.size}); got != st.want {
			t.Fatalf("Add(seq %d, %d bytes) = %d, want %d", seq, st.size, got, st.want)
		}
	}
	if !b.Covers(8, 9) || b.Covers(7, 9) {
		t.Errorf("after the byte trims only seq 9 should be stored")
	}
}

func TestReplayBufferKeepsNewest(t *testing.T) {
	b := NewReplayBuffer(10, 5, nil)
	// The first event alone is over the byte bound: nothing to trim.
	if got := b.Add(EventSize{Seq: 1, Size: 1000}); got != 0 {
		t.Errorf("first oversized event: trim through %d, want 0", got)
	}
	if !b.Covers(0, 1) {
		t.Error("the newest event was dropped")
	}
	for seq := int64(2); seq <= 5; seq++ {
		if got := b.Add(EventSize{Seq: seq, Size: 1000}); got != seq-1 {
			t.Errorf("Add(seq %d) trims through %d, want %d", seq, got, seq-1)
		}
		if !b.Covers(seq-1, seq) || b.Covers(seq-2, seq) {
			t.Errorf("seq %d: the buffer should hold exactly the newest event", seq)
		}
	}
}

// TestReplayBufferRebuiltFromStorage: a buffer rebuilt from the log's sizes
// after a wake-up keeps counting where the old one stopped.
func TestReplayBufferRebuiltFromStorage(t *testing.T) {
	var stored []EventSize
	for seq := int64(21); seq <= 31; seq++ { // 11 events: at max 10 + slack 1
		stored = append(stored, EventSize{Seq: seq, Size: 10})
	}
	b := NewReplayBuffer(10, 1<<20, stored)
	if !b.Covers(20, 31) || b.Covers(19, 31) {
		t.Error("Covers ignores the stored events")
	}
	if got := b.Add(EventSize{Seq: 32, Size: 10}); got != 22 {
		t.Errorf("first Add after the rebuild trims through %d, want 22", got)
	}
	// Bytes are counted from storage too.
	b = NewReplayBuffer(100, 100, []EventSize{{1, 60}, {2, 40}})
	if got := b.Add(EventSize{Seq: 3, Size: 1}); got != 1 {
		t.Errorf("byte bound after the rebuild: trim through %d, want 1", got)
	}
}

func TestReplayBufferDisabled(t *testing.T) {
	if NewReplayBuffer(0, 1<<20, nil).Enabled() {
		t.Error("a buffer of 0 events is enabled")
	}
}

func TestReplayBufferCovers(t *testing.T) {
	full := NewReplayBuffer(10, 1<<20, nil)
	for seq := int64(1); seq <= 16; seq++ {
		full.Add(EventSize{Seq: seq, Size: 1})
	} // bound 10, slack 1: trims at 12, 14 and 16 leave 7..16
	empty := NewReplayBuffer(10, 1<<20, nil)
	tests := []struct {
		name           string
		b              *ReplayBuffer
		after, current int64
		want           bool
	}{
		{"empty, nothing happened", empty, 0, 0, true},
		{"empty, at the current seq", empty, 7, 7, true},
		{"empty, behind the current seq", empty, 6, 7, false},
		{"empty, ahead of the current seq", empty, 8, 7, false},
		{"empty, negative", empty, -1, 0, false},
		{"after == current", full, 16, 16, true},
		{"after > current", full, 17, 16, false},
		{"after far beyond current", full, 1 << 40, 16, false},
		{"after < 0", full, -1, 16, false},
		{"just behind current", full, 15, 16, true},
		{"from zero after a trim", full, 0, 16, false},
		{"first missed is the oldest stored", full, 6, 16, true},
		{"gap older than the oldest stored", full, 5, 16, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Covers(tt.after, tt.current); got != tt.want {
				t.Errorf("Covers(%d, %d) = %v, want %v", tt.after, tt.current, got, tt.want)
			}
		})
	}
}

// TestReplayBufferCoversOldestBoundary: with events 5..8 stored, a resume
// from 4 is complete (5 is the first missed frame) and one from 3 is not.
func TestReplayBufferCoversOldestBoundary(t *testing.T) {
	b := NewReplayBuffer(4, 1<<20, []EventSize{{5, 1}, {6, 1}, {7, 1}, {8, 1}})
	for after, want := range map[int64]bool{3: false, 4: true, 5: true, 7: true, 8: true, 0: false, 2: false} {
		if got := b.Covers(after, 8); got != want {
			t.Errorf("Covers(%d, 8) with 5..8 stored = %v, want %v", after, got, want)
		}
	}
}
