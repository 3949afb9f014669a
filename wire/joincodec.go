package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// EncodeJoin is MarshalVerbatim(j), byte for byte, without reflection: the
// Worker encodes a Join on every connect (JoinHeader), and encoding/json's
// reflection was a tenth of the Worker's share of a join in wasm.
func EncodeJoin(j Join) []byte {
	b := make([]byte, 0, 192+len(j.ConversationID)+len(j.AccountID)+len(j.StreamID)+len(j.StreamName)+len(j.Metadata)+len(j.PeerIdentity))
	b = append(b, `{"conversation_id":`...)
	b = AppendVerbatimString(b, j.ConversationID)
	b = append(b, `,"account_id":`...)
	b = AppendVerbatimString(b, j.AccountID)
	b = append(b, `,"stream_id":`...)
	b = AppendVerbatimString(b, j.StreamID)
	b = append(b, `,"stream_name":`...)
	b = AppendVerbatimString(b, j.StreamName)
	b = append(b, `,"metadata":`...)
	var ok bool
	if j.Metadata == nil {
		b = append(b, "null"...)
	} else if b, ok = AppendCompact(b, j.Metadata); !ok {
		return MarshalVerbatim(j) // what encoding/json makes of it (an error: nothing)
	}
	b = append(b, `,"self_subscribe":`...)
	b = strconv.AppendBool(b, j.SelfSubscribe)
	if j.ResumeAfter != nil {
		b = append(b, `,"resume_after":`...)
		b = strconv.AppendInt(b, *j.ResumeAfter, 10)
	}
	if len(j.SubscribeStreams) > 0 {
		b = append(b, `,"subscribe_streams":[`...)
		for i, s := range j.SubscribeStreams {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendVerbatimString(b, s)
		}
		b = append(b, ']')
	}
	if j.Receipts {
		b = append(b, `,"receipts":true`...)
	}
	if j.Acks {
		b = append(b, `,"acks":true`...)
	}
	if j.LinkGeneration != 0 {
		b = append(b, `,"link_generation":`...)
		b = strconv.AppendInt(b, j.LinkGeneration, 10)
	}
	if j.Subprotocol != "" {
		b = append(b, `,"subprotocol":`...)
		b = AppendVerbatimString(b, j.Subprotocol)
	}
	if len(j.PeerIdentity) > 0 {
		b = append(b, `,"peer_identity":`...)
		if b, ok = AppendCompact(b, j.PeerIdentity); !ok {
			return MarshalVerbatim(j)
		}
	}
	if j.PushOnly {
		b = append(b, `,"push_only":true`...)
	}
	return append(b, '}')
}

// AppendCompact appends raw without insignificant whitespace, as
// MarshalVerbatim writes a json.RawMessage; false if raw is not valid JSON.
func AppendCompact(b, raw []byte) ([]byte, bool) {
	buf := bytes.NewBuffer(b)
	if json.Compact(buf, raw) != nil {
		return b, false
	}
	return buf.Bytes(), true
}

// DecodeJoin is json.Unmarshal of raw into a Join (the same Join, the same
// error or none). What EncodeJoin writes is read without reflection, for
// the object decodes one on every connect; anything else, down to a
// string with an escape, is left to json.Unmarshal.
func DecodeJoin(raw []byte) (Join, error) {
	if j, ok := decodeCanonicalJoin(raw); ok {
		return j, nil
	}
	var j Join
	err := json.Unmarshal(raw, &j)
	return j, err
}

