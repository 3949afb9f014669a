package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/wire"
)

// hostile is a loopback server playing a broker that misbehaves: it logs
// every request's headers and lets each test script the answers.
type hostile struct {
	*httptest.Server
	mu       sync.Mutex
	requests []http.Header
	conns    atomic.Int32
}

func newHostile(t *testing.T, handle func(h *hostile, n int, w http.ResponseWriter, r *http.Request)) *hostile {
	h := &hostile{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.requests = append(h.requests, r.Header.Clone())
		h.mu.Unlock()
		handle(h, int(h.conns.Add(1)), w, r)
	}))
	t.Cleanup(h.Close)
	return h
}

// link is a magic link on this server.
func (h *hostile) link() string { return h.URL + "/ns/conversations/room?t=tok" }

// authorizations lists the Authorization headers the server saw.
func (h *hostile) authorizations() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, hd := range h.requests {
		if a := hd.Get("Authorization"); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (h *hostile) headers(i int) http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i >= len(h.requests) {
		return nil
	}
	return h.requests[i]
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestRedirectsNeverCarryTheBearer: a 307 to another port of the same
// host (which Go's client re-sends Authorization to) is not followed, on
// the control plane and on the stream plane.
func TestRedirectsNeverCarryTheBearer(t *testing.T) {
	target := newHostile(t, func(h *hostile, n int, w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{}`))
	})
	redirector := newHostile(t, func(h *hostile, n int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	})
	ctx := testCtx(t, 10*time.Second)
	c := &Client{BaseURL: redirector.URL, Credential: "ams_sk_secret"}
	_, err := c.CreateConversation(ctx, "ns", NewConversation{})
	var api *APIError
	if !errors.As(err, &api) || api.Status != http.StatusTemporaryRedirect || !strings.Contains(api.Message, "not followed") {
		t.Fatalf("mint through a redirect: %v", err)
	}
	if _, err := c.Inspect(ctx, redirector.link()); err == nil {
		t.Fatal("inspect through a redirect succeeded")
	}
	_, _, err = Join(ctx, redirector.link(), DialOptions{Credential: "ams_sk_secret"})
	if !errors.As(err, &api) || api.Status != http.StatusTemporaryRedirect {
		t.Fatalf("join through a redirect: %v", err)
	}
	if got := target.authorizations(); len(got) != 0 {
		t.Fatalf("the redirect target received the bearer: %q", got)
	}
	if n := target.conns.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests (the link's t goes with them)", n)
	}
	if got := redirector.authorizations(); len(got) != 2 {
		t.Fatalf("the broker itself should see the bearer twice (mint, join): %q", got)
	}
}

// TestControlPlaneAnswerIsBounded: an endless answer is cut at the limit
// instead of filling memory.
func TestControlPlaneAnswerIsBounded(t *testing.T) {
	var written atomic.Int64
	srv := newHostile(t, func(h *hostile, n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := []byte(`{"conversation_id":"` + strings.Repeat("x", 64<<10))
		for i := 0; i < 4096; i++ { // up to 256 MiB
			m, err := w.Write(chunk)
			written.Add(int64(m))
			if err != nil {
				return
			}
		}
	})
	c := &Client{BaseURL: srv.URL, MaxResponse: 1 << 20}
	_, err := c.Inspect(testCtx(t, 30*time.Second), srv.link())
	var pe *ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "larger than") {
		t.Fatalf("endless answer: %v", err)
	}
	// Give the server a moment to notice the client hung up.
	time.Sleep(100 * time.Millisecond)
	w := written.Load()
	if w > 64<<20 {
		t.Fatalf("the client let the server write %d bytes for a 1 MiB limit", w)
	}
	t.Logf("the server wrote %d bytes of a 256 MiB answer before the client hung up", w)
}

// acceptWS upgrades and returns the socket, or nil.
func acceptWS(w http.ResponseWriter, r *http.Request) *websocket.Conn {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil
	}
	return ws
}

