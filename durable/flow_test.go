package durable

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

func TestFlowWindowAccounting(t *testing.T) {
	start := time.Unix(1000, 0)
	w := newFlowWindow(100, 3, time.Second, start)
	for i, size := range []int{40, 40, 20} {
		if !w.send(int64(i+1), size, start) {
			t.Fatalf("frame %d refused inside the window", i+1)
		}
	}
	// Over the window while acknowledgements are recent: still served, up
	// to four windows.
	if !w.send(4, 50, start.Add(500*time.Millisecond)) {
		t.Fatal("a frame over the window was refused within the grace period")
	}
	// Over the window with no acknowledgement for longer than the grace.
	if w.send(5, 1, start.Add(1500*time.Millisecond)) {
		t.Fatal("a stale connection over its window was served")
	}
	w.ack(2, start.Add(1600*time.Millisecond))
	if w.bytes != 70 || len(w.inflight) != 2 {
		t.Fatalf("after ack(2): %d bytes, %d frames", w.bytes, len(w.inflight))
	}
	w.ack(1, start.Add(1700*time.Millisecond)) // an old ack releases nothing
	if w.bytes != 70 {
		t.Fatalf("a stale ack released %d bytes", 70-w.bytes)
	}
	w.ack(99, start.Add(1800*time.Millisecond))
	if w.bytes != 0 || len(w.inflight) != 0 {
		t.Fatal("ack past everything left frames in flight")
	}
	// However recent the acknowledgements, four windows is the end.
	for i := 0; i < hardWindows*3; i++ {
		if !w.send(int64(100+i), 1, start.Add(1800*time.Millisecond)) {
			t.Fatalf("frame %d of %d refused", i+1, hardWindows*3)
		}
	}
	if w.send(200, 1, start.Add(1800*time.Millisecond)) {
		t.Fatal("a connection four windows behind was served")
	}
}

// TestSlowSubscriberIsClosed: a flow-controlled subscriber that stops
// acknowledging is closed 4290 once a window behind; one that keeps up, and
// one that never opted in, are served throughout.
func TestSlowSubscriberIsClosed(t *testing.T) {
	limits := wire.DefaultLimits
	limits.AckWindowFrames = 10
	limits.AckWindowBytes = 1 << 20
	h := newHarness(t, limits)
	speaker, _ := h.join("acc_A", "speaker", false, "")
	slowReq := joinRequest("acc_B", "slow", false, "")
	slowReq.Acks = true
	slow, slowSock := h.joinWith(slowReq)
	keenReq := joinRequest("acc_C", "keen", false, "")
	keenReq.Acks = true
	keen, keenSock := h.joinWith(keenReq)
	_, plainSock := h.join("acc_D", "plain", false, "")
	for _, s := range []*recordingSocket{slowSock, keenSock, plainSock} {
		s.reset()
	}

	// The harness's clock stands still, so acknowledgements never go stale:
	// the slow subscriber is closed at four windows.
	const sent = 60
	for i := 0; i < sent; i++ {
		h.conv.Receive(speaker.ConnID, []byte(fmt.Sprintf(`{"type":"token","data":"%d"}`, i)))
		h.conv.Receive(keen.ConnID, []byte(fmt.Sprintf(`{"type":"x_ack","seq":%d}`, h.conv.Seq())))
	}
	if len(slowSock.closes) != 1 || slowSock.closes[0] != wire.CloseSubscriberBackpressure {
		t.Fatalf("slow subscriber closes: %v", slowSock.closes)
	}
	// Its window also holds the stream_joined of keen and plain.
	if tokens := countPrefix(slowSock.frames(), `{"type":"token"`); tokens != hardWindows*limits.AckWindowFrames-2 {
		t.Fatalf("the slow subscriber got %d tokens before its close, want %d", tokens, hardWindows*limits.AckWindowFrames-2)
	}
	if countPrefix(keenSock.frames(), `{"type":"token"`) != sent || len(keenSock.closes) != 0 {
		t.Fatalf("the acknowledging subscriber: %d tokens, closes %v", countPrefix(keenSock.frames(), `{"type":"token"`), keenSock.closes)
	}
	if countPrefix(plainSock.frames(), `{"type":"token"`) != sent || countPrefix(plainSock.frames(), `{"type":"stream_left"`) != 1 {
		t.Fatalf("the plain subscriber: %v", plainSock.frames())
	}
	if h.conv.Peer(slow.ConnID) != nil {
		t.Fatal("the closed subscriber is still live")
	}
}

func TestAckFrames(t *testing.T) {
	for msg, ok := range map[string]bool{
		`{"type":"x_ack","seq":0}`:    true,
		`{"type":"x_ack","seq":12}`:   true,
		`{"type":"x_ack"}`:            false,
		`{"type":"x_ack","seq":-1}`:   false,
		`{"type":"x_ack","seq":1.5}`:  false,
		`{"type":"x_ack","seq":"12"}`: false,
	} {
		frame, refusal := wire.DecodeClientFrame([]byte(msg), wire.DefaultLimits)
		if ok != (refusal == nil) {
			t.Errorf("%s: refusal %v", msg, refusal)
		}
		if ok && frame.Type != wire.TypeAck {
			t.Errorf("%s: type %q", msg, frame.Type)
		}
	}
	// A connection that did not opt in may acknowledge; it changes nothing.
	h := newHarness(t, wire.DefaultLimits)
	p, sock := h.join("acc_A", "a", false, "")
	sock.reset()
	h.conv.Receive(p.ConnID, []byte(`{"type":"x_ack","seq":3}`))
	if !sock.quiet() {
		t.Fatalf("an ack produced %v %v", sock.frames(), sock.closes)
	}
}

func countPrefix(frames []string, prefix string) int {
	n := 0
	for _, f := range frames {
		if strings.HasPrefix(f, prefix) {
			n++
		}
	}
	return n
}
