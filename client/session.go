package client

import (
	"context"
	"errors"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/wire"
)

// Session is a stream that survives dropped connections: it remembers the
// last seq it delivered and reconnects with X-AMS-Resume-After, so frames
// emitted while it was away arrive before live ones, none twice.
type Session struct {
	link    string
	opts    DialOptions
	conn    *Conn
	lastSeq int64
	// Joined is the joined frame of the current connection.
	Joined *Frame
	// Gaps counts reconnects whose joined said recovered: false: frames
	// older than the broker's replay buffer were lost.
	Gaps int
}

// Open joins magicLink and returns a session on it.
func Open(ctx context.Context, magicLink string, opts DialOptions) (*Session, error) {
	s := &Session{link: magicLink, opts: opts}
	if opts.ResumeAfter != nil {
		s.lastSeq = *opts.ResumeAfter
	}
	if err := s.connect(ctx, opts.ResumeAfter); err != nil {
		return nil, err
	}
	return s, nil
}

// LastSeq is the highest seq delivered so far.
func (s *Session) LastSeq() int64 { return s.lastSeq }

// Conn is the current connection, for writing.
func (s *Session) Conn() *Conn { return s.conn }

func (s *Session) connect(ctx context.Context, resumeAfter *int64) error {
	opts := s.opts
	opts.ResumeAfter = resumeAfter
	conn, joined, err := Join(ctx, s.link, opts)
	if err != nil {
		return err
	}
	s.conn, s.Joined = conn, joined
	if joined.Recovered != nil && !*joined.Recovered {
		s.Gaps++
	}
	if resumeAfter == nil && joined.Seq > s.lastSeq {
		s.lastSeq = joined.Seq
	}
	return nil
}

// Reconnect drops the current connection and resumes after LastSeq.
func (s *Session) Reconnect(ctx context.Context) error {
	if s.conn != nil {
		s.conn.CloseNow()
	}
	after := s.lastSeq
	return s.connect(ctx, &after)
}

// Read returns the next frame. A lost connection is resumed transparently;
// a close the broker chose (a refusal, a takeover) is returned.
func (s *Session) Read(ctx context.Context) (*Frame, error) {
	for {
		f, err := s.conn.Read(ctx)
		if err == nil {
			if f.Seq > s.lastSeq && f.Type != wire.TypeReceipt {
				s.lastSeq = f.Seq
			}
			return f, nil
		}
		if ctx.Err() != nil || !resumable(err) {
			return nil, err
		}
		if err := s.Reconnect(ctx); err != nil {
			return nil, err
		}
	}
}

// resumable reports whether err is a lost connection rather than a close
// the broker chose.
func resumable(err error) bool {
	code, _ := CloseOf(err)
	switch {
	case code == -1:
		return !errors.Is(err, context.Canceled)
	case code == int(websocket.StatusGoingAway), code == int(websocket.StatusAbnormalClosure), code == 1012, code == 1013:
		return true
	}
	return false
}

// Close ends the session.
func (s *Session) Close() error { return s.conn.Close() }
