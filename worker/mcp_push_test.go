package worker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// fakePush is the platform of a push leg: what it writes, and the taps it
// opened, whose frames and close the test delivers.
type fakePush struct {
	writes chan string
	mu     sync.Mutex
	taps   []*tapQueue
	calls  []wire.MemberCall
	tapped chan struct{}
}

func (p *fakePush) Timer(d time.Duration) (<-chan struct{}, func()) { return goTimer(d) }

func (p *fakePush) Write(b []byte) error {
	p.writes <- string(b)
	return nil
}

func (p *fakePush) Tap(_ context.Context, call wire.MemberCall) (pushTap, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := newTapQueue(func() {})
	p.taps = append(p.taps, q)
	p.calls = append(p.calls, call)
	p.tapped <- struct{}{}
	return q, nil
}

func (p *fakePush) next(t *testing.T, want string) string {
	t.Helper()
	for {
		select {
		case w := <-p.writes:
			if strings.Contains(w, want) {
				return w
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the leg never wrote %q", want)
		}
	}
}

// TestPushLegRun (11.4): the leg opens with :ok, taps the session's member,
// pushes its frames as notifications verbatim, keeps alive, says
// notifications/ams/closed with the tap's reason, and ends with the session.
func TestPushLegRun(t *testing.T) {
	f := newMCPFixture(t)
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent"})
	r := httptest.NewRequest(http.MethodGet, f.linkURL(), nil)
	r.Header.Set("Accept", "text/event-stream")
	r.Header.Set("Mcp-Session-Id", s.id)
	leg, ok, err := f.s.OpenPush(r)
	if !ok || err != nil {
		t.Fatalf("OpenPush: %v %v", ok, err)
	}
	io := &fakePush{writes: make(chan string, 64), tapped: make(chan struct{}, 4)}
	done := make(chan struct{})
	go func() { leg.Run(context.Background(), io, 50*time.Millisecond); close(done) }()
	if first := <-io.writes; first != ":ok\n\n" {
		t.Fatalf("opened with %q", first)
	}
	<-io.tapped
	if c := io.calls[0]; c.Reader == "" || c.StreamID != f.s.Peppers.StreamID(f.conversationID, c.AccountID, "agent") || c.Rejoin != nil {
		t.Errorf("tapped %+v", c)
	}
	io.taps[0].Frame([]byte(`{"type":"token","seq":7,"stream_name":"web","data":"<b>\ud83d"}`))
	if got := io.next(t, "notifications/ams/token"); got != "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/ams/token\",\"params\":{\"seq\":7,\"stream_name\":\"web\",\"data\":\"<b>\\ud83d\"}}\n\n" {
		t.Errorf("pushed %q", got)
	}
	io.next(t, ":keepalive")
	io.taps[0].Closed(wire.CloseStreamDisplaced)
	if got := io.next(t, "notifications/ams/closed"); !strings.Contains(got, `"reason":"stream_displaced"`) {
		t.Errorf("closed %q", got)
	}
	// The session ends: the leg says so and returns.
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
