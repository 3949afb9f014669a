package wire

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
)

func TestDefaultLimits(t *testing.T) {
	// PROTOCOL §5: 64 KiB per token, 10 streams per account, 1000
	// connections per conversation, 64 KiB control-plane body.
	if DefaultLimits.TokenBytes != 65536 {
		t.Errorf("TokenBytes = %d, want 65536", DefaultLimits.TokenBytes)
	}
	if DefaultLimits.BodyBytes != 65536 {
		t.Errorf("BodyBytes = %d, want 65536", DefaultLimits.BodyBytes)
	}
	if DefaultLimits.StreamsPerAccount != 10 {
		t.Errorf("StreamsPerAccount = %d, want 10", DefaultLimits.StreamsPerAccount)
	}
	if DefaultLimits.ConnectionsPerConversation != 1000 {
		t.Errorf("ConnectionsPerConversation = %d, want 1000", DefaultLimits.ConnectionsPerConversation)
	}
	if DefaultLimits.MetadataBytes <= 0 {
		t.Errorf("MetadataBytes = %d, want positive", DefaultLimits.MetadataBytes)
	}
	// Issue 4: the last 1000 events, bounded in bytes too.
	if DefaultLimits.ReplayEvents != 1000 {
		t.Errorf("ReplayEvents = %d, want 1000", DefaultLimits.ReplayEvents)
	}
	if DefaultLimits.ReplayBytes != 8<<20 {
		t.Errorf("ReplayBytes = %d, want 8 MiB", DefaultLimits.ReplayBytes)
	}
	if DefaultLimits.SubscribeStreams != 16 {
		t.Errorf("SubscribeStreams = %d, want 16", DefaultLimits.SubscribeStreams)
	}
	// One event of the largest token must fit the byte bound.
	if DefaultLimits.ReplayBytes < DefaultLimits.TokenBytes {
		t.Errorf("ReplayBytes %d < TokenBytes %d", DefaultLimits.ReplayBytes, DefaultLimits.TokenBytes)
	}
}

func TestLimitVarsCoverEveryField(t *testing.T) {
	fields := map[*int]string{}
	var l Limits
	for name, field := range LimitVars {
		p := field(&l)
		if other, dup := fields[p]; dup {
			t.Errorf("%s and %s override the same field", name, other)
		}
		fields[p] = name
	}
	if n := reflect.TypeOf(Limits{}).NumField(); len(fields) != n {
		t.Errorf("LimitVars overrides %d fields, Limits has %d", len(fields), n)
	}
}

func TestLimitsFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Limits
	}{
		{"no overrides", nil, DefaultLimits},
		{
			"every override",
			map[string]string{
				"AMS_LIMIT_TOKEN_BYTES":                  "100",
				"AMS_LIMIT_BODY_BYTES":                   "200",
				"AMS_LIMIT_METADATA_BYTES":               "300",
				"AMS_LIMIT_STREAMS_PER_ACCOUNT":          "4",
				"AMS_LIMIT_CONNECTIONS_PER_CONVERSATION": "5",
				"AMS_REPLAY_EVENTS":                      "6",
				"AMS_REPLAY_BYTES":                       "7",
				"AMS_LIMIT_SUBSCRIBE_STREAMS":            "8",
			},
			func() Limits {
				l := DefaultLimits
				l.TokenBytes, l.BodyBytes, l.MetadataBytes, l.StreamsPerAccount, l.ConnectionsPerConversation = 100, 200, 300, 4, 5
				l.ReplayEvents, l.ReplayBytes, l.SubscribeStreams = 6, 7, 8
				return l
			}(),
		},
		{
			"zero turns replay off",
			map[string]string{"AMS_REPLAY_EVENTS": "0"},
			func() Limits { l := DefaultLimits; l.ReplayEvents = 0; return l }(),
		},
		{
			"zero is refused for every other limit",
			map[string]string{
				"AMS_LIMIT_TOKEN_BYTES":                  "0",
				"AMS_LIMIT_BODY_BYTES":                   "0",
				"AMS_LIMIT_METADATA_BYTES":               "0",
				"AMS_LIMIT_STREAMS_PER_ACCOUNT":          "0",
				"AMS_LIMIT_CONNECTIONS_PER_CONVERSATION": "0",
				"AMS_REPLAY_BYTES":                       "0",
				"AMS_LIMIT_SUBSCRIBE_STREAMS":            "0",
			},
			DefaultLimits,
		},
		{
			"negative replay events ignored",
			map[string]string{"AMS_REPLAY_EVENTS": "-1", "AMS_REPLAY_BYTES": "-1"},
			DefaultLimits,
		},
		{
			"one override",
			map[string]string{"AMS_LIMIT_STREAMS_PER_ACCOUNT": "2"},
			func() Limits { l := DefaultLimits; l.StreamsPerAccount = 2; return l }(),
		},
		{
			"invalid values ignored",
			map[string]string{
				"AMS_LIMIT_TOKEN_BYTES":                  "abc",
				"AMS_LIMIT_BODY_BYTES":                   "0",
				"AMS_LIMIT_METADATA_BYTES":               "-5",
				"AMS_LIMIT_STREAMS_PER_ACCOUNT":          "1.5",
				"AMS_LIMIT_CONNECTIONS_PER_CONVERSATION": "",
			},
			DefaultLimits,
		},
		{
			"valid next to invalid",
			map[string]string{"AMS_LIMIT_TOKEN_BYTES": "1", "AMS_LIMIT_BODY_BYTES": "lots"},
			func() Limits { l := DefaultLimits; l.TokenBytes = 1; return l }(),
		},
		{
			"unrelated variables ignored",
			map[string]string{"AMS_LIMIT_TOKENS": "1", "TOKEN_BYTES": "1"},
			DefaultLimits,
		},
	}
	before := DefaultLimits
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LimitsFromEnv(func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("LimitsFromEnv = %+v, want %+v", got, tt.want)
			}
		})
	}
	if DefaultLimits != before {
		t.Errorf("LimitsFromEnv changed DefaultLimits to %+v", DefaultLimits)
	}
}

// TestLimitsFromEnvEveryVar overrides every variable of LimitVars at once,
// whatever fields Limits grows.
func TestLimitsFromEnvEveryVar(t *testing.T) {
	env := map[string]string{}
	want := DefaultLimits
	n := 2
	for name, field := range LimitVars {
		env[name] = strconv.Itoa(n)
		*field(&want) = n
		n++
	}
	if got := LimitsFromEnv(func(k string) string { return env[k] }); got != want {
		t.Errorf("LimitsFromEnv = %+v, want %+v", got, want)
	}
}

func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
}

func TestShallowJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want bool
	}{
		{"scalar", `1`, 0, true},
		{"empty object at depth 1", `{}`, 1, true},
		{"empty object over depth 0", `{}`, 0, false},
		{"arrays count", `[[[]]]`, 3, true},
		{"arrays over", `[[[]]]`, 2, false},
		{"siblings do not add up", `[[],[],{"a":1},[[]]]`, 3, true},
		{"brackets inside strings ignored", `{"a":"[[[[{{{{"}`, 1, true},
		{"escaped quote keeps the string open", `{"a":"\"[[[["}`, 1, true},
		{"escaped backslash closes the string", `{"a":"\\"}`, 1, true},
		{"escaped backslash then nesting counts", `["\\",[[]]]`, 2, false},
		{"MaxJSONDepth exactly", nested(MaxJSONDepth), MaxJSONDepth, true},
		{"MaxJSONDepth plus one", nested(MaxJSONDepth + 1), MaxJSONDepth, false},
		{"unbalanced deep opener", strings.Repeat("[", 1<<20), MaxJSONDepth, false},
	}
	for _, tt := range tests {
		if got := ShallowJSON([]byte(tt.in), tt.max); got != tt.want {
			t.Errorf("%s: ShallowJSON(%.40q, %d) = %v, want %v", tt.name, tt.in, tt.max, got, tt.want)
		}
	}
}

