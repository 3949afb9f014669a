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

// jsTexts converts Go text to JS strings, remembering the last frame and a
// bounded set of short strings (stream ids and names): each event's frame is
// written to the log and sent to every recipient, so converting it once saves
// a copy into JS and a js.Value (with its GC finalizer) per use.
type jsTexts struct {
	frame   []byte // held, so its memory cannot be reused while remembered
	frameJS js.Value
	strings map[string]js.Value
}

// maxJSStrings bounds jsTexts.strings; it starts over when full.
const maxJSStrings = 4096

// Frame returns b as a JS string. b must not change after it is passed.
func (t *jsTexts) Frame(b []byte) js.Value {
	if len(b) > 0 && len(b) == len(t.frame) && unsafe.SliceData(b) == unsafe.SliceData(t.frame) {
		return t.frameJS
	}
	t.frame, t.frameJS = b, js.ValueOf(string(b))
	return t.frameJS
}

// String returns s as a JS string.
func (t *jsTexts) String(s string) js.Value {
	if v, ok := t.strings[s]; ok {
		return v
	}
	if t.strings == nil || len(t.strings) >= maxJSStrings {
		t.strings = map[string]js.Value{}
	}
	v := js.ValueOf(s)
	t.strings[s] = v
	return v
}
