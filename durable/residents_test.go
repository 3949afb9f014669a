package durable

import (
	"fmt"
	"testing"
	"time"
)

// TestResidentsForgetTheEvicted: entries of objects no event used for an
// idle period go at the next Put, however many objects came and went; a
// used or busy entry stays; a new incarnation replaces its id's previous one.
func TestResidentsForgetTheEvicted(t *testing.T) {
	busy := map[string]bool{}
	r := NewResidents(time.Minute, func(v string) bool { return busy[v] })
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.Put("do-kept", 1, "kept", start)
	r.Put("do-busy", 2, "busy", start)
	busy["busy"] = true
	inc := 3
	// A day of conversations, each used once and then evicted by the runtime.
	for minute := 0; minute < 24*60; minute++ {
		now := start.Add(time.Duration(minute) * time.Minute)
		for i := 0; i < 10; i++ {
			r.Put(fmt.Sprintf("do-%d-%d", minute, i), inc, "passing", now)
			inc++
		}
		if _, ok := r.Get(1); !ok {
			t.Fatalf("minute %d: the entry in use was forgotten", minute)
		}
		if r.Len() > 2+3*10 {
			t.Fatalf("minute %d: %d entries held, want at most the last periods' objects", minute, r.Len())
		}
	}
	if _, ok := r.Get(2); !ok {
		t.Fatal("the busy entry was forgotten")
	}
	if _, ok := r.Live("do-0-0"); ok {
		t.Fatal("an object evicted a day ago is still held")
	}

	// A wake-up: the new incarnation replaces the old at once.
	r.Put("do-kept", inc, "kept again", start.Add(25*time.Hour))
	if _, ok := r.Get(1); ok {
		t.Fatal("the previous incarnation survived its replacement")
	}
	if v, ok := r.Live("do-kept"); !ok || v != "kept again" {
		t.Fatalf("Live = %q %v", v, ok)
	}
}
