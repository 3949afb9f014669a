//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// collectTokens reads frames until n tokens of streamID arrived, checking
// that seq only grows, and returns their data in order.
func collectTokens(t *testing.T, ctx context.Context, read func(context.Context) (*client.Frame, error), streamID string, n int) []string {
	t.Helper()
	var data []string
	var last int64
	for len(data) < n {
		f, err := read(ctx)
		if err != nil {
			t.Fatalf("after %d tokens: %v", len(data), err)
		}
		if f.Seq != 0 {
			if f.Seq <= last {
				t.Fatalf("seq went from %d to %d: %s", last, f.Seq, f.Raw)
			}
			last = f.Seq
		}
		if f.Type == wire.TypeToken && f.StreamID == streamID {
			data = append(data, *f.Data)
		}
	}
	return data
}

func wantSequence(t *testing.T, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("got %d tokens, want %d (%d..%d)", len(got), to-from, from, to-1)
	}
	for i, d := range got {
		if d != strconv.Itoa(from+i) {
			t.Fatalf("token %d is %q, want %d: lost or duplicated", from+i, d, from+i)
		}
	}
}

func TestResumeMidStream(t *testing.T) {
	r := newRoom(t)
	ctx := testContext(t, 90*time.Second)
	pub, joinedPub := r.join(t, r.owner, "publisher")
	sub, err := client.Open(ctx, r.conv.MagicLink, client.DialOptions{Credential: newAccount(t).Credential, StreamName: "subscriber"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if sub.Joined.Seq < 1 {
		t.Fatalf("joined seq %d: the publisher's stream_joined was seq 1", sub.Joined.Seq)
	}
	next(t, pub, wire.TypeStreamJoined)

	const total = 300
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < total; i++ {
			if err := pub.SendToken(ctx, strconv.Itoa(i)); err != nil {
				sent <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		sent <- nil
	}()
	got := collectTokens(t, ctx, sub.Read, joinedPub.StreamID, 60)
	// The connection drops mid-stream; the publisher keeps emitting.
	sub.Conn().CloseNow()
	time.Sleep(100 * time.Millisecond)
	got = append(got, collectTokens(t, ctx, sub.Read, joinedPub.StreamID, total-60)...)
	wantSequence(t, got, 0, total)
	if sub.Joined.Recovered == nil || !*sub.Joined.Recovered || sub.Gaps != 0 {
		t.Fatalf("resumed joined: %s", sub.Joined.Raw)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	// Nothing more is owed: no duplicate arrives after the last token.
	quiet(t, sub.Conn())
}

func TestReceiptsAndSelectiveSubscription(t *testing.T) {
	r := newRoom(t)
	ctx := testContext(t, 30*time.Second)
	alpha, joinedAlpha := r.join(t, r.owner, "alpha", func(o *client.DialOptions) { o.Receipts = true })
	beta, joinedBeta := r.join(t, r.owner, "beta")
	next(t, alpha, wire.TypeStreamJoined)
	picky, joinedPicky := r.join(t, newAccount(t), "picky", func(o *client.DialOptions) { o.SubscribeStreams = []string{"alpha", "gamma"} })
	if fmt.Sprint(joinedPicky.SubscribedStreams) != "[alpha gamma]" {
		t.Fatalf("joined does not echo the subscription: %s", joinedPicky.Raw)
	}
	if joinedBeta.SubscribedStreams != nil {
		t.Fatalf("subscribed_streams without a subscription: %s", joinedBeta.Raw)
	}
	next(t, alpha, wire.TypeStreamJoined)
	next(t, beta, wire.TypeStreamJoined)

	if err := alpha.SendToken(ctx, "from alpha"); err != nil {
		t.Fatal(err)
	}
	receipt := next(t, alpha, wire.TypeReceipt)
	tokB := next(t, beta, wire.TypeToken)
	tokP := next(t, picky, wire.TypeToken)
	if receipt.Seq == 0 || receipt.Seq != tokB.Seq || tokP.Seq != tokB.Seq || string(receipt.Raw) != fmt.Sprintf(`{"type":"x_receipt","seq":%d}`, tokB.Seq) {
		t.Fatalf("receipt %s for token %s", receipt.Raw, tokB.Raw)
	}
	// beta asked for no receipts; picky does not hear beta at all.
	if err := beta.SendToken(ctx, "from beta"); err != nil {
		t.Fatal(err)
	}
	next(t, alpha, wire.TypeToken)
	quiet(t, beta)
	quiet(t, picky)
	_ = joinedAlpha

	// A gamma arrives later and is heard; beta's leaving is not.
	gamma, _ := r.join(t, r.owner, "gamma")
	if f := next(t, picky, wire.TypeStreamJoined); f.StreamName != "gamma" {
		t.Fatalf("picky: %s", f.Raw)
	}
	beta.Close()
	if err := gamma.SendToken(ctx, "from gamma"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, picky, wire.TypeToken); *tok.Data != "from gamma" {
		t.Fatalf("picky: %s", tok.Raw)
	}
	quiet(t, picky)

	// The filter applies to replay too.
	after := joinedPicky.Seq
	replayed, joinedAgain := r.join(t, newAccount(t), "late-picky", func(o *client.DialOptions) {
		o.SubscribeStreams = []string{"gamma"}
		o.ResumeAfter = &after
	})
	if joinedAgain.Recovered == nil || !*joinedAgain.Recovered {
		t.Fatalf("resume: %s", joinedAgain.Raw)
	}
	if f := next(t, replayed, wire.TypeStreamJoined); f.StreamName != "gamma" {
		t.Fatalf("replay: %s", f.Raw)
	}
	if f := next(t, replayed, wire.TypeToken); *f.Data != "from gamma" {
		t.Fatalf("replay: %s", f.Raw)
	}
	quiet(t, replayed)

	bad := r.conv.MagicLink
	link, _ := client.ParseMagicLink(bad)
	for _, header := range []string{"alpha,,beta", "alpha, bad name", "-x"} {
		refused(t, broker.URL, "/"+link.Namespace+"/conversations/"+link.Alias+"?t="+link.Token,
			http.Header{"Authorization": {"Bearer " + r.owner.Credential}, wire.HeaderSubscribeStreams: {header}}, wire.CloseInvalidSubscribeStreams)
	}
	refused(t, broker.URL, "/"+link.Namespace+"/conversations/"+link.Alias+"?t="+link.Token,
		http.Header{"Authorization": {"Bearer " + r.owner.Credential}, wire.HeaderResumeAfter: {"-1"}}, wire.CloseInvalidResumeAfter)
}

// TestReplayBufferOverflow runs a broker keeping only 20 events: a resume
// from before them must say recovered: false, never pass a partial replay
// off as complete.
func TestReplayBufferOverflow(t *testing.T) {
	a := startAway(t, "overflow", map[string]string{"AMS_REPLAY_EVENTS": "20"})
	defer a.b.Stop()
	ctx, pub, joinedPub, joinedSub, conv, owner := a.ctx, a.pub, a.joinedPub, a.joinedSub, a.conv, a.owner
	for i := 0; i < 50; i++ {
		if err := pub.SendToken(ctx, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	quiet(t, pub) // every token was handled
	old := joinedSub.Seq
	_, joined := join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: "sub", ResumeAfter: &old})
	if joined.Recovered == nil || *joined.Recovered {
		t.Fatalf("a resume past the buffer claims recovery: %s", joined.Raw)
	}
	// A resume within the buffer is complete.
	recent := joined.Seq - 5
	again, joined2 := join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: "sub2", ResumeAfter: &recent})
	if joined2.Recovered == nil || !*joined2.Recovered {
		t.Fatalf("a resume within the buffer: %s", joined2.Raw)
	}
	// Events: pub and sub joined (1, 2), sub left (3), tokens 0..49 (4..53):
	// after joined.Seq-5 come tokens 45..49.
	got := collectTokens(t, ctx, again.Read, joinedPub.StreamID, 5)
	wantSequence(t, got, 45, 50)
	// A seq from the future cannot be vouched for.
	future := joined2.Seq + 100
	_, joined3 := join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: "sub3", ResumeAfter: &future})
	if joined3.Recovered == nil || *joined3.Recovered {
		t.Fatalf("a resume from the future: %s", joined3.Raw)
	}
}

