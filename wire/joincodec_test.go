package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// sameJoinDecode fails t unless DecodeJoin and json.Unmarshal agree on raw.
func sameJoinDecode(t *testing.T, raw []byte) {
	t.Helper()
	got, err := DecodeJoin(raw)
	var want Join
	wantErr := json.Unmarshal(raw, &want)
	if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeJoin(%q) = %+v, %v; json.Unmarshal: %+v, %v", raw, got, err, want, wantErr)
	}
}

func fuzzJoin(conversation, account, stream, name string, metadata []byte, self bool, resume int64, resumed bool,
	subscribe string, receipts, acks bool, generation int64, subprotocol string, identity []byte, pushOnly bool) Join {
	j := Join{
		ConversationID: conversation, AccountID: account, StreamID: stream, StreamName: name,
		Metadata: metadata, SelfSubscribe: self, Receipts: receipts, Acks: acks,
		LinkGeneration: generation, Subprotocol: subprotocol, PeerIdentity: identity, PushOnly: pushOnly,
	}
	if resumed {
		j.ResumeAfter = &resume
	}
	if subscribe != "" {
		j.SubscribeStreams = strings.Split(subscribe, ",")
	}
	return j
}

// FuzzJoinCodec: EncodeJoin writes what MarshalVerbatim writes, byte for
// byte, and DecodeJoin reads it back as json.Unmarshal does.
func FuzzJoinCodec(f *testing.F) {
	f.Add("conv_01HZY0000000000000000000AA", "acc_1", "str_x", "critic", []byte(`{"role": "critic", "n":[1, 2]}`), true, int64(41), true,
		"a,b", true, true, int64(3), "ams.v1", []byte(`{"kind":"agent"}`), true)
	f.Add("c", "a\u2028\u2029", "s\"\\\b\f\n\r\t\x01", "é\xff<&>", []byte(nil), false, int64(-1), true, "", false, false, int64(0), "", []byte(nil), false)
	f.Add("c", "a", "s", "n", []byte(`{}`), false, int64(0), false, ",", false, false, int64(-9), "x", []byte(` {"kind" : "human"} `), true)
	f.Add("c", "a", "s", "n", []byte(`{"a":`), false, int64(0), false, "", false, false, int64(0), "", []byte(nil), false)
	f.Add("c", "a", "s", "n", []byte{}, false, int64(0), false, "", false, false, int64(0), "", []byte(`[1]`), false)
	f.Fuzz(func(t *testing.T, conversation, account, stream, name string, metadata []byte, self bool, resume int64, resumed bool,
		subscribe string, receipts, acks bool, generation int64, subprotocol string, identity []byte, pushOnly bool) {
		j := fuzzJoin(conversation, account, stream, name, metadata, self, resume, resumed, subscribe, receipts, acks, generation, subprotocol, identity, pushOnly)
		got, want := EncodeJoin(j), MarshalVerbatim(j)
		if !bytes.Equal(got, want) {
			t.Fatalf("EncodeJoin(%+v)\n = %q\nMarshalVerbatim: %q", j, got, want)
		}
		sameJoinDecode(t, got)
	})
}

// FuzzDecodeJoin: DecodeJoin is json.Unmarshal on any input.
func FuzzDecodeJoin(f *testing.F) {
	typical := EncodeJoin(typicalJoin())
	for _, seed := range []string{
		string(typical),
		strings.Replace(string(typical), `"critic"`, `"crit\u0069c"`, 1),
		strings.Replace(string(typical), `"resume_after":41`, `"resume_after":041`, 1),
		strings.Replace(string(typical), `"resume_after":41`, `"resume_after":99999999999999999999`, 1),
		strings.Replace(string(typical), `"resume_after":41`, `"resume_after":-0`, 1),
		strings.Replace(string(typical), `{"role":"critic"}`, `{"role":"critic"]`, 1),
		strings.Replace(string(typical), `{"role":"critic"}`, `null`, 1),
		strings.Replace(string(typical), `["a","b"]`, `[]`, 1),
		string(typical) + " ",
		`{"stream_name":"x","stream_name":"y"}`,
		`{"Stream_Name":"x"}`,
		`[]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { sameJoinDecode(t, raw) })
}

func typicalJoin() Join {
	resume := int64(41)
	return Join{
		ConversationID: "conv_01HZY0000000000000000000AA", AccountID: "acc_01HZY0000000000000000000AB",
		StreamID: "str_abcdef", StreamName: "critic", Metadata: json.RawMessage(`{"role":"critic"}`),
		SelfSubscribe: true, ResumeAfter: &resume, SubscribeStreams: []string{"a", "b"},
		Receipts: true, Acks: true, LinkGeneration: 2, Subprotocol: "ams.v1", PeerIdentity: json.RawMessage(`{"kind":"agent"}`),
		PushOnly: true,
	}
}

// Every field of Join is in typicalJoin, so a field added to Join and not
// to EncodeJoin/DecodeJoin fails TestJoinCodecCanonical.
func TestTypicalJoinSetsEveryField(t *testing.T) {
	v := reflect.ValueOf(typicalJoin())
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("typicalJoin leaves %s zero: set it, and encode it in EncodeJoin", v.Type().Field(i).Name)
		}
	}
}

// A join as the Worker sends it is read without encoding/json.
func TestJoinCodecCanonical(t *testing.T) {
	for _, j := range []Join{typicalJoin(), {ConversationID: "c", AccountID: "a", StreamID: "s", StreamName: "n", Metadata: EmptyObject}} {
		raw := EncodeJoin(j)
		if !bytes.Equal(raw, MarshalVerbatim(j)) {
			t.Fatalf("EncodeJoin %s, MarshalVerbatim %s", raw, MarshalVerbatim(j))
		}
		got, ok := decodeCanonicalJoin(raw)
		if !ok || !reflect.DeepEqual(got, j) {
			t.Fatalf("decodeCanonicalJoin(%s) = %+v, %v", raw, got, ok)
		}
		sameJoinDecode(t, raw)
	}
}

// FuzzDecodeStringPairs: DecodeStringPairs is json.Unmarshal into [][2]string.
func FuzzDecodeStringPairs(f *testing.F) {
	for _, seed := range []string{
		`[["upgrade","websocket"],["x-ams-stream-name","critic"],["sec-websocket-key","dGhlIHNhbXBsZQ=="]]`,
		`[]`, `[["a"]]`, `[["a","b","c"]]`, `[["a","\u00e9"]]`, `[["a","é"]]`, `[["a",1]]`, `[["a","b"],]`, ` []`, `null`, ``,
		`[["a","b"]`, `[[],["a","b"]]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := DecodeStringPairs(raw)
		var want [][2]string
		wantErr := json.Unmarshal(raw, &want)
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeStringPairs(%q) = %q, %v; json.Unmarshal: %q, %v", raw, got, err, want, wantErr)
		}
	})
}
