package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/wire"
)

// TestSessionResendsUnacknowledgedAndKeepsItsName: the first connection
// acknowledges one token of two and drops; the session comes back under
// the name the broker generated, resumes after the last seq, writes the
// unacknowledged token (and one sent while it was away) again, in order,
// and never returns its own stream's frame as a peer's. Sends and reads
// overlap, as the CLI does them (run with -race).
func TestSessionResendsUnacknowledgedAndKeepsItsName(t *testing.T) {
	second := make(chan []string, 1)
	dropped := make(chan struct{})
	srv := newHostile(t, func(h *hostile, n int, w http.ResponseWriter, r *http.Request) {
		ws := acceptWS(w, r)
		if ws == nil {
			return
		}
		ctx := r.Context()
		write := func(s string) { ws.Write(ctx, websocket.MessageText, []byte(s)) }
		readToken := func() string {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				return ""
			}
			var f struct{ Type, Data string }
			json.Unmarshal(msg, &f)
			return f.Data
		}
		if n == 1 {
			write(`{"type":"joined","stream_id":"str_1","stream_name":"gen-1","seq":10}`)
			readToken()
			write(`{"type":"x_receipt","seq":11}`)
			readToken()
			// Our own token comes back (as after a rename or a replay), then a peer's.
			write(`{"type":"token","stream_id":"str_1","stream_name":"gen-1","seq":12,"data":"own"}`)
			write(`{"type":"token","stream_id":"str_p","stream_name":"peer","seq":13,"data":"p1"}`)
			<-dropped
			ws.CloseNow()
			return
		}
		write(`{"type":"joined","stream_id":"str_2","stream_name":"gen-1","seq":13,"recovered":true}`)
		var got []string
		for len(got) < 2 {
			d := readToken()
			if d == "" {
				break
			}
			got = append(got, d)
			write(fmt.Sprintf(`{"type":"x_receipt","seq":%d}`, 13+len(got)))
		}
		second <- got
		write(`{"type":"token","stream_id":"str_p","stream_name":"peer","seq":16,"data":"p2"}`)
		ws.Read(ctx)
	})
	ctx := testCtx(t, 15*time.Second)
	s, err := OpenSession(ctx, srv.link(), SessionOptions{Dial: DialOptions{Receipts: true}, KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var peers []string
	readDone := make(chan error, 1)
	sawP1 := make(chan struct{})
	go func() {
		for {
			f, err := s.Read(ctx)
			if err != nil {
				readDone <- err
				return
			}
			if f.Type == wire.TypeToken {
				peers = append(peers, f.StreamName+":"+*f.Data)
				if *f.Data == "p1" {
					close(sawP1)
				}
				if *f.Data == "p2" {
					readDone <- nil
					return
				}
			}
		}
	}()
	for _, tok := range []string{"one", "two"} {
		if err := s.Send(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	<-sawP1
	close(dropped)
	if err := s.Send(ctx, "three"); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-second; strings.Join(got, ",") != "two,three" {
		t.Fatalf("the second connection got %q, want two,three", got)
	}
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	if strings.Join(peers, ",") != "peer:p1,peer:p2" {
		t.Fatalf("read %q: the session's own frame must not be returned", peers)
	}
	if name := srv.headers(1).Get(wire.HeaderStreamName); name != "gen-1" {
		t.Fatalf("reconnected as %q, want the generated gen-1", name)
	}
	if after := srv.headers(1).Get(wire.HeaderResumeAfter); after != "13" {
		t.Fatalf("resumed after %q, want 13", after)
	}
	if s.Name() != "gen-1" || s.LastSeq() != 16 || s.Pending() != 0 {
		t.Fatalf("name %q, last seq %d, pending %d", s.Name(), s.LastSeq(), s.Pending())
	}
}

// TestSessionRefusesWhatTheBrokerWould: a token over the limit or not
// UTF-8 never leaves the client.
func TestSessionRefusesWhatTheBrokerWould(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := newHostile(t, func(h *hostile, n int, w http.ResponseWriter, r *http.Request) {
		ws := acceptWS(w, r)
		if ws == nil {
			return
		}
		ws.SetReadLimit(1 << 20)
		ws.Write(r.Context(), websocket.MessageText, []byte(`{"type":"joined","stream_id":"s","stream_name":"me"}`))
		for {
			_, msg, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(msg))
			mu.Unlock()
		}
	})
	ctx := testCtx(t, 10*time.Second)
	s, err := OpenSession(ctx, srv.link(), SessionOptions{KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ data, code string }{
		{strings.Repeat("x", wire.DefaultLimits.TokenBytes+1), wire.CloseTokenTooLarge.Reason},
		{"bad \xff byte", "invalid_utf8"},
	} {
		err := s.Send(ctx, tc.data)
		te, ok := err.(*TokenError)
		if !ok || te.Code != tc.code {
			t.Errorf("send of %d bytes: %v, want %s", len(tc.data), err, tc.code)
		}
	}
	if err := s.Send(ctx, strings.Repeat("x", wire.DefaultLimits.TokenBytes)); err != nil {
		t.Fatalf("a token at the limit: %v", err)
	}
	s.Close()
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("the host received %d messages, want only the token at the limit", len(got))
	}
}

// TestSessionCloseEndsEverything: after Close, Send, Read and Flush return
// ErrSessionClosed instead of blocking.
func TestSessionCloseEndsEverything(t *testing.T) {
	srv := newHostile(t, func(h *hostile, n int, w http.ResponseWriter, r *http.Request) {
		ws := acceptWS(w, r)
		if ws == nil {
			return
		}
		ws.Write(r.Context(), websocket.MessageText, []byte(`{"type":"joined","stream_id":"s","stream_name":"me"}`))
		ws.Read(r.Context())
	})
	ctx := testCtx(t, 10*time.Second)
	s, err := OpenSession(ctx, srv.link(), SessionOptions{Dial: DialOptions{Receipts: true}})
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() { _, err := s.Read(ctx); readErr <- err }()
	s.Send(ctx, "unacknowledged")
	s.Close()
	if err := <-readErr; err != ErrSessionClosed {
		t.Fatalf("read after close: %v", err)
	}
	if err := s.Send(ctx, "x"); err != ErrSessionClosed {
		t.Fatalf("send after close: %v", err)
	}
	if err := s.Flush(context.Background()); err != ErrSessionClosed {
		t.Fatalf("flush after close: %v", err)
	}
}
