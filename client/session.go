package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/wire"
)

// Session is one stream that survives a flaky network.
//
//   - Resume: it remembers the last seq delivered and reconnects with
//     X-AMS-Resume-After, so frames emitted while it was away arrive
//     before live ones, none twice.
//   - Identity: every reconnect asks for the stream name the broker gave
//     the first connection, and frames of the session's own streams are
//     never returned as a peer's (unless SelfSubscribe).
//   - Sending: with Receipts, a token stays in the outbox until the broker
//     acknowledges it with x_receipt; a reconnect writes every
//     unacknowledged token again, in order. A token the broker took whose
//     receipt was lost with the connection is therefore sent twice (at
//     least once, never lost). Without Receipts, Send is at most once.
//   - Liveness: when no frame arrived for KeepAlive it sends ping; when
//     none arrived for twice that, the connection is dropped and resumed.
//     Join has a deadline (DialOptions.JoinTimeout).
//   - Backoff: reconnects wait 250 ms doubling to 5 s; only after a
//     connection that stayed up 10 s is the first retry immediate and the
//     wait reset, so a host that accepts and then misbehaves (junk frames,
//     instant closes) is not hammered.
//
// Concurrency: Read must not overlap another Read (it also reconnects);
// Send, Flush, Pending, LastSeq, Name, Conn and Close may be called from
// any goroutine at any time, also while Read runs. Joined and Gaps are
// written by Read: read them from the goroutine that calls Read. Keep-alive
// counts only frames that Read consumed, so keep a Read running.
type Session struct {
	link string
	opts SessionOptions

	// writeMu orders writes: Send's append-and-write and a reconnect's
	// swap-and-rewrite of the outbox never interleave, so each token is
	// written once per connection, in Send order. Lock order: writeMu, mu.
	writeMu sync.Mutex

	mu          sync.Mutex
	conn        *Conn
	lastSeq     int64
	lastHeard   time.Time
	connectedAt time.Time
	backoff     time.Duration
	silenced    *Conn // the connection keep-alive dropped, to name the cause
	outbox      []string
	changed     chan struct{} // closed and replaced when the outbox shrinks or the session ends
	ownIDs      map[string]bool
	err         error // why the session ended; nil while it lives
	done        chan struct{}

	// Joined is the joined frame of the current connection.
	Joined *Frame
	// Gaps counts reconnects whose joined said recovered: false: frames
	// older than the broker's replay buffer were lost.
	Gaps int
}

// SessionOptions configure a Session.
type SessionOptions struct {
	Dial DialOptions
	// KeepAlive is the silence after which the session pings; twice it
	// without any frame drops the connection. Zero means DefaultKeepAlive;
	// negative turns keep-alive off.
	KeepAlive time.Duration
	// Outbox bounds the unacknowledged tokens (with Receipts); Send waits
	// while it is full. Zero means DefaultOutbox.
	Outbox int
	// NoReconnect makes a lost connection (a silent one included) end the
	// session with its error instead of resuming.
	NoReconnect bool
	// OnLost is called before each reconnect attempt with its cause and
	// the seq it resumes after.
	OnLost func(cause error, after int64)
	// OnResumed is called with the joined frame of each new connection
	// (its Recovered says whether anything was lost).
	OnResumed func(joined *Frame)
}

// Defaults of a session.
const (
	DefaultKeepAlive = 5 * time.Second
	DefaultOutbox    = 1024
	firstBackoff     = 250 * time.Millisecond
	maxBackoff       = 5 * time.Second
	healthyAfter     = 10 * time.Second
	writeTimeout     = 10 * time.Second
)

// ErrSessionClosed is what a Session returns after Close.
var ErrSessionClosed = errors.New("ams: the session is closed")

// errSilent is the cause of a connection keep-alive dropped.
var errSilent = errors.New("no frame and no pong: the connection went silent")

// Open joins magicLink and returns a session on it.
func Open(ctx context.Context, magicLink string, opts DialOptions) (*Session, error) {
	return OpenSession(ctx, magicLink, SessionOptions{Dial: opts})
}

