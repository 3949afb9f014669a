package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz targets of the header and link decoders. Each has a seed corpus in
// testdata/fuzz/<name>/; run one with
//
//	go test -run=^$ -fuzz=^FuzzDecodeMetadataHeader$ -fuzztime=30s ./wire

// FuzzDecodeMetadataHeader: an accepted header is valid UTF-8 JSON, one
// object, within the limit and the nesting bound; encoding what was accepted
// is accepted again, unchanged.
func FuzzDecodeMetadataHeader(f *testing.F) {
	for _, seed := range []string{
		"",
		base64.StdEncoding.EncodeToString([]byte(`{"role":"critic"}`)),
		base64.RawStdEncoding.EncodeToString([]byte(`{"a":1}`)),
		base64.StdEncoding.EncodeToString([]byte(`[1,2]`)),
		base64.StdEncoding.EncodeToString([]byte("{\"a\":\"\xff\"}")),
		base64.URLEncoding.EncodeToString([]byte(`{"???":">>>"}`)),
		"!!not base64!!",
		"e30",
		"e30===",
	} {
		f.Add(seed)
	}
	const limit = 256
	f.Fuzz(func(t *testing.T, header string) {
		raw, ok := DecodeMetadataHeader(header, limit)
		if !ok {
			if raw != nil {
				t.Fatalf("refusal returned %q", raw)
			}
			return
		}
		if header == "" && string(raw) != "{}" {
			t.Fatalf("absent header decoded to %q", raw)
		}
		if !utf8.Valid(raw) || !json.Valid(raw) || len(raw) > limit || !ShallowJSON(raw, MaxJSONDepth) {
			t.Fatalf("accepted %q: utf8 %v json %v len %d", raw, utf8.Valid(raw), json.Valid(raw), len(raw))
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			t.Fatalf("accepted %q, not a JSON object: %v", raw, err)
		}
		again, ok := DecodeMetadataHeader(base64.StdEncoding.EncodeToString(raw), limit)
		if !ok || !bytes.Equal(again, raw) {
			t.Fatalf("re-encoding %q: %q %v", raw, again, ok)
		}
	})
}

// FuzzParseSubscribeStreams: an accepted list holds valid, distinct names,
// no more than max, each present in the header, and parses back unchanged.
func FuzzParseSubscribeStreams(f *testing.F) {
	for _, seed := range []struct {
		v   string
		max int
	}{
		{"", 16}, {"a", 16}, {"a, b,a", 16}, {"a,,b", 16}, {"-x", 16}, {"a b", 16},
		{"a,b,c", 2}, {"a,a,a", 1}, {" x.y_z-1 ", 16}, {"é", 16}, {strings.Repeat("a", 64), 16},
	} {
		f.Add(seed.v, seed.max)
	}
	f.Fuzz(func(t *testing.T, v string, max int) {
		max = max % 64
		if max < 0 {
			max = -max
		}
		names, ok := ParseSubscribeStreams(v, max)
		if !ok {
			if names != nil {
				t.Fatalf("refusal returned %q", names)
			}
			return
		}
		if v == "" {
			if names != nil {
				t.Fatalf("absent header gave %q", names)
			}
			return
		}
		if len(names) == 0 || len(names) > max {
			t.Fatalf("%q (max %d) gave %d names", v, max, len(names))
		}
		for i, name := range names {
			if !ValidStreamName(name) {
				t.Fatalf("%q gave invalid name %q", v, name)
			}
			if slices.Contains(names[:i], name) {
				t.Fatalf("%q gave %q twice", v, name)
			}
			if !strings.Contains(v, name) {
				t.Fatalf("%q gave %q, which it does not contain", v, name)
			}
		}
		// Every element of the header is one of the names.
		for _, part := range strings.Split(v, ",") {
			if !slices.Contains(names, strings.TrimSpace(part)) {
				t.Fatalf("%q: element %q is not among %q", v, part, names)
			}
		}
		again, ok := ParseSubscribeStreams(strings.Join(names, ","), max)
		if !ok || !slices.Equal(again, names) {
			t.Fatalf("%q reparsed as %q %v", names, again, ok)
		}
	})
}

// FuzzParseResumeAfter: an accepted value is a non-negative decimal integer
// and nothing else; formatting it parses back to the same seq.
func FuzzParseResumeAfter(f *testing.F) {
	for _, seed := range []string{"", "0", "42", " 7 ", "-1", "+1", "1.5", "latest", "9223372036854775807", "9223372036854775808", "0x10", "007"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, ok := ParseResumeAfter(v)
		if !ok {
			if n != nil {
				t.Fatalf("refusal returned %d", *n)
			}
			return
		}
		if v == "" {
			if n != nil {
				t.Fatalf("absent header gave %d", *n)
			}
			return
		}
		if n == nil || *n < 0 {
			t.Fatalf("%q accepted as %v", v, n)
		}
		// Decimal digits only; "-0" (zero written with a sign) is tolerated.
		trimmed := strings.TrimPrefix(strings.TrimSpace(v), "-")
		if trimmed == "" || strings.Trim(trimmed, "0123456789") != "" || (trimmed != strings.TrimSpace(v) && *n != 0) {
			t.Fatalf("%q accepted: not a decimal integer", v)
		}
		back, ok := ParseResumeAfter(strconv.FormatInt(*n, 10))
		if !ok || back == nil || *back != *n {
			t.Fatalf("%d did not parse back", *n)
		}
	})
}

