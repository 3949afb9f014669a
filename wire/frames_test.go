package wire

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/quick"
	"unicode/utf8"
)

// objectKeys returns the member names of the JSON object raw, in order and
// with duplicates, failing the test if raw is not exactly one object.
func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	if !json.Valid(raw) {
		t.Fatalf("not valid JSON: %s", raw)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// assertKeys checks raw has exactly the keys want (any order, no duplicates).
func assertKeys(t *testing.T, raw []byte, want ...string) {
	t.Helper()
	got := objectKeys(t, raw)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(sorted, want) {
		t.Errorf("keys %v, want exactly %v in %s", got, want, raw)
	}
}

func decodeMap(t *testing.T, raw []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("unmarshal %s: %v", raw, err)
	}
	return m
}

func jsonString(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a JSON string: %v", raw, err)
	}
	return s
}

func TestDecodeClientFrameRefusals(t *testing.T) {
	limits := DefaultLimits
	tests := []struct {
		name string
		msg  string
		want Close
	}{
		{"empty", ``, CloseMalformedFrame},
		{"not JSON", `hello`, CloseMalformedFrame},
		{"truncated", `{"type":"ping"`, CloseMalformedFrame},
		{"trailing garbage", `{"type":"ping"} x`, CloseMalformedFrame},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, CloseMalformedFrame},
		{"array", `[{"type":"ping"}]`, CloseMalformedFrame},
		{"string", `"ping"`, CloseMalformedFrame},
		{"number", `1`, CloseMalformedFrame},
		{"null", `null`, CloseMalformedFrame},
		{"no type", `{}`, CloseMalformedFrame},
		{"no type with data", `{"data":"x"}`, CloseMalformedFrame},
		{"type number", `{"type":1}`, CloseMalformedFrame},
		{"type null", `{"type":null}`, CloseMalformedFrame},
		{"type true", `{"type":true}`, CloseMalformedFrame},
		{"type object", `{"type":{"t":"token"}}`, CloseMalformedFrame},
		{"type array", `{"type":["token"]}`, CloseMalformedFrame},
		{"nested type only", `{"x":{"type":"ping"}}`, CloseMalformedFrame},
		{"token without data", `{"type":"token"}`, CloseMalformedFrame},
		{"token data number", `{"type":"token","data":1}`, CloseMalformedFrame},
		{"token data null", `{"type":"token","data":null}`, CloseMalformedFrame},
		{"token data object", `{"type":"token","data":{"a":"b"}}`, CloseMalformedFrame},
		{"token data array", `{"type":"token","data":["a"]}`, CloseMalformedFrame},
		{"token data bool", `{"type":"token","data":false}`, CloseMalformedFrame},
		{"token data raw control char", "{\"type\":\"token\",\"data\":\"a\x01b\"}", CloseMalformedFrame},
		{"token data bad escape", `{"type":"token","data":"\x"}`, CloseMalformedFrame},
		{"unknown type", `{"type":"nope"}`, CloseUnknownFrameType},
		{"unknown type empty", `{"type":""}`, CloseUnknownFrameType},
		{"type is case sensitive", `{"type":"Token","data":"x"}`, CloseUnknownFrameType},
		{"type with space", `{"type":"ping "}`, CloseUnknownFrameType},
		{"server frame type", `{"type":"pong"}`, CloseUnknownFrameType},
		{"unknown type with bad data", `{"type":"x_thing","data":1}`, CloseUnknownFrameType},
		{"set_metadata without metadata", `{"type":"set_metadata"}`, CloseMalformedFrame},
		{"set_metadata array", `{"type":"set_metadata","metadata":[1]}`, CloseMalformedFrame},
		{"set_metadata string", `{"type":"set_metadata","metadata":"{}"}`, CloseMalformedFrame},
		{"set_metadata null", `{"type":"set_metadata","metadata":null}`, CloseMalformedFrame},
		{"set_metadata number", `{"type":"set_metadata","metadata":3}`, CloseMalformedFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, got := DecodeClientFrame([]byte(tt.msg), limits)
			if got == nil {
				t.Fatalf("accepted %q as %+v, want %+v", tt.msg, frame, tt.want)
			}
			if *got != tt.want {
				t.Fatalf("refused %q with %+v, want %+v", tt.msg, *got, tt.want)
			}
		})
	}
}

