package wire

import "unicode/utf8"

// decodeTokenFast decodes a token frame, {"type":"token","data":"..."} in
// any key order, with any JSON whitespace and any other members whose values
// are strings, in one pass over msg: the UTF-8, nesting, validity and parse
// passes of decodeClientFrameFull in one loop, with no allocation. sure is
// false for anything else, and for whatever this pass does not decide the way
// the full decoder does without doing its work: a key or type with an
// escape (the full decoder compares them unescaped: "typ\u0065" is "type"),
// a member whose value is not a string, another type, a missing member, any
// invalid or doubtful input (the full decoder finds the refusal), and data
// over the limit whose escapes may decode it under the limit. When sure, the
// answer is the full decoder's: a repeated key counts once, the last one
// winning; Data is the message's own bytes of the last data literal.
func decodeTokenFast(msg []byte, limits Limits) (frame ClientFrame, refusal *Close, sure bool) {
	i := skipJSONSpace(msg, 0)
	if i == len(msg) || msg[i] != '{' {
		return ClientFrame{}, nil, false
	}
	i = skipJSONSpace(msg, i+1)
	typeAt, typeEnd := -1, -1 // the type literal's contents
	dataAt, dataEnd := -1, -1 // the data literal, quotes included
	dataEscaped := false
	for {
		if i == len(msg) || msg[i] != '"' {
			return ClientFrame{}, nil, false // also {}: the full decoder refuses it
		}
		keyAt := i + 1
		keyEnd, escaped, ok := scanJSONString(msg, keyAt)
		if !ok || escaped {
			return ClientFrame{}, nil, false
		}
		i = skipJSONSpace(msg, keyEnd+1)
		if i == len(msg) || msg[i] != ':' {
			return ClientFrame{}, nil, false
		}
		i = skipJSONSpace(msg, i+1)
		if i == len(msg) || msg[i] != '"' {
			return ClientFrame{}, nil, false
		}
		valueAt := i
		valueEnd, valueEscaped, ok := scanJSONString(msg, valueAt+1)
		if !ok {
			return ClientFrame{}, nil, false
		}
		switch string(msg[keyAt:keyEnd]) {
		case "type":
			typeAt, typeEnd = valueAt+1, valueEnd
			if valueEscaped {
				typeAt = -1 // the full decoder unescapes it
			}
		case "data":
			dataAt, dataEnd, dataEscaped = valueAt, valueEnd+1, valueEscaped
		}
		i = skipJSONSpace(msg, valueEnd+1)
		if i == len(msg) {
			return ClientFrame{}, nil, false
		}
		if msg[i] == ',' {
			i = skipJSONSpace(msg, i+1)
			continue
		}
		if msg[i] != '}' || skipJSONSpace(msg, i+1) != len(msg) {
			return ClientFrame{}, nil, false
		}
		break
	}
	if typeAt < 0 || dataAt < 0 || string(msg[typeAt:typeEnd]) != TypeToken {
		return ClientFrame{}, nil, false
	}
	// The full decoder's rule: a literal over the limit is refused if its
	// decoded data is; without escapes the two are the same length.
	if dataEnd-dataAt-2 > limits.TokenBytes {
		if dataEscaped {
			return ClientFrame{}, nil, false
		}
		return ClientFrame{}, &CloseTokenTooLarge, true
	}
	return ClientFrame{Type: TypeToken, Data: msg[dataAt:dataEnd]}, nil, true
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func skipJSONSpace(msg []byte, i int) int {
	for i < len(msg) {
		switch msg[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanJSONString scans the string literal whose contents start at i and
// returns the index of its closing quote and whether it holds an escape. ok
// is false if it is not a valid literal of valid UTF-8: unterminated, a
// control byte, an escape JSON does not have, invalid UTF-8.
func scanJSONString(msg []byte, i int) (end int, escaped, ok bool) {
	for i < len(msg) {
		c := msg[i]
		switch {
		case c == '"':
			return i, escaped, true
		case c < 0x20:
			return 0, false, false
		case c == '\\':
			escaped = true
			if i+1 == len(msg) {
				return 0, false, false
			}
			switch msg[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(msg) || !isHex(msg[i+2]) || !isHex(msg[i+3]) || !isHex(msg[i+4]) || !isHex(msg[i+5]) {
					return 0, false, false
				}
				i += 6
			default:
				return 0, false, false
			}
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(msg[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, false, false
			}
			i += size
		}
	}
	return 0, false, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
