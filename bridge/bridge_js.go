// Package bridge is the thin layer between workerd and a Go program that
// lives as long as its isolate. syumai/workers starts a fresh Go instance for
// every request and cannot define a Durable Object or pass a WebSocket
// through; this package keeps one instance per isolate and exports Go
// functions that build/entry.mjs calls for the Worker's fetch and for the
// Durable Object's fetch and hibernation handlers.
//
// One panic would end the Go program for every object in the isolate, so
// every exported function recovers and answers with its fallback instead.
package bridge

import (
	"fmt"
	"os"
	"runtime/debug"
	"syscall/js"
)

// binding is the object entry.mjs reads exported functions from. syumai/workers
// reads the same globalThis.context for env.
var binding = js.Global().Get("context").Get("binding")

// Export makes fn callable from JS as binding[name]. fn runs synchronously;
// if it panics, fallback's result is returned instead. A fallback does no
// work that can fail on the state fn left behind; if it panics all the
// same, that panic is logged and the call returns undefined: the program
// goes on for every other object.
func Export(name string, fn func(args []js.Value) any, fallback func(args []js.Value) any) {
	binding.Set(name, js.FuncOf(func(_ js.Value, args []js.Value) any {
		if result, ok := guard(name, fn, args); ok {
			return result
		}
		result, _ := guard(name+" fallback", fallback, args)
		return result
	}))
}

// ExportAsync makes fn callable from JS as binding[name](resolve, ...args):
// entry.mjs makes the Promise and passes its resolve (callAsync), which
// saves Go a js.FuncOf and a nested event per request. fn runs on a
// goroutine of its own so it may await JS promises; if it panics or fails,
// the promise resolves with fallback's result, and with undefined if the
// fallback panics too.
func ExportAsync(name string, fn func(args []js.Value) (js.Value, error), fallback func(args []js.Value) js.Value) {
	binding.Set(name, js.FuncOf(func(_ js.Value, callArgs []js.Value) any {
		resolve, args := callArgs[0], callArgs[1:]
		goPooled(func() {
			v, ok := guard(name, func(args []js.Value) js.Value {
				v, err := fn(args)
				if err != nil {
					fmt.Fprintf(os.Stderr, "ams: %s: %v\n", name, err)
					return fallback(args)
				}
				return v
			}, args)
			if !ok {
				v, _ = guard(name+" fallback", fallback, args)
			}
			resolve.Invoke(v)
		})
		return nil
	}))
}

// guard runs fn, turning a panic into ok == false after logging it.
func guard[T any](name string, fn func(args []js.Value) T, args []js.Value) (result T, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			logPanic(name, r)
		}
	}()
	return fn(args), true
}

// Ready tells entry.mjs that every function is exported.
func Ready() {
	js.Global().Get("context").Call("ready")
}

func logPanic(name string, r any) {
	fmt.Fprintf(os.Stderr, "ams: recovered panic in %s: %v\n%s", name, r, debug.Stack())
}

// NewPromise returns a Promise resolved with fn's result, computed on a new
// goroutine.
func NewPromise(fn func() js.Value) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		executor.Release()
		resolve := args[0]
		goPooled(func() { resolve.Invoke(fn()) })
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

// idleWorkers holds the inboxes of goroutines that finished a promise's
// work and wait for another. A new goroutine starts with a small stack and
// grows it by copying, several times on a request's way through net/http
// and the Worker (runtime.copystack was a tenth of the Worker's part of a
// join); a worker keeps the stack it grew.
var idleWorkers = make(chan chan func(), 64)

// goPooled runs fn on an idle worker, or on a new one if none is idle.
func goPooled(fn func()) {
	select {
	case inbox := <-idleWorkers:
		inbox <- fn
	default:
		go work(fn)
	}
}

func work(fn func()) {
	inbox := make(chan func(), 1)
	for {
		fn()
		select {
		case idleWorkers <- inbox:
		default:
			return // enough are idle
		}
		fn = <-inbox
	}
}

// Await blocks the calling goroutine until promise settles.
func Await(promise js.Value) (js.Value, error) {
	type outcome struct {
		v   js.Value
		err error
	}
	done := make(chan outcome, 1)
	var onResolve, onReject js.Func
	onResolve = js.FuncOf(func(_ js.Value, args []js.Value) any {
		onResolve.Release()
		onReject.Release()
		done <- outcome{v: arg0(args)}
		return nil
	})
	onReject = js.FuncOf(func(_ js.Value, args []js.Value) any {
		onResolve.Release()
		onReject.Release()
		done <- outcome{err: fmt.Errorf("%s", js.Global().Get("String").Invoke(arg0(args)).String())}
		return nil
	})
	promise.Call("then", onResolve, onReject)
	o := <-done
	return o.v, o.err
}

func arg0(args []js.Value) js.Value {
	if len(args) == 0 {
		return js.Undefined()
	}
	return args[0]
}

// Try calls fn and turns a thrown JS exception into an error.
func Try(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if jsErr, ok := r.(js.Error); ok {
				err = jsErr
				return
			}
			panic(r)
		}
	}()
	fn()
	return nil
}

// Env returns a lookup of the string vars and secrets of env.
func Env(env js.Value) func(string) string {
	return func(name string) string {
		v := env.Get(name)
		if v.Type() != js.TypeString {
			return ""
		}
		return v.String()
	}
}
