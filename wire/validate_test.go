package wire

import (
	"encoding/base64"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The exact regexes of PROTOCOL §1.
var (
	namespaceRegex  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	streamNameRegex = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

func TestValidNamespaceAndAlias(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"a", true},
		{"0", true},
		{"demo-9421", true},
		{"a-", true},
		{"a--b", true},
		{"-a", false},
		{"Demo", false},
		{"demO", false},
		{"a_b", false},
		{"a.b", false},
		{"a b", false},
		{" a", false},
		{"a\n", false},
		{"\na", false},
		{"café", false},
		{"é", false},
		{"a\x00", false},
		{"a\xff", false},
		{"a/b", false},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"a" + strings.Repeat("-", 62), true},
		{"a" + strings.Repeat("-", 63), false},
		{strings.Repeat("9", 63), true},
	}
	for _, tt := range tests {
		if got := ValidNamespace(tt.in); got != tt.want {
			t.Errorf("ValidNamespace(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if got := ValidAlias(tt.in); got != tt.want {
			t.Errorf("ValidAlias(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestReservedNamespaces: the broker's own first path segments are refused
// as namespaces but remain fine as aliases, which sit deeper in the path.
func TestReservedNamespaces(t *testing.T) {
	want := []string{"v1", "mcp", "healthz", "x", "api", "assets", "static"}
	if !slices.Equal(ReservedNamespaces, want) {
		t.Errorf("ReservedNamespaces = %q, want %q", ReservedNamespaces, want)
	}
	for _, ns := range want {
		if ValidNamespace(ns) {
			t.Errorf("ValidNamespace(%q) = true, want false (reserved)", ns)
		}
		if !ValidAlias(ns) {
			t.Errorf("ValidAlias(%q) = false, want true (reserved words are fine aliases)", ns)
		}
	}
	// Only the exact words are reserved.
	for _, ns := range []string{"v2", "v10", "mcp-1", "xx", "x1", "apis", "healthz-demo", "my-api", "statics"} {
		if !ValidNamespace(ns) {
			t.Errorf("ValidNamespace(%q) = false, want true", ns)
		}
	}
	for _, ns := range []string{"V1", "API", "Mcp"} {
		if ValidNamespace(ns) {
			t.Errorf("ValidNamespace(%q) = true: upper case is never valid", ns)
		}
	}
}

func TestValidStreamName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", false},
		{"a", true},
		{"A", true},
		{"7", true},
		{"agent-a", true},
		{"Agent_A.v2", true},
		{"a.", true},
		{"a_", true},
		{"a-", true},
		{".a", false},
		{"_a", false},
		{"-a", false},
		{"a b", false},
		{"a/b", false},
		{"a:b", false},
		{"a\n", false},
		{"ägent", false},
		{"agent\u00e9", false},
		{"\u212a", false}, // Kelvin sign, folds to k but is not ASCII
		{strings.Repeat("Z", 63), true},
		{strings.Repeat("Z", 64), false},
		{"Z" + strings.Repeat("._-", 20) + "ab", true},
		{"Z" + strings.Repeat("._-", 21), false},
	}
	for _, tt := range tests {
		if got := ValidStreamName(tt.in); got != tt.want {
			t.Errorf("ValidStreamName(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestValidatorsAgreeWithProtocolRegexes compares the hand-written validators
// with the PROTOCOL regexes on many generated strings.
func TestValidatorsAgreeWithProtocolRegexes(t *testing.T) {
	alphabet := []string{
		"a", "m", "z", "A", "Q", "Z", "0", "5", "9", "-", ".", "_",
		" ", "\n", "/", ":", "é", "\u212a", "\xff", "\x00", "😀", "{",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50000; i++ {
		var b strings.Builder
		// Bias towards the boundary lengths around 63 and 64.
		n := rng.IntN(8)
		if rng.IntN(3) == 0 {
			n = 60 + rng.IntN(8)
		}
		// Mostly valid characters, so that long valid names do occur.
		for j := 0; j < n; j++ {
			if rng.IntN(10) < 8 {
				b.WriteString(alphabet[rng.IntN(12)])
			} else {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
		}
		s := b.String()
		if got, want := ValidNamespace(s), namespaceRegex.MatchString(s) && !slices.Contains(ReservedNamespaces, s); got != want {
			t.Fatalf("ValidNamespace(%q) = %v, regex says %v", s, got, want)
		}
		if got, want := ValidAlias(s), namespaceRegex.MatchString(s); got != want {
			t.Fatalf("ValidAlias(%q) = %v, regex says %v", s, got, want)
		}
		if got, want := ValidStreamName(s), streamNameRegex.MatchString(s); got != want {
			t.Fatalf("ValidStreamName(%q) = %v, regex says %v", s, got, want)
		}
	}
}

func TestIsJSONObject(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`{}`, true},
		{` { "a" : [1, {"b": null}] } `, true},
		{`[]`, false},
		{`"{}"`, false},
		{`1`, false},
		{`null`, false},
		{``, false},
		{`{`, false},
		{`{"a":1}{}`, false},
		{`{"a":1,}`, false},
		{"{\"a\":\"\xff\"}", false},
		{"{\"\xc3\":1}", false},
		{"{\"a\":\"\xed\xa0\x80\"}", false},     // an encoded surrogate is not UTF-8
		{"{\"a\":\"\xf4\x90\x80\x80\"}", false}, // beyond U+10FFFF
		{`{"a":"é😀"}`, true},
		{`{"a":"\ud800"}`, true}, // an escaped lone surrogate is ASCII text
	}
	for _, tt := range tests {
		if got := IsJSONObject([]byte(tt.in)); got != tt.want {
			t.Errorf("IsJSONObject(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDecodeMetadataHeader(t *testing.T) {
	std := base64.StdEncoding.EncodeToString
	raw := base64.RawStdEncoding.EncodeToString
	obj := `{"role":"planner","n":1,"s":"é😀"}`
	tests := []struct {
		name   string
		header string
		limit  int
		want   string // "" means refused
	}{
		{"absent is the empty object", "", 100, `{}`},
		{"padded", std([]byte(obj)), 100, obj},
		{"unpadded", raw([]byte(obj)), 100, obj},
		{"padded needing two pad chars", std([]byte(`{"a":1}`)), 100, `{"a":1}`},
		{"unpadded needing two pad chars", raw([]byte(`{"a":1}`)), 100, `{"a":1}`},
		{"whitespace kept", std([]byte(` {"a":1} `)), 100, ` {"a":1} `},
		{"empty object", std([]byte(`{}`)), 100, `{}`},
		{"exactly at limit", std([]byte(`{"a":"xxxxxx"}`)), 14, `{"a":"xxxxxx"}`},
		{"one over limit", std([]byte(`{"a":"xxxxxxx"}`)), 14, ""},
		{"far over limit", std([]byte(`{"a":"` + strings.Repeat("x", 1<<20) + `"}`)), 16 << 10, ""},
		{"array", std([]byte(`[1,2]`)), 100, ""},
		{"string", std([]byte(`"{}"`)), 100, ""},
		{"number", std([]byte(`42`)), 100, ""},
		{"null", std([]byte(`null`)), 100, ""},
		{"invalid json", std([]byte(`{"a":`)), 100, ""},
		{"trailing garbage", std([]byte(`{"a":1} x`)), 100, ""},
		{"not base64", "!!!not base64!!!", 100, ""},
		{"raw json, not base64", obj, 100, ""},
		{"base64url alphabet", base64.URLEncoding.EncodeToString([]byte(`{"a":"???>>>"}`)), 100, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := DecodeMetadataHeader(tt.header, tt.limit)
			if tt.want == "" {
				if ok {
					t.Fatalf("DecodeMetadataHeader accepted %q as %q, want refusal", tt.header, got)
				}
				return
			}
			if !ok {
				t.Fatalf("DecodeMetadataHeader(%q) refused, want %q", tt.header, tt.want)
			}
			if string(got) != tt.want {
				t.Fatalf("DecodeMetadataHeader(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

func TestParseSelfSubscribe(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"true", true},
		{"1", true},
		{"TRUE", true},
		{"True", true},
		{" true ", true},
		{"", false},
		{"false", false},
		{"0", false},
		{"yes", false},
		{"on", false},
		{"truee", false},
		{"11", false},
	}
	for _, tt := range tests {
		if got := ParseSelfSubscribe(tt.in); got != tt.want {
			t.Errorf("ParseSelfSubscribe(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

var aliasShape = regexp.MustCompile(`^([a-z]+)-([a-z]+)-([0-9]{4})$`)

func TestNewAlias(t *testing.T) {
	adjectives := map[string]bool{}
	for _, w := range aliasAdjectives {
		adjectives[w] = true
	}
	nouns := map[string]bool{}
	for _, w := range aliasNouns {
		nouns[w] = true
	}
	const draws = 20000
	seen := map[string]bool{}
	low, high := 10000, 0
	for i := 0; i < draws; i++ {
		a := NewAlias()
		m := aliasShape.FindStringSubmatch(a)
		if m == nil {
			t.Fatalf("NewAlias() = %q, not {adjective}-{noun}-{1000..9999}", a)
		}
		if !ValidAlias(a) {
			t.Fatalf("NewAlias() = %q is not a valid alias", a)
		}
		if !adjectives[m[1]] || !nouns[m[2]] {
			t.Fatalf("NewAlias() = %q uses a word outside the lists", a)
		}
		n := 0
		for _, c := range m[3] {
			n = n*10 + int(c-'0')
		}
		if n < 1000 || n > 9999 {
			t.Fatalf("NewAlias() = %q: number out of 1000..9999", a)
		}
		low, high = min(low, n), max(high, n)
		seen[a] = true
	}
	// 40*40*9000 possible aliases: collisions among 20000 draws are rare.
	if len(seen) < draws-200 {
		t.Errorf("only %d distinct aliases in %d draws", len(seen), draws)
	}
	if low > 1100 || high < 9900 {
		t.Errorf("numbers span only %d..%d over %d draws, want close to 1000..9999", low, high, draws)
	}
}

func TestAliasWordLists(t *testing.T) {
	for _, list := range [][]string{aliasAdjectives, aliasNouns} {
		seen := map[string]bool{}
		for _, w := range list {
			if !regexp.MustCompile(`^[a-z]+$`).MatchString(w) {
				t.Errorf("alias word %q is not lowercase letters only", w)
			}
			if seen[w] {
				t.Errorf("alias word %q is listed twice", w)
			}
			seen[w] = true
		}
	}
	// The longest possible alias must still fit the 63-character rule.
	longest := func(list []string) int {
		n := 0
		for _, w := range list {
			n = max(n, len(w))
		}
		return n
	}
	if n := longest(aliasAdjectives) + longest(aliasNouns) + len("--9999"); n > 63 {
		t.Errorf("longest alias is %d characters", n)
	}
}

// TestNewAliasNumberRange draws enough aliases to see both ends of
// 1000..9999: the chance of missing either in 200000 draws is about 2e-10.
func TestNewAliasNumberRange(t *testing.T) {
	if testing.Short() {
		t.Skip("draws 200000 aliases")
	}
	seen1000, seen9999 := false, false
	for i := 0; i < 200000 && !(seen1000 && seen9999); i++ {
		a := NewAlias()
		switch a[len(a)-4:] {
		case "1000":
			seen1000 = true
		case "9999":
			seen9999 = true
		}
	}
	if !seen1000 || !seen9999 {
		t.Errorf("over 200000 aliases saw 1000: %v, 9999: %v", seen1000, seen9999)
	}
}

// TestDecodeMetadataHeaderRequiresUTF8: PROTOCOL §3 says the header is base64
// of a UTF-8 JSON object, and JSON text is UTF-8 (RFC 8259 §8.1).
func TestDecodeMetadataHeaderRequiresUTF8(t *testing.T) {
	header := base64.StdEncoding.EncodeToString([]byte("{\"a\":\"\xff\xfe\"}"))
	if got, ok := DecodeMetadataHeader(header, 100); ok {
		t.Errorf("DecodeMetadataHeader accepts a header whose JSON is not UTF-8 (got %q); it should refuse it as invalid_stream_metadata_header", got)
	}
	// Valid multi-byte UTF-8 stays accepted.
	header = base64.StdEncoding.EncodeToString([]byte(`{"a":"é😀中"}`))
	if got, ok := DecodeMetadataHeader(header, 100); !ok || string(got) != `{"a":"é😀中"}` {
		t.Errorf("DecodeMetadataHeader refused valid UTF-8: %q %v", got, ok)
	}
}