// OpenSession joins magicLink with the given session options.
func OpenSession(ctx context.Context, magicLink string, opts SessionOptions) (*Session, error) {
	if opts.KeepAlive == 0 {
		opts.KeepAlive = DefaultKeepAlive
	}
	if opts.Outbox <= 0 {
		opts.Outbox = DefaultOutbox
	}
	// The first retry waits too: only a connection that stayed up
	// healthyAfter earns an immediate one.
	s := &Session{link: magicLink, opts: opts, backoff: firstBackoff, changed: make(chan struct{}), ownIDs: map[string]bool{}, done: make(chan struct{})}
	after := opts.Dial.ResumeAfter
	if after != nil {
		s.lastSeq = *after
	}
	if _, err := s.connect(ctx, after); err != nil {
		return nil, err
	}
	if opts.KeepAlive > 0 {
		go s.keepAlive(opts.KeepAlive)
	}
	return s, nil
}

// LastSeq is the highest seq delivered so far.
func (s *Session) LastSeq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq
}

// Name is the stream's name: the one the broker gave the first connection.
func (s *Session) Name() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Dial.StreamName
}

// Conn is the current connection.
func (s *Session) Conn() *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Pending is how many sent tokens the broker has not acknowledged yet.
func (s *Session) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outbox)
}

// connect joins (resuming after *after when set), makes the connection
// current and writes the outbox on it.
func (s *Session) connect(ctx context.Context, after *int64) (*Frame, error) {
	s.mu.Lock()
	opts := s.opts.Dial
	s.mu.Unlock()
	opts.ResumeAfter = after
	conn, joined, err := Join(ctx, s.link, opts)
	if err != nil {
		return nil, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		conn.CloseNow()
		return nil, err
	}
	old := s.conn
	now := time.Now()
	s.conn, s.lastHeard, s.connectedAt = conn, now, now
	s.opts.Dial.StreamName = joined.StreamName
	s.ownIDs[joined.StreamID] = true
	if after == nil && joined.Seq > s.lastSeq {
		s.lastSeq = joined.Seq
	}
	pending := append([]string(nil), s.outbox...)
	s.mu.Unlock()
	if old != nil {
		old.CloseNow()
	}
	wctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	for _, data := range pending {
		if conn.SendToken(wctx, data) != nil {
			break // the next loss writes them again
		}
	}
	s.Joined = joined
	if joined.Recovered != nil && !*joined.Recovered {
		s.Gaps++
	}
	return joined, nil
}

// Reconnect drops the current connection and resumes after LastSeq.
func (s *Session) Reconnect(ctx context.Context) error {
	if conn := s.Conn(); conn != nil {
		conn.CloseNow()
	}
	after := s.LastSeq()
	_, err := s.connect(ctx, &after)
	return err
}

// Read returns the next frame of a peer (and receipts, stream events and
// metadata). A lost connection is resumed transparently (OnLost and
// OnResumed tell about it); a close the broker chose (a refusal, a
// takeover) ends the session and is returned.
func (s *Session) Read(ctx context.Context) (*Frame, error) {
	for {
		s.mu.Lock()
		conn, ended := s.conn, s.err
		s.mu.Unlock()
		if ended != nil {
			return nil, ended
		}
		f, err := conn.Read(ctx)
		if err == nil {
			if f = s.consume(f); f != nil {
				return f, nil
			}
			continue
		}
		if ctx.Err() != nil {
			return nil, err
		}
		s.mu.Lock()
		if s.silenced == conn {
			err = errSilent
		}
		ended = s.err
		s.mu.Unlock()
		if ended != nil {
			return nil, ended
		}
		if !resumable(err) || s.opts.NoReconnect {
			s.end(err)
			return nil, err
		}
		joined, err := s.resume(ctx, err)
		if err != nil {
			if ctx.Err() == nil {
				s.end(err)
			}
			return nil, err
		}
		if s.opts.OnResumed != nil {
			s.opts.OnResumed(joined)
		}
	}
}