func decodeCanonicalJoin(raw []byte) (j Join, ok bool) {
	r := joinReader{b: raw, ok: true}
	r.lit(`{"conversation_id":`)
	j.ConversationID = r.str()
	r.lit(`,"account_id":`)
	j.AccountID = r.str()
	r.lit(`,"stream_id":`)
	j.StreamID = r.str()
	r.lit(`,"stream_name":`)
	j.StreamName = r.str()
	r.lit(`,"metadata":`)
	j.Metadata = r.object()
	r.lit(`,"self_subscribe":`)
	j.SelfSubscribe = r.boolean()
	if r.next(`,"resume_after":`) {
		n := r.integer()
		j.ResumeAfter = &n
	}
	if r.next(`,"subscribe_streams":[`) {
		j.SubscribeStreams = []string{r.str()}
		for r.next(`,`) {
			j.SubscribeStreams = append(j.SubscribeStreams, r.str())
		}
		r.lit(`]`)
	}
	j.Receipts = r.next(`,"receipts":true`)
	j.Acks = r.next(`,"acks":true`)
	if r.next(`,"link_generation":`) {
		j.LinkGeneration = r.integer()
	}
	if r.next(`,"subprotocol":`) {
		j.Subprotocol = r.str()
	}
	if r.next(`,"peer_identity":`) {
		j.PeerIdentity = r.object()
	}
	j.PushOnly = r.next(`,"push_only":true`)
	r.lit(`}`)
	return j, r.ok && r.i == len(r.b)
}

// joinReader reads the exact layout EncodeJoin writes; ok turns false at
// anything else.
type joinReader struct {
	b  []byte
	i  int
	ok bool
}

func (r *joinReader) next(s string) bool {
	if r.ok && len(r.b)-r.i >= len(s) && string(r.b[r.i:r.i+len(s)]) == s {
		r.i += len(s)
		return true
	}
	return false
}

func (r *joinReader) lit(s string) {
	if !r.next(s) {
		r.ok = false
	}
}

// str reads a string of printable ASCII without escapes.
func (r *joinReader) str() string {
	if !r.next(`"`) {
		r.ok = false
		return ""
	}
	for at := r.i; r.i < len(r.b); r.i++ {
		switch c := r.b[r.i]; {
		case c == '"':
			s := string(r.b[at:r.i])
			r.i++
			return s
		case c < 0x20 || c == '\\' || c >= utf8.RuneSelf:
			r.ok = false
			return ""
		}
	}
	r.ok = false
	return ""
}

func (r *joinReader) boolean() bool {
	if r.next("true") {
		return true
	}
	r.lit("false")
	return false
}

// integer reads -?(0|[1-9][0-9]*) that fits an int64.
func (r *joinReader) integer() int64 {
	at := r.i
	r.next("-")
	digits := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	if r.i == digits || r.b[digits] == '0' && r.i > digits+1 {
		r.ok = false
		return 0
	}
	n, err := strconv.ParseInt(string(r.b[at:r.i]), 10, 64)
	if err != nil {
		r.ok = false
	}
	return n
}

// object reads a JSON object, which must be valid, and returns a copy of
// its text, as json.RawMessage keeps it.
func (r *joinReader) object() json.RawMessage {
	if !r.ok || r.i == len(r.b) || r.b[r.i] != '{' {
		r.ok = false
		return nil
	}
	at := r.i
	var scan nesting
	for ; r.i < len(r.b); r.i++ {
		if scan.step(r.b[r.i]) == 0 {
			r.i++
			value := r.b[at:r.i]
			if !json.Valid(value) {
				r.ok = false
				return nil
			}
			return append(json.RawMessage(nil), value...)
		}
	}
	r.ok = false
	return nil
}

// DecodeStringPairs is json.Unmarshal of raw into [][2]string, as the
// bridge reads a request's headers (JSON.stringify of its entries): pairs of
// printable ASCII are read without reflection, anything else by
// json.Unmarshal.
func DecodeStringPairs(raw []byte) ([][2]string, error) {
	if pairs, ok := decodePlainPairs(raw); ok {
		return pairs, nil
	}
	var pairs [][2]string
	err := json.Unmarshal(raw, &pairs)
	return pairs, err
}

func decodePlainPairs(raw []byte) ([][2]string, bool) {
	r := joinReader{b: raw, ok: true}
	r.lit("[")
	pairs := make([][2]string, 0, bytes.Count(raw, []byte("],["))+1)
	if r.next("]") {
		return pairs, r.i == len(raw)
	}
	for r.ok {
		r.lit("[")
		k := r.str()
		r.lit(",")
		v := r.str()
		r.lit("]")
		pairs = append(pairs, [2]string{k, v})
		if !r.next(",") {
			break
		}
	}
	r.lit("]")
	return pairs, r.ok && r.i == len(raw)
}
