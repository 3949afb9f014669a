package worker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// fakePush is the platform of a push leg: what it writes, and taps and
// watches on the fixture's real conversations and sessions (objects_test.go).
type fakePush struct {
	objects *fakeObjects
	// noWatch makes Watch fail, so the leg polls the binding.
	noWatch bool
	writes  chan string
}

func newFakePush(f *mcpFixture) *fakePush {
	return &fakePush{objects: f.objects, writes: make(chan string, 256)}
}

func (p *fakePush) Timer(d time.Duration) (<-chan struct{}, func()) { return goTimer(d) }

func (p *fakePush) Write(b []byte) error {
	select {
	case p.writes <- string(b):
		return nil
	default:
		return errors.New("the client stopped reading")
	}
}

func (p *fakePush) Tap(_ context.Context, call wire.MemberCall) (pushSocket, error) {
	return p.objects.Tap(call)
}

func (p *fakePush) Watch(_ context.Context, nonce string) (pushSocket, error) {
	if p.noWatch {
		return nil, errors.New("no watch")
	}
	return p.objects.Watch(nonce), nil
}

// next returns the next write containing want, skipping others.
func (p *fakePush) next(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case w := <-p.writes:
			if strings.Contains(w, want) {
				return w
			}
		case <-deadline:
			t.Fatalf("the leg never wrote %q", want)
		}
	}
}

// quiet asserts the leg writes no frame for a while.
func (p *fakePush) quiet(t *testing.T) {
	t.Helper()
	deadline := time.After(300 * time.Millisecond)
	for {
		select {
		case w := <-p.writes:
			if strings.Contains(w, "notifications/") {
				t.Fatalf("the leg wrote %q", w)
			}
		case <-deadline:
			return
		}
	}
}

// openLeg opens the session's push leg on target with the given headers
// and runs it; done closes when Run returns, stop ends it.
func openLeg(t *testing.T, f *mcpFixture, s *session, io *fakePush, header map[string]string) (done chan struct{}, stop func()) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, s.target, nil)
	r.Header.Set("Accept", "text/event-stream")
	r.Header.Set("Mcp-Session-Id", s.id)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	leg, ok, err := f.s.OpenPush(r)
	if !ok || err != nil {
		t.Fatalf("OpenPush: %v %v", ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { leg.Run(ctx, io, 50*time.Millisecond); close(done) }()
	if first := <-io.writes; first != ":ok\n\n" {
		t.Fatalf("opened with %q", first)
	}
	t.Cleanup(cancel)
	return done, func() { cancel(); <-done }
}

// joinedAgent is a fixture with a WebSocket peer "web" and an MCP session
// (client "host") whose member "agent" joined.
func joinedAgent(t *testing.T) (*mcpFixture, *wsPeer, *session) {
	t.Helper()
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	return f, peer, s
}

// sseID is the SSE id of the first event of a write.
func sseID(t *testing.T, write string) string {
	t.Helper()
	id, ok := strings.CutPrefix(strings.SplitN(write, "\n", 2)[0], "id: ")
	if !ok {
		t.Fatalf("no SSE id in %q", write)
	}
	return id
}

// TestPushLegRun (11.4): a leg opened before the join follows the session's
// binding at once (the watch), so the first frame after the join is pushed;
// frames are notifications verbatim with their seq as the SSE id; the leg
// keeps alive; nothing pushed is marked read; it says
// notifications/ams/closed with the member's reason and ends with the
// session.
func TestPushLegRun(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	s := f.session(t, f.linkURL(), "", "host")
	io := newFakePush(f)
	done, _ := openLeg(t, f, s, io, nil)
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	peer.emit(`{"type":"token","data":"<b>&amp;"}`)
	got := io.next(t, "notifications/ams/token")
	seq := strings.SplitN(got[len("id: "):], "-", 2)[0]
	want := "id: " + sseID(t, got) + "\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/ams/token\",\"params\":{"
	if !strings.HasPrefix(got, want) || !strings.Contains(got, `"data":"<b>&amp;"}}`) || !strings.Contains(got, `"seq":`+seq+",") {
		t.Errorf("pushed %q", got)
	}
	io.next(t, ":keepalive")
	// With the leg live, nothing rides along on a tool answer: the leg had it.
	w := postMCP(t, f.s, f.linkURL(), "", rpcBody(1, "tools/call", map[string]any{"name": "ams_set_metadata", "arguments": map[string]any{"metadata": map[string]any{}}}),
		map[string]string{"Mcp-Session-Id": s.id})
	if strings.Contains(w.Body.String(), "notifications/ams/") {
		t.Errorf("a frame the leg pushed rode along: %s", w.Body.String())
	}
	// Nothing pushed is marked read.
	if frames := recvFrames(t, s.ok("ams_recv", map[string]any{"gather_ms": 0})); len(frames) != 1 || frames[0]["data"] != "<b>&amp;" {
		t.Errorf("ams_recv after the push: %v", frames)
	}
	s.ok("ams_leave", map[string]any{})
	if got := io.next(t, "notifications/ams/closed"); !strings.Contains(got, `"reason":"not_joined"`) {
		t.Errorf("closed %q", got)
	}
	del := httptest.NewRequest(http.MethodDelete, f.linkURL(), nil)
	del.Header.Set("Mcp-Session-Id", s.id)
	if w := newRecorder(f.s, del); w.Code != http.StatusNoContent {
		t.Fatalf("DELETE %d", w.Code)
	}
	io.next(t, "session_ended")
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the leg did not end with its session")
	}
}

