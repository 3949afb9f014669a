//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// TestCrashRecovery runs a broker with fault injection on: a panic in any
// callback is answered (500 JSON or close 4500) without ending the program,
// and a program that ends anyway is started again by the next event, with
// every conversation rebuilt from its sockets' attachments.
func TestCrashRecovery(t *testing.T) {
	b, err := StartBroker(BrokerOptions{Vars: map[string]string{
		"AMS_CREDENTIAL_PEPPER":       randomHex(16),
		"AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(16),
		wire.FaultInjectionVar:        "1",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	ctx := testContext(t, 120*time.Second)

	status, _, body := callURL(t, b.URL, "GET", wire.FaultPanicPath, nil, "")
	wantError(t, status, body, wire.ErrInternal)
	if status, _, _ := callURL(t, b.URL, "GET", "/healthz", nil, ""); status != 200 {
		t.Fatalf("healthz after a worker panic: %d", status)
	}

	owner, err := b.client("").CreateAccount(ctx, "faults")
	if err != nil {
		t.Fatal(err)
	}
	conv, err := b.client(owner.Credential).CreateConversation(ctx, owner.Namespace, client.NewConversation{})
	if err != nil {
		t.Fatal(err)
	}
	joinAs := func(name string) (*client.Conn, *client.Frame) {
		return join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: name})
	}
	a, joinedA := joinAs("a")
	bb, _ := joinAs("b")
	next(t, a, wire.TypeStreamJoined)

	// A panic while handling a's frame closes a with 4500; b sees a leave.
	if err := a.WriteRaw(ctx, []byte(wire.FaultPanicFrame)); err != nil {
		t.Fatal(err)
	}
	closedWith(t, a, wire.CloseInternalError)
	if left := next(t, bb, wire.TypeStreamLeft); left.StreamID != joinedA.StreamID {
		t.Fatalf("stream_left: %s", left.Raw)
	}
	c, _ := joinAs("c")
	next(t, bb, wire.TypeStreamJoined)
	if err := c.SendToken(ctx, "after the panic"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, bb, wire.TypeToken); *tok.Data != "after the panic" {
		t.Fatalf("token after panic: %s", tok.Raw)
	}

	// A panic whose fallback panics too is logged, and the program goes on:
	// the next event rebuilds the object, and every stream is served.
	if err := c.WriteRaw(ctx, []byte(wire.FaultPanicTwiceFrame)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(b.Logs(), "injected fault in a panic fallback") }, "the fallback's panic")
	if err := bb.SendToken(ctx, "after two panics"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, c, wire.TypeToken); *tok.Data != "after two panics" {
		t.Fatalf("token after a panicking fallback: %s", tok.Raw)
	}
	if err := c.SendToken(ctx, "c still speaks"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, bb, wire.TypeToken); *tok.Data != "c still speaks" {
		t.Fatalf("token of the panicking socket: %s", tok.Raw)
	}
	if logs := b.Logs(); strings.Contains(logs, "exit code") || strings.Contains(logs, "Go program has already exited") {
		t.Fatalf("the program ended after a panic in a fallback:\n%s", logs)
	}

	// A panic in the object's connect is a refusal like any other: 101,
	// then close 4500; the others see nothing.
	doomed, err := client.Dial(ctx, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: wire.FaultPanicStreamName})
	if err != nil {
		t.Fatalf("a connect that panics is not upgraded: %v", err)
	}
	closedWith(t, doomed, wire.CloseInternalError)
	quiet(t, bb)

	// And if the connect's fallback panics too, the Worker answers in the
	// object's place, and the program goes on.
	mark := len(b.Logs())
	doomed, err = client.Dial(ctx, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: wire.FaultPanicTwiceStreamName})
	if err != nil {
		t.Fatalf("a connect whose fallback panics is not upgraded: %v", err)
	}
	closedWith(t, doomed, wire.CloseInternalError)
	// The log can reach us after the close does (the Worker no longer waits
	// for the object's answer in Go).
	waitFor(t, func() bool { return strings.Contains(b.Logs()[mark:], "injected fault in a panic fallback") }, "the connect's fallback's panic")
	if err := c.SendToken(ctx, "after a panicking connect fallback"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, bb, wire.TypeToken); *tok.Data != "after a panicking connect fallback" {
		t.Fatalf("after a panicking connect fallback: %s", tok.Raw)
	}

	// The program exits outright; the next event starts a new one, which
	// rebuilds the conversation from the attachments.
	if err := c.WriteRaw(ctx, []byte(wire.FaultExitFrame)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(b.Logs(), "exit code: 3") }, "the program to exit")
	if err := bb.SendToken(ctx, "after the exit"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, c, wire.TypeToken); *tok.Data != "after the exit" {
		t.Fatalf("token after exit: %s", tok.Raw)
	}
	info, err := b.client("").Inspect(ctx, conv.MagicLink)
	if err != nil || len(info.Streams) != 2 {
		t.Fatalf("inspect after exit: %+v %v", info, err)
	}

	// The same for the Worker: the request that exits fails, the next is served.
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(short, "GET", b.URL+wire.FaultExitPath, nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		if res.StatusCode < 500 {
			t.Fatalf("exiting request answered %d", res.StatusCode)
		}
	}
	if status, _, _ := callURL(t, b.URL, "GET", "/healthz", nil, ""); status != 200 {
		t.Fatalf("healthz after the worker exited: %d", status)
	}
	if _, err := b.client("").CreateAccount(ctx, "after-exit"); err != nil {
		t.Fatalf("control plane after exit: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestSocketKilledMidFrame opens a raw connection, starts a frame it never
// finishes, and drops the TCP connection: the stream leaves and the others
// are served as before.
func TestSocketKilledMidFrame(t *testing.T) {
	r := newRoom(t)
	watcher, _ := r.join(t, newAccount(t), "watcher")
	link, _ := client.ParseMagicLink(r.conv.MagicLink)
	conn := dialRaw(t, link, link.Token, r.owner.Credential, "doomed").conn
	if sj := next(t, watcher, wire.TypeStreamJoined); sj.StreamName != "doomed" {
		t.Fatalf("watcher: %s", sj.Raw)
	}
	// A masked text frame announcing 200 bytes, of which 10 are sent.
	frame := []byte{0x81, 0x80 | 126, 0, 200, 1, 2, 3, 4}
	frame = append(frame, []byte(`{"type":"t`)...)
	if _, err := conn.Write(frame); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	conn.Close()
	if left := next(t, watcher, wire.TypeStreamLeft); left.StreamName != "doomed" {
		t.Fatalf("watcher: %s", left.Raw)
	}
	speaker, _ := r.join(t, r.owner, "speaker")
	next(t, watcher, wire.TypeStreamJoined)
	speaker.SendToken(testContext(t, 5*time.Second), "still serving")
	if tok := next(t, watcher, wire.TypeToken); *tok.Data != "still serving" {
		t.Fatalf("after the killed socket: %s", tok.Raw)
	}
}

// TestExitLosesBatchNotSeq: the program ends while the replay buffer's
// batch is still in memory (the flush bounds are set far out, so it is).
// The tokens were delivered live; after the restart no seq is given out
// twice, a resume across the lost batch says recovered:false, and one from
// after the restart is complete.
func TestExitLosesBatchNotSeq(t *testing.T) {
	ctx := testContext(t, 120*time.Second)
	b, owner, conv := privateConversation(t, ctx, map[string]string{
		wire.FaultInjectionVar:    "1",
		"AMS_REPLAY_FLUSH_MILLIS": "600000",
		"AMS_REPLAY_FLUSH_EVENTS": "100000",
	})
	dial := func(name string, resumeAfter *int64) (*client.Conn, *client.Frame) {
		return join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: name, Receipts: true, ResumeAfter: resumeAfter})
	}
	a, _ := dial("a", nil)
	sub, _ := dial("sub", nil)
	next(t, a, wire.TypeStreamJoined)
	var seqs []int64
	for i := 0; i < 3; i++ {
		if err := a.SendToken(ctx, fmt.Sprint("before the exit ", i)); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, next(t, a, wire.TypeReceipt).Seq)
		if tok := next(t, sub, wire.TypeToken); tok.Seq != seqs[i] {
			t.Fatalf("live token %s, receipt %d", tok.Raw, seqs[i])
		}
	}

	if err := a.WriteRaw(ctx, []byte(wire.FaultExitFrame)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(b.Logs(), "exit code: 3") }, "the program to exit")
	if err := sub.SendToken(ctx, "after the exit"); err != nil {
		t.Fatal(err)
	}
	after := next(t, sub, wire.TypeReceipt).Seq
	if tok := next(t, a, wire.TypeToken); tok.Seq != after || after <= seqs[2] {
		t.Fatalf("after the restart: token %s, receipt %d, seqs before %v", tok.Raw, after, seqs)
	}

	for _, from := range []int64{seqs[0], seqs[2]} {
		c, joined := dial(fmt.Sprint("resume-", from), &from)
		if joined.Recovered == nil || *joined.Recovered {
			t.Errorf("resume from %d across the lost batch: %s", from, joined.Raw)
		}
		c.CloseNow()
	}
	c, joined := dial("resume-after", &after)
	if joined.Recovered == nil || !*joined.Recovered {
		t.Errorf("resume from %d, after the restart: %s", after, joined.Raw)
	}
	c.CloseNow()
}

