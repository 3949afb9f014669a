package worker

// Faults of the push leg found in review of 69741ca..ebf8d8f (each test
// failed there): a slow client, ids of another member, a newer leg,
// transient errors, an ended session, a big backlog.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

var seenWrites sync.Map

// waitFor reports whether io writes something containing want within d.
func (p *fakePush) waitFor(want string, d time.Duration) (string, bool) {
	deadline := time.After(d)
	for {
		select {
		case w := <-p.writes:
			old, _ := seenWrites.LoadOrStore(p, "")
			seenWrites.Store(p, old.(string)+"|"+w)
			if strings.Contains(w, want) {
				return w, true
			}
		case <-deadline:
			return "", false
		}
	}
}

// gatedPush is a client that stops reading while held.
type gatedPush struct {
	*fakePush
	mu   sync.Mutex
	hold chan struct{}
	// blocked is signalled when a Write starts waiting on hold.
	blocked chan struct{}
}

func (g *gatedPush) Write(b []byte) error {
	g.mu.Lock()
	h := g.hold
	g.mu.Unlock()
	if h != nil {
		select {
		case g.blocked <- struct{}{}:
		default:
		}
		<-h
	}
	return g.fakePush.Write(b)
}

// TestPushLegRetapsAfterFallingBehind: a client that is slow for a moment
// (the leg's queue passes pushQueueFrames while one write is pending) gets
// notifications/ams/closed subscriber_backpressure although its member is
// fine, and the leg never taps the member again: every later frame is
// never pushed, for as long as the leg stays open (keepalives go on).
func TestPushLegRetapsAfterFallingBehind(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	base := newFakePush(f)
	base.writes = make(chan string, 1<<14)
	io := &gatedPush{fakePush: base, blocked: make(chan struct{}, 1)}
	runLeg(t, f, s, io)
	peer.token("warm")
	if _, ok := io.waitFor(`"data":"warm"`, 5*time.Second); !ok {
		t.Fatal("the leg never pushed the first frame")
	}
	// The client stops reading for a moment.
	hold := make(chan struct{})
	io.mu.Lock()
	io.hold = hold
	io.mu.Unlock()
	peer.token("pending")
	<-io.blocked
	for i := 0; i < pushQueueFrames+10; i++ {
		peer.token("burst")
	}
	io.mu.Lock()
	io.hold = nil
	io.mu.Unlock()
	close(hold)
	if w, ok := io.waitFor("notifications/ams/closed", 5*time.Second); ok {
		t.Logf("the client was told: %s", w)
	}
	// The member is fine ...
	s.ok("ams_send", map[string]any{"data": "still here"})
	// ... but the leg pushes nothing any more.
	peer.token("after the burst")
	if _, ok := io.waitFor(`"data":"after the burst"`, 3*time.Second); !ok {
		t.Errorf("after one slow moment the leg never pushes again (no retap after a 4290 close of its own queue)")
	}
}

// runLeg opens the session's push leg and runs it on io until the test
// ends or stop is called.
func runLeg(t *testing.T, f *mcpFixture, s *session, io pushIO) (stop func()) {
	t.Helper()
	leg, ok, err := f.s.OpenPush(httptestGET(s))
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go leg.Run(ctx, io, time.Hour)
	return cancel
}

func httptestGET(s *session) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, s.target, nil)
	r.Header.Set("Accept", "text/event-stream")
	r.Header.Set("Mcp-Session-Id", s.id)
	return r
}

