package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestHeaderNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{HeaderStreamName, "X-AMS-Stream-Name"},
		{HeaderStreamMetadata, "X-AMS-Stream-Metadata"},
		{HeaderSelfSubscribe, "X-AMS-Self-Subscribe"},
		{HeaderResumeAfter, "X-AMS-Resume-After"},
		{HeaderSubscribeStreams, "X-AMS-Subscribe-Streams"},
		{HeaderReceipts, "X-AMS-Receipts"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("header %q, want %q", tt.got, tt.want)
		}
	}
}

func TestJoinJSONRoundTrip(t *testing.T) {
	join := Join{
		ConversationID: "conv_01HZY0000000000000000000AA",
		AccountID:      "acc_01HZY0000000000000000000BB",
		StreamID:       "str_0123456789abcdef0123456789",
		StreamName:     "agent-a",
		Metadata:       json.RawMessage(`{"role":"planner","emoji":"😀"}`),
		SelfSubscribe:  true,
	}
	raw, err := json.Marshal(join)
	if err != nil {
		t.Fatal(err)
	}
	keys := objectKeys(t, raw)
	want := []string{"conversation_id", "account_id", "stream_id", "stream_name", "metadata", "self_subscribe"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("Join keys %v, want %v", keys, want)
	}
	var back Join
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Metadata, join.Metadata) {
		t.Errorf("metadata %s, want %s", back.Metadata, join.Metadata)
	}
	back.Metadata, join.Metadata = nil, nil
	if !reflect.DeepEqual(back, join) {
		t.Errorf("round trip %+v, want %+v", back, join)
	}
}

// TestQueryForms pins the query parameter of each stream-plane header
// (PROTOCOL §5, browser join).
func TestQueryForms(t *testing.T) {
	want := map[string]string{
		"X-AMS-Stream-Name":       "stream_name",
		"X-AMS-Stream-Metadata":   "stream_metadata",
		"X-AMS-Self-Subscribe":    "self_subscribe",
		"X-AMS-Resume-After":      "resume_after",
		"X-AMS-Subscribe-Streams": "subscribe_streams",
		"X-AMS-Receipts":          "receipts",
		"X-AMS-Acks":              "acks",
		"X-AMS-Peer-Identity":     "peer_identity",
	}
	if !reflect.DeepEqual(QueryForms, want) {
		t.Errorf("QueryForms = %v, want %v", QueryForms, want)
	}
	for header, param := range QueryForms {
		if param == "t" {
			t.Errorf("%s shadows the magic-link token parameter", header)
		}
	}
}

func TestJoinJSONRoundTripExtensions(t *testing.T) {
	zero, seq := int64(0), int64(1234)
	tests := []struct {
		name string
		join Join
		keys []string
	}{
		{
			"resume from zero is kept",
			Join{ConversationID: "c", AccountID: "a", StreamID: "s", StreamName: "n", Metadata: json.RawMessage(`{}`), ResumeAfter: &zero},
			[]string{"conversation_id", "account_id", "stream_id", "stream_name", "metadata", "self_subscribe", "resume_after"},
		},
		{
			"every extension",
			Join{ConversationID: "c", AccountID: "a", StreamID: "s", StreamName: "n", Metadata: json.RawMessage(`{}`), ResumeAfter: &seq, SubscribeStreams: []string{"x", "y"}, Receipts: true},
			[]string{"conversation_id", "account_id", "stream_id", "stream_name", "metadata", "self_subscribe", "resume_after", "subscribe_streams", "receipts"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(tt.join)
			if err != nil {
				t.Fatal(err)
			}
			if keys := objectKeys(t, raw); !reflect.DeepEqual(keys, tt.keys) {
				t.Errorf("Join keys %v, want %v", keys, tt.keys)
			}
			var back Join
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if back.ResumeAfter == nil || *back.ResumeAfter != *tt.join.ResumeAfter {
				t.Errorf("resume_after %v, want %d", back.ResumeAfter, *tt.join.ResumeAfter)
			}
			back.Metadata, tt.join.Metadata = nil, nil
			back.ResumeAfter, tt.join.ResumeAfter = nil, nil
			if !reflect.DeepEqual(back, tt.join) {
				t.Errorf("round trip %+v, want %+v", back, tt.join)
			}
		})
	}
}

