package wire

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Frame type names (PROTOCOL §3).
const (
	TypeToken          = "token"
	TypeSetMetadata    = "set_metadata"
	TypePing           = "ping"
	TypePong           = "pong"
	TypeJoined         = "joined"
	TypeStreamJoined   = "stream_joined"
	TypeStreamMetadata = "stream_metadata"
	TypeStreamLeft     = "stream_left"
	TypeReceipt        = "x_receipt"
	// TypeAck is a client's acknowledgement of every frame through seq
	// (flow control, X-AMS-Acks).
	TypeAck = "x_ack"
)

// PingFrame and PongFrame are the canonical keep-alive pair; the Durable
// Object registers them as an auto-response so pings never wake it.
const (
	PingFrame = `{"type":"ping"}`
	PongFrame = `{"type":"pong"}`
)

// ClientFrame is one decoded client → server frame. Data and Metadata keep
// the exact JSON text the client sent: the broker relays it, never re-encodes it.
type ClientFrame struct {
	Type string
	// Data is the raw JSON string literal of a token's data, quotes included.
	Data []byte
	// Metadata is the raw JSON object of a set_metadata frame.
	Metadata []byte
	// Seq is the seq an x_ack acknowledges.
	Seq int64
}

// DecodeClientFrame validates one text message from a client. On failure it
// returns the close the connection must get.
//
// The common frame, a token, is decoded in one pass (decodeTokenFast); any
// message that pass is not sure of goes to the full decoder, whose answer
// (frame and refusal) the fast pass always equals (FuzzTokenFastEqualsFull).
func DecodeClientFrame(msg []byte, limits Limits) (ClientFrame, *Close) {
	if frame, refusal, sure := decodeTokenFast(msg, limits); sure {
		return frame, refusal
	}
	return decodeClientFrameFull(msg, limits)
}

// decodeClientFrameFull is DecodeClientFrame for any message: UTF-8, the
// nesting bound, JSON validity, then the members.
func decodeClientFrameFull(msg []byte, limits Limits) (ClientFrame, *Close) {
	// A text message is UTF-8 (RFC 6455); workerd hands over only valid
	// text, but the check keeps this decoder's contract whole on its own.
	if !utf8.Valid(msg) || !ShallowJSON(msg, MaxJSONDepth) || !gjson.ValidBytes(msg) {
		return ClientFrame{}, &CloseMalformedFrame
	}
	root := gjson.ParseBytes(msg)
	if !root.IsObject() {
		return ClientFrame{}, &CloseMalformedFrame
	}
	var typ, data, metadata, seq gjson.Result
	root.ForEach(func(key, value gjson.Result) bool {
		// A repeated key counts once, last one winning, as in JSON.parse.
		switch key.Str {
		case "type":
			typ = value
		case "data":
			data = value
		case "metadata":
			metadata = value
		case "seq":
			seq = value
		}
		return true
	})
	if typ.Type != gjson.String {
		return ClientFrame{}, &CloseMalformedFrame
	}
	frame := ClientFrame{Type: typ.Str}
	switch typ.Str {
	case TypeToken:
		if data.Type != gjson.String {
			return ClientFrame{}, &CloseMalformedFrame
		}
		// A JSON string literal never decodes to more bytes than it holds, so
		// only a long literal needs decoding to measure its data.
		if len(data.Raw)-2 > limits.TokenBytes && len(data.Str) > limits.TokenBytes {
			return ClientFrame{}, &CloseTokenTooLarge
		}
		frame.Data = sliceOf(msg, data)
	case TypeSetMetadata:
		if !metadata.IsObject() {
			return ClientFrame{}, &CloseMalformedFrame
		}
		if len(metadata.Raw) > limits.MetadataBytes {
			return ClientFrame{}, &CloseMetadataTooLarge
		}
		frame.Metadata = sliceOf(msg, metadata)
	case TypePing:
	case TypeAck:
		if seq.Type != gjson.Number || seq.Num < 0 || seq.Num != float64(int64(seq.Num)) {
			return ClientFrame{}, &CloseMalformedFrame
		}
		frame.Seq = int64(seq.Num)
	default:
		return ClientFrame{}, &CloseUnknownFrameType
	}
	return frame, nil
}

// sliceOf returns the bytes of msg that value was parsed from.
func sliceOf(msg []byte, value gjson.Result) []byte {
	if value.Index > 0 && value.Index+len(value.Raw) <= len(msg) {
		return msg[value.Index : value.Index+len(value.Raw)]
	}
	return []byte(value.Raw)
}

// StreamInfo is a stream as peers see it. Metadata is a raw JSON object.
type StreamInfo struct {
	ID       string          `json:"stream_id"`
	Name     string          `json:"stream_name"`
	Owner    string          `json:"owner_account_id"`
	Metadata json.RawMessage `json:"metadata"`
	// PeerIdentity is what the stream said it is (ParsePeerIdentity), if anything.
	PeerIdentity json.RawMessage `json:"peer_identity,omitempty"`
}

// Joined is the first frame a connection receives.
type Joined struct {
	ConversationID string
	Stream         StreamInfo
	SelfSubscribe  bool
	Peers          []StreamInfo
	Resumed        bool
	// Seq is the conversation's latest seq when the stream joined.
	Seq int64
	// Recovered answers a resume: whether every missed frame was replayed.
	Recovered *bool
	// SubscribedStreams echoes a selective subscription.
	SubscribedStreams []string
}

