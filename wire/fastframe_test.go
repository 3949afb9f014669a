package wire

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"
)

// sameDecode fails t unless DecodeClientFrame (the fast pass first) and the
// full decoder give the same frame and refusal for msg; it returns whether
// the fast pass decided msg itself.
func sameDecode(t *testing.T, msg []byte, limits Limits) (sure bool) {
	t.Helper()
	full, fullRefusal := decodeClientFrameFull(msg, limits)
	fast, fastRefusal, sure := decodeTokenFast(msg, limits)
	got, gotRefusal := DecodeClientFrame(msg, limits)
	if !sure {
		fast, fastRefusal = got, gotRefusal
	}
	for _, c := range []struct {
		name    string
		frame   ClientFrame
		refusal *Close
	}{{"fast pass", fast, fastRefusal}, {"DecodeClientFrame", got, gotRefusal}} {
		if (c.refusal == nil) != (fullRefusal == nil) || c.refusal != nil && *c.refusal != *fullRefusal {
			t.Fatalf("%s of %q (limit %d): refusal %v, full decoder %v", c.name, msg, limits.TokenBytes, c.refusal, fullRefusal)
		}
		if c.frame.Type != full.Type || c.frame.Seq != full.Seq ||
			(c.frame.Data == nil) != (full.Data == nil) || !bytes.Equal(c.frame.Data, full.Data) ||
			(c.frame.Metadata == nil) != (full.Metadata == nil) || !bytes.Equal(c.frame.Metadata, full.Metadata) {
			t.Fatalf("%s of %q (limit %d): %+v, full decoder %+v", c.name, msg, limits.TokenBytes, c.frame, full)
		}
		// Data is the message's own bytes, at the same place.
		if len(full.Data) > 0 && unsafe.SliceData(c.frame.Data) != unsafe.SliceData(full.Data) {
			t.Fatalf("%s of %q: Data is not the full decoder's slice of the message", c.name, msg)
		}
	}
	return sure
}

// FuzzTokenFastEqualsFull: the one-pass token decoder and the full decoder
// agree on every message and every token limit.
func FuzzTokenFastEqualsFull(f *testing.F) {
	for _, seed := range tokenFastCases {
		f.Add([]byte(seed.msg), uint16(8))
	}
	f.Add([]byte(`{"type":"token","data":"`+strings.Repeat(`\u0041`, 20)+`"}`), uint16(30))
	f.Add([]byte(`{"type":"token","data":"`+strings.Repeat(`é`, 20)+`"}`), uint16(39))
	f.Fuzz(func(t *testing.T, msg []byte, limit uint16) {
		limits := DefaultLimits
		limits.TokenBytes = int(limit)
		limits.MetadataBytes = int(limit)
		sameDecode(t, msg, limits)
	})
}