// refDepth is the nesting depth of valid JSON, from encoding/json's tokenizer.
func refDepth(raw []byte) (int, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest, err.Error() == "EOF"
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

// FuzzShallowJSON: on valid JSON, ShallowJSON agrees with the reference
// depth exactly; on anything, a larger bound never refuses what a smaller
// one accepted.
func FuzzShallowJSON(f *testing.F) {
	for _, seed := range []struct {
		raw string
		max int
	}{
		{`1`, 0}, {`{}`, 1}, {`[[[]]]`, 2}, {`{"a":"[[[["}`, 1}, {`{"a":"\"[["}`, 1}, {`["\\",[[]]]`, 2},
		{`{"a":[{"b":[1,{"c":null}]}]}`, 4}, {`[[[`, 64}, {`"unterminated [[[`, 0}, {`]]]]{`, 0},
	} {
		f.Add([]byte(seed.raw), seed.max)
	}
	f.Fuzz(func(t *testing.T, raw []byte, maxDepth int) {
		maxDepth = maxDepth % 100
		if maxDepth < 0 {
			maxDepth = -maxDepth
		}
		got := ShallowJSON(raw, maxDepth)
		if got && !ShallowJSON(raw, maxDepth+1) {
			t.Fatalf("ShallowJSON(%q) accepts at %d, refuses at %d", raw, maxDepth, maxDepth+1)
		}
		if !json.Valid(raw) {
			return
		}
		depth, ok := refDepth(raw)
		if !ok {
			t.Fatalf("reference tokenizer failed on valid %q", raw)
		}
		if want := depth <= maxDepth; got != want {
			t.Fatalf("ShallowJSON(%q, %d) = %v; depth is %d", raw, maxDepth, got, depth)
		}
	})
}

// FuzzParseSubprotocols: the credential is the first ams.bearer. element's
// remainder, and ams.v1 is reported exactly when offered.
func FuzzParseSubprotocols(f *testing.F) {
	for _, seed := range []string{
		"", "ams.v1", "ams.v1, ams.bearer.ams_sk_abc", "ams.bearer.x,ams.bearer.y", "ams.bearer.", " ams.v1 ,chat",
		"AMS.V1", "ams.v10", "ams.bearer.a b", ",,,",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		credential, v1 := ParseSubprotocols(header)
		var elements []string
		for _, p := range strings.Split(header, ",") {
			elements = append(elements, strings.TrimSpace(p))
		}
		if want := slices.Contains(elements, SubprotocolV1); v1 != want {
			t.Fatalf("%q: offersV1 = %v, want %v", header, v1, want)
		}
		want := ""
		for _, e := range elements {
			if rest, ok := strings.CutPrefix(e, SubprotocolBearer); ok && rest != "" {
				want = rest
				break
			}
		}
		if credential != want {
			t.Fatalf("%q: credential %q, want %q", header, credential, want)
		}
		if strings.Contains(credential, ",") || strings.HasSuffix(credential, " ") {
			t.Fatalf("%q: credential %q spans elements", header, credential)
		}
	})
}

// FuzzParseMagicLink: an accepted link has a host, a namespace and an alias,
// and its String form parses back to the same parts.
func FuzzParseMagicLink(f *testing.F) {
	for _, seed := range []string{
		"https://ams.klappy.dev/demo/conversations/falcon-pulse-9421?t=abc",
		"http://localhost:8787/demo/conversations/a?t=a%2Bb%3D&stream_name=x",
		"https://h/demo/conversations/a/?t=",
		"https://h/demo/conversations/a/connect?t=x",
		"https://h/v1/demo/conversations/a?t=x",
		"//h/demo/conversations/a?t=x",
		"https://h/%3F/conversations/a?t=x",
		"not a link",
		"https://h/demo/conversations/a#frag?t=x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, link string) {
		l, err := ParseMagicLink(link)
		if err != nil {
			return
		}
		if l.Namespace == "" || l.Alias == "" || l.Origin == "" {
			t.Fatalf("%q parsed to %+v", link, l)
		}
		if strings.Contains(l.Namespace, "/") || strings.Contains(l.Alias, "/") {
			t.Fatalf("%q: namespace %q alias %q hold a slash", link, l.Namespace, l.Alias)
		}
		// Links the broker mints (valid names, an http(s) origin) survive
		// String and parse back unchanged.
		if !ValidAlias(l.Namespace) || !ValidAlias(l.Alias) || !(strings.HasPrefix(l.Origin, "https://") || strings.HasPrefix(l.Origin, "http://")) {
			return
		}
		back, err := ParseMagicLink(l.String())
		if err != nil {
			t.Fatalf("%q → %q does not parse: %v", link, l.String(), err)
		}
		if back.Origin != l.Origin || back.Namespace != l.Namespace || back.Alias != l.Alias || back.Token != l.Token {
			t.Fatalf("%q → %q → %+v, want %+v", link, l.String(), back, l)
		}
		if back.String() != l.String() {
			t.Fatalf("String not stable: %q then %q", l.String(), back.String())
		}
	})
}
