package durable

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ams-dev/ams/wire"
)

func attachmentFixture(metadata string) Attachment {
	return Attachment{
		ConnID:   "01HZY00000000000000000CONN",
		StreamID: "str_0123456789abcdef0123456789",
		Name:     "agent-a",
		Owner:    "acc_01HZY0000000000000000000BB",
		Self:     true,
		Metadata: json.RawMessage(metadata),
	}
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestAttachmentEncodeInline(t *testing.T) {
	tests := []string{
		`{}`,
		`{"role":"planner","n":[1,2,3]}`,
		`{"html":"<b>&</b>","emoji":"😀","esc":"\u00e9\n"}`,
		` { "spaced" : true } `,
	}
	for _, md := range tests {
		a := attachmentFixture(md)
		encoded, overflow := a.Encode()
		if overflow != nil {
			t.Errorf("metadata %s overflowed", md)
		}
		if len(encoded) > AttachmentBudget {
			t.Errorf("encoded attachment is %d bytes", len(encoded))
		}
		back, err := DecodeAttachment(encoded)
		if err != nil {
			t.Fatalf("DecodeAttachment(%s): %v", encoded, err)
		}
		if back.MetadataStored {
			t.Errorf("inline metadata marked stored")
		}
		if !jsonEqual(t, back.Metadata, []byte(md)) {
			t.Errorf("metadata %s came back as %s", md, back.Metadata)
		}
		back.Metadata, a.Metadata = nil, nil
		if !reflect.DeepEqual(back, a) {
			t.Errorf("round trip %+v, want %+v", back, a)
		}
	}
}

func TestAttachmentEncodeOverflow(t *testing.T) {
	md := `{"blob":"` + strings.Repeat("x", 3000) + `", "kept":  "exactly"}`
	a := attachmentFixture(md)
	encoded, overflow := a.Encode()
	if string(overflow) != md {
		t.Fatalf("overflow %q, want the metadata byte for byte", overflow)
	}
	if len(encoded) > AttachmentBudget {
		t.Fatalf("encoded attachment is %d bytes, budget %d", len(encoded), AttachmentBudget)
	}
	back, err := DecodeAttachment(encoded)
	if err != nil {
		t.Fatal(err)
	}
	if !back.MetadataStored {
		t.Error("MetadataStored not set on overflow")
	}
	if back.Metadata != nil {
		t.Errorf("overflowed attachment still carries metadata %s", back.Metadata)
	}
	want := a
	want.Metadata, want.MetadataStored = nil, true
	if !reflect.DeepEqual(back, want) {
		t.Errorf("round trip %+v, want %+v", back, want)
	}
	if string(a.Metadata) != md {
		t.Error("Encode modified the caller's attachment")
	}
}

// TestAttachmentEncodeBudgetBoundary finds the metadata size that makes the
// attachment exactly AttachmentBudget bytes: that stays inline, one more
// byte overflows.
func TestAttachmentEncodeBudgetBoundary(t *testing.T) {
	base, _ := attachmentFixture(`{"p":""}`).Encode()
	pad := AttachmentBudget - len(base)
	if pad <= 0 {
		t.Fatalf("fixture already %d bytes", len(base))
	}
	at := `{"p":"` + strings.Repeat("y", pad) + `"}`
	encoded, overflow := attachmentFixture(at).Encode()
	if overflow != nil || len(encoded) != AttachmentBudget {
		t.Errorf("at the budget: %d bytes, overflow %v; want %d inline", len(encoded), overflow != nil, AttachmentBudget)
	}
	over := `{"p":"` + strings.Repeat("y", pad+1) + `"}`
	encoded, overflow = attachmentFixture(over).Encode()
	if string(overflow) != over || len(encoded) > AttachmentBudget {
		t.Errorf("one over the budget: %d bytes, overflow %d bytes; want overflow", len(encoded), len(overflow))
	}
	// HTML characters are kept as sent (encoding/json would escape each
	// six-fold): the attachment holds the metadata's own bytes, within budget.
	html := `{"p":"` + strings.Repeat("<", pad) + `"}`
	encoded, overflow = attachmentFixture(html).Encode()
	if overflow != nil || len(encoded) != AttachmentBudget || !strings.Contains(string(encoded), html) {
		t.Errorf("HTML metadata: %d bytes, overflow %v; want %d inline, verbatim", len(encoded), overflow != nil, AttachmentBudget)
	}
	encoded, overflow = attachmentFixture(`{"p":"` + strings.Repeat("<", pad+1) + `"}`).Encode()
	if overflow == nil || len(encoded) > AttachmentBudget {
		t.Errorf("HTML metadata one over: %d bytes, overflow %v; want overflow", len(encoded), overflow != nil)
	}
}

func TestAttachmentEncodeClearsStaleStoredFlag(t *testing.T) {
	a := attachmentFixture(`{"small":true}`)
	a.MetadataStored = true
	encoded, overflow := a.Encode()
	if overflow != nil {
		t.Fatal("small metadata overflowed")
	}
	back, err := DecodeAttachment(encoded)
	if err != nil {
		t.Fatal(err)
	}
	if back.MetadataStored || !jsonEqual(t, back.Metadata, []byte(`{"small":true}`)) {
		t.Errorf("decoded %+v, want inline metadata and no stored flag", back)
	}
}

func TestAttachmentEncodeKeysAreCompact(t *testing.T) {
	a := attachmentFixture(`{}`)
	a.Self = false
	encoded, _ := a.Encode()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(encoded, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	want := map[string]bool{"c": true, "i": true, "n": true, "o": true, "m": true}
	if len(keys) != len(want) {
		t.Errorf("keys %v, want %v (s and ms omitted when false)", keys, want)
	}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("unexpected key %q in %s", k, encoded)
		}
	}
}

