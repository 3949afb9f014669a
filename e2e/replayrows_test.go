//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
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
	a := startAway(t, "burst", map[string]string{
		"AMS_REPLAY_BYTES": fmt.Sprint(2 * tokens * size), // the burst fits the buffer
	})
	defer a.b.Stop()
	ctx, pub := a.ctx, a.pub
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
	old := a.joinedSub.Seq
	again, joined := join(t, a.conv.MagicLink, client.DialOptions{Credential: a.owner.Credential, StreamName: "sub", ResumeAfter: &old})
	if joined.Recovered == nil || !*joined.Recovered {
		t.Fatalf("a resume over the burst is not complete: %s", joined.Raw)
	}
	got := collectTokens(t, ctx, again.Read, a.joinedPub.StreamID, tokens)
	for i, d := range got {
		if d != token(i) {
			t.Fatalf("token %d is %.20q… (%d bytes): lost, reordered or cut", i, d, len(d))
		}
	}
	for _, bad := range []string{"SQLITE_TOOBIG", "recovered panic", "ams: replay buffer lost"} {
		if n := a.b.Count(bad); n > 0 {
			t.Errorf("the wrangler log has %q %d times", bad, n)
		}
	}
}

// away is a broker of its own with a conversation where "pub" has joined
// and "sub" has joined and left again, to resume later from joinedSub.Seq.
type away struct {
	b                    *Broker
	ctx                  context.Context
	owner                *client.Account
	conv                 *client.Conversation
	pub                  *client.Conn
	joinedPub, joinedSub *client.Frame
}

// startAway starts it with vars over fresh peppers; the caller stops a.b.
func startAway(t *testing.T, account string, vars map[string]string) away {
	t.Helper()
	all := map[string]string{"AMS_CREDENTIAL_PEPPER": randomHex(16), "AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(16)}
	maps.Copy(all, vars)
	b, err := StartBroker(BrokerOptions{Vars: all})
	if err != nil {
		t.Fatal(err)
	}
	a := away{b: b, ctx: testContext(t, 120*time.Second)}
	if a.owner, err = b.client("").CreateAccount(a.ctx, account); err != nil {
		b.Stop()
		t.Fatal(err)
	}
	if a.conv, err = b.client(a.owner.Credential).CreateConversation(a.ctx, a.owner.Namespace, client.NewConversation{}); err != nil {
		b.Stop()
		t.Fatal(err)
	}
	a.pub, a.joinedPub = join(t, a.conv.MagicLink, client.DialOptions{Credential: a.owner.Credential, StreamName: "pub"})
	var sub *client.Conn
	sub, a.joinedSub = join(t, a.conv.MagicLink, client.DialOptions{Credential: a.owner.Credential, StreamName: "sub"})
	next(t, a.pub, wire.TypeStreamJoined)
	sub.CloseNow()
	next(t, a.pub, wire.TypeStreamLeft)
	return a
}