// TestLargeTokensGrowMemory sends tokens near the size limit through the
// socket hot path, enough for the Go heap, and so the instance's memory, to
// grow (which detaches entry.mjs's views of it): every token arrives whole
// and in order, and small ones still flow after.
func TestLargeTokensGrowMemory(t *testing.T) {
	r := newRoom(t)
	ctx := testContext(t, 90*time.Second)
	pub, joinedPub := r.join(t, r.owner, "pub")
	sub, _ := r.join(t, newAccount(t), "sub")
	next(t, pub, wire.TypeStreamJoined)
	const n = 150
	big := func(i int) string { return fmt.Sprintf("%03d|", i) + strings.Repeat(string(rune('a'+i%26)), 60<<10) }
	go func() {
		for i := 0; i < n; i++ {
			if err := pub.SendToken(ctx, big(i)); err != nil {
				return
			}
		}
		pub.SendToken(ctx, "small after")
	}()
	for i, data := range collectTokens(t, ctx, sub.Read, joinedPub.StreamID, n+1) {
		want := "small after"
		if i < n {
			want = big(i)
		}
		if data != want {
			t.Fatalf("token %d: %d bytes %.12q..., want %d bytes %.12q...", i, len(data), data, len(want), want)
		}
	}
}

// privateConversation starts a broker of its own with vars (and fresh
// peppers), stopped when the test ends, and mints a conversation on it.
func privateConversation(t *testing.T, ctx context.Context, vars map[string]string) (*Broker, *client.Account, *client.Conversation) {
	t.Helper()
	all := map[string]string{"AMS_CREDENTIAL_PEPPER": randomHex(16), "AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(16)}
	for k, v := range vars {
		all[k] = v
	}
	b, err := StartBroker(BrokerOptions{Vars: all})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	owner, err := b.client("").CreateAccount(ctx, "private-"+randomHex(4))
	if err != nil {
		t.Fatal(err)
	}
	conv, err := b.client(owner.Credential).CreateConversation(ctx, owner.Namespace, client.NewConversation{})
	if err != nil {
		t.Fatal(err)
	}
	return b, owner, conv
}