func TestParseResumeAfter(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // -1: absent (nil)
		ok   bool
	}{
		{"", -1, true},
		{"0", 0, true},
		{"1", 1, true},
		{"123456789", 123456789, true},
		{" 42 ", 42, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"9223372036854775808", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"abc", 0, false},
		{" ", 0, false},
		{"1,2", 0, false},
		{"12abc", 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseResumeAfter(tt.in)
		if ok != tt.ok {
			t.Errorf("ParseResumeAfter(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if !ok {
			if got != nil {
				t.Errorf("ParseResumeAfter(%q) refused but returned %d", tt.in, *got)
			}
			continue
		}
		switch {
		case tt.want == -1 && got != nil:
			t.Errorf("ParseResumeAfter(%q) = %d, want nil", tt.in, *got)
		case tt.want >= 0 && (got == nil || *got != tt.want):
			t.Errorf("ParseResumeAfter(%q) = %v, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParseSubscribeStreams(t *testing.T) {
	long := strings.Repeat("z", 63)
	tests := []struct {
		name string
		in   string
		max  int
		want []string // nil with ok: all streams
		ok   bool
	}{
		{"absent is all streams", "", 16, nil, true},
		{"one", "agent-a", 16, []string{"agent-a"}, true},
		{"two in order", "b,a", 16, []string{"b", "a"}, true},
		{"spaces trimmed", " a , b\t,c ", 16, []string{"a", "b", "c"}, true},
		{"duplicates once", "a,b,a,a", 16, []string{"a", "b"}, true},
		{"case matters", "a,A", 16, []string{"a", "A"}, true},
		{"every name character", "Agent_1.v2-x", 16, []string{"Agent_1.v2-x"}, true},
		{"longest name", long, 16, []string{long}, true},
		{"exactly max", "a,b,c", 3, []string{"a", "b", "c"}, true},
		{"duplicates do not count against max", "a,b,a,b,c,c", 3, []string{"a", "b", "c"}, true},
		{"one over max", "a,b,c,d", 3, nil, false},
		{"name too long", long + "z", 16, nil, false},
		{"empty element", "a,,b", 16, nil, false},
		{"trailing comma", "a,", 16, nil, false},
		{"leading comma", ",a", 16, nil, false},
		{"only spaces", "  ", 16, nil, false},
		{"only a comma", ",", 16, nil, false},
		{"invalid first character", "a,-b", 16, nil, false},
		{"slash", "a/b", 16, nil, false},
		{"inner space", "a b", 16, nil, false},
		{"non-ASCII", "agént", 16, nil, false},
		{"semicolon separator", "a;b", 16, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseSubscribeStreams(tt.in, tt.max)
			if ok != tt.ok {
				t.Fatalf("ParseSubscribeStreams(%q, %d) = %q, %v; want ok %v", tt.in, tt.max, got, ok, tt.ok)
			}
			if ok && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseSubscribeStreams(%q, %d) = %#v, want %#v", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestLinkStateAdmits(t *testing.T) {
	for _, c := range []struct {
		name       string
		link       LinkState
		token      string
		recordHash string
		recordGen  int64
		want       bool
	}{
		{"never rotated, record matches", LinkState{}, "h0", "h0", 0, true},
		{"never rotated, record differs", LinkState{}, "hx", "h0", 0, false},
		{"object issued, token is its", LinkState{Generation: 2, TokenHash: "h2"}, "h2", "h1", 1, true},
		{"object issued, token is the stale record's", LinkState{Generation: 2, TokenHash: "h2"}, "h1", "h1", 1, false},
		{"rotated before hashes, record current", LinkState{Generation: 3}, "h3", "h3", 3, true},
		{"rotated before hashes, record stale", LinkState{Generation: 3}, "h2", "h2", 2, false},
	} {
		if got := c.link.Admits(c.token, c.recordHash, c.recordGen); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