// jsonDepth measures valid JSON's nesting with encoding/json's tokenizer.
func jsonDepth(t *testing.T, raw string) int {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(raw))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return deepest
		}
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
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

func TestShallowJSONAgreesWithDecoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	strs := []string{`"a"`, `"[{"`, `"\"]"`, `"\\"`, `"\\\"{"`, `1`, `null`}
	var gen func(depth int) string
	gen = func(depth int) string {
		if depth > 8 || rng.IntN(3) == 0 {
			return strs[rng.IntN(len(strs))]
		}
		n := rng.IntN(3)
		var parts []string
		if rng.IntN(2) == 0 {
			for i := 0; i < n; i++ {
				parts = append(parts, gen(depth+1))
			}
			return "[" + strings.Join(parts, ",") + "]"
		}
		for i := 0; i < n; i++ {
			parts = append(parts, strs[rng.IntN(3)]+":"+gen(depth+1))
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	for i := 0; i < 3000; i++ {
		raw := gen(0)
		d := jsonDepth(t, raw)
		if !ShallowJSON([]byte(raw), d) {
			t.Fatalf("ShallowJSON(%q, %d) = false, depth is %d", raw, d, d)
		}
		if d > 0 && ShallowJSON([]byte(raw), d-1) {
			t.Fatalf("ShallowJSON(%q, %d) = true, depth is %d", raw, d-1, d)
		}
	}
}

func TestDeepJSONRefused(t *testing.T) {
	limits := DefaultLimits
	ok := `{"type":"set_metadata","metadata":` + nested(MaxJSONDepth-1) + `}`
	if _, refusal := DecodeClientFrame([]byte(ok), limits); refusal != nil {
		t.Errorf("metadata nested to MaxJSONDepth refused: %+v", *refusal)
	}
	deep := `{"type":"set_metadata","metadata":` + nested(MaxJSONDepth) + `}`
	if _, refusal := DecodeClientFrame([]byte(deep), limits); refusal == nil || *refusal != CloseMalformedFrame {
		t.Errorf("metadata nested past MaxJSONDepth: %v, want malformed_frame", refusal)
	}
	bomb := []byte(`{"type":"ping","x":` + strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20) + `}`)
	if _, refusal := DecodeClientFrame(bomb, limits); refusal == nil || *refusal != CloseMalformedFrame {
		t.Errorf("deeply nested frame: %v, want malformed_frame", refusal)
	}
	if IsJSONObject([]byte(nested(MaxJSONDepth + 1))) {
		t.Error("IsJSONObject accepted an object nested past MaxJSONDepth")
	}
	if !IsJSONObject([]byte(nested(MaxJSONDepth))) {
		t.Error("IsJSONObject refused an object nested exactly MaxJSONDepth")
	}
}

// TestFrameCharsAdmitsEveryFrame: the longest frames the protocol admits
// (data at the token limit with every byte escaped, metadata at its limit)
// fit FrameChars, so refusing longer frames unread refuses none of them.
func TestFrameCharsAdmitsEveryFrame(t *testing.T) {
	l := DefaultLimits
	data := strings.Repeat(`\u0001`, l.TokenBytes)
	token := `{"type":"token","data":"` + data + `"}`
	if f, refusal := DecodeClientFrame([]byte(token), l); refusal != nil || f.Type != TypeToken {
		t.Fatalf("the longest token frame is refused: %v", refusal)
	}
	metadata := `{"type":"set_metadata","metadata":{"k":"` + strings.Repeat(`\u0001`, (l.MetadataBytes-10)/6) + `"}}`
	if _, refusal := DecodeClientFrame([]byte(metadata), l); refusal != nil {
		t.Fatalf("the longest metadata frame is refused: %v", refusal)
	}
	for _, frame := range []string{token, metadata} {
		if n := len(utf16.Encode([]rune(frame))); n > l.FrameChars() {
			t.Errorf("a %d-character frame is admissible but over FrameChars %d", n, l.FrameChars())
		}
	}
	if l.FrameChars() > 2*len(token) {
		t.Errorf("FrameChars %d is far above the longest frame (%d)", l.FrameChars(), len(token))
	}
}
