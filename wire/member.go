package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// MemberPath is where the Worker reaches a conversation object for the MCP
// member operations; the operation name follows it (join, send, recv,
// metadata, leave).
const MemberPath = "/member/"

// MemberHeader carries a MemberCall on the upgrade request of a member's
// push leg (MemberPath + "tap"), which has no body.
const MemberHeader = "X-AMS-Member"

// A member's push leg (MemberPath + "tap") is a WebSocket from the Worker
// to the conversation object. The object sends the member's wire frames on
// it; the Worker sends two control messages back:
//
//	{"tap":"start","after":N}  once, when it is ready: the object first sends
//	                           what the member hears after N (omitted: after
//	                           its read cursor or what was last delivered to
//	                           it), then its frames as they happen;
//	{"tap":"ack","seq":N}      after frames through N were written to the
//	                           client: they are not offered again, and for a
//	                           push-only member they are marked read.
//
// Frames that left the replay buffer before the start are announced by one
// TypeTapTruncated frame, {"type":"truncated","after":N}. The object sends
// at most TapPage frames for one start; when more are due it sends
// {"tap":"more","after":N} after them, and the Worker, once it wrote them,
// starts again after N.
//
// An object rebuilt (woken, or after a panic) holds its taps silent again
// and sends each {"tap":"restart"}: the Worker starts it again after what it
// wrote, so nothing is lost or written twice across the rebuild.
//
// When the object closes a tap, the close reason is the protocol's reason,
// ":" and why the leg ended (TapEnd*): the member left, expired, was taken
// over or rotated out, or a newer leg replaced this one. A tap refused
// because its member is not there closes not_joined with no why.
const (
	TapStart         = "start"
	TapAck           = "ack"
	TapMore          = "more"
	TapRestart       = "restart"
	TypeTapTruncated = "truncated"
	TapPage          = 512

	TapEndLeft      = "left"
	TapEndExpired   = "expired"
	TapEndTakenOver = "taken_over"
	TapEndRotated   = "rotated"
	TapEndReplaced  = "replaced"
	TapEndClosed    = "closed"
)

// TapClose is the close of a tap whose leg ended for why.
func TapClose(c Close, why string) Close { return Close{Code: c.Code, Reason: c.Reason + ":" + why} }

// SplitTapClose splits a tap's close reason into the protocol's reason and
// why (empty for a refusal).
func SplitTapClose(reason string) (protocol, why string) {
	protocol, why, _ = strings.Cut(reason, ":")
	return protocol, why
}

// EncodeTapMore is the object's "more is due after N" message.
func EncodeTapMore(after int64) []byte {
	return append(strconv.AppendInt([]byte(`{"tap":"more","after":`), after, 10), '}')
}

// EncodeTapStart is the start message of a push leg; ack, when positive,
// acks what the leg wrote through ack before (as wire.TapAck).
func EncodeTapStart(after *int64, ack int64) []byte {
	b := []byte(`{"tap":"start"`)
	if after != nil {
		b = strconv.AppendInt(append(b, `,"after":`...), *after, 10)
	}
	if ack > 0 {
		b = strconv.AppendInt(append(b, `,"ack":`...), ack, 10)
	}
	return append(b, '}')
}

// EncodeTapAck is the ack message of a push leg.
func EncodeTapAck(seq int64) []byte {
	return append(strconv.AppendInt([]byte(`{"tap":"ack","seq":`), seq, 10), '}')
}

// Delivery is how an MCP member gets its frames (ams_join's delivery):
// DeliveryRecv (the default) keeps everything for ams_recv, even what was
// pushed or rode along, since hosts drop notifications they do not know;
// DeliveryPush marks read what its push leg delivered.
const (
	DeliveryRecv = "recv"
	DeliveryPush = "push"
)

// SessionPath is where the Worker reaches an MCP session object; the
// operation (get, bind, end, watch) follows. watch is a WebSocket upgrade:
// the object sends a message on it whenever the session is bound or ended,
// so a push leg follows the binding at once.
const SessionPath = "/session/"

// MemberCall is a member operation the Worker forwards after authenticating
// the caller as AccountID.
type MemberCall struct {
	ConversationID string `json:"conversation_id"`
	AccountID      string `json:"account_id"`
	StreamID       string `json:"stream_id"`
	Join           *Join  `json:"join,omitempty"`
	// Reader names the join that owns the member (wire.NewReader): a call
	// of any other reader is not_joined. Empty is the sessionless reader.
	Reader string `json:"reader,omitempty"`
	// Rejoin, on send and recv, joins the member first when it is absent
	// and was not left by this reader (self-rehydration). With StreamID
	// empty, the caller's one member is meant, else Rejoin's stream.
	Rejoin *Join `json:"rejoin,omitempty"`
	// Data is the token's data as the caller sent it: a raw JSON string
	// literal, relayed byte for byte.
	Data     json.RawMessage `json:"data,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Cursor   *int64          `json:"cursor,omitempty"`
	WaitMS   int             `json:"wait_ms,omitempty"`
	// GatherMS is the quiet interval a recv waits for after its first frame
	// (zero: none); see MaxGatherMS.
	GatherMS int `json:"gather_ms,omitempty"`
	// RideAlong asks send and metadata to return, in Frames, what the member
	// has not read yet and was not offered before, without marking it read.
	RideAlong bool `json:"ride_along,omitempty"`
}

// RideAlongFrames bounds the frames one tool call carries along.
const RideAlongFrames = 64

// SessionState is what an MCP session object holds (durable/session.go):
// the handle of the member the session joined, and whether it ended.
type SessionState struct {
	Handle string `json:"handle,omitempty"`
	Ended  bool   `json:"ended,omitempty"`
}

// MarshalVerbatim encodes v as JSON without HTML escaping, so raw frames and
// data inside it keep their bytes.
func MarshalVerbatim(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// MemberReply is the object's answer. Error is a protocol code (an HTTP
// error code or a close reason) when the operation was refused.
type MemberReply struct {
	Error   string          `json:"error,omitempty"`
	Message string          `json:"message,omitempty"`
	Joined  json.RawMessage `json:"joined,omitempty"`
	Seq     int64           `json:"seq,omitempty"`
	TS      string          `json:"ts,omitempty"`
	// StreamID and StreamName name the member a call acted on.
	StreamID   string `json:"stream_id,omitempty"`
	StreamName string `json:"stream_name,omitempty"`
	// Rejoined says the call joined the member first (self-rehydration).
	Rejoined  bool              `json:"rejoined,omitempty"`
	Frames    []json.RawMessage `json:"frames,omitempty"`
	Cursor    int64             `json:"cursor,omitempty"`
	Truncated bool              `json:"truncated,omitempty"`
	// Delivered, on recv, is the seq through which the member's frames were
	// already delivered as notifications (pushed on its leg, or ridden
	// along): the wrapper does not notify them again.
	Delivered int64 `json:"delivered,omitempty"`
}

// MaxMemberWait bounds an MCP long-poll (ams_recv wait_ms).
const MaxMemberWait = 25000