func TestDecodeClientFrameAccepts(t *testing.T) {
	tests := []struct {
		name     string
		msg      string
		typ      string
		data     string // exact raw bytes expected in Data
		metadata string // exact raw bytes expected in Metadata
	}{
		{"ping", `{"type":"ping"}`, TypePing, "", ""},
		{"ping with extra fields", `{"type":"ping","data":1,"metadata":[],"x":{}}`, TypePing, "", ""},
		{"token", `{"type":"token","data":"hello"}`, TypeToken, `"hello"`, ""},
		{"token empty", `{"type":"token","data":""}`, TypeToken, `""`, ""},
		{"token data first", `{"data":"x","type":"token"}`, TypeToken, `"x"`, ""},
		{"token whitespace", " \n\t{ \"type\" : \"token\" ,\r\n \"data\" : \"a b\" } \n", TypeToken, `"a b"`, ""},
		{"token escapes kept", `{"type":"token","data":"a\"b\\c\/d\n\t\u0000"}`, TypeToken, `"a\"b\\c\/d\n\t\u0000"`, ""},
		{"token unicode escapes kept", `{"type":"token","data":"\u00e9\u00E9\ud83d\ude00"}`, TypeToken, `"\u00e9\u00E9\ud83d\ude00"`, ""},
		{"token lone surrogate kept", `{"type":"token","data":"\ud800x\udfff"}`, TypeToken, `"\ud800x\udfff"`, ""},
		{"token raw emoji kept", `{"type":"token","data":"é😀中\u2028"}`, TypeToken, `"é😀中\u2028"`, ""},
		{"token raw U+2028 kept", "{\"type\":\"token\",\"data\":\"a\u2028b\"}", TypeToken, "\"a\u2028b\"", ""},
		{"token with ignored metadata", `{"type":"token","metadata":5,"data":"x"}`, TypeToken, `"x"`, ""},
		{"token escaped key", `{"type":"token","d\u0061ta":"esc"}`, TypeToken, `"esc"`, ""},
		{"set_metadata", `{"type":"set_metadata","metadata":{}}`, TypeSetMetadata, "", `{}`},
		{
			"set_metadata exact bytes",
			`{"type":"set_metadata","metadata": { "k" : [1, 2.50, "\u00e9", null] , "e":"😀\"" } }`,
			TypeSetMetadata, "", `{ "k" : [1, 2.50, "\u00e9", null] , "e":"😀\"" }`,
		},
		{"set_metadata with ignored data", `{"data":7,"metadata":{"a":1},"type":"set_metadata"}`, TypeSetMetadata, "", `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, refusal := DecodeClientFrame([]byte(tt.msg), DefaultLimits)
			if refusal != nil {
				t.Fatalf("refused %q with %+v", tt.msg, *refusal)
			}
			if frame.Type != tt.typ {
				t.Errorf("Type = %q, want %q", frame.Type, tt.typ)
			}
			if string(frame.Data) != tt.data {
				t.Errorf("Data = %q, want %q", frame.Data, tt.data)
			}
			if string(frame.Metadata) != tt.metadata {
				t.Errorf("Metadata = %q, want %q", frame.Metadata, tt.metadata)
			}
		})
	}
}

func TestDecodeClientFrameTokenLimit(t *testing.T) {
	small := DefaultLimits
	small.TokenBytes = 8
	tests := []struct {
		name   string
		limits Limits
		data   string // JSON string literal body, without quotes
		ok     bool
	}{
		{"exactly the limit", small, "12345678", true},
		{"one over", small, "123456789", false},
		{"multibyte at the limit", small, "éééé", true},
		{"multibyte one over", small, "éééé1", false},
		{"emoji at the limit", small, "😀😀", true},
		{"escapes: raw over, decoded at the limit", small, `\n\n\n\n\n\n\n\n`, true},
		{"escapes: raw over, decoded one over", small, `\n\n\n\n\n\n\n\n\n`, false},
		{"unicode escapes decoded at the limit", small, `\u00e9\u00e9\u00e9\u00e9`, true},
		{"unicode escapes decoded one over", small, `\u00e9\u00e9\u00e9\u00e9\u0041`, false},
		{"surrogate pairs decoded at the limit", small, `\ud83d\ude00\ud83d\ude00`, true},
		{"default limit exactly", DefaultLimits, strings.Repeat("a", 65536), true},
		{"default limit one over", DefaultLimits, strings.Repeat("a", 65537), false},
		{"default limit escaped", DefaultLimits, strings.Repeat(`\"`, 65536), true},
		{"default limit escaped one over", DefaultLimits, strings.Repeat(`\"`, 65537), false},
		{"default limit \\u escaped", DefaultLimits, strings.Repeat(`\u0041`, 65536), true},
		{"default limit mixed", DefaultLimits, strings.Repeat("é", 32767) + `\u00e9`, true},
		{"default limit mixed one over", DefaultLimits, strings.Repeat("é", 32767) + `\u00e9x`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := `{"type":"token","data":"` + tt.data + `"}`
			frame, refusal := DecodeClientFrame([]byte(msg), tt.limits)
			if tt.ok {
				if refusal != nil {
					t.Fatalf("refused with %+v, want accepted", *refusal)
				}
				if string(frame.Data) != `"`+tt.data+`"` {
					t.Fatalf("Data is not the raw literal")
				}
				return
			}
			if refusal == nil || *refusal != CloseTokenTooLarge {
				t.Fatalf("got %v, want token_too_large", refusal)
			}
		})
	}
}