// tokenFastCases: each message, and whether the fast pass decides it itself
// (the common token frames) or leaves it to the full decoder.
var tokenFastCases = []struct {
	msg  string
	sure bool
}{
	{`{"type":"token","data":"hello"}`, true},
	{`{"data":"hello","type":"token"}`, true},
	{" \t\r\n{ \"type\" :\t\"token\" ,\n\"data\"\r: \"hi\" } \n", true},
	{`{"type":"token","data":"x","id":"extra","":""}`, true},
	{`{"type":"token","data":""}`, true},
	{`{"type":"token","data":"\ud83d\ude00 \u0000 \" \\ \/ \b\f\n\r\t"}`, false}, // escapes over the limit
	{`{"type":"token","data":"\ud800"}`, true},
	{`{"type":"token","data":"é€😀 ` + "\x7f" + `"}`, true},
	{`{"type":"token","data":"first","data":"last"}`, true},
	{`{"type":"ping","data":"x","type":"token"}`, true},
	{`{"type":"token","data":"12345678"}`, true},
	{`{"type":"token","data":"123456789"}`, true},  // token_too_large at 8
	{`{"type":"token","data":"1234\n678"}`, false}, // 9 bytes written, 8 decoded
	{`{"type":"token","data":"\n\u00e9"}`, true},
	{`{"type":"token","data":"` + "\xef\xbf\xbd" + `"}`, true},
	// Escaped names and types are compared unescaped by the full decoder.
	{`{"typ\u0065":"token","data":"x"}`, false},
	{`{"type":"tok\u0065n","data":"x"}`, false},
	{`{"type":"token","dat\u0061":"x"}`, false},
	{`{"type":"token","data":"x","typ\u0065":"ping"}`, false},
	{`{"type":"tok\u0065n","data":"x","type":"token"}`, true},
	// Other frames and members that are not strings.
	{`{"type":"ping"}`, false},
	{`{"type":"set_metadata","metadata":{"a":1}}`, false},
	{`{"type":"x_ack","seq":3}`, false},
	{`{"type":"token","data":"x","n":1}`, false},
	{`{"type":"token","data":1}`, false},
	{`{"type":"token","data":null}`, false},
	{`{"type":"token"}`, false},
	{`{"data":"x"}`, false},
	{`{"type":"nope","data":"x"}`, false},
	{`{}`, false},
	// Refusals, all found by the full decoder.
	{``, false},
	{`[{"type":"token","data":"x"}]`, false},
	{`{"type":"token","data":"x"`, false},
	{`{"type":"token","data":"x"}}`, false},
	{`{"type":"token","data":"x"} x`, false},
	{`{"type":"token","data":"x",}`, false},
	{`{"type":"token",,"data":"x"}`, false},
	{`{"type":"token" "data":"x"}`, false},
	{`{"type":"token","data" "x"}`, false},
	{`{"type":"token","data":"x` + "\n" + `"}`, false},
	{`{"type":"token","data":"x` + "\x00" + `"}`, false},
	{`{"type":"token","data":"` + "\xff" + `"}`, false},
	{`{"type":"token","data":"` + "\xed\xa0\x80" + `"}`, false},
	{`{"type":"token","data":"` + "\xe2\x82" + `"}`, false},
	{`{"type":"token","data":"` + "\xc0\xaf" + `"}`, false},
	{`{"type":"token","data":"\x"}`, false},
	{`{"type":"token","data":"\u12g4"}`, false},
	{`{"type":"token","data":"\u12"}`, false},
	{`{"type":"token","data":"\`, false},
	{`{"type":"token","data":"x"}` + "\xff", false},
	{"\xef\xbb\xbf" + `{"type":"token","data":"x"}`, false},
	{"\v" + `{"type":"token","data":"x"}`, false},
	{`{"type":"token","data":'x'}`, false},
}

func TestTokenFastEqualsFull(t *testing.T) {
	limits := DefaultLimits
	limits.TokenBytes = 8
	for _, c := range tokenFastCases {
		if sure := sameDecode(t, []byte(c.msg), limits); sure != c.sure {
			t.Errorf("fast pass sure %v of %q, want %v", sure, c.msg, c.sure)
		}
	}
}

// The outcomes the fast pass must give (not only agree on).
func TestTokenFast(t *testing.T) {
	limits := DefaultLimits
	limits.TokenBytes = 8
	for _, c := range []struct {
		msg, data string
		refusal   *Close
	}{
		{`{"type":"token","data":"hello"}`, `"hello"`, nil},
		{`{ "data" : "a\"b" , "type" : "token" }`, `"a\"b"`, nil},
		{`{"type":"token","data":"first","data":"last"}`, `"last"`, nil},
		{`{"type":"ping","type":"token","data":"\u00e9"}`, `"\u00e9"`, nil},
		{`{"type":"token","data":"123456789"}`, ``, &CloseTokenTooLarge},
		{`{"type":"token","data":"\u0041\u0041\u0041"}`, `"\u0041\u0041\u0041"`, nil}, // 18 bytes, 3 decoded
		{`{"type":"token","data":"x` + "\x01" + `"}`, ``, &CloseMalformedFrame},
		{`{"type":"token","data":"` + "\xff" + `"}`, ``, &CloseMalformedFrame},
		{`{"type":"token","data":"x","type":"token2"}`, ``, &CloseUnknownFrameType},
		{`{"typ\u0065":"token","data":"x"}`, `"x"`, nil},
		{`{"type":"token","data":"x","typ\u0065":"ping"}`, ``, nil},
	} {
		frame, refusal := DecodeClientFrame([]byte(c.msg), limits)
		if (refusal == nil) != (c.refusal == nil) || refusal != nil && *refusal != *c.refusal {
			t.Errorf("%q: refusal %v, want %v", c.msg, refusal, c.refusal)
			continue
		}
		if string(frame.Data) != c.data {
			t.Errorf("%q: data %q, want %q", c.msg, frame.Data, c.data)
		}
	}
}

// The fast pass is one pass and allocates nothing.
func TestTokenFastAllocatesNothing(t *testing.T) {
	msg := []byte(`{"type":"token","data":"t|pub|1234|1700000000000000000"}`)
	if n := testing.AllocsPerRun(100, func() { DecodeClientFrame(msg, DefaultLimits) }); n != 0 {
		t.Fatalf("%v allocations per token frame", n)
	}
}

func BenchmarkDecodeTokenFrame(b *testing.B) {
	msg := []byte(`{"type":"token","data":"t|pub|1234|1700000000000000000"}`)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			DecodeClientFrame(msg, DefaultLimits)
		}
	})
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			decodeClientFrameFull(msg, DefaultLimits)
		}
	})
}

// A token frame is written exactly so, in one allocation.
func TestEncodeTokenBytes(t *testing.T) {
	s := StreamInfo{ID: "str_a", Name: `n"é`, Owner: "acc_b"}
	want := `{"type":"token","seq":5,"stream_id":"str_a","stream_name":"n\"é","owner_account_id":"acc_b","ts":"2024-01-02T03:04:05.006Z","data":"x\u0000"}`
	if got := EncodeToken(s, 5, "2024-01-02T03:04:05.006Z", []byte(`"x\u0000"`)); string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := EncodeToken(s, -1, "t", nil); !strings.HasSuffix(string(got), `"ts":"t","data":{}}`) {
		t.Fatalf("empty data: %s", got)
	}
	fields := TokenFields(s)
	data := []byte(`"t|pub|1234|1700000000000000000"`)
	if n := testing.AllocsPerRun(100, func() { EncodeTokenWith(fields, 123456, "2024-01-02T03:04:05.006Z", data) }); n != 1 {
		t.Fatalf("%v allocations per token frame, want 1", n)
	}
}
