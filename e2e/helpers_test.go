//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

func (b *Broker) client(credential string) *client.Client {
	return &client.Client{BaseURL: b.URL, Credential: credential}
}

// newAccount registers a fresh namespace.
func newAccount(t testing.TB) *client.Account {
	t.Helper()
	acc, err := broker.client("").CreateAccount(testContext(t, 30*time.Second), "t-"+randomHex(6))
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	return acc
}

// mint creates a conversation owned by acc.
func mint(t testing.TB, acc *client.Account, req client.NewConversation) *client.Conversation {
	t.Helper()
	conv, err := broker.client(acc.Credential).CreateConversation(testContext(t, 30*time.Second), acc.Namespace, req)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return conv
}

// join opens a stream and returns it with its joined frame.
func join(t testing.TB, link string, opts client.DialOptions) (*client.Conn, *client.Frame) {
	t.Helper()
	conn, joined, err := client.Join(testContext(t, 30*time.Second), link, opts)
	if err != nil {
		t.Fatalf("join %s: %v", opts.StreamName, err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn, joined
}

// next reads one frame and checks its type.
func next(t testing.TB, conn *client.Conn, typ string) *client.Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("want %s frame, read failed: %v", typ, err)
	}
	if f.Type != typ {
		t.Fatalf("want %s frame, got %s", typ, f.Raw)
	}
	return f
}

// quiet proves conn has nothing queued: a ping's pong must be the next frame.
// The conversation handles a socket's messages in order, so any frame owed
// to conn before the ping would arrive first.
func quiet(t testing.TB, conn *client.Conn) {
	t.Helper()
	if err := conn.WriteRaw(testContext(t, 10*time.Second), []byte(`{"type":"ping","n":1}`)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	next(t, conn, wire.TypePong)
}

// closedWith reads until conn closes and checks the close.
func closedWith(t testing.TB, conn *client.Conn, want wire.Close) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		f, err := conn.Read(ctx)
		if err == nil {
			t.Logf("frame before close: %s", f.Raw)
			continue
		}
		code, reason := client.CloseOf(err)
		if code != want.Code || reason != want.Reason {
			t.Fatalf("want close %d %s, got %d %q (%v)", want.Code, want.Reason, code, reason, err)
		}
		return
	}
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