func TestDecodeClientFrameMetadataLimit(t *testing.T) {
	limits := DefaultLimits
	limits.MetadataBytes = 10
	at := `{"a":"12"}` // 10 bytes
	over := `{"a":"123"}`
	if _, refusal := DecodeClientFrame([]byte(`{"type":"set_metadata","metadata":`+at+`}`), limits); refusal != nil {
		t.Errorf("metadata at the limit refused with %+v", *refusal)
	}
	_, refusal := DecodeClientFrame([]byte(`{"type":"set_metadata","metadata":`+over+`}`), limits)
	if refusal == nil || *refusal != CloseMetadataTooLarge {
		t.Errorf("metadata over the limit: got %v, want metadata_too_large", refusal)
	}
}

// TestDecodeClientFrameDataIsSubslice checks Data and Metadata are the bytes
// of the message itself, found at the place the client put them.
func TestDecodeClientFrameDataIsSubslice(t *testing.T) {
	msg := []byte(`{"type":"token",  "data":"x\u0041y"}`)
	frame, refusal := DecodeClientFrame(msg, DefaultLimits)
	if refusal != nil {
		t.Fatal(*refusal)
	}
	i := bytes.Index(msg, []byte(`"x\u0041y"`))
	if string(msg[i:i+len(frame.Data)]) != string(frame.Data) {
		t.Fatalf("Data %q is not the message's literal", frame.Data)
	}
}

func streamFixture() StreamInfo {
	return StreamInfo{ID: "str_0123456789abcdef0123456789", Name: "agent-a", Owner: "acc_01HZY0000000000000000000BB", Metadata: json.RawMessage(`{"role":"planner"}`)}
}

var streamKeys = []string{"stream_id", "stream_name", "owner_account_id", "metadata"}

func assertStream(t *testing.T, raw json.RawMessage, want StreamInfo) {
	t.Helper()
	assertKeys(t, raw, streamKeys...)
	m := decodeMap(t, raw)
	if got := jsonString(t, m["stream_id"]); got != want.ID {
		t.Errorf("stream_id %q, want %q", got, want.ID)
	}
	if got := jsonString(t, m["stream_name"]); got != want.Name {
		t.Errorf("stream_name %q, want %q", got, want.Name)
	}
	if got := jsonString(t, m["owner_account_id"]); got != want.Owner {
		t.Errorf("owner_account_id %q, want %q", got, want.Owner)
	}
	wantMeta := want.Metadata
	if len(wantMeta) == 0 {
		wantMeta = EmptyObject
	}
	if string(m["metadata"]) != string(wantMeta) {
		t.Errorf("metadata %s, want %s", m["metadata"], wantMeta)
	}
}

