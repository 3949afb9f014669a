package bridge

import (
	"syscall/js"
	"time"
)

// Timer fires after d through a JS setTimeout made in the calling
// goroutine's context, so the goroutine waiting on it resumes in the same
// Durable Object or request. A Go timer gives no such promise: the runtime
// arms one JS timer for all of them, from whichever context it last ran in,
// and a goroutine resumed from another object's context cannot touch its
// own I/O ("Cannot perform I/O on behalf of a different Durable Object").
// stop cancels it.
func Timer(d time.Duration) (fired <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	done := false
	var f js.Func
	f = js.FuncOf(func(js.Value, []js.Value) any {
		if !done {
			done = true
			f.Release()
			close(ch)
		}
		return nil
	})
	id := js.Global().Call("setTimeout", f, d.Milliseconds())
	return ch, func() {
		if !done {
			done = true
			js.Global().Call("clearTimeout", id)
			f.Release()
		}
	}
}
