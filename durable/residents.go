package durable

import "time"

// ResidentIdle is how long the Go side of a conversation object may go
// unused before it is forgotten. The runtime evicts an idle object long
// before (seconds, hibernated or not) without telling Go, so without
// pruning every conversation an isolate ever served would stay in memory.
// Forgetting an object that is in fact still alive costs only a rebuild
// from its sockets' attachments on its next event, as after a wake-up.
const ResidentIdle = 2 * time.Minute

// Residents holds the Go side of the Durable Objects alive in an isolate,
// keyed by the incarnation number entry.mjs gives each JS object, and
// knows each Durable Object id's live incarnation. Entries are added only
// by Put, which also sweeps: what was not used since the sweep before (at
// least idle ago) and is not busy goes. Memory is so bounded by the objects
// used within the last two idle periods, and Get costs no clock read.
type Residents[T any] struct {
	idle      time.Duration
	busy      func(T) bool
	entries   map[int]*resident[T]
	live      map[string]int // Durable Object id -> incarnation
	nextSweep time.Time
}

type resident[T any] struct {
	id    string
	value T
	used  bool
}

// NewResidents returns an empty table; busy reports an entry that must be
// kept even when unused (work still pending in it).
func NewResidents[T any](idle time.Duration, busy func(T) bool) *Residents[T] {
	return &Residents[T]{idle: idle, busy: busy, entries: map[int]*resident[T]{}, live: map[string]int{}}
}

// Get returns the entry of incarnation and marks it used.
func (r *Residents[T]) Get(incarnation int) (T, bool) {
	e := r.entries[incarnation]
	if e == nil {
		var zero T
		return zero, false
	}
	e.used = true
	return e.value, true
}

// Live returns the entry of the live incarnation of the Durable Object id.
func (r *Residents[T]) Live(id string) (T, bool) {
	if inc, ok := r.live[id]; ok {
		return r.Get(inc)
	}
	var zero T
	return zero, false
}

// Put makes v the entry of incarnation, the live one of id, replacing id's
// previous incarnation, and sweeps if a sweep is due at now.
func (r *Residents[T]) Put(id string, incarnation int, v T, now time.Time) {
	if old, ok := r.live[id]; ok && old != incarnation {
		delete(r.entries, old)
	}
	r.entries[incarnation] = &resident[T]{id: id, value: v, used: true}
	r.live[id] = incarnation
	if now.Before(r.nextSweep) {
		return
	}
	r.nextSweep = now.Add(r.idle)
	for inc, e := range r.entries {
		if e.used || r.busy != nil && r.busy(e.value) {
			e.used = false
			continue
		}
		delete(r.entries, inc)
		if r.live[e.id] == inc {
			delete(r.live, e.id)
		}
	}
}

// Len is the number of entries held.
func (r *Residents[T]) Len() int { return len(r.entries) }