// Encode renders the joined frame.
func (j Joined) Encode() []byte {
	w := newObject(TypeJoined, 256+len(j.Stream.Metadata))
	w.str("conversation_id", j.ConversationID)
	w.str("stream_id", j.Stream.ID)
	w.str("stream_name", j.Stream.Name)
	w.raw("metadata", j.Stream.Metadata)
	w.peerIdentity(j.Stream)
	w.boolean("self_subscribe", j.SelfSubscribe)
	w.key("peers")
	w.b = append(w.b, '[')
	for i, p := range j.Peers {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendStream(w.b, p)
	}
	w.b = append(w.b, ']')
	if j.Resumed {
		w.boolean("resumed", true)
	}
	w.integer("seq", j.Seq)
	if j.Recovered != nil {
		w.boolean("recovered", *j.Recovered)
	}
	if j.SubscribedStreams != nil {
		w.key("subscribed_streams")
		w.b = append(w.b, '[')
		for i, name := range j.SubscribedStreams {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = AppendJSONString(w.b, name)
		}
		w.b = append(w.b, ']')
	}
	return w.close()
}

// EncodeStreamJoined renders stream_joined for s.
func EncodeStreamJoined(s StreamInfo, seq int64) []byte {
	w := newObject(TypeStreamJoined, 128+len(s.Metadata))
	w.integer("seq", seq)
	w.streamFields(s)
	w.raw("metadata", s.Metadata)
	w.peerIdentity(s)
	return w.close()
}

// EncodeStreamLeft renders stream_left for s.
func EncodeStreamLeft(s StreamInfo, seq int64) []byte {
	w := newObject(TypeStreamLeft, 128)
	w.integer("seq", seq)
	w.streamFields(s)
	return w.close()
}

// EncodeToken renders a token frame; data is the raw JSON string literal the
// emitter sent, copied unchanged.
func EncodeToken(s StreamInfo, seq int64, ts string, data []byte) []byte {
	return EncodeTokenWith(TokenFields(s), seq, ts, data)
}

// TokenFields is the stream's part of its token frames, which a broker
// encoding a token per message can keep instead of escaping it every time.
func TokenFields(s StreamInfo) []byte {
	w := object{b: make([]byte, 0, 64+len(s.ID)+len(s.Name)+len(s.Owner))}
	w.streamFields(s)
	return w.b
}

// EncodeTokenWith is EncodeToken with the stream's TokenFields.
func EncodeTokenWith(fields []byte, seq int64, ts string, data []byte) []byte {
	// What newObject and its members write, in one allocation sized for
	// the whole frame (a token's is the broker's commonest).
	if len(data) == 0 {
		data = EmptyObject
	}
	b := make([]byte, 0, len(tokenHead)+20+len(fields)+len(`,"ts":""`)+len(ts)+len(`,"data":}`)+len(data))
	b = append(b, tokenHead...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, fields...)
	b = append(b, `,"ts":`...)
	b = AppendJSONString(b, ts)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

const tokenHead = `{"type":"` + TypeToken + `","seq":`

// EncodeStreamMetadata renders stream_metadata: s carries the new metadata.
func EncodeStreamMetadata(s StreamInfo, seq int64, ts string) []byte {
	w := newObject(TypeStreamMetadata, 160+len(s.Metadata))
	w.integer("seq", seq)
	w.streamFields(s)
	w.raw("metadata", s.Metadata)
	w.str("ts", ts)
	return w.close()
}

// EncodeReceipt renders x_receipt: the seq the emitter's token was given.
func EncodeReceipt(seq int64) []byte {
	w := newObject(TypeReceipt, 40)
	w.integer("seq", seq)
	return w.close()
}

func appendStream(b []byte, s StreamInfo) []byte {
	w := object{b: append(b, '{')}
	w.first = true
	w.streamFields(s)
	w.raw("metadata", s.Metadata)
	w.peerIdentity(s)
	return append(w.b, '}')
}

func (w *object) peerIdentity(s StreamInfo) {
	if len(s.PeerIdentity) > 0 {
		w.raw("peer_identity", s.PeerIdentity)
	}
}

// object appends one JSON object's members; every key is a constant of this file.
type object struct {
	b     []byte
	first bool
}

func newObject(typ string, capacity int) *object {
	w := &object{b: make([]byte, 0, capacity), first: true}
	w.b = append(w.b, '{')
	w.str("type", typ)
	return w
}

func (w *object) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *object) str(k, v string) {
	w.key(k)
	w.b = AppendJSONString(w.b, v)
}

func (w *object) raw(k string, v []byte) {
	w.key(k)
	if len(v) == 0 {
		v = EmptyObject
	}
	w.b = append(w.b, v...)
}

func (w *object) boolean(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *object) integer(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *object) streamFields(s StreamInfo) {
	w.str("stream_id", s.ID)
	w.str("stream_name", s.Name)
	w.str("owner_account_id", s.Owner)
}

func (w *object) close() []byte { return append(w.b, '}') }

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal: \n \r \t by name,
// other controls as \u00XX, invalid UTF-8 as \ufffd, the rest as it is.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s, false) }

// AppendVerbatimString appends s as MarshalVerbatim writes a string
// (encoding/json with HTML escaping off): as AppendJSONString, but \b and
// \f by name and U+2028, U+2029 escaped.
func AppendVerbatimString(b []byte, s string) []byte { return appendString(b, s, true) }

func appendString(b []byte, s string, verbatim bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b' && verbatim:
				b = append(b, '\\', 'b')
			case c == '\f' && verbatim:
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case verbatim && (r == '\u2028' || r == '\u2029'):
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
