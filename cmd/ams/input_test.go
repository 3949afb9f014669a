package main

import (
	"io"
	"reflect"
	"strings"
	"testing"
)

// reads returns each of its chunks from one Read, like a pipe written slowly.
type reads struct{ chunks [][]byte }

func (r *reads) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

func collect(t *testing.T, pump func(io.Reader, func(string) error) (int, error), r io.Reader) []string {
	t.Helper()
	var got []string
	n, err := pump(r, func(s string) error { got = append(got, s); return nil })
	if err != nil || n != len(got) {
		t.Fatalf("pump: n %d, tokens %d, err %v", n, len(got), err)
	}
	return got
}

func TestPumpChunksSendsEachReadAsAToken(t *testing.T) {
	got := collect(t, pumpChunks, &reads{[][]byte{[]byte("Hel"), []byte("lo, "), []byte("world\n")}})
	if want := []string{"Hel", "lo, ", "world\n"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
}

func TestPumpChunksKeepsUTF8CharactersWhole(t *testing.T) {
	word := []byte("wö🙂rld")
	// Split inside ö (2 bytes) and inside 🙂 (4 bytes).
	got := collect(t, pumpChunks, &reads{[][]byte{word[:2], word[2:5], word[5:]}})
	if strings.Join(got, "") != string(word) {
		t.Fatalf("bytes changed: %q", got)
	}
	for _, tok := range got {
		if !strings.ContainsRune(tok, '\uFFFD') && !isValid(tok) {
			t.Fatalf("token %q splits a character", tok)
		}
	}
	// A truncated character at EOF is still sent.
	got = collect(t, pumpChunks, &reads{[][]byte{[]byte("a"), word[2:4]}})
	if strings.Join(got, "") != "a"+string(word[2:4]) {
		t.Fatalf("tail lost: %q", got)
	}
}

func isValid(s string) bool { return strings.ToValidUTF8(s, "") == s }

func TestCompleteUTF8(t *testing.T) {
	s := []byte("a🙂")
	for i, want := range []int{0, 1, 1, 1, 1, 5} {
		if got := completeUTF8(s[:i]); got != want {
			t.Errorf("completeUTF8(%q) = %d, want %d", s[:i], got, want)
		}
	}
	if got := completeUTF8([]byte{0xff, 0xfe}); got != 2 {
		t.Errorf("invalid bytes must not be held back: %d", got)
	}
}

func TestPumpLines(t *testing.T) {
	got := collect(t, pumpLines, strings.NewReader("one\ntwo\r\n\n  three  \nlast"))
	if want := []string{"one", "two", "", "  three  ", "last"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
	if got := collect(t, pumpLines, strings.NewReader("")); len(got) != 0 {
		t.Fatalf("empty input sent %q", got)
	}
}
