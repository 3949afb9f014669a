package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// chunkSize bounds one read of stdin in `ams send -`, well under the
// broker's 64 KiB token limit.
const chunkSize = 16 << 10

// pumpChunks sends whatever each read of r returns as one token, so a
// generation piped in streams token by token. A UTF-8 character split
// across two reads is held back and sent whole with the next read; bytes
// that are not UTF-8 are refused (send checks each token, client.CheckToken)
// rather than replaced.
func pumpChunks(r io.Reader, send func(string) error) (int, error) {
	buf := make([]byte, chunkSize)
	var carry []byte
	sent := 0
	for {
		n, err := r.Read(buf)
		data := append(carry, buf[:n]...)
		cut := completeUTF8(data)
		if err != nil && errors.Is(err, io.EOF) {
			cut = len(data)
		}
		if cut > 0 {
			if serr := send(string(data[:cut])); serr != nil {
				return sent, serr
			}
			sent++
		}
		carry = append([]byte{}, data[cut:]...)
		if errors.Is(err, io.EOF) {
			return sent, nil
		}
		if err != nil {
			return sent, err
		}
	}
}

// completeUTF8 is the length of the longest prefix of b that does not end
// in the middle of a UTF-8 character. Invalid bytes count as complete.
func completeUTF8(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}

// pumpLines sends each line of r as one token, without its line ending
// ("\n" or "\r\n"). A last line without a newline is sent too. A line over
// the token limit is refused (token_too_large) once its first
// wire.DefaultLimits.TokenBytes+2 bytes are read, before any of it is sent
// and without holding the rest.
func pumpLines(r io.Reader, send func(string) error) (int, error) {
	limit := wire.DefaultLimits.TokenBytes
	br := bufio.NewReaderSize(r, limit+2)
	sent := 0
	for {
		raw, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return sent, &client.TokenError{Code: wire.CloseTokenTooLarge.Reason, Message: fmt.Sprintf("line %d is over the %d-byte token limit", sent+1, limit)}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return sent, err
		}
		line := string(raw)
		if strings.HasSuffix(line, "\n") {
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		} else if line == "" {
			return sent, nil
		}
		if serr := send(line); serr != nil {
			return sent, serr
		}
		sent++
		if err != nil {
			return sent, nil
		}
	}
}