// TestPushLegBacklog: frames emitted between the join and the tap are
// pushed once, in order, before live ones, even when the leg has no watch
// and finds the binding only by polling.
func TestPushLegBacklog(t *testing.T) {
	f, peer, s := joinedAgent(t)
	peer.token("before the leg 1")
	peer.token("before the leg 2")
	io := newFakePush(f)
	io.noWatch = true
	openLeg(t, f, s, io, nil)
	first := io.next(t, "notifications/ams/token")
	if !strings.Contains(first, "before the leg 1") || !strings.Contains(first, "before the leg 2") ||
		strings.Index(first, "leg 1") > strings.Index(first, "leg 2") {
		t.Fatalf("backlog %q", first)
	}
	peer.token("live")
	if got := io.next(t, "notifications/ams/token"); !strings.Contains(got, `"data":"live"`) || strings.Contains(got, "before the leg") {
		t.Errorf("live %q", got)
	}
	io.quiet(t)
}

// TestPushLegResume: a leg opened with Last-Event-ID gets what came after
// that seq, not what its client already saw; one without gets what was
// not delivered yet.
func TestPushLegResume(t *testing.T) {
	f, peer, s := joinedAgent(t)
	first := newFakePush(f)
	_, stop := openLeg(t, f, s, first, nil)
	peer.token("one")
	seen := sseID(t, first.next(t, `"data":"one"`))
	peer.token("two")
	first.next(t, `"data":"two"`)
	stop()
	peer.token("three")
	// The client saw "one" only.
	io := newFakePush(f)
	_, stop = openLeg(t, f, s, io, map[string]string{"Last-Event-ID": seen})
	got := io.next(t, "notifications/ams/token")
	if strings.Contains(got, `"data":"one"`) || !strings.Contains(got, `"data":"two"`) || !strings.Contains(got, `"data":"three"`) {
		t.Errorf("resumed after 2 with %q", got)
	}
	// Without Last-Event-ID, a leg starts after what was delivered.
	stop()
	io2 := newFakePush(f)
	openLeg(t, f, s, io2, nil)
	peer.token("four")
	if got := io2.next(t, "notifications/ams/token"); strings.Contains(got, `"data":"three"`) || !strings.Contains(got, `"data":"four"`) {
		t.Errorf("a fresh leg pushed %q", got)
	}
}

