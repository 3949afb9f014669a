package durable

import (
	"syscall/js"
	"unsafe"
)

// sqlStorage is the object's ctx.storage.sql with exec bound once: invoking
// the bound function skips the property lookup, and the copy of the method
// name into JS, that Value.Call makes on every call.
type sqlStorage struct {
	exec js.Value
}

func newSQLStorage(storage js.Value) sqlStorage {
	sql := storage.Get("sql")
	return sqlStorage{exec: sql.Get("exec").Call("bind", sql)}
}

// Exec runs query (a Go string or a JS string made once) with its bindings.
func (s sqlStorage) Exec(query any, bindings ...any) js.Value {
	return s.exec.Invoke(append([]any{query}, bindings...)...)
}

// jsTexts converts frames to JS strings, remembering the last one: an event
// sent outside the hot path (a join's frames, a replay) goes to many sockets,
// so converting it once saves a copy into JS and a js.Value (with its GC
// finalizer) per recipient.
type jsTexts struct {
	frame   []byte // held, so its memory cannot be reused while remembered
	frameJS js.Value
}

// Frame returns b as a JS string. b must not change after it is passed.
func (t *jsTexts) Frame(b []byte) js.Value {
	if len(b) > 0 && len(b) == len(t.frame) && unsafe.SliceData(b) == unsafe.SliceData(t.frame) {
		return t.frameJS
	}
	t.frame, t.frameJS = b, js.ValueOf(string(b))
	return t.frameJS
}
