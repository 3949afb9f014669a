package wire

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeClientFrame checks that no message panics the decoder, and that
// an accepted token's Data is a JSON string literal that EncodeToken relays
// inside valid JSON.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"ping"}`,
		`{"type":"token","data":"hello"}`,
		`{"type":"token","data":"\ud83d\ude00 \u0000 \" \\"}`,
		`{"type":"token","data":"\ud800"}`,
		` { "data" : "x" , "type" : "token" } `,
		`{"type":"set_metadata","metadata":{"a":[1,{"b":null}]}}`,
		`{"type":"token","data":1}`,
		`{"type":"nope"}`,
		`[{"type":"ping"}]`,
		`{"type":"token","data":"` + "\xff" + `"}`,
		`{"type":"token","type":"ping","data":"x"}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	limits := DefaultLimits
	limits.TokenBytes = 64
	limits.MetadataBytes = 64
	f.Fuzz(func(t *testing.T, msg []byte) {
		frame, refusal := DecodeClientFrame(msg, limits)
		if refusal != nil {
			if frame.Type != "" || frame.Data != nil || frame.Metadata != nil {
				t.Fatalf("refusal %+v returned a frame %+v", *refusal, frame)
			}
			return
		}
		if !json.Valid(msg) {
			t.Fatalf("accepted a message encoding/json rejects: %q", msg)
		}
		switch frame.Type {
		case TypeToken:
			var s string
			if !json.Valid(frame.Data) || json.Unmarshal(frame.Data, &s) != nil {
				t.Fatalf("token Data %q is not a JSON string literal", frame.Data)
			}
			if !bytes.Contains(msg, frame.Data) {
				t.Fatalf("token Data %q is not part of the message %q", frame.Data, msg)
			}
			// Invalid UTF-8 decodes to U+FFFD and so may grow; it cannot reach
			// the broker, whose text messages arrive as JavaScript strings.
			if utf8.Valid(msg) && len(s) > limits.TokenBytes {
				t.Fatalf("accepted %d bytes of data over a limit of %d", len(s), limits.TokenBytes)
			}
			out := EncodeToken(StreamInfo{ID: "str_x", Name: "n", Owner: "acc_x"}, 1, "2024-01-02T03:04:05.006Z", frame.Data)
			var decoded struct {
				Data *string `json:"data"`
			}
			if !json.Valid(out) || json.Unmarshal(out, &decoded) != nil || decoded.Data == nil {
				t.Fatalf("EncodeToken(%q) = %q is not valid JSON", frame.Data, out)
			}
			if *decoded.Data != s {
				t.Fatalf("relayed data %q, client sent %q", *decoded.Data, s)
			}
		case TypeSetMetadata:
			if !IsJSONObject(frame.Metadata) || !json.Valid(frame.Metadata) || frame.Metadata[0] != '{' {
				t.Fatalf("metadata %q is not a JSON object", frame.Metadata)
			}
			if len(frame.Metadata) > limits.MetadataBytes {
				t.Fatalf("accepted metadata of %d bytes over %d", len(frame.Metadata), limits.MetadataBytes)
			}
			if !bytes.Contains(msg, frame.Metadata) {
				t.Fatalf("Metadata %q is not part of the message %q", frame.Metadata, msg)
			}
		case TypePing:
			if frame.Data != nil || frame.Metadata != nil {
				t.Fatalf("ping carries %+v", frame)
			}
		default:
			t.Fatalf("accepted unknown type %q", frame.Type)
		}
	})
}