// TestPushLegLastEventIDOfAnotherMember: SSE ids are the seqs of
// whichever conversation the session is bound to, so after the session
// joins another conversation (a) ids on one stream repeat, and (b) the
// client's reconnect Last-Event-ID (the last id it saw, from the first
// conversation) is taken as a position in the second: frames the member
// heard there are skipped, and for a push-only member the next ack marks
// them read, so neither the leg nor ams_recv ever delivers them.
func TestPushLegLastEventIDOfAnotherMember(t *testing.T) {
	f := newMCPFixture(t)
	peerA := f.ws(t, "web")
	s := f.session(t, mcpURL, f.credential, "host")
	s.ok("ams_join", map[string]any{"magic_link": f.linkURL(), "stream_name": "agent", "delivery": "push"})
	io := newFakePush(f)
	auth := map[string]string{"Authorization": "Bearer " + f.credential}
	_, stop := openLeg(t, f, s, io, auth)
	seen := map[string]bool{}
	var last string
	for i := 0; i < 12; i++ {
		peerA.token("a")
	}
	for len(seen) < 12 {
		w := io.next(t, `"data":"a"`)
		for _, line := range strings.Split(w, "\n") {
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				seen[id], last = true, id
			}
		}
	}
	code, conv := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential, `{"alias":"other-otter-5678"}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	linkB := jstr(t, conv["magic_link"])
	// B's peer is there first, so nothing of B reaches the agent yet.
	s2 := f.session(t, linkB, "", "peer")
	s2.ok("ams_join", map[string]any{"stream_name": "peer"})
	s.ok("ams_join", map[string]any{"magic_link": linkB, "stream_name": "agent", "delivery": "push"})
	time.Sleep(100 * time.Millisecond) // the leg follows the session to B
	// The client drops its GET before any frame of B reached it: the last
	// SSE id it saw (and sends back as Last-Event-ID) is A's.
	stop()
	s2.ok("ams_send", map[string]any{"data": "b-missed-1"})
	s2.ok("ams_send", map[string]any{"data": "b-missed-2"})
	maxA := last
	io2 := newFakePush(f)
	lp := &loggingPush{fakePush: io2}
	r2 := httptestGET(s)
	r2.Header.Set("Last-Event-ID", maxA)
	r2.Header.Set("Authorization", "Bearer "+f.credential)
	leg2, _, _ := f.s.OpenPush(r2)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go leg2.Run(ctx2, lp, 50*time.Millisecond)
	<-io2.writes
	time.Sleep(100 * time.Millisecond)
	lp.mu.Lock()
	t.Logf("leg 2: %v", lp.log)
	lp.mu.Unlock()
	s2.ok("ams_send", map[string]any{"data": "b-after"})
	pushed := ""
	got, ok := "", false
	for !ok {
		var w string
		if w, ok = io2.waitFor(`"notifications/ams/token"`, 3*time.Second); w == "" {
			break
		}
		pushed += w
		got, ok = w, strings.Contains(w, `"data":"b-after"`)
	}
	if !ok {
		var ops []string
		for _, c := range f.objects.calls {
			ops = append(ops, c.op+":"+c.call.ConversationID[:9])
		}
		w, _ := seenWrites.Load(io2)
		t.Fatalf("the resumed leg never pushed b-after; calls %v taps %d; wrote %v", ops, f.objects.taps, w)
	}
	if id := sseID(t, got); seen[id] {
		t.Errorf("SSE id %s used again in the session (MCP: event ids unique across all streams of a session)", id)
	}
	i1, i2, i3 := strings.Index(pushed, "b-missed-1"), strings.Index(pushed, "b-missed-2"), strings.Index(pushed, "b-after")
	if i1 < 0 || i2 < i1 || i3 < i2 {
		t.Errorf("resumed with Last-Event-ID %s (an id of conversation A) in B: pushed %q", maxA, pushed)
	}
	// Everything was delivered, so a push-only member has nothing to read.
	time.Sleep(200 * time.Millisecond) // the acks
	if frames := recvFrames(t, s.ok("ams_recv", map[string]any{"gather_ms": 0})); len(frames) != 0 {
		t.Errorf("push-only member after its leg delivered everything: ams_recv %v", frames)
	}
}

// TestPushLegReplacedByANewerLeg: two GET legs of one session (the MCP
// transport allows several). The second displaces the first, whose client
// is told notifications/ams/closed stream_displaced although the member is
// fine; after a same-handle rebind (idle expiry, then a call rejoins), the
// first leg retaps from its own stale lastSeq and pushes again frames the
// second leg already delivered to the same session (the transport: a
// message MUST NOT be sent on more than one stream).
func TestPushLegReplacedByANewerLeg(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	a := newFakePush(f)
	openLeg(t, f, s, a, nil)
	peer.token("one")
	a.next(t, `"data":"one"`)
	time.Sleep(100 * time.Millisecond) // the ack of one
	b := newFakePush(f)
	openLeg(t, f, s, b, nil)
	if w, ok := a.waitFor("notifications/ams/closed", 3*time.Second); ok {
		t.Logf("leg A told its client (member alive): %s", w)
	}
	peer.token("two")
	b.next(t, `"data":"two"`)
	time.Sleep(100 * time.Millisecond)
	f.objects.expireAll(t)
	b.next(t, "notifications/ams/closed")
	s.ok("ams_send", map[string]any{"data": "back"})
	if w, ok := a.waitFor(`"data":"two"`, 3*time.Second); ok {
		t.Errorf("leg A pushed again what leg B delivered to the same session: %q", w)
	}
}

// flakyObjects fails the next n session reads.
type flakyObjects struct {
	*fakeObjects
	failGets atomic.Int32
}

func (o *flakyObjects) Session(ctx context.Context, nonce, op string, in wire.SessionState) (wire.SessionState, error) {
	if op == "get" && o.failGets.Add(-1) >= 0 {
		return wire.SessionState{}, errors.New("Durable Object reset because its code was updated")
	}
	return o.fakeObjects.Session(ctx, nonce, op, in)
}

// TestPushLegSurvivesASessionReadError: one failed read of the
// session object (a reset, an overload) ends the leg with
// notifications/ams/closed "session_ended", although the session lives.
func TestPushLegSurvivesASessionReadError(t *testing.T) {
	f := newMCPFixture(t)
	flaky := &flakyObjects{fakeObjects: f.objects}
	f.s.Objects = flaky
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	io := newFakePush(f)
	leg, ok, err := f.s.OpenPush(httptestGET(s))
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	flaky.failGets.Store(1) // the leg's first read of the binding fails
	done := make(chan struct{})
	go func() { leg.Run(context.Background(), io, time.Hour); close(done) }()
	select {
	case <-done:
		t.Errorf("one failed session read ended the leg (the session is alive)")
		for len(io.writes) > 0 {
			t.Logf("wrote %q", <-io.writes)
		}
	case <-time.After(time.Second):
	}
	s.ok("ams_recv", map[string]any{"gather_ms": 0})
}

// flakyKV fails the next n reads once armed.
type flakyKV struct {
	KV
	fail atomic.Int32
}

func (k *flakyKV) Get(ctx context.Context, key string) (string, bool, error) {
	if k.fail.Add(-1) >= 0 {
		return "", false, errors.New("KV GET failed: 503")
	}
	return k.KV.Get(ctx, key)
}

// TestPushLegSurvivesAKVError: PushLeg.member turns any
// fromHandle error (here a transient KV failure reading the conversation
// record) into "not joined"; with a watch open no retry is scheduled, so
// the leg stays silent until the session is bound again.
func TestPushLegSurvivesAKVError(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	kv := &flakyKV{KV: f.s.KV}
	f.s.KV = kv
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	leg, ok, err := f.s.OpenPush(httptestGET(s))
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	kv.fail.Store(1) // the leg's first read of the conversation record
	io := newFakePush(f)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go leg.Run(ctx, io, time.Hour)
	<-io.writes // :ok
	time.Sleep(100 * time.Millisecond)
	peer.token("hello")
	if _, ok := io.waitFor(`"data":"hello"`, 3*time.Second); !ok {
		t.Errorf("one transient KV error at the leg's start: the leg never taps the member")
	}
}

type loggingPush struct {
	*fakePush
	mu  sync.Mutex
	log []string
}

func (l *loggingPush) Tap(ctx context.Context, call wire.MemberCall) (pushSocket, error) {
	s, err := l.fakePush.Tap(ctx, call)
	l.mu.Lock()
	l.log = append(l.log, "tap "+call.ConversationID[len(call.ConversationID)-4:]+" "+call.Reader+" "+func() string {
		if err != nil {
			return err.Error()
		}
		return "ok"
	}())
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &loggingSocket{s, l}, nil
}

type loggingSocket struct {
	pushSocket
	l *loggingPush
}

func (s *loggingSocket) Send(b []byte) {
	s.l.mu.Lock()
	s.l.log = append(s.l.log, "send "+string(b))
	s.l.mu.Unlock()
	s.pushSocket.Send(b)
}

func (s *loggingSocket) Take() ([][]byte, *wire.Close) {
	f, c := s.pushSocket.Take()
	s.l.mu.Lock()
	s.l.log = append(s.l.log, "take "+strconv.Itoa(len(f)))
	if c != nil {
		s.l.log = append(s.l.log, "closed "+c.Reason)
	}
	s.l.mu.Unlock()
	return f, c
}

// TestPushLegOfAnEndedSession: the MCP transport says a terminated session
// gets 404 on every request carrying its id; a GET push leg after DELETE
// is accepted (200, ":ok") and only then says closed session_ended.
func TestPushLegOfAnEndedSession(t *testing.T) {
	f := newMCPFixture(t)
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	del := httptest.NewRequest(http.MethodDelete, f.linkURL(), nil)
	del.Header.Set("Mcp-Session-Id", s.id)
	if w := newRecorder(f.s, del); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", w.Code)
	}
	_, ok, err := f.s.OpenPush(httptestGET(s))
	if ok && err == nil {
		t.Errorf("GET push leg of an ended session accepted (200 text/event-stream), want 404 session_not_found")
	}
}

// TestPushLegPagesABigBacklog: with AMS_REPLAY_EVENTS above
// pushQueueFrames, the start's backlog alone (Last-Event-ID: 0, or a member
// far behind) overflows the leg's queue in one event: the client is told
// closed subscriber_backpressure and the leg never goes live.
func TestPushLegPagesABigBacklog(t *testing.T) {
	f := newMCPFixture(t)
	f.objects.limits.ReplayEvents = 2 * pushQueueFrames
	peer := f.ws(t, "web")
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	for i := 0; i < pushQueueFrames+100; i++ {
		peer.token("old")
	}
	io := newFakePush(f)
	io.writes = make(chan string, 1<<14)
	openLeg(t, f, s, io, nil)
	peer.token("live")
	if _, ok := io.waitFor(`"data":"live"`, 3*time.Second); !ok {
		t.Errorf("a member %d frames behind: the leg never goes live", pushQueueFrames+100)
	}
}