// TestPushOnlyDelivery: a member that joined with delivery "push" has what
// its leg delivered (acked) marked read; what no leg delivered stays for
// ams_recv, and so does everything of a default member.
func TestPushOnlyDelivery(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	s := f.session(t, f.linkURL(), "", "host")
	if out := s.ok("ams_join", map[string]any{"stream_name": "agent", "delivery": "push"}); jstr(t, out["delivery"]) != "push" {
		t.Fatalf("join %v", out)
	}
	io := newFakePush(f)
	_, stop := openLeg(t, f, s, io, nil)
	peer.token("pushed")
	io.next(t, `"data":"pushed"`)
	// The ack follows the write: wait until it has been counted.
	deadline := time.Now().Add(5 * time.Second)
	for {
		frames := recvFrames(t, s.ok("ams_recv", map[string]any{"gather_ms": 0}))
		if len(frames) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a pushed frame was not marked read: %v", frames)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	peer.token("while no leg was open")
	if frames := recvFrames(t, s.ok("ams_recv", map[string]any{"gather_ms": 0})); len(frames) != 1 || frames[0]["data"] != "while no leg was open" {
		t.Errorf("what no leg delivered: %v", frames)
	}
	// What rides along on a tool answer is delivered too.
	peer.token("rides along")
	w := postMCP(t, f.s, f.linkURL(), "", rpcBody(1, "tools/call", map[string]any{"name": "ams_send", "arguments": map[string]any{"data": "x"}}),
		map[string]string{"Mcp-Session-Id": s.id})
	if !strings.Contains(w.Body.String(), `"data":"rides along"`) {
		t.Fatalf("no ride-along: %s", w.Body.String())
	}
	if frames := recvFrames(t, s.ok("ams_recv", map[string]any{"gather_ms": 0})); len(frames) != 0 {
		t.Errorf("a push-only member read what rode along again: %v", frames)
	}
	if code, _ := s.err("ams_join", map[string]any{"stream_name": "agent", "delivery": "email"}); code != wire.ErrInvalidArguments.Code {
		t.Errorf("delivery email: %s", code)
	}
}

// TestPushLegFollowsRejoin: a member that expired and is joined again by a
// call of its own (self-rehydration) is tapped again, after what the leg
// already wrote.
func TestPushLegFollowsRejoin(t *testing.T) {
	f, peer, s := joinedAgent(t)
	io := newFakePush(f)
	openLeg(t, f, s, io, nil)
	peer.token("first")
	io.next(t, `"data":"first"`)
	f.objects.expireAll(t)
	io.next(t, "notifications/ams/closed")
	if out := s.ok("ams_send", map[string]any{"data": "back"}); string(out["rejoined"]) != "true" {
		t.Fatalf("send after expiry %v", out)
	}
	peer.token("after the rejoin")
	if got := io.next(t, "notifications/ams/token"); !strings.Contains(got, "after the rejoin") || strings.Contains(got, `"data":"first"`) {
		t.Errorf("after the rejoin %q", got)
	}
}

// TestOpenPushRefusals: which GETs are the push leg, and which are refused.
func TestOpenPushRefusals(t *testing.T) {
	f := newMCPFixture(t)
	get := func(target string, header map[string]string) (bool, error) {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		for k, v := range header {
			r.Header.Set(k, v)
		}
		_, ok, err := f.s.OpenPush(r)
		return ok, err
	}
	sse := map[string]string{"Accept": "text/event-stream"}
	if ok, _ := get(f.linkURL(), map[string]string{"Accept": "text/html"}); ok {
		t.Error("a page GET was taken for the push leg")
	}
	for name, tc := range map[string]struct {
		target string
		header map[string]string
		code   string
	}{
		"no session":      {mcpURL, sse, wire.ErrMissingSessionID.Code},
		"made-up session": {mcpURL, map[string]string{"Accept": "text/event-stream", "Mcp-Session-Id": "x"}, wire.ErrSessionNotFound.Code},
		"wrong t":         {strings.Replace(f.linkURL(), f.token, "wrong", 1), sse, wire.ErrInvalidToken.Code},
		"bad bearer":      {mcpURL, map[string]string{"Accept": "text/event-stream", "Authorization": "Bearer ams_sk_nope"}, wire.ErrInvalidCredential.Code},
	} {
		ok, err := get(tc.target, tc.header)
		var ae *apiError
		if !ok || err == nil || !asAPIError(err, &ae) || ae.code.Code != tc.code {
			t.Errorf("%s: %v %v, want %s", name, ok, err, tc.code)
		}
	}
	w := newRecorder(f.s, httptest.NewRequest(http.MethodGet, mcpURL, nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /mcp without an event stream: %d", w.Code)
	}
}

func asAPIError(err error, into **apiError) bool {
	ae, ok := err.(*apiError)
	*into = ae
	return ok
}

// TestPushLegSaysWhy (11.4): notifications/ams/closed says why the member
// ended: expired (then a call rejoins it), and rotated out by a new link.
func TestPushLegSaysWhy(t *testing.T) {
	f, _, s := joinedAgent(t)
	io := newFakePush(f)
	openLeg(t, f, s, io, nil)
	f.objects.expireAll(t)
	if got := io.next(t, "notifications/ams/closed"); !strings.Contains(got, `"reason":"not_joined"`) || !strings.Contains(got, `"why":"expired"`) {
		t.Errorf("closed after expiry %q", got)
	}
	s.ok("ams_recv", map[string]any{"gather_ms": 0}) // rejoins, and the leg taps it again
	time.Sleep(100 * time.Millisecond)
	if code, body := rotate(t, f.s, rotateURL, f.credential); code != http.StatusOK {
		t.Fatalf("rotate: %d %v", code, body)
	}
	if got := io.next(t, "notifications/ams/closed"); !strings.Contains(got, `"reason":"magic_link_rotated"`) || !strings.Contains(got, `"why":"rotated"`) {
		t.Errorf("closed after rotation %q", got)
	}
}
