package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// liveStream is one stream of the CLI: a reader goroutine and a writer
// goroutine share it. With resume it behaves like client.Session (a lost
// connection is resumed after the last seq delivered, so nothing is missed
// and nothing repeats), and in addition lets the writer send while the
// reader reconnects: Session swaps its connection inside Read, which a
// concurrent writer could not follow safely.
type liveStream struct {
	link   string
	opts   client.DialOptions
	resume bool
	note   func(format string, args ...any)

	// ctx ends when Close is called; every read, write and dial uses it.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	conn    *client.Conn
	lastSeq int64
	changed chan struct{} // closed when conn is replaced, or when the stream ends
	ended   bool
}

// openStream joins link; after, when set, asks to resume after that seq.
func openStream(ctx context.Context, link string, opts client.DialOptions, resume bool, after *int64, note func(string, ...any)) (*liveStream, *client.Frame, error) {
	opts.ResumeAfter = after
	conn, joined, err := client.Join(ctx, link, opts)
	if err != nil {
		return nil, nil, err
	}
	opts.ResumeAfter = nil
	s := &liveStream{link: link, opts: opts, resume: resume, note: note, conn: conn, changed: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if after != nil {
		s.lastSeq = *after
	} else {
		s.lastSeq = joined.Seq
	}
	return s, joined, nil
}

// LastSeq is the highest seq delivered by Read (or the joined seq).
func (s *liveStream) LastSeq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq
}

func (s *liveStream) current() (*client.Conn, chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn, s.changed, s.ended
}

// Read returns the next frame. With resume, a lost connection is resumed
// and the new joined frame (with "recovered") is returned; a close the
// broker chose, or Close, ends the stream with an error.
func (s *liveStream) Read() (*client.Frame, error) {
	conn, _, _ := s.current()
	f, err := conn.Read(s.ctx)
	if err == nil {
		if f.Type != wire.TypeReceipt {
			s.mu.Lock()
			if f.Seq > s.lastSeq {
				s.lastSeq = f.Seq
			}
			s.mu.Unlock()
		}
		return f, nil
	}
	if !s.resume || s.ctx.Err() != nil || !resumable(err) {
		s.end()
		return nil, err
	}
	joined, err := s.reconnect(err)
	if err != nil {
		s.end()
		return nil, err
	}
	return joined, nil
}

// reconnect resumes after LastSeq, retrying with backoff until the broker
// answers, refuses, or Close is called.
func (s *liveStream) reconnect(cause error) (*client.Frame, error) {
	backoff := 250 * time.Millisecond
	for {
		after := s.LastSeq()
		s.note("connection lost (%s); resuming after seq %d", rootCause(cause), after)
		opts := s.opts
		opts.ResumeAfter = &after
		conn, joined, err := client.Join(s.ctx, s.link, opts)
		if err == nil {
			s.mu.Lock()
			old := s.conn
			s.conn = conn
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
			old.CloseNow()
			return joined, nil
		}
		if s.ctx.Err() != nil {
			return nil, s.ctx.Err()
		}
		if code, _ := client.CloseOf(err); code >= 4000 {
			return nil, err
		}
		cause = err
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
			return nil, s.ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Send emits data. With resume, a send that fails because the connection
// dropped is retried on the resumed connection.
func (s *liveStream) Send(data string) error {
	for {
		conn, changed, ended := s.current()
		if ended {
			return errStreamEnded
		}
		err := conn.SendToken(s.ctx, data)
		if err == nil || !s.resume || ended || s.ctx.Err() != nil {
			return err
		}
		select {
		case <-changed:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}

// Close leaves the conversation normally (peers see stream_left).
func (s *liveStream) Close() {
	conn, _, _ := s.current()
	s.end()
	conn.Close()
	s.cancel()
}

func (s *liveStream) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.ended = true
		close(s.changed)
	}
}

// errStreamEnded is a send after the stream closed for good.
var errStreamEnded = errors.New("the stream has ended")

// resumable reports whether err is a lost connection rather than a close
// the broker chose (the same rule as client.Session).
func resumable(err error) bool {
	code, _ := client.CloseOf(err)
	switch code {
	case -1:
		return !errors.Is(err, context.Canceled)
	case int(websocket.StatusGoingAway), int(websocket.StatusAbnormalClosure), 1012, 1013:
		return true
	}
	return false
}
