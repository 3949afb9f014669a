package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// fakeBroker drops the first connection after one token and checks that
// the second one resumes after it.
func fakeBroker(t *testing.T, received chan<- string) string {
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ctx := r.Context()
		write := func(s string) { ws.Write(ctx, websocket.MessageText, []byte(s)) }
		switch conns.Add(1) {
		case 1:
			if h := r.Header.Get(wire.HeaderResumeAfter); h != "" {
				t.Errorf("first connection resumed after %q", h)
			}
			write(`{"type":"joined","stream_name":"me","seq":5}`)
			write(`{"type":"token","seq":6,"stream_name":"peer","data":"a"}`)
			time.Sleep(50 * time.Millisecond)
			ws.CloseNow()
		default:
			if h := r.Header.Get(wire.HeaderResumeAfter); h != "6" {
				t.Errorf("reconnect resumed after %q, want 6", h)
			}
			write(`{"type":"joined","stream_name":"me","seq":7,"recovered":true}`)
			write(`{"type":"token","seq":7,"stream_name":"peer","data":"b"}`)
			_, msg, err := ws.Read(ctx)
			if err == nil {
				received <- string(msg)
			}
			ws.Read(ctx)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/ns/conversations/room?t=tok"
}

func TestLiveStreamResumesAfterTheLastSeq(t *testing.T) {
	received := make(chan string, 1)
	link := fakeBroker(t, received)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var notes []string
	s, joined, err := openStream(ctx, link, client.DialOptions{Credential: "ams_sk_x"}, true, nil, func(f string, a ...any) { notes = append(notes, f) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if joined.Seq != 5 || s.LastSeq() != 5 {
		t.Fatalf("joined seq %d, last seq %d", joined.Seq, s.LastSeq())
	}
	var got []string
	for len(got) < 3 {
		f, err := s.Read()
		if err != nil {
			t.Fatalf("read after %q: %v", got, err)
		}
		got = append(got, f.Type+":"+strings.TrimSpace(deref(f.Data)))
	}
	if strings.Join(got, " ") != "token:a joined: token:b" {
		t.Fatalf("frames %q", got)
	}
	if s.LastSeq() != 7 || len(notes) == 0 {
		t.Fatalf("last seq %d, notes %q", s.LastSeq(), notes)
	}
	if err := s.Send("x"); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-received:
		if msg != `{"type":"token","data":"x"}` {
			t.Fatalf("broker got %s", msg)
		}
	case <-ctx.Done():
		t.Fatal("the token sent after the reconnect never arrived")
	}
}

func TestLiveStreamWithoutResumeEndsOnADrop(t *testing.T) {
	link := fakeBroker(t, make(chan string, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, _, err := openStream(ctx, link, client.DialOptions{}, false, nil, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(); err == nil {
		t.Fatal("a dropped connection without --resume should end the stream")
	}
	if err := s.Send("late"); err == nil {
		t.Fatal("send on an ended stream succeeded")
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