// TestSeqAndResumeAcrossHibernation: the subscriber is away while the
// object hibernates; seq continues after the wake and the resume is exact.
func TestSeqAndResumeAcrossHibernation(t *testing.T) {
	if testing.Short() {
		t.Skip("hibernation needs a real idle period")
	}
	r := newRoom(t)
	ctx := testContext(t, 90*time.Second)
	pub, joinedPub := r.join(t, r.owner, "pub")
	sub, err := client.Open(ctx, r.conv.MagicLink, client.DialOptions{Credential: newAccount(t).Credential, StreamName: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	next(t, pub, wire.TypeStreamJoined)
	for i := 0; i < 5; i++ {
		pub.SendToken(ctx, strconv.Itoa(i))
	}
	wantSequence(t, collectTokens(t, ctx, sub.Read, joinedPub.StreamID, 5), 0, 5)
	sub.Conn().CloseNow()
	next(t, pub, wire.TypeStreamLeft)
	for i := 5; i < 10; i++ {
		pub.SendToken(ctx, strconv.Itoa(i))
	}
	quiet(t, pub)
	seqBefore := sub.LastSeq()
	waitForWake(t, broker, []string{joinedPub.StreamID}, func() {
		if err := sub.Reconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if sub.Joined.Recovered == nil || !*sub.Joined.Recovered || sub.Joined.Seq <= seqBefore {
		t.Fatalf("joined after wake: %s (seq before %d)", sub.Joined.Raw, seqBefore)
	}
	pub.SendToken(ctx, "10")
	wantSequence(t, collectTokens(t, ctx, sub.Read, joinedPub.StreamID, 6), 5, 11)
}

// TestStateSurvivesRestart restarts wrangler dev on the same local state:
// accounts, conversations and links still work, and seq never repeats.
func TestStateSurvivesRestart(t *testing.T) {
	persist := t.TempDir()
	vars := map[string]string{"AMS_CREDENTIAL_PEPPER": randomHex(16), "AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(16)}
	b, err := StartBroker(BrokerOptions{Vars: vars, PersistDir: persist})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 120*time.Second)
	owner, err := b.client("").CreateAccount(ctx, "restart")
	if err != nil {
		t.Fatal(err)
	}
	conv, err := b.client(owner.Credential).CreateConversation(ctx, owner.Namespace, client.NewConversation{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: "a", Receipts: true})
	for i := 0; i < 3; i++ {
		a.SendToken(ctx, "x")
	}
	var lastSeq int64
	for i := 0; i < 3; i++ {
		lastSeq = next(t, a, wire.TypeReceipt).Seq
	}
	b.Stop()

	b, err = StartBroker(BrokerOptions{Vars: vars, PersistDir: persist})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	// The link names the host it was minted on; the new broker has another port.
	link, _ := client.ParseMagicLink(conv.MagicLink)
	link.Origin = b.URL
	conv.MagicLink = link.Origin + "/" + link.Namespace + "/conversations/" + link.Alias + "?t=" + link.Token
	info, err := b.client("").Inspect(ctx, conv.MagicLink)
	if err != nil || info.ConversationID != conv.ConversationID {
		t.Fatalf("inspect after restart: %+v %v", info, err)
	}
	a2, joined := join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: "a", Receipts: true})
	if joined.Seq < lastSeq {
		t.Fatalf("seq went back across the restart: %d < %d", joined.Seq, lastSeq)
	}
	a2.SendToken(ctx, "after restart")
	if r := next(t, a2, wire.TypeReceipt); r.Seq <= lastSeq || r.Seq <= joined.Seq {
		t.Fatalf("receipt seq %d after %d", r.Seq, lastSeq)
	}
	if _, err := b.client(owner.Credential).CreateConversation(ctx, owner.Namespace, client.NewConversation{}); err != nil {
		t.Fatalf("credential after restart: %v", err)
	}
}
