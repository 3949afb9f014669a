//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// joinMany opens n subscriber streams on link, spreading them over accounts
// (one account holds at most StreamsPerAccount streams of a conversation).
func joinMany(t *testing.T, ctx context.Context, link string, n int, opts client.DialOptions) []*client.Conn {
	t.Helper()
	perAccount := wire.DefaultLimits.StreamsPerAccount
	accounts := make([]*client.Account, (n+perAccount-1)/perAccount)
	for i := range accounts {
		accounts[i] = newAccount(t)
	}
	conns := make([]*client.Conn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			o := opts
			o.Credential = accounts[i/perAccount].Credential
			o.StreamName = fmt.Sprint("sub-", i)
			conn, _, err := client.Join(ctx, link, o)
			if err != nil {
				errs <- fmt.Errorf("subscriber %d: %w", i, err)
				return
			}
			conns[i] = conn
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.CloseNow()
		}
	})
	return conns
}

// expectTokens reads on every conn until it has the tokens 0..n-1 of
// streamID in order, skipping other frames.
func expectTokens(t *testing.T, ctx context.Context, conns []*client.Conn, streamID string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for i, conn := range conns {
		wg.Add(1)
		go func(i int, conn *client.Conn) {
			defer wg.Done()
			for want := 0; want < n; {
				f, err := conn.Read(ctx)
				if err != nil {
					errs <- fmt.Errorf("subscriber %d after %d tokens: %v", i, want, err)
					return
				}
				if f.Type != wire.TypeToken || f.StreamID != streamID {
					continue
				}
				if *f.Data != strconv.Itoa(want) {
					errs <- fmt.Errorf("subscriber %d: token %d arrived as %q", i, want, *f.Data)
					return
				}
				want++
			}
		}(i, conn)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestThousandSocketsInOneConversation fills a conversation to its
// connection limit: 999 subscribers and one publisher. The subscribers
// listen to the publisher only (X-AMS-Subscribe-Streams), the audience
// pattern, which keeps the test's join traffic linear.
func TestThousandSocketsInOneConversation(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	r := newRoom(t)
	ctx := testContext(t, 4*time.Minute)
	total := wire.DefaultLimits.ConnectionsPerConversation
	subs := joinMany(t, ctx, r.conv.MagicLink, total-1, client.DialOptions{SubscribeStreams: []string{"publisher"}})
	pub, joinedPub := r.join(t, r.owner, "publisher")
	if len(joinedPub.Peers) != total-1 {
		t.Fatalf("the publisher sees %d peers", len(joinedPub.Peers))
	}
	// The conversation is full now.
	extra, err := client.Dial(ctx, r.conv.MagicLink, client.DialOptions{Credential: r.owner.Credential, StreamName: "one-too-many"})
	if err != nil {
		t.Fatal(err)
	}
	closedWith(t, extra, wire.CloseConversationFull)

	const tokens = 20
	for i := 0; i < tokens; i++ {
		if err := pub.SendToken(ctx, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	expectTokens(t, ctx, subs, joinedPub.StreamID, tokens)
	t.Logf("%d deliveries to %d subscribers in %s", tokens*len(subs), len(subs), time.Since(start))
	quiet(t, pub)
}

// TestManyConversations runs 200 conversations of 5 peers at once: every
// peer hears every token of the other four.
func TestManyConversations(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	ctx := testContext(t, 4*time.Minute)
	owner := newAccount(t)
	const conversations, peers, tokens = 200, 5, 3
	var wg sync.WaitGroup
	errs := make(chan error, conversations)
	sem := make(chan struct{}, 24)
	for c := 0; c < conversations; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs <- runConversation(ctx, owner, peers, tokens)
		}(c)
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			if failed <= 5 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d conversations lost frames", failed, conversations)
	}
}

func runConversation(ctx context.Context, owner *client.Account, peers, tokens int) error {
	conv, err := broker.client(owner.Credential).CreateConversation(ctx, owner.Namespace, client.NewConversation{})
	if err != nil {
		return err
	}
	conns := make([]*client.Conn, peers)
	ids := make([]string, peers)
	for i := range conns {
		conn, joined, err := client.Join(ctx, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: fmt.Sprint("p", i)})
		if err != nil {
			return err
		}
		defer conn.CloseNow()
		conns[i], ids[i] = conn, joined.StreamID
	}
	for i, conn := range conns {
		for k := 0; k < tokens; k++ {
			if err := conn.SendToken(ctx, fmt.Sprint(i, ":", k)); err != nil {
				return err
			}
		}
	}
	for i, conn := range conns {
		next := make([]int, peers) // the next token expected from each peer
		got := 0
		for got < tokens*(peers-1) {
			f, err := conn.Read(ctx)
			if err != nil {
				return fmt.Errorf("%s peer %d after %d tokens: %v", conv.Alias, i, got, err)
			}
			if f.Type != wire.TypeToken {
				continue
			}
			from := -1
			for j, id := range ids {
				if id == f.StreamID {
					from = j
				}
			}
			if from == i || from < 0 || *f.Data != fmt.Sprint(from, ":", next[from]) {
				return fmt.Errorf("%s peer %d: unexpected %s", conv.Alias, i, f.Raw)
			}
			next[from]++
			got++
		}
	}
	return nil
}

// TestTrickleAcrossHibernation sends a token, lets the object hibernate,
// and again, three times: each wake delivers the token, in seq order.
func TestTrickleAcrossHibernation(t *testing.T) {
	if testing.Short() {
		t.Skip("hibernation needs a real idle period")
	}
	r := newRoom(t)
	ctx := testContext(t, 3*time.Minute)
	pub, joinedPub := r.join(t, r.owner, "drip")
	sub, _ := r.join(t, newAccount(t), "bucket")
	next(t, pub, wire.TypeStreamJoined)
	var last int64
	for i := 0; i < 3; i++ {
		waitForWake(t, broker, []string{joinedPub.StreamID}, func() {
			if err := pub.SendToken(ctx, strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		})
		tok := next(t, sub, wire.TypeToken)
		if *tok.Data != strconv.Itoa(i) || tok.Seq <= last {
			t.Fatalf("drop %d arrived as %s after seq %d", i, tok.Raw, last)
		}
		last = tok.Seq
	}
}
