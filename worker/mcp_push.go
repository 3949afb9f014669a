package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/ams-dev/ams/wire"
)

// The push leg: GET /mcp (or GET {magic link}) with Accept:
// text/event-stream and an Mcp-Session-Id opens the session's server-to-
// client SSE stream. It answers ":ok" at once, ":keepalive" every
// PushKeepalive, and the member's frames as notifications/ams/* the moment
// the conversation emits them, each with its seq as the SSE id.
//
// The leg holds no state of its own: it follows the session's binding. It
// watches the session's object (a hibernatable socket, wire.SessionPath +
// "watch"), which says when the session is bound or ended, so a leg opened
// before ams_join taps the member as soon as it joined; without the watch it
// rereads the binding every pushBindingPoll. It taps the member through a
// hibernatable socket of the conversation's object (durable/tap.go), so an
// idle conversation still hibernates under an open leg, and starts the tap
// after the last seq its client saw: the request's Last-Event-ID, the last
// seq this leg wrote when it taps the same member again, or else the
// member's own position. The object sends what the member heard since, then
// its frames as they happen. What the leg wrote it acks, so those frames do
// not ride along again, and a push-only member (ams_join delivery "push")
// has them marked read; by default nothing pushed is marked read, because
// hosts drop notifications they do not know, so ams_recv still returns
// every frame. When the member ends (left, expired, taken over, rotated out)
// the leg says notifications/ams/closed and waits for the session to join
// again (a rejoin by self-rehydration binds again too); when the session
// ends, it says closed with session_ended and ends.

const (
	// PushKeepalive is the interval of the leg's keepalive comments.
	PushKeepalive = 15 * time.Second
	// PushWriteTimeout bounds one write of the leg: a client that stopped
	// reading for that long is gone.
	PushWriteTimeout = 30 * time.Second
	// pushBindingPoll is how often a leg without a watch rereads the binding,
	// and the first backoff of a tap that failed.
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
	// lastSeq and lastTag are the request's Last-Event-ID (parseEventID).
	lastSeq int64
	lastTag string
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
	// A session that ended is a 404, as for any request that names it.
	if _, err := c.sessionOp(ctx, "get", ""); err != nil {
		return nil, true, err
	}
	leg = &PushLeg{c: c}
	leg.lastSeq, leg.lastTag = parseEventID(r.Header.Get("Last-Event-ID"))
	return leg, true, nil
}

// An SSE id is "<seq>-<tag>": the frame's seq in its conversation and a tag
// of the member it was pushed to (memberTag), so ids never repeat across
// the members a session joins, and a Last-Event-ID only ever moves the leg
// of the member that saw it.
func eventID(seq int64, tag string) []byte {
	return append(append(strconv.AppendInt(nil, seq, 10), '-'), tag...)
}

func parseEventID(id string) (int64, string) {
	seq, tag, ok := strings.Cut(strings.TrimSpace(id), "-")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 0 || tag == "" {
		return 0, ""
	}
	return n, tag
}

// memberTag names a member (conversation, stream and reader) in 8 hex.
func memberTag(call wire.MemberCall) string {
	sum := sha256.Sum256([]byte(call.ConversationID + "\x00" + call.StreamID + "\x00" + call.Reader))
	return hex.EncodeToString(sum[:4])
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
	var refused *apiError
	if errors.As(err, &refused) {
		return call, st.Handle, false, nil // stale, or not this caller's
	}
	if err != nil {
		return call, st.Handle, false, err
	}
	return t.call, st.Handle, true, nil
}

// pushSocket is an open socket of the leg (a tap or the session watch) as
// the push loop reads it.
type pushSocket interface {
	// Ready is signalled when messages or the close are pending.
	Ready() <-chan struct{}
	// Take returns the pending messages and, once the socket closed, its close.
	Take() ([][]byte, *wire.Close)
	// Send sends a control message (wire.EncodeTapStart, wire.EncodeTapAck).
	Send([]byte)
	// Stop closes the socket.
	Stop()
}

