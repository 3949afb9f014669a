package main

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// terminalWriter is every byte ams prints, to stdout and stderr alike: a
// peer's token, a frame field, a host's error body or close reason never
// reaches the terminal as a control sequence. C0 controls but newline and
// tab, DEL, C1 controls (U+0080..U+009F, U+009B is a CSI on its own) and
// the bidirectional overrides print as \uXXXX, bytes that are not UTF-8 as
// \xNN. Inside JSON (--raw, --json) \uXXXX is the same character, so the
// output stays valid JSON that decodes to exactly what was received; JSON
// cannot hold the other escaped bytes unescaped anyway.
type terminalWriter struct{ w io.Writer }

func (t terminalWriter) Write(p []byte) (int, error) {
	if _, err := t.w.Write(escapeControls(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// escapeControls returns p with every control escaped (see terminalWriter).
func escapeControls(p []byte) []byte {
	clean := true
	for _, b := range p {
		if (b < 0x20 && b != '\n' && b != '\t') || b >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return p
	}
	out := make([]byte, 0, len(p)+16)
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			out = fmt.Appendf(out, `\x%02x`, p[i])
		case r == '\n' || r == '\t':
			out = append(out, p[i])
		case r < 0x20 || (r >= 0x7f && r < 0xa0) || bidiControl(r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, p[i:i+size]...)
		}
		i += size
	}
	return out
}

// bidiControl reports the characters that reorder text on screen, so a
// line can read as something other than what it holds.
func bidiControl(r rune) bool {
	return r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}