func TestJoinedEncode(t *testing.T) {
	self := streamFixture()
	peer1 := StreamInfo{ID: "str_1", Name: "b", Owner: "acc_2", Metadata: json.RawMessage(`{"x":[1,2]}`)}
	peer2 := StreamInfo{ID: "str_2", Name: "c", Owner: "acc_3"} // no metadata: {}
	yes, no := true, false
	base := []string{"type", "conversation_id", "stream_id", "stream_name", "metadata", "self_subscribe", "peers", "seq"}
	with := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
	tests := []struct {
		name   string
		joined Joined
		keys   []string
	}{
		{
			"no peers",
			Joined{ConversationID: "conv_1", Stream: self},
			base,
		},
		{
			"peers and self subscribe",
			Joined{ConversationID: "conv_1", Stream: self, SelfSubscribe: true, Peers: []StreamInfo{peer1, peer2}, Seq: 12},
			base,
		},
		{
			"resumed",
			Joined{ConversationID: "conv_1", Stream: self, Peers: []StreamInfo{peer1}, Resumed: true, Seq: 3},
			with("resumed"),
		},
		{
			"recovered true",
			Joined{ConversationID: "conv_1", Stream: self, Seq: 99, Recovered: &yes},
			with("recovered"),
		},
		{
			"recovered false",
			Joined{ConversationID: "conv_1", Stream: self, Seq: 99, Recovered: &no},
			with("recovered"),
		},
		{
			"subscribed streams",
			Joined{ConversationID: "conv_1", Stream: self, SubscribedStreams: []string{"a", "b.c"}},
			with("subscribed_streams"),
		},
		{
			"empty subscription is still echoed",
			Joined{ConversationID: "conv_1", Stream: self, SubscribedStreams: []string{}},
			with("subscribed_streams"),
		},
		{
			"everything",
			Joined{ConversationID: "conv_1", Stream: self, Peers: []StreamInfo{peer2}, Resumed: true, Seq: 1 << 40, Recovered: &no, SubscribedStreams: []string{"c"}},
			with("resumed", "recovered", "subscribed_streams"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.joined.Encode()
			assertKeys(t, out, tt.keys...)
			m := decodeMap(t, out)
			if got := jsonString(t, m["type"]); got != "joined" {
				t.Errorf("type %q", got)
			}
			if got := jsonString(t, m["conversation_id"]); got != tt.joined.ConversationID {
				t.Errorf("conversation_id %q", got)
			}
			if got := jsonString(t, m["stream_id"]); got != self.ID {
				t.Errorf("stream_id %q", got)
			}
			if got := jsonString(t, m["stream_name"]); got != self.Name {
				t.Errorf("stream_name %q", got)
			}
			if string(m["metadata"]) != string(self.Metadata) {
				t.Errorf("metadata %s", m["metadata"])
			}
			if got := string(m["self_subscribe"]); got != strconv.FormatBool(tt.joined.SelfSubscribe) {
				t.Errorf("self_subscribe %s", got)
			}
			if tt.joined.Resumed && string(m["resumed"]) != "true" {
				t.Errorf("resumed %s, want true", m["resumed"])
			}
			if got := string(m["seq"]); got != strconv.FormatInt(tt.joined.Seq, 10) {
				t.Errorf("seq %s, want %d", got, tt.joined.Seq)
			}
			if tt.joined.Recovered != nil && string(m["recovered"]) != strconv.FormatBool(*tt.joined.Recovered) {
				t.Errorf("recovered %s, want %v", m["recovered"], *tt.joined.Recovered)
			}
			if tt.joined.SubscribedStreams != nil {
				var names []string
				if err := json.Unmarshal(m["subscribed_streams"], &names); err != nil || names == nil || !slices.Equal(names, tt.joined.SubscribedStreams) {
					t.Errorf("subscribed_streams %s, want %q", m["subscribed_streams"], tt.joined.SubscribedStreams)
				}
			}
			var peers []json.RawMessage
			if err := json.Unmarshal(m["peers"], &peers); err != nil || peers == nil {
				t.Fatalf("peers %s is not an array", m["peers"])
			}
			if len(peers) != len(tt.joined.Peers) {
				t.Fatalf("%d peers, want %d", len(peers), len(tt.joined.Peers))
			}
			for i, p := range peers {
				assertStream(t, p, tt.joined.Peers[i])
			}
		})
	}
}

func TestEncodeReceipt(t *testing.T) {
	for _, seq := range []int64{0, 1, 42, 1<<53 + 1} {
		out := EncodeReceipt(seq)
		if want := `{"type":"x_receipt","seq":` + strconv.FormatInt(seq, 10) + `}`; string(out) != want {
			t.Errorf("EncodeReceipt(%d) = %s, want %s", seq, out, want)
		}
	}
}

