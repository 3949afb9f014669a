package durable

import "encoding/binary"

// Ops is the socket hot path's answer (hotpath_js.go): what build/entry.mjs
// is to do after Go handled a message, written into a fixed buffer in wasm
// memory and carried out by entry.mjs's perform in one loop. Little-endian
// uint32s:
//
//	opSend  len, frame[len], count, slot[count]
//	opClose slot, code, len, reason[len]
type Ops struct {
	buf []byte
	n   int
	// drain hands buf[:n] over to be carried out when the next op would
	// not fit; the buffer is then empty again.
	drain func(n int)
}

const (
	opSend  = 1
	opClose = 2
)

// Len is the length of the ops written since Reset.
func (w *Ops) Len() int { return w.n }

// Reset empties the buffer.
func (w *Ops) Reset() { w.n = 0 }

// room makes need bytes available, draining first if the buffer is full.
// It reports false for an op larger than the whole buffer.
func (w *Ops) room(need int) bool {
	if need > len(w.buf) {
		return false
	}
	if w.n+need > len(w.buf) {
		w.drain(w.n)
		w.n = 0
	}
	return true
}

func (w *Ops) u32(v uint32) {
	binary.LittleEndian.PutUint32(w.buf[w.n:], v)
	w.n += 4
}

// Send queues frame for the sockets of slots; false means it cannot fit,
// and the caller sends another way.
func (w *Ops) Send(frame []byte, slots []int32) bool {
	if !w.room(9 + len(frame) + 4*len(slots)) {
		return false
	}
	w.buf[w.n] = opSend
	w.n++
	w.u32(uint32(len(frame)))
	w.n += copy(w.buf[w.n:], frame)
	w.u32(uint32(len(slots)))
	for _, s := range slots {
		w.u32(uint32(s))
	}
	return true
}

// Close queues closing the socket of slot with a code a server may send.
func (w *Ops) Close(slot int32, code int, reason string) bool {
	if !w.room(13 + len(reason)) {
		return false
	}
	w.buf[w.n] = opClose
	w.n++
	w.u32(uint32(slot))
	w.u32(uint32(code))
	w.u32(uint32(len(reason)))
	w.n += copy(w.buf[w.n:], reason)
	return true
}
