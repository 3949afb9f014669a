package durable

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// The socket hot path. A js.FuncOf event costs more than the whole fan-out
// of a token to ten sockets (../BENCHMARKS.md): syscall/js wraps the event,
// each argument is a js.Value with a GC finalizer, and Go's scheduler makes
// a round trip. So webSocketMessage enters Go through a //go:wasmexport
// function that takes integers: entry.mjs writes the message into hotIn
// (UTF-8, TextEncoder.encodeInto) and passes the object's incarnation, the
// sending socket's slot (the number entry.mjs gave it when Go adopted it)
// and the length. Go answers with ops in hotOut, which entry.mjs performs in
// one loop (perform): send a frame to a list of slots, close a slot (Ops,
// ops.go). Nothing in the common case makes a js.Value. A panic is handled
// as on the js.FuncOf path (conversation_js.go's settled and closeOnPanic).
// Anything rarer (storage writes, attachments, adopting, a replay flush)
// still uses syscall/js from inside the export. Exports do not run Go's
// scheduler (../shared/BRIDGE.md): the finalizers of those values run at the
// next js.FuncOf event, at the latest the flush timer's (conversationFlush,
// AMS_REPLAY_FLUSH_MILLIS after any message), and goroutines woken by the
// event (this object's MCP reads waiting for it) get a runtime.Gosched right
// away. No other scheduler turn is given inside an export: it would run any
// goroutine whose timer fired, whatever object it serves, inside this
// object's I/O context, which workerd refuses ("Cannot perform I/O on behalf
// of a different Durable Object").
//
// The arrays are package-level so their addresses never change; a
// memory.grow detaches entry.mjs's views of them, which it checks after
// every call. A message that does not fit hotIn, a binary one, or one for an
// object or socket Go does not know yet (a woken object's first event, the
// first event after Go restarted) takes the js.FuncOf path, which rebuilds
// the object and adopts its sockets.
var (
	hotIn  [1 << 20]byte
	hotOut [2 << 20]byte
	hot    hotPath
)

// amsBuffer tells entry.mjs where the arrays are: 0 and 1 are hotIn's
// address and size, 2 and 3 hotOut's.
//
//go:wasmexport amsBuffer
func amsBuffer(which int32) int32 {
	switch which {
	case 0:
		return int32(uintptr(unsafe.Pointer(&hotIn[0])))
	case 1:
		return int32(len(hotIn))
	case 2:
		return int32(uintptr(unsafe.Pointer(&hotOut[0])))
	case 3:
		return int32(len(hotOut))
	}
	return 0
}

// amsMessage handles the text message of n bytes in hotIn from the socket
// adopted as slot by the object of incarnation, at Date.now() nowMillis
// (which saves Go's clock two calls into JS). It returns the length of the
// ops in hotOut, or -1 when entry.mjs must take the js.FuncOf path.
//
//go:wasmexport amsMessage
func amsMessage(incarnation, slot, n int32, nowMillis float64) int32 {
	o, ok := residents.Get(int(incarnation))
	if !ok || o.unsettled || n < 0 || int(n) > len(hotIn) {
		return -1 // unknown, or to be rebuilt after a panic: load does it
	}
	connID, ok := o.slots[slot]
	if !ok {
		return 0 // a socket whose stream is gone: displaced or closed
	}
	return hotEvent(o, slot, nowMillis, "amsMessage", func() { o.conv.Receive(connID, hotIn[:n]) })
}

// amsClose handles the close of the socket adopted as slot, with code and
// the n bytes of its reason in hotIn, as conversationClose does: the stream
// leaves (peers get stream_left) and the close is reciprocated, both as
// ops. A close is on the way of the next join (a client that drops a socket
// and dials again), and the js.FuncOf path cost more than the leave. It
// returns the ops' length, or -1 when entry.mjs must take that path.
//
//go:wasmexport amsClose
func amsClose(incarnation, slot, code, n int32, nowMillis float64) int32 {
	o, ok := residents.Get(int(incarnation))
	if !ok || o.unsettled || n < 0 || int(n) > len(hotIn) {
		return -1
	}
	connID, ok := o.slots[slot]
	if !ok {
		return -1 // displaced or refused: the js.FuncOf path reciprocates
	}
	reason := string(hotIn[:n])
	return hotEvent(o, slot, nowMillis, "amsClose", func() {
		o.leave(connID)
		hot.close(slot, int(code), reason)
	})
}

// hotEvent runs event, an export's work for the socket adopted as slot, at
// Date.now() nowMillis, and returns the length of the ops it left in
// hotOut. The object stays unsettled unless event returns normally; a
// panic is recovered and closes the socket 4500 (closeAfterPanic). Reads
// that the event woke run before the export returns.
func hotEvent(o *object, slot int32, nowMillis float64, name string, event func()) int32 {
	woke := o.waiters.waiting()
	hot.begin(o, int64(nowMillis))
	o.unsettled = true
	func() {
		defer func() {
			if r := recover(); r != nil {
				fmt.Fprintf(os.Stderr, "ams: recovered panic in %s: %v\n%s", name, r, debug.Stack())
				closeAfterPanic(slot)
			}
		}()
		event()
		o.unsettled = false
	}()
	result := int32(hot.end())
	if woke {
		runtime.Gosched() // the woken reads are this object's
	}
	return result
}

// closeAfterPanic is closeOnPanic for the hot path: the sender of the event
// that panicked is closed 4500, touching none of the object's Go state,
// which stays unsettled: the next event (this close's, or any) takes the
// js.FuncOf path and rebuilds it, and peers then see the stream leave.
func closeAfterPanic(slot int32) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "ams: recovered panic in amsMessage's fallback: %v\n", r)
		}
	}()
	wire.InjectFallbackFault()
	hot.close(slot, wire.CloseInternalError.Code, wire.CloseInternalError.Reason)
}

// hotPath is the state of the export running now, if any.
type hotPath struct {
	o     *object // the object whose sockets the slots name; nil outside an export
	clock int64   // the event's time, Unix milliseconds
	ops   Ops
	slots []int32 // a send's recipients, reused
}

func init() {
	hot.ops = Ops{buf: hotOut[:], drain: func(n int) { hot.o.self.Call("drain", n) }}
}

func (h *hotPath) begin(o *object, clock int64) {
	h.o, h.clock = o, clock
	h.ops.Reset()
}

func (h *hotPath) end() int {
	n := h.ops.Len()
	h.o = nil
	h.ops.Reset()
	return n
}

// active reports whether o's sends and closes go to hotOut.
func (h *hotPath) active(o *object) bool { return h.o == o }

// send queues frame for sockets; false means it cannot fit.
func (h *hotPath) send(frame []byte, sockets []*socket) bool {
	slots := h.slots[:0]
	for _, s := range sockets {
		slots = append(slots, s.slot)
	}
	h.slots = slots
	return h.ops.Send(frame, slots)
}

func (h *hotPath) close(slot int32, code int, reason string) bool {
	code, reason = bridge.ServerCloseCode(code, reason)
	return h.ops.Close(slot, code, reason)
}

// now is the object's clock: the event's time in an export.
func (o *object) now() time.Time {
	if hot.active(o) {
		return time.UnixMilli(hot.clock)
	}
	return time.Now()
}

// waiting reports whether a read waits for the next event (whose goroutine
// an export must let run).
func (w *Waiters) waiting() bool { return len(w.chans) > 0 }
