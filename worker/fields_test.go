package worker

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ams-dev/ams/wire"
)

// TestFieldOfWrongType: each member of the wrong type gets its own code, in
// the hosted reference's order, never invalid_json.
func TestFieldOfWrongType(t *testing.T) {
	f := newFixture(t)
	for _, body := range []string{`{"namespace":5}`, `{"namespace":null}`, `{"namespace":{}}`, `{}`} {
		if code, reply := call(t, f.s, "POST", "https://ams.example/v1/accounts", "", body); code != 400 || string(reply["error"]) != `"invalid_namespace"` {
			t.Errorf("account %s: %d %s", body, code, reply["error"])
		}
	}
	for _, c := range []struct {
		body string
		want wire.Error
	}{
		{`{"alias":5}`, wire.ErrInvalidAlias},
		{`{"alias":["a"]}`, wire.ErrInvalidAlias},
		{`{"stream_name":true}`, wire.ErrInvalidStreamName},
		{`{"id_kind":7}`, wire.ErrUnsupportedIDKind},
		{`{"id_kind":null}`, wire.ErrUnsupportedIDKind},
		{`{"id_kind":"ulid"}`, wire.ErrUnsupportedIDKind},
		{`{"metadata":"x"}`, wire.ErrInvalidMetadata},
		{`{"stream_metadata":3}`, wire.ErrInvalidStreamMetadata},
		{`{"stream_name":5,"alias":"Bad!"}`, wire.ErrInvalidAlias},
		{`{"metadata":1,"id_kind":2}`, wire.ErrUnsupportedIDKind},
		{`{"stream_metadata":1,"metadata":2}`, wire.ErrInvalidMetadata},
		{`{"stream_metadata":{"s":"` + strings.Repeat("x", wire.DefaultLimits.MetadataBytes) + `"}}`, wire.ErrMetadataTooLarge},
		{`{"alias":"calm-otter-1234"}`, wire.ErrAliasTaken},
	} {
		code, reply := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential, c.body)
		if code != c.want.Status || string(reply["error"]) != `"`+c.want.Code+`"` {
			t.Errorf("mint %.60s: %d %s, want %s", c.body, code, reply["error"], c.want.Code)
		}
	}
	for _, body := range []string{`{"alias":"","stream_name":""}`, `{"alias":null,"stream_name":null}`,
		`{"metadata":{"prompt":"` + strings.Repeat("p", wire.DefaultLimits.BodyBytes-100) + `"}}`} {
		if code, reply := call(t, f.s, "POST", "https://ams.example/v1/demo/conversations", f.credential, body); code != http.StatusCreated {
			t.Errorf("mint %.60s: %d %v", body, code, reply)
		}
	}
}