func TestJoinedEncodeEmptyMetadata(t *testing.T) {
	out := Joined{ConversationID: "conv_1", Stream: StreamInfo{ID: "s", Name: "n", Owner: "o"}}.Encode()
	if m := decodeMap(t, out); string(m["metadata"]) != "{}" || string(m["peers"]) != "[]" {
		t.Errorf("empty joined %s, want metadata {} and peers []", out)
	}
}

func TestStreamFrameEncoders(t *testing.T) {
	s := streamFixture()
	const ts = "2024-01-02T03:04:05.006Z"
	tests := []struct {
		name string
		out  []byte
		typ  string
		keys []string
		seq  int64
	}{
		{"stream_joined", EncodeStreamJoined(s, 1), "stream_joined", []string{"type", "seq", "stream_id", "stream_name", "owner_account_id", "metadata"}, 1},
		{"stream_left", EncodeStreamLeft(s, 42), "stream_left", []string{"type", "seq", "stream_id", "stream_name", "owner_account_id"}, 42},
		{"token", EncodeToken(s, 9007199254740993, ts, []byte(`"hi"`)), "token", []string{"type", "seq", "stream_id", "stream_name", "owner_account_id", "ts", "data"}, 9007199254740993},
		{"stream_metadata", EncodeStreamMetadata(s, 7, ts), "stream_metadata", []string{"type", "seq", "stream_id", "stream_name", "owner_account_id", "metadata", "ts"}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertKeys(t, tt.out, tt.keys...)
			// seq comes right after type, so a reader can route without a full parse.
			if keys := objectKeys(t, tt.out); len(keys) < 2 || keys[0] != "type" || keys[1] != "seq" {
				t.Errorf("keys %v, want type then seq first", keys)
			}
			m := decodeMap(t, tt.out)
			if got := jsonString(t, m["type"]); got != tt.typ {
				t.Errorf("type %q, want %q", got, tt.typ)
			}
			if got := string(m["seq"]); got != strconv.FormatInt(tt.seq, 10) {
				t.Errorf("seq %s, want the integer %d", got, tt.seq)
			}
			if got := jsonString(t, m["stream_id"]); got != s.ID {
				t.Errorf("stream_id %q", got)
			}
			if got := jsonString(t, m["stream_name"]); got != s.Name {
				t.Errorf("stream_name %q", got)
			}
			if got := jsonString(t, m["owner_account_id"]); got != s.Owner {
				t.Errorf("owner_account_id %q", got)
			}
			if raw, ok := m["metadata"]; ok && string(raw) != string(s.Metadata) {
				t.Errorf("metadata %s, want %s", raw, s.Metadata)
			}
			if raw, ok := m["ts"]; ok && jsonString(t, raw) != ts {
				t.Errorf("ts %s, want %s", raw, ts)
			}
			if raw, ok := m["data"]; ok && jsonString(t, raw) != "hi" {
				t.Errorf("data %s", raw)
			}
		})
	}
}

func TestEncodersEscapeStreamFields(t *testing.T) {
	// Stream fields are validated upstream, but the encoder must never emit
	// invalid JSON whatever they hold.
	s := StreamInfo{ID: `i"d`, Name: "n\\a\nme\x00", Owner: "ö\xff", Metadata: json.RawMessage(`{}`)}
	for _, out := range [][]byte{
		EncodeStreamJoined(s, 1), EncodeStreamLeft(s, 2), EncodeToken(s, 3, "t", []byte(`""`)),
		EncodeStreamMetadata(s, 4, "t"), Joined{ConversationID: `c"`, Stream: s, Peers: []StreamInfo{s}}.Encode(),
	} {
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %q", out)
		}
		m := decodeMap(t, out)
		if got := jsonString(t, m["stream_id"]); got != s.ID {
			t.Errorf("stream_id %q, want %q", got, s.ID)
		}
		if got := jsonString(t, m["stream_name"]); got != s.Name {
			t.Errorf("stream_name %q, want %q", got, s.Name)
		}
	}
}