// TestJoinHasADeadline: a host that upgrades and never says joined is an
// ErrJoinTimeout, not a hang.
func TestJoinHasADeadline(t *testing.T) {
	srv := newHostile(t, func(h *hostile, n int, w http.ResponseWriter, r *http.Request) {
		if ws := acceptWS(w, r); ws != nil {
			<-r.Context().Done()
		}
	})
	began := time.Now()
	_, _, err := Join(testCtx(t, 30*time.Second), srv.link(), DialOptions{JoinTimeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrJoinTimeout) {
		t.Fatalf("join against a silent host: %v after %s", err, time.Since(began))
	}
}

// TestSilentConnectionIsResumed: after joined the host stops sending (and
// ignores ping); the session notices through keep-alive and reconnects,
// resuming after what it had.
func TestSilentConnectionIsResumed(t *testing.T) {
	srv := newHostile(t, func(h *hostile, n int, w http.ResponseWriter, r *http.Request) {
		ws := acceptWS(w, r)
		if ws == nil {
			return
		}
		ctx := r.Context()
		ws.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"joined","stream_id":"str_me","stream_name":"me","seq":%d}`, 4+n)))
		if n == 1 {
			ws.Write(ctx, websocket.MessageText, []byte(`{"type":"token","stream_id":"str_p","stream_name":"p","seq":5,"data":"a"}`))
			for { // swallow pings, answer nothing
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
		}
		ws.Write(ctx, websocket.MessageText, []byte(`{"type":"token","stream_id":"str_p","stream_name":"p","seq":6,"data":"b"}`))
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				return
			}
			if string(msg) == wire.PingFrame {
				ws.Write(ctx, websocket.MessageText, []byte(wire.PongFrame))
			}
		}
	})
	lost := make(chan error, 4)
	s, err := OpenSession(testCtx(t, 10*time.Second), srv.link(), SessionOptions{
		KeepAlive: 100 * time.Millisecond,
		OnLost:    func(cause error, after int64) { lost <- cause },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := testCtx(t, 10*time.Second)
	for _, want := range []string{"a", "b"} {
		f, err := s.Read(ctx)
		if err != nil || f.Data == nil || *f.Data != want {
			t.Fatalf("read %q: %+v %v", want, f, err)
		}
	}
	if cause := <-lost; !errors.Is(cause, errSilent) {
		t.Fatalf("lost because %v, want silence", cause)
	}
	if got := srv.headers(1).Get(wire.HeaderResumeAfter); got != "5" {
		t.Fatalf("resumed after %q, want 5", got)
	}
}

// TestJunkFramesBackOff: a host that says joined and then sends a frame
// that is not JSON gets a protocol error and reconnects with backoff, not
// a reconnect storm.
func TestJunkFramesBackOff(t *testing.T) {
	for _, junk := range []string{"not json", "\xff\xfe{}", `[1,2]`, `{"no":"type"}`} {
		t.Run(fmt.Sprintf("%q", junk), func(t *testing.T) {
			srv := newHostile(t, func(h *hostile, n int, w http.ResponseWriter, r *http.Request) {
				ws := acceptWS(w, r)
				if ws == nil {
					return
				}
				ctx := r.Context()
				ws.Write(ctx, websocket.MessageText, []byte(`{"type":"joined","stream_id":"str_me","stream_name":"me","seq":1}`))
				ws.Write(ctx, websocket.MessageText, []byte(junk))
				ws.Read(ctx)
			})
			var causes []error
			var mu sync.Mutex
			s, err := OpenSession(testCtx(t, 10*time.Second), srv.link(), SessionOptions{
				KeepAlive: -1,
				OnLost: func(cause error, _ int64) {
					mu.Lock()
					causes = append(causes, cause)
					mu.Unlock()
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err = s.Read(ctx)
			if err == nil {
				t.Fatal("a junk frame was returned as a frame")
			}
			// 2 s of backoff 0.25+0.5+1 s is 4 connections; a storm is hundreds.
			n := srv.conns.Load()
			if n > 5 {
				t.Fatalf("%d connections in 2 s: a reconnect storm", n)
			}
			t.Logf("%d connections in 2 s", n)
			mu.Lock()
			defer mu.Unlock()
			var pe *ProtocolError
			if len(causes) == 0 || !errors.As(causes[0], &pe) {
				t.Fatalf("causes %v, want a protocol error", causes)
			}
		})
	}
}
