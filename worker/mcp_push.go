package worker

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ams-dev/ams/wire"
)

// The push leg: GET /mcp (or GET {magic link}) with Accept:
// text/event-stream and an Mcp-Session-Id opens the session's server-to-
// client SSE stream. It answers ":ok" at once, ":keepalive" every
// PushKeepalive, and the member's frames as notifications/ams/* the moment
// the conversation emits them, through a tap: a hibernatable socket of the
// conversation's object (durable/tap.go), so an idle conversation still
// hibernates under an open leg. When the member ends (left, expired, taken
// over, rotated out) the leg says notifications/ams/closed and waits for
// the session to join again. Pushed frames are not marked read: hosts drop
// notifications they do not know, so ams_recv still returns every frame.
// The leg holds no state of its own: it follows the session's binding.

const (
	// PushKeepalive is the interval of the leg's keepalive comments.
	PushKeepalive = 15 * time.Second
	// pushBindingPoll is how often a leg without a tap rereads the binding.
	pushBindingPoll = 2 * time.Second
	// pushRetryMax bounds the wait before tapping the same member again.
	pushRetryMax = time.Minute
	// pushQueueFrames bounds the frames a leg holds for a slow client; past
	// it the tap is dropped (the frames stay readable with ams_recv).
	pushQueueFrames = 4096
)

var (
	sseOpen      = []byte(":ok\n\n")
	sseKeepalive = []byte(":keepalive\n\n")
)

// PushLeg is one open push leg.
type PushLeg struct {
	c *mcpCall
}

// isPushPath reports whether path is /mcp or a magic link's.
func isPushPath(path string) (params, bool) {
	if path == "/mcp" {
		return params{}, true
	}
	return match("/{ns}/conversations/{alias}", path)
}

// OpenPush checks a request for the push leg. ok is false when r is not
// one (a GET of the link's page, say); err is the refusal to answer.
func (s *Service) OpenPush(r *http.Request) (leg *PushLeg, ok bool, err error) {
	p, onRoute := isPushPath(r.URL.Path)
	if r.Method != http.MethodGet || !onRoute || !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return nil, false, nil
	}
	if !s.Peppers.Complete() {
		return nil, true, fail(wire.ErrServerMisconfigured, "the deployment lacks AMS_CREDENTIAL_PEPPER or AMS_PERMISSIVE_TOKEN_PEPPER")
	}
	c := &mcpCall{s: s, r: r}
	ctx := r.Context()
	if credential := bearer(r); credential != "" {
		acc, err := s.authenticate(ctx, credential)
		if err != nil {
			return nil, true, err
		}
		c.account = acc
	}
	if p.alias != "" {
		token := r.URL.Query().Get("t")
		if token == "" {
			return nil, true, fail(wire.ErrMissingToken, "the magic link's t is missing")
		}
		rec, err := s.verifyLink(ctx, p.ns, p.alias, token)
		if err != nil {
			return nil, true, err
		}
		c.bound, c.boundToken = rec, token
	}
	id := r.Header.Get("Mcp-Session-Id")
	if id == "" {
		return nil, true, fail(wire.ErrMissingSessionID, "the push leg belongs to a session: initialize first and send its Mcp-Session-Id")
	}
	sess, valid := s.Peppers.OpenSessionID(id)
	if !valid {
		return nil, true, fail(wire.ErrSessionNotFound, "unknown Mcp-Session-Id: initialize a new session")
	}
	c.session = &sess
	return &PushLeg{c: c}, true, nil
}

// member reads the session's binding: the member call of its member and
// its handle, or joined false before the session joined.
func (l *PushLeg) member(ctx context.Context) (call wire.MemberCall, handle string, joined bool, err error) {
	st, err := l.c.sessionOp(ctx, "get", "")
	if err != nil {
		return call, "", false, err
	}
	h, ok := l.c.s.Peppers.OpenHandle(st.Handle)
	if !ok {
		return call, "", false, nil
	}
	t, err := l.c.fromHandle(ctx, h, false)
	if err != nil {
		return call, st.Handle, false, nil
	}
	return t.call, st.Handle, true, nil
}

// pushTap is an open tap as the push loop reads it.
type pushTap interface {
	// Ready is signalled when frames or the close are pending.
	Ready() <-chan struct{}
	// Take returns the pending frames and, once the tap closed, its close.
	Take() ([][]byte, *wire.Close)
	// Stop closes the tap.
	Stop()
}

// pushIO is what the push loop needs of the platform.
type pushIO interface {
	// Write sends bytes of the SSE answer; an error means the client left.
	Write([]byte) error
	// Tap opens the push leg of the member on its conversation's object.
	Tap(ctx context.Context, call wire.MemberCall) (pushTap, error)
	// Timer fires after d; in workerd a JS timer, so the leg resumes in its
	// own request's context (bridge.Timer).
	Timer(d time.Duration) (fired <-chan struct{}, stop func())
}