// consume books one received frame and returns it, or nil when it is not
// the caller's: a pong keep-alive asked for, a frame of one of the
// session's own streams.
func (s *Session) consume(f *Frame) *Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastHeard = time.Now()
	switch f.Type {
	case wire.TypeReceipt:
		if len(s.outbox) > 0 {
			s.outbox = s.outbox[1:]
			s.broadcast()
		}
		return f
	case wire.TypePong:
		if s.opts.KeepAlive > 0 {
			return nil
		}
		return f
	}
	if f.Seq > s.lastSeq {
		s.lastSeq = f.Seq
	}
	if !s.opts.Dial.SelfSubscribe && f.StreamID != "" && s.ownIDs[f.StreamID] && f.Type != wire.TypeJoined {
		return nil
	}
	return f
}

// resume reconnects after LastSeq with backoff until the broker answers,
// refuses (a 4xxx close or an HTTP error), or the session ends.
func (s *Session) resume(ctx context.Context, cause error) (*Frame, error) {
	for {
		s.mu.Lock()
		if time.Since(s.connectedAt) >= healthyAfter {
			s.backoff = 0
		}
		delay := s.backoff
		s.backoff = min(max(2*s.backoff, firstBackoff), maxBackoff)
		after := s.lastSeq
		s.mu.Unlock()
		if s.opts.OnLost != nil {
			s.opts.OnLost(cause, after)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			return nil, ErrSessionClosed
		}
		joined, err := s.connect(ctx, &after)
		if err == nil {
			return joined, nil
		}
		var api *APIError
		if code, _ := CloseOf(err); code >= 4000 || errors.As(err, &api) || ctx.Err() != nil || errors.Is(err, ErrSessionClosed) {
			return nil, err
		}
		cause = err
	}
}

// Send emits data on the stream. With Receipts it returns once the token is
// in the outbox and written to the current connection (or queued for the
// next one): Flush waits for the broker's receipts. Data the broker would
// refuse (CheckToken) is refused here, before anything is sent.
func (s *Session) Send(ctx context.Context, data string) error {
	if err := CheckToken(data); err != nil {
		return err
	}
	receipts := s.opts.Dial.Receipts
	for {
		s.writeMu.Lock()
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			s.writeMu.Unlock()
			return err
		}
		if receipts && len(s.outbox) >= s.opts.Outbox {
			changed := s.changed
			s.mu.Unlock()
			s.writeMu.Unlock()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if receipts {
			s.outbox = append(s.outbox, data)
		}
		conn := s.conn
		s.mu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err := conn.SendToken(wctx, data)
		cancel()
		s.writeMu.Unlock()
		if err != nil && receipts {
			return nil // in the outbox: the next connection writes it
		}
		return err
	}
}

// Flush waits until the broker acknowledged every token sent (Receipts),
// or the session ends (its error), or ctx ends.
func (s *Session) Flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		n, err, changed := len(s.outbox), s.err, s.changed
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// keepAlive pings a quiet connection and drops a silent one, so Read
// resumes instead of waiting on a proxy that stopped forwarding.
func (s *Session) keepAlive(every time.Duration) {
	tick := time.NewTicker(every / 2)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		conn, idle := s.conn, time.Since(s.lastHeard)
		if idle >= 2*every {
			s.silenced = conn
		}
		s.mu.Unlock()
		switch {
		case idle >= 2*every:
			conn.CloseNow()
		case idle >= every:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			_ = conn.Ping(ctx)
			cancel()
		}
	}
}

// broadcast wakes everyone waiting on changed; s.mu is held.
func (s *Session) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// end records why the session ended, once.
func (s *Session) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
		close(s.done)
		s.broadcast()
	}
}

// Close leaves the conversation normally (peers see stream_left).
func (s *Session) Close() error {
	s.end(ErrSessionClosed)
	return s.Conn().Close()
}

// resumable reports whether err is a lost connection (or a misbehaving
// host, retried with backoff) rather than a close the broker chose.
func resumable(err error) bool {
	code, _ := CloseOf(err)
	switch {
	case code == -1:
		return !errors.Is(err, context.Canceled)
	case code == int(websocket.StatusGoingAway), code == int(websocket.StatusAbnormalClosure),
		code == int(websocket.StatusMessageTooBig), code == int(websocket.StatusProtocolError),
		code == int(websocket.StatusInvalidFramePayloadData), code == 1012, code == 1013:
		return true
	}
	return false
}

// Resumable reports whether a Read error is a lost connection worth
// resuming (true) or a close the broker chose, such as a refusal (false).
func Resumable(err error) bool { return resumable(err) }