// TestTokenDataRoundTrip sends data the way a client would, through
// DecodeClientFrame and EncodeToken, and checks a receiver decodes the same
// string the client meant.
func TestTokenDataRoundTrip(t *testing.T) {
	literals := []string{
		`""`,
		`"plain ascii"`,
		`"quote \" backslash \\ slash \/"`,
		`"control \u0000 \u0001 \u001f \b \f \n \r \t"`,
		`"unicode é 中文 \u00e9 \u4e2d"`,
		`"emoji 😀 \ud83d\ude00 👩‍👩‍👧"`,
		`"lone surrogates \ud800 \udfff \udc00\ud800"`,
		`"line sep \u2028 \u2029 ` + "\u2028\u2029" + `"`,
		`"html <script>&amp;</script>"`,
		`"json inside {\"type\":\"token\",\"data\":\"x\"}"`,
		`"  leading and trailing spaces  "`,
		`"` + "\x7f" + `"`,
	}
	for _, s := range []string{"", "abc", "\x00\x01\x1f", "\"\\", "é😀", "\u2028", "<&>", "a\xffb", strings.Repeat("z", 1000)} {
		b, _ := json.Marshal(s)
		literals = append(literals, string(b))
	}
	for _, lit := range literals {
		msg := `{"type":"token","data":` + lit + `}`
		frame, refusal := DecodeClientFrame([]byte(msg), DefaultLimits)
		if refusal != nil {
			t.Errorf("%s refused: %+v", lit, *refusal)
			continue
		}
		if string(frame.Data) != lit {
			t.Errorf("Data %q, want %q", frame.Data, lit)
		}
		out := EncodeToken(streamFixture(), 1, "2024-01-02T03:04:05.006Z", frame.Data)
		if !bytes.Contains(out, []byte(`"data":`+lit)) {
			t.Errorf("token frame %q does not carry the literal %q unchanged", out, lit)
		}
		var got struct {
			Data *string `json:"data"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.Data == nil {
			t.Fatalf("token frame %q does not decode: %v", out, err)
		}
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatal(err)
		}
		if *got.Data != want {
			t.Errorf("receiver decodes %q, client sent %q", *got.Data, want)
		}
	}
}

func TestAppendJSONStringCases(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\b\f", `"\u0008\u000c"`},
		{"\x7f", "\"\x7f\""},
		{"é😀", `"é😀"`},
		{"\xff", `"\ufffd"`},
		{"a\xc3", `"a\ufffd"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // an encoded surrogate is three invalid bytes
		{"\ufffd", "\"\ufffd\""},
	}
	for _, tt := range tests {
		if got := string(AppendJSONString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if got := string(AppendJSONString([]byte("prefix:"), "x")); got != `prefix:"x"` {
		t.Errorf("AppendJSONString does not append: %s", got)
	}
}

// checkAppendJSONString checks that encoding/json decodes the output back to
// s, with each invalid byte of s replaced by U+FFFD.
func checkAppendJSONString(s string) bool {
	out := AppendJSONString(nil, s)
	if !json.Valid(out) || !utf8.Valid(out) {
		return false
	}
	var back string
	if err := json.Unmarshal(out, &back); err != nil {
		return false
	}
	return back == string([]rune(s))
}

func TestAppendJSONStringQuick(t *testing.T) {
	if err := quick.Check(checkAppendJSONString, &quick.Config{MaxCount: 5000}); err != nil {
		t.Error(err)
	}
}

func TestAppendJSONStringGenerated(t *testing.T) {
	pieces := []string{
		"a", "Z", " ", "\"", "\\", "/", "\n", "\r", "\t", "\x00", "\x1f", "\x7f",
		"é", "中", "😀", "\u2028", "\u2029", "\ufeff", "\ufffd", "<", ">", "&",
		"\xff", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		for n := rng.IntN(40); n > 0; n-- {
			if rng.IntN(4) == 0 {
				b.WriteRune(rune(rng.IntN(0x110000)))
			} else {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
		}
		s := b.String()
		if !checkAppendJSONString(s) {
			t.Fatalf("AppendJSONString(%q) = %q does not decode back", s, AppendJSONString(nil, s))
		}
		if utf8.ValidString(s) {
			// For valid input the decoded string is exactly the input.
			var back string
			_ = json.Unmarshal(AppendJSONString(nil, s), &back)
			if back != s {
				t.Fatalf("valid %q decodes to %q", s, back)
			}
		}
	}
}

func TestPingPongFrames(t *testing.T) {
	frame, refusal := DecodeClientFrame([]byte(PingFrame), DefaultLimits)
	if refusal != nil || frame.Type != TypePing {
		t.Errorf("PingFrame decodes to %+v, %v", frame, refusal)
	}
	assertKeys(t, []byte(PongFrame), "type")
	if m := decodeMap(t, []byte(PongFrame)); jsonString(t, m["type"]) != "pong" {
		t.Errorf("PongFrame = %s", PongFrame)
	}
}

func TestFrameTypeNames(t *testing.T) {
	got := []string{TypeToken, TypeSetMetadata, TypePing, TypePong, TypeJoined, TypeStreamJoined, TypeStreamMetadata, TypeStreamLeft, TypeReceipt}
	want := []string{"token", "set_metadata", "ping", "pong", "joined", "stream_joined", "stream_metadata", "stream_left", "x_receipt"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("type names %v, want %v", got, want)
	}
}

// TestDecodeClientFrameRepeatedKeys: a repeated member counts once, the last
// occurrence winning, as JSON.parse does in every JavaScript client and in
// the hosted reference.
func TestDecodeClientFrameRepeatedKeys(t *testing.T) {
	big := `"` + strings.Repeat("x", DefaultLimits.TokenBytes+1) + `"`
	tests := []struct {
		name     string
		msg      string
		typ      string
		data     string
		metadata string
		refusal  *Close
	}{
		{"type: last wins (token)", `{"type":"ping","type":"token","data":"x"}`, TypeToken, `"x"`, "", nil},
		{"type: last wins (ping)", `{"type":"token","type":"ping","data":"x"}`, TypePing, "", "", nil},
		{"type: invalid then valid", `{"type":1,"type":"ping"}`, TypePing, "", "", nil},
		{"type: valid then invalid", `{"type":"ping","type":1}`, "", "", "", &CloseMalformedFrame},
		{"type: valid then unknown", `{"type":"ping","type":"shout"}`, "", "", "", &CloseUnknownFrameType},
		{"type: escaped key repeats it", `{"type":"ping","t\u0079pe":"token","data":"x"}`, TypeToken, `"x"`, "", nil},
		{"data: last wins", `{"type":"token","data":"a","data":"b"}`, TypeToken, `"b"`, "", nil},
		{"data: invalid then valid", `{"type":"token","data":1,"data":"ok"}`, TypeToken, `"ok"`, "", nil},
		{"data: valid then invalid", `{"type":"token","data":"ok","data":null}`, "", "", "", &CloseMalformedFrame},
		{"data: too large then small", `{"type":"token","data":` + big + `,"data":"s"}`, TypeToken, `"s"`, "", nil},
		{"data: small then too large", `{"type":"token","data":"s","data":` + big + `}`, "", "", "", &CloseTokenTooLarge},
		{"metadata: last wins", `{"type":"set_metadata","metadata":{"a":1},"metadata":{"b":2}}`, TypeSetMetadata, "", `{"b":2}`, nil},
		{"metadata: object then null", `{"type":"set_metadata","metadata":{"a":1},"metadata":null}`, "", "", "", &CloseMalformedFrame},
		{"metadata: array then object", `{"type":"set_metadata","metadata":[],"metadata":{}}`, TypeSetMetadata, "", `{}`, nil},
		{"nested members do not count", `{"type":"token","data":"x","o":{"type":"ping","data":"y"}}`, TypeToken, `"x"`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, refusal := DecodeClientFrame([]byte(tt.msg), DefaultLimits)
			if tt.refusal != nil {
				if refusal == nil || *refusal != *tt.refusal {
					t.Fatalf("got %+v, %v; want refusal %+v", frame, refusal, *tt.refusal)
				}
				return
			}
			if refusal != nil {
				t.Fatalf("refused with %+v", *refusal)
			}
			if frame.Type != tt.typ || string(frame.Data) != tt.data || string(frame.Metadata) != tt.metadata {
				t.Errorf("got {%q %q %q}, want {%q %q %q}", frame.Type, frame.Data, frame.Metadata, tt.typ, tt.data, tt.metadata)
			}
		})
	}
}

// TestDecodeClientFrameRepeatedDataIsLastSlice: with two equal literals, Data
// is the bytes of the last one.
func TestDecodeClientFrameRepeatedDataIsLastSlice(t *testing.T) {
	msg := []byte(`{"type":"token","data":"same","data":"same"}`)
	frame, refusal := DecodeClientFrame(msg, DefaultLimits)
	if refusal != nil {
		t.Fatal(*refusal)
	}
	last := bytes.LastIndex(msg, []byte(`"same"`))
	if len(frame.Data) == 0 || &frame.Data[0] != &msg[last] {
		t.Errorf("Data is not the last literal of the message")
	}
}