// pushIO is what the push loop needs of the platform.
type pushIO interface {
	// Write sends bytes of the SSE answer; an error means the client left.
	Write([]byte) error
	// Tap opens the push leg of the member on its conversation's object;
	// one the object refuses closes at once, not_joined with no why.
	Tap(ctx context.Context, call wire.MemberCall) (pushSocket, error)
	// Watch opens the watch of the session nonce's object: a message means
	// the session was bound or ended.
	Watch(ctx context.Context, nonce string) (pushSocket, error)
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

// pushLoop is the state of Run.
type pushLoop struct {
	leg *PushLeg
	io  pushIO
	ctx context.Context
	// tap is the member's open tap, tapped the handle it taps and tag its
	// memberTag; lastSeq is the last seq written from it (zero for none).
	tap     pushSocket
	tapped  string
	tag     string
	lastSeq int64
	// startAfter is where the first tap of the member started, for a retap
	// before anything was written.
	startAfter *int64
	// replaced is the handle a newer leg took from this one: this leg does
	// not tap it again (the two would replace each other as clients
	// reconnect), it stays open and idle until the session joins another.
	replaced string
	// watch is the session's watch, nil when it could not be opened;
	// watchAt is when to open it again after it closed.
	watch   pushSocket
	watchAt time.Time
	// recheck fires when the binding is to be read again (no watch, or a
	// failure to retry); retry is the backoff of failures.
	recheck     <-chan struct{}
	stopRecheck func()
	retry       time.Duration
}

// recheckIn reads the binding again after d.
func (p *pushLoop) recheckIn(d time.Duration) {
	p.stopRecheck()
	p.recheck, p.stopRecheck = p.io.Timer(d)
}

// backoff reads the binding again after the next backoff step.
func (p *pushLoop) backoff() {
	p.recheckIn(p.retry)
	p.retry = min(p.retry*2, pushRetryMax)
}

// follow reads the binding and taps its member if it is not tapped yet;
// false means the session ended. Failures are retried with backoff.
func (p *pushLoop) follow() bool {
	p.stopRecheck()
	p.recheck, p.stopRecheck = nil, func() {}
	if p.watch == nil && !time.Now().Before(p.watchAt) {
		if w, err := p.io.Watch(p.ctx, p.leg.c.session.Nonce); err == nil {
			p.watch = w
		}
	}
	call, handle, joined, err := p.leg.member(p.ctx)
	if errors.Is(err, errSessionEnded) {
		return false
	}
	if err != nil {
		p.backoff()
		return true
	}
	if p.tap != nil && handle != p.tapped {
		p.tap.Stop()
		p.tap = nil
	}
	if p.tap == nil && joined && handle != p.replaced {
		tag := memberTag(call)
		var after *int64
		switch {
		case handle == p.tapped && p.lastSeq > 0:
			after = &p.lastSeq
		case handle == p.tapped:
			after = p.startAfter
		case p.leg.lastTag == tag:
			after = &p.leg.lastSeq
		case p.leg.lastTag != "":
			// The client's last id is another member's (the session joined
			// this one since): it saw nothing of this member, so from its
			// join (the object starts no earlier).
			var fromJoin int64
			after = &fromJoin
		}
		tap, err := p.io.Tap(p.ctx, call)
		if err != nil {
			p.backoff()
		} else {
			if handle != p.tapped {
				p.lastSeq, p.startAfter = 0, after
			}
			p.tap, p.tapped, p.tag, p.leg.lastTag = tap, handle, tag, ""
			p.start(after)
		}
	}
	if p.watch == nil && p.recheck == nil {
		p.recheckIn(pushBindingPoll)
	}
	return true
}

// start sends the tap its start, with the ack of what this leg already
// wrote to the member (an ack the object may have missed when the previous
// tap closed).
func (p *pushLoop) start(after *int64) {
	p.tap.Send(wire.EncodeTapStart(after, p.lastSeq))
}

// tapBatch is what one batch of a tap's messages comes to.
type tapBatch struct {
	out  []byte // SSE events to write
	last int64  // the last seq among them
	more *int64 // the object has more after this seq (wire.TapMore)
	// restart: the object asks for a start again (wire.TapRestart), after
	// more (nil: the first start's position).
	restart bool
}

// render turns a tap's messages into SSE events, each frame with its id.
func (p *pushLoop) render(messages [][]byte) (r tapBatch) {
	for _, m := range messages {
		switch gjson.GetBytes(m, "tap").Str {
		case wire.TapMore:
			after := gjson.GetBytes(m, "after").Int()
			r.more = &after
			continue
		case wire.TapRestart:
			// The object was rebuilt: start again after what was written.
			after := p.startAfter
			if p.lastSeq > 0 {
				after = &p.lastSeq
			}
			r.more = after
			r.restart = true
			continue
		}
		if seq := gjson.GetBytes(m, "seq").Int(); seq > 0 {
			if seq <= max(p.lastSeq, r.last) {
				continue // sent again by a rebuilt object: written already
			}
			r.out = append(append(append(r.out, "id: "...), eventID(seq, p.tag)...), '\n')
			r.last = seq
		}
		r.out = append(r.out, sseEvent(pushNotification(m))...)
	}
	return r
}

// ended handles the close of the tap: what the client is told, and whether
// the leg goes on (false: a newer leg replaced it).
func (p *pushLoop) ended(closed wire.Close) (out []byte, goOn bool) {
	p.tap.Stop()
	p.tap = nil
	reason, why := wire.SplitTapClose(closed.Reason)
	switch {
	case why == wire.TapEndReplaced:
		p.replaced = p.tapped
		return nil, true
	case why != "":
		// The member ended: say so, and wait for the session to join again.
		return sseEvent(closedNotification(reason, closed.Code, why)), true
	case closed.Code == wire.CloseNotJoined.Code:
		// Refused: the member is not there (yet); the session binds again
		// when it joins, and without a watch follow polls.
		if p.watch == nil {
			p.recheckIn(pushBindingPoll)
		}
		return nil, true
	default:
		// The object went away, failed, or this leg fell behind: tap again.
		p.backoff()
		return nil, true
	}
}

// Run serves the leg until the client leaves, the session ends or a newer
// leg of the session replaces it.
func (l *PushLeg) Run(ctx context.Context, io pushIO, keepalive time.Duration) {
	if io.Write(sseOpen) != nil {
		return
	}
	keep, stopKeep := io.Timer(keepalive)
	p := &pushLoop{leg: l, io: io, ctx: ctx, stopRecheck: func() {}, retry: pushBindingPoll}
	defer func() {
		stopKeep()
		p.stopRecheck()
		if p.tap != nil {
			p.tap.Stop()
		}
		if p.watch != nil {
			p.watch.Stop()
		}
	}()
	ended := func() {
		_ = io.Write(sseEvent(closedNotification("session_ended", 0, "")))
	}
	if !p.follow() {
		ended()
		return
	}
	for {
		var tapReady, watchReady <-chan struct{}
		if p.tap != nil {
			tapReady = p.tap.Ready()
		}
		if p.watch != nil {
			watchReady = p.watch.Ready()
		}
		var batch tapBatch
		var closed *wire.Close
		check := false
		select {
		case <-ctx.Done():
			return
		case <-keep:
			keep, stopKeep = io.Timer(keepalive)
			batch.out = sseKeepalive
		case <-p.recheck:
			check = true
		case <-watchReady:
			if _, closed := p.watch.Take(); closed != nil {
				p.watch.Stop()
				p.watch = nil // polled meanwhile, reopened after a while
				p.watchAt = time.Now().Add(pushBindingPoll)
			}
			check = true
		case <-tapReady:
			var messages [][]byte
			messages, closed = p.tap.Take()
			batch = p.render(messages)
		}
		if len(batch.out) > 0 {
			if io.Write(batch.out) != nil {
				return
			}
			if batch.last > 0 {
				p.lastSeq = batch.last
				p.retry = pushBindingPoll
				if closed == nil {
					p.tap.Send(wire.EncodeTapAck(batch.last))
				} // else the next tap's start carries the ack
			}
		}
		if closed == nil && (batch.more != nil || batch.restart) {
			p.tap.Send(wire.EncodeTapStart(batch.more, 0))
		}
		if closed != nil {
			note, goOn := p.ended(*closed)
			if len(note) > 0 && io.Write(note) != nil {
				return
			}
			if !goOn {
				return
			}
		}
		if check && !p.follow() {
			ended()
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

// closedNotification says the member's leg ended: the protocol's code and
// reason, and why (left, expired, taken_over, rotated) when known.
func closedNotification(reason string, code int, why string) []byte {
	params := map[string]any{"reason": reason, "code": code}
	if why != "" {
		params["why"] = why
	}
	return wire.MarshalVerbatim(rpcNotification("notifications/ams/closed", params))
}

// socketQueue is a socket's messages (a tap's frames, a watch's signals) as
// the platform's callbacks deliver them: they never block, so they are
// queued for the loop, up to pushQueueFrames.
type socketQueue struct {
	mu     sync.Mutex
	frames [][]byte
	closed *wire.Close
	ready  chan struct{}
	send   func([]byte)
	stop   func()
}

func newSocketQueue(send func([]byte), stop func()) *socketQueue {
	return &socketQueue{ready: make(chan struct{}, 1), send: send, stop: stop}
}

func (q *socketQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Frame queues a frame; a queue that is full closes the tap.
func (q *socketQueue) Frame(frame []byte) {
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
func (q *socketQueue) Closed(code wire.Close) {
	q.mu.Lock()
	if q.closed == nil {
		q.closed = &code
	}
	q.mu.Unlock()
	q.signal()
}

func (q *socketQueue) Ready() <-chan struct{} { return q.ready }

func (q *socketQueue) Take() ([][]byte, *wire.Close) {
	q.mu.Lock()
	defer q.mu.Unlock()
	frames := q.frames
	q.frames = nil
	return frames, q.closed
}

func (q *socketQueue) Send(msg []byte) { q.send(msg) }

func (q *socketQueue) Stop() { q.stop() }

// getMCP answers a GET of /mcp that is not the push leg (or where the
// platform cannot stream): the MCP transport's 405.
func (s *Service) getMCP(w http.ResponseWriter, r *http.Request, _ params) {
	w.Header().Set("Allow", "POST, DELETE")
	writeError(w, wire.ErrMethodNotAllowed, "GET /mcp opens the push leg: send Accept: text/event-stream and the Mcp-Session-Id")
}
