package durable

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
)

// performed reads ops as build/entry.mjs's perform does, into lines.
func performed(t *testing.T, b []byte) (out []string) {
	t.Helper()
	u32 := func(at int) int { return int(binary.LittleEndian.Uint32(b[at:])) }
	for at := 0; at < len(b); {
		switch b[at] {
		case opSend:
			n := u32(at + 1)
			frame := string(b[at+5 : at+5+n])
			at += 5 + n
			count := u32(at)
			at += 4
			var slots []int
			for i := 0; i < count; i++ {
				slots = append(slots, u32(at))
				at += 4
			}
			out = append(out, fmt.Sprintf("send %s to %v", frame, slots))
		case opClose:
			n := u32(at + 9)
			out = append(out, fmt.Sprintf("close %d %d %s", u32(at+1), u32(at+5), b[at+13:at+13+n]))
			at += 13 + n
		default:
			t.Fatalf("unknown op %d at %d", b[at], at)
		}
	}
	return out
}

func TestOpsRoundTrip(t *testing.T) {
	var drained []string
	w := &Ops{buf: make([]byte, 64)}
	w.drain = func(n int) { drained = append(drained, performed(t, w.buf[:n])...) }
	if !w.Send([]byte(`{"a":1}`), []int32{3, 1, 70000}) || !w.Close(2, 4500, "internal_error") {
		t.Fatal("ops that fit refused")
	}
	want := []string{`send {"a":1} to [3 1 70000]`, "close 2 4500 internal_error"}
	if got := performed(t, w.buf[:w.Len()]); !slices.Equal(got, want) {
		t.Errorf("ops %q, want %q", got, want)
	}
	// The next op does not fit: what is written is drained first, in order.
	if !w.Send([]byte(`{"b":2}`), []int32{9}) {
		t.Fatal("an op that fits an empty buffer refused")
	}
	if !slices.Equal(drained, want) || !slices.Equal(performed(t, w.buf[:w.Len()]), []string{`send {"b":2} to [9]`}) {
		t.Errorf("drained %q, then %q", drained, performed(t, w.buf[:w.Len()]))
	}
	if w.Send(make([]byte, 64), nil) || w.Close(1, 1000, string(make([]byte, 60))) {
		t.Error("an op larger than the buffer accepted")
	}
	w.Reset()
	if w.Len() != 0 {
		t.Error("Reset left ops")
	}
}
