//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// TestReplayBurstOfLargeTokens: a burst of large tokens, faster than the
// replay flush bound, holds far more bytes than one SQLite value may (about
// 2.2 MB in workerd). The buffer must still keep every one: a subscriber
// resuming from before the burst gets all of them, in order, with
// recovered: true, and no write failed on the way (wire.ReplayRowBytes).
func TestReplayBurstOfLargeTokens(t *testing.T) {
	const tokens, size = 200, 60 << 10
	b, err := StartBroker(BrokerOptions{Vars: map[string]string{
		"AMS_CREDENTIAL_PEPPER":       randomHex(16),
		"AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(16),
		"AMS_REPLAY_BYTES":            fmt.Sprint(2 * tokens * size), // the burst fits the buffer
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	ctx := testContext(t, 120*time.Second)
	owner, err := b.client("").CreateAccount(ctx, "burst")
	if err != nil {
		t.Fatal(err)
	}
	conv, err := b.client(owner.Credential).CreateConversation(ctx, owner.Namespace, client.NewConversation{})
	if err != nil {
		t.Fatal(err)
	}
	pub, joinedPub := join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: "pub"})
	sub, joinedSub := join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: "sub"})
	next(t, pub, wire.TypeStreamJoined)
	sub.CloseNow()
	next(t, pub, wire.TypeStreamLeft)
	token := func(i int) string {
		head := fmt.Sprintf("%d:", i)
		return head + strings.Repeat("x", size-len(head))
	}
	for i := range tokens {
		if err := pub.SendToken(ctx, token(i)); err != nil {
			t.Fatal(err)
		}
	}
	quiet(t, pub) // every token was handled
	// Let the flush timer (AMS_REPLAY_FLUSH_MILLIS) write the burst.
	time.Sleep(time.Second)
	old := joinedSub.Seq
	again, joined := join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: "sub", ResumeAfter: &old})
	if joined.Recovered == nil || !*joined.Recovered {
		t.Fatalf("a resume over the burst is not complete: %s", joined.Raw)
	}
	got := collectTokens(t, ctx, again.Read, joinedPub.StreamID, tokens)
	for i, d := range got {
		if d != token(i) {
			t.Fatalf("token %d is %.20q… (%d bytes): lost, reordered or cut", i, d, len(d))
		}
	}
	for _, bad := range []string{"SQLITE_TOOBIG", "recovered panic", "ams: replay buffer lost"} {
		if n := b.Count(bad); n > 0 {
			t.Errorf("the wrangler log has %q %d times", bad, n)
		}
	}
}