// goTimer is a Go runtime timer, for pushIO.Timer off workerd.
func goTimer(d time.Duration) (<-chan struct{}, func()) {
	fired := make(chan struct{})
	t := time.AfterFunc(d, func() { close(fired) })
	return fired, func() { t.Stop() }
}

// Run serves the leg until the client leaves or the session ends.
func (l *PushLeg) Run(ctx context.Context, io pushIO, keepalive time.Duration) {
	if io.Write(sseOpen) != nil {
		return
	}
	keep, stopKeep := io.Timer(keepalive)
	var tap pushTap
	var poll <-chan struct{}
	stopPoll := func() {}
	defer func() {
		stopKeep()
		stopPoll()
		if tap != nil {
			tap.Stop()
		}
	}()
	tapped, retry, next := "", pushBindingPoll, time.Time{}
	for {
		if tap == nil {
			call, handle, joined, err := l.member(ctx)
			if err != nil {
				_ = io.Write(sseEvent(closedNotification("session_ended", 0)))
				return
			}
			if handle != tapped {
				retry, next = pushBindingPoll, time.Time{}
			}
			if joined && !time.Now().Before(next) {
				if tap, err = io.Tap(ctx, call); err != nil {
					tap = nil
				}
				if tap == nil {
					next = time.Now().Add(retry)
					retry = min(retry*2, pushRetryMax)
				} else {
					tapped, retry = handle, pushBindingPoll
				}
			}
		}
		var ready <-chan struct{}
		if tap != nil {
			ready = tap.Ready()
		} else if poll == nil {
			poll, stopPoll = io.Timer(pushBindingPoll)
		}
		var out []byte
		select {
		case <-ctx.Done():
			return
		case <-keep:
			keep, stopKeep = io.Timer(keepalive)
			out = sseKeepalive
		case <-poll:
			poll = nil
			continue
		case <-ready:
			frames, closed := tap.Take()
			for _, f := range frames {
				out = append(out, sseEvent(pushNotification(f))...)
			}
			if closed != nil {
				tap.Stop()
				tap = nil
				next = time.Now().Add(retry)
				if closed.Code >= 4000 {
					out = append(out, sseEvent(closedNotification(closed.Reason, closed.Code))...)
				}
			}
		}
		if len(out) > 0 && io.Write(out) != nil {
			return
		}
	}
}

func sseEvent(message []byte) []byte {
	out := append([]byte("event: message\ndata: "), message...)
	return append(out, "\n\n"...)
}

// pushNotification is a wire frame as a JSON-RPC notification.
func pushNotification(frame []byte) []byte {
	note := notificationOf(frame)
	return append([]byte(`{"jsonrpc":"2.0",`), note[1:]...)
}

// closedNotification says the member's leg ended, and why.
func closedNotification(reason string, code int) []byte {
	return wire.MarshalVerbatim(rpcNotification("notifications/ams/closed", map[string]any{"reason": reason, "code": code}))
}

// tapQueue is a tap's frames as the platform's callbacks deliver them:
// they never block, so they are queued for the loop, up to pushQueueFrames.
type tapQueue struct {
	mu     sync.Mutex
	frames [][]byte
	closed *wire.Close
	ready  chan struct{}
	stop   func()
}

func newTapQueue(stop func()) *tapQueue {
	return &tapQueue{ready: make(chan struct{}, 1), stop: stop}
}

func (q *tapQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Frame queues a frame; a queue that is full closes the tap.
func (q *tapQueue) Frame(frame []byte) {
	q.mu.Lock()
	if q.closed == nil {
		if len(q.frames) >= pushQueueFrames {
			q.closed = &wire.CloseSubscriberBackpressure
		} else {
			q.frames = append(q.frames, frame)
		}
	}
	q.mu.Unlock()
	q.signal()
}

// Closed records the tap's close.
func (q *tapQueue) Closed(code wire.Close) {
	q.mu.Lock()
	if q.closed == nil {
		q.closed = &code
	}
	q.mu.Unlock()
	q.signal()
}

func (q *tapQueue) Ready() <-chan struct{} { return q.ready }

func (q *tapQueue) Take() ([][]byte, *wire.Close) {
	q.mu.Lock()
	defer q.mu.Unlock()
	frames := q.frames
	q.frames = nil
	return frames, q.closed
}

func (q *tapQueue) Stop() { q.stop() }

// getMCP answers a GET of /mcp that is not the push leg (or where the
// platform cannot stream): the MCP transport's 405.
func (s *Service) getMCP(w http.ResponseWriter, r *http.Request, _ params) {
	w.Header().Set("Allow", "POST, DELETE")
	writeError(w, wire.ErrMethodNotAllowed, "GET /mcp opens the push leg: send Accept: text/event-stream and the Mcp-Session-Id")
}
