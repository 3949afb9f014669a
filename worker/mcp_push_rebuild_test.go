package worker

// The push leg across a rebuilt object and a closing tap: faults found in a
// second review (each test failed on d8e8143).

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// resendPush records the tap queues it opened, so a test can deliver on
// one what the object sends again after a rebuild.
type resendPush struct {
	*fakePush
	mu   sync.Mutex
	taps []*socketQueue
}

func (r *resendPush) Tap(_ context.Context, call wire.MemberCall) (pushSocket, error) {
	q, err := r.objects.Tap(call)
	r.mu.Lock()
	r.taps = append(r.taps, q)
	r.mu.Unlock()
	return q, err
}

// TestPushLegWritesNoFrameTwice: the object resends frames after a
// rebuild (RestoreTaps starts after Ridden, and what the Worker had not
// acked yet comes again: durable TestRestoreResendsInFlightFrames). The leg
// writes whatever arrives: the client gets the frame twice, with one SSE
// id. The leg knows lastSeq and could drop seq <= lastSeq of its member.
func TestPushLegWritesNoFrameTwice(t *testing.T) {
	f, peer, s := joinedAgent(t)
	io := &resendPush{fakePush: newFakePush(f)}
	runLeg(t, f, s, io)
	peer.token("once")
	w := io.next(t, `"data":"once"`)
	id := sseID(t, w)
	// The object, rebuilt, sends the unacked frame again.
	io.mu.Lock()
	q := io.taps[len(io.taps)-1]
	io.mu.Unlock()
	q.Frame([]byte(`{"type":"token","seq":` + strings.SplitN(id, "-", 2)[0] + `,"stream_id":"x","stream_name":"web","data":"once"}`))
	if again, ok := io.waitFor(`"data":"once"`, 2*time.Second); ok {
		t.Errorf("the leg wrote a frame it had written (id %s) again: %q", id, again)
	}
}

// gatedTaps is a client that stops reading while held, whose taps a test
// can reach.
type gatedTaps struct {
	*gatedPush
	mu   sync.Mutex
	taps []*socketQueue
}

func (g *gatedTaps) Tap(_ context.Context, call wire.MemberCall) (pushSocket, error) {
	q, err := g.objects.Tap(call)
	g.mu.Lock()
	g.taps = append(g.taps, q)
	g.mu.Unlock()
	return q, err
}

// TestPushOnlyBatchBeforeACloseIsAcked: the leg writes the frames
// that came in one batch with the tap's close (here the object failed,
// 4500, right after fanning a frame out) but acks only while p.tap != nil,
// which ended() just cleared. The retap starts after lastSeq and has
// nothing to send, so no later ack covers them: a push-only member keeps
// them unread, and ams_recv (or the next leg without Last-Event-ID)
// delivers again what the leg already pushed.
func TestPushOnlyBatchBeforeACloseIsAcked(t *testing.T) {
	f := newMCPFixture(t)
	peer := f.ws(t, "web")
	s := f.session(t, f.linkURL(), "", "host")
	s.ok("ams_join", map[string]any{"stream_name": "agent", "delivery": "push"})
	io := &gatedTaps{gatedPush: &gatedPush{fakePush: newFakePush(f), blocked: make(chan struct{}, 1)}}
	cancel := runLeg(t, f, s, io)
	peer.token("warm")
	if _, ok := io.waitFor(`"data":"warm"`, 5*time.Second); !ok {
		t.Fatal("the leg never pushed the first frame")
	}
	hold := make(chan struct{})
	io.gatedPush.mu.Lock()
	io.hold = hold
	io.gatedPush.mu.Unlock()
	peer.token("pending")
	<-io.blocked
	peer.token("last")
	io.mu.Lock()
	io.taps[len(io.taps)-1].Closed(wire.CloseInternalError)
	io.mu.Unlock()
	io.gatedPush.mu.Lock()
	io.hold = nil
	io.gatedPush.mu.Unlock()
	close(hold)
	if _, ok := io.waitFor(`"data":"last"`, 5*time.Second); !ok {
		t.Fatal("the last frame was never pushed")
	}
	time.Sleep(2 * pushBindingPoll) // the retap
	cancel()
	res := s.ok("ams_recv", map[string]any{"wait_ms": 0})
	if strings.Contains(string(res["frames"]), `"last"`) {
		t.Errorf("a push-only member reads again a frame its leg pushed: %s", res["frames"])
	}
}