func TestDecodeAttachmentRejectsGarbage(t *testing.T) {
	for _, in := range []string{``, `not json`, `[]`, `{"c":1}`} {
		if _, err := DecodeAttachment([]byte(in)); err == nil {
			t.Errorf("DecodeAttachment(%q) accepted", in)
		}
	}
}

func TestAttachmentStream(t *testing.T) {
	a := attachmentFixture(`{"k":1}`)
	got := a.Stream()
	want := wire.StreamInfo{ID: a.StreamID, Name: a.Name, Owner: a.Owner, Metadata: a.Metadata}
	if got.ID != want.ID || got.Name != want.Name || got.Owner != want.Owner || !bytes.Equal(got.Metadata, want.Metadata) {
		t.Errorf("Stream() = %+v, want %+v", got, want)
	}
}

// FuzzAttachmentMarshal: Attachment.marshal writes what wire.MarshalVerbatim
// writes, byte for byte.
func FuzzAttachmentMarshal(f *testing.F) {
	f.Add("conn1", "str_x", "critic", "acc_1", true, []byte(`{"role": "critic"}`), false, "a,b", true, int64(3), true, []byte(`{"kind":"agent"}`), "")
	f.Add("c\u2028", "s\"\\\x01", "é\xff<&>", "", false, []byte(nil), true, "", false, int64(-1), false, []byte(` [1] `), "tap1")
	f.Add("c", "s", "n", "o", false, []byte(`{"a":`), false, ",", false, int64(0), false, []byte(nil), "")
	f.Fuzz(func(t *testing.T, conn, stream, name, owner string, self bool, metadata []byte, stored bool, subscribed string,
		receipts bool, generation int64, acks bool, identity []byte, tap string) {
		a := Attachment{ConnID: conn, StreamID: stream, Name: name, Owner: owner, Self: self, Metadata: metadata,
			MetadataStored: stored, Receipts: receipts, Generation: generation, Acks: acks, PeerIdentity: identity, TapOf: tap}
		if subscribed != "" {
			a.Subscribed = strings.Split(subscribed, ",")
		}
		if got, want := a.marshal(), wire.MarshalVerbatim(a); !bytes.Equal(got, want) {
			t.Fatalf("marshal(%+v)\n = %q\nMarshalVerbatim: %q", a, got, want)
		}
	})
}

// Every field of Attachment is set here and written by marshal as
// MarshalVerbatim writes it: a field added to Attachment and not to marshal
// fails this test.
func TestAttachmentMarshalEveryField(t *testing.T) {
	a := Attachment{ConnID: "c", StreamID: "s", Name: "n", Owner: "o", Self: true, Metadata: json.RawMessage(`{"a":1}`),
		MetadataStored: true, Subscribed: []string{"x"}, Receipts: true, Generation: 2, Acks: true,
		PeerIdentity: json.RawMessage(`{"kind":"agent"}`), TapOf: "t"}
	v := reflect.ValueOf(a)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Errorf("the test leaves %s zero: set it, and write it in marshal", v.Type().Field(i).Name)
		}
	}
	if got, want := a.marshal(), wire.MarshalVerbatim(a); !bytes.Equal(got, want) {
		t.Fatalf("marshal %s, MarshalVerbatim %s", got, want)
	}
}
