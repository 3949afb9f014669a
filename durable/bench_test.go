package durable

import (
	"fmt"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// nullStore is an EventStore that keeps nothing: the benchmark measures
// the conversation, not storage.
type nullStore struct{}

func (nullStore) AppendBatch([]Event) error { return nil }
func (nullStore) Reserve(int64)             {}
func (nullStore) Since(int64) []Event       { return nil }
func (nullStore) TrimThrough(int64)         {}
func (nullStore) Sizes() []EventSize        { return nil }
func (nullStore) LastSeq() int64            { return 0 }
func (nullStore) Link() wire.LinkState      { return wire.LinkState{} }
func (nullStore) SaveLink(wire.LinkState)   {}

// BenchmarkToken is the Go share of one token to 10 subscribers on the hot
// path (the fan-out itself is entry.mjs's loop, here a no-op Broadcast).
func BenchmarkToken(b *testing.B) {
	next := 0
	clock := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	log := NewBatchLog(nullStore{}, 512, 1024)
	c := NewConversation(wire.DefaultLimits, func() time.Time { clock = clock.Add(300 * time.Microsecond); return clock },
		func() string { next++; return fmt.Sprintf("conn%04d", next) }, log)
	c.Broadcast = func(*Outbound, []Socket) {}
	var pub *Peer
	for i := range 11 {
		p, refusal := c.Admit(joinRequest(fmt.Sprintf("acc_%d", i/10), fmt.Sprintf("s%d", i), false, ""))
		if refusal != nil {
			b.Fatal(*refusal)
		}
		p.Socket = &recordingSocket{}
		c.Attach(convID, p, nil)
		pub = p
	}
	msg := []byte(`{"type":"token","data":"t|pub|1234|1700000000000000000"}`)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Receive(pub.ConnID, msg)
		if i%144 == 0 {
			log.Flush()
		}
	}
}
