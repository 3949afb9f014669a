//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
)

// TestMCPPushLastEventIDAcrossConversations (review of ebf8d8f): SSE ids
// are seqs of whichever conversation the session is bound to. A session
// that joined A, saw ids up to N there, then joined B and dropped its GET
// before any frame of B reached it, reconnects with Last-Event-ID N (the
// last id it saw). The object of B takes N as a position in B: what B's
// peer said meanwhile is never pushed, and for a push-only member the
// next ack marks it read, so ams_recv never returns it either.
func TestMCPPushLastEventIDAcrossConversations(t *testing.T) {
	acc := newAccount(t)
	convA := mint(t, acc, client.NewConversation{})
	convB := mint(t, acc, client.NewConversation{})
	wsA, _ := join(t, convA.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "talker-a"})
	wsB, _ := join(t, convB.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "talker-b"})
	sendOn := func(ws *client.Conn, data string) {
		t.Helper()
		if err := ws.SendToken(testContext(t, 5*time.Second), data); err != nil {
			t.Fatal(err)
		}
	}
	s := newRawSession(t, broker.URL+"/mcp", "pusher")
	s.tool("ams_join", map[string]any{"magic_link": convA.MagicLink, "stream_name": "agent", "delivery": "push"})
	events, stop := s.openLeg()
	var lastID string
	for i := 0; i < 8; i++ {
		sendOn(wsA, "a")
	}
	for i := 0; i < 8; i++ {
		_, lastID = tokenNote(t, events)
	}
	s.tool("ams_join", map[string]any{"magic_link": convB.MagicLink, "stream_name": "agent", "delivery": "push"})
	time.Sleep(500 * time.Millisecond) // the leg follows the session to B
	stop()
	sendOn(wsB, "b-missed-1")
	sendOn(wsB, "b-missed-2")
	events, stop = s.openLeg(lastID)
	defer stop()
	time.Sleep(500 * time.Millisecond)
	sendOn(wsB, "b-after")
	first, id := tokenNote(t, events)
	if first != "b-missed-1" {
		t.Errorf("resumed with Last-Event-ID %s (A's) on B: first push %q (id %s), want b-missed-1", lastID, first, id)
	}
	time.Sleep(500 * time.Millisecond) // the ack
	got := framesOf(t, s.tool("ams_recv", map[string]any{"gather_ms": 0}))
	if first != "b-missed-1" && len(got) == 0 {
		t.Errorf("push-only: b-missed-1 and b-missed-2 were never delivered, yet ams_recv returns nothing")
	}
}
