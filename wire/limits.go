package wire

import (
	"strconv"
	"time"
)

// Limits are the broker's enforced bounds (PROTOCOL §5). DefaultLimits is the
// one table of truth; a deployment may override a value with the wrangler.toml
// var named in LimitVars.
type Limits struct {
	// TokenBytes bounds the UTF-8 length of a token's data.
	TokenBytes int
	// BodyBytes bounds a control-plane request body.
	BodyBytes int
	// MetadataBytes bounds one metadata object (conversation or stream), as JSON.
	MetadataBytes int
	// StreamsPerAccount bounds the live streams one account holds in one conversation.
	StreamsPerAccount int
	// ConnectionsPerConversation bounds the live sockets of one conversation.
	ConnectionsPerConversation int
	// ReplayEvents bounds the events a conversation keeps for resume; zero
	// keeps none (seq still persists).
	ReplayEvents int
	// ReplayBytes bounds the frames a conversation keeps for resume.
	ReplayBytes int
	// ReplayFlushEvents and ReplayFlushMillis bound how long buffered events
	// wait in memory before they are written to storage together: at most
	// that many events, at most that long after the first (docs/DELIVERY.md).
	ReplayFlushEvents int
	ReplayFlushMillis int
	// SubscribeStreams bounds the names of one selective subscription.
	SubscribeStreams int
	// MemberIdleSeconds is how long an MCP member may make no call before
	// it leaves on its own.
	MemberIdleSeconds int
	// AckWindowBytes and AckWindowFrames bound what a flow-controlled
	// connection (X-AMS-Acks) may have unacknowledged before it is closed
	// 4290 subscriber_backpressure. The window must cover the publish rate
	// times the round trip; the frame bound matches the replay buffer, so a
	// subscriber closed for falling behind can resume without loss.
	AckWindowBytes  int
	AckWindowFrames int
	// AckGraceMillis is how long a connection over its window keeps being
	// served while its acknowledgements still arrive (they queue behind a
	// publisher's burst in the object's inbox); past 4 windows it is closed
	// at once.
	AckGraceMillis int
}

// DefaultLimits are the limits of a deployment that overrides none.
var DefaultLimits = Limits{
	TokenBytes:                 64 << 10,
	BodyBytes:                  64 << 10,
	MetadataBytes:              16 << 10,
	StreamsPerAccount:          10,
	ConnectionsPerConversation: 1000,
	ReplayEvents:               1000,
	ReplayBytes:                8 << 20,
	ReplayFlushEvents:          512,
	ReplayFlushMillis:          50,
	SubscribeStreams:           16,
	MemberIdleSeconds:          600,
	AckWindowBytes:             2 << 20,
	AckWindowFrames:            1000,
	AckGraceMillis:             2000,
}

// FrameChars bounds the length of a client frame, in UTF-16 code units
// (JavaScript's String length), that the conversation object reads at all.
// Every frame the protocol admits fits: a token whose data is at its limit
// with every byte escaped (\u00XX, 6 characters a byte), or metadata at its
// limit, plus frameEnvelopeChars for the rest; only a frame padded with
// whitespace could be longer. A longer frame is refused 4400
// token_too_large before it is copied into Go or parsed: entry.mjs compares
// the length, which Go hands it once per object.
func (l Limits) FrameChars() int {
	return 6*max(l.TokenBytes, l.MetadataBytes) + frameEnvelopeChars
}

const frameEnvelopeChars = 4 << 10

// StreamListBytes bounds, in bytes of JSON, a listing of a conversation's
// live streams: the peers of a joined frame, the object's answer to the
// Worker and the streams of an inspect reply. It holds at most
// ConnectionsPerConversation entries, each its ids, name, owner and peer
// identity (under streamEntryBytes with the JSON around them) and its
// metadata exactly as it was accepted (at most MetadataBytes: written
// verbatim, never HTML-escaped, so never longer). With the defaults a
// 1000-stream listing is at most 1000 × (16 KiB + 1 KiB) = 17 MiB, and
// 1000 × 1 KiB when the streams carry no metadata.
func (l Limits) StreamListBytes() int {
	return l.ConnectionsPerConversation * (l.MetadataBytes + streamEntryBytes)
}

const streamEntryBytes = 1 << 10

// LimitVars names the environment variable that overrides each limit.
var LimitVars = map[string]func(*Limits) *int{
	"AMS_LIMIT_TOKEN_BYTES":                  func(l *Limits) *int { return &l.TokenBytes },
	"AMS_LIMIT_BODY_BYTES":                   func(l *Limits) *int { return &l.BodyBytes },
	"AMS_LIMIT_METADATA_BYTES":               func(l *Limits) *int { return &l.MetadataBytes },
	"AMS_LIMIT_STREAMS_PER_ACCOUNT":          func(l *Limits) *int { return &l.StreamsPerAccount },
	"AMS_LIMIT_CONNECTIONS_PER_CONVERSATION": func(l *Limits) *int { return &l.ConnectionsPerConversation },
	"AMS_REPLAY_EVENTS":                      func(l *Limits) *int { return &l.ReplayEvents },
	"AMS_REPLAY_BYTES":                       func(l *Limits) *int { return &l.ReplayBytes },
	"AMS_REPLAY_FLUSH_EVENTS":                func(l *Limits) *int { return &l.ReplayFlushEvents },
	"AMS_REPLAY_FLUSH_MILLIS":                func(l *Limits) *int { return &l.ReplayFlushMillis },
	"AMS_LIMIT_SUBSCRIBE_STREAMS":            func(l *Limits) *int { return &l.SubscribeStreams },
	"AMS_MCP_IDLE_SECONDS":                   func(l *Limits) *int { return &l.MemberIdleSeconds },
	"AMS_ACK_WINDOW_BYTES":                   func(l *Limits) *int { return &l.AckWindowBytes },
	"AMS_ACK_WINDOW_FRAMES":                  func(l *Limits) *int { return &l.AckWindowFrames },
	"AMS_ACK_GRACE_MILLIS":                   func(l *Limits) *int { return &l.AckGraceMillis },
}

// LimitsFromEnv returns DefaultLimits with every integer override that
// getenv supplies applied: positive, or zero for AMS_REPLAY_EVENTS (replay
// off); anything else keeps the default.
func LimitsFromEnv(getenv func(string) string) Limits {
	limits := DefaultLimits
	for name, field := range LimitVars {
		if n, err := strconv.Atoi(getenv(name)); err == nil && (n > 0 || n == 0 && name == "AMS_REPLAY_EVENTS") {
			*field(&limits) = n
		}
	}
	return limits
}

// ReplayRowBytes bounds one row of the replay buffer in SQLite (a batch's
// meta and frames, durable.BatchLog): workerd refuses a row over about
// 2.2 MB (SQLITE_TOOBIG; 2,199,992 bytes of BLOB measured with workerd
// 1.20260426.1), so a flush is split into rows of at most this. One event
// always fits: a token frame at the default limits is under
// FrameChars (6 × 64 KiB + 4 KiB).
const ReplayRowBytes = 1 << 20

// MCPBodyBytes bounds one JSON-RPC request to the MCP endpoints: a token
// at the default limit, every byte escaped, fits with room for metadata.
const MCPBodyBytes = 256 << 10

// MaxRPCBatch bounds the messages of one JSON-RPC batch: each may be a
// tool call that waits, so a batch is refused whole above it.
const MaxRPCBatch = 32

// Gathering of ams_recv (docs/MCP.md): after the first frame, a read keeps
// collecting until the conversation has been quiet for gather_ms (default
// DefaultGatherMS, at most MaxGatherMS), or until it holds MaxGatherFrames
// frames or MaxGatherBytes bytes, or MaxGatherTotalMS have passed.
const (
	DefaultGatherMS  = 300
	MaxGatherMS      = 5000
	MaxGatherFrames  = 256
	MaxGatherBytes   = 256 << 10
	MaxGatherTotalMS = 10000
)

// MCPSessionRetention is how long an MCP session's object keeps its binding
// after it was last bound (ams_join) or ended; a session idle longer joins
// again.
const MCPSessionRetention = 7 * 24 * time.Hour

// MaxJSONDepth bounds the nesting of any JSON read from a client. Parsers
// recurse, and in WebAssembly a deep recursion overflows the engine's stack:
// a trap that Go cannot recover from and that ends the program.
const MaxJSONDepth = 64

// ShallowJSON reports whether raw nests arrays and objects at most maxDepth
// deep. It scans without recursion, so it is safe on any input, and must
// pass before any recursive parser sees client JSON.
func ShallowJSON(raw []byte, maxDepth int) bool {
	var scan nesting
	for _, c := range raw {
		if scan.step(c) > maxDepth {
			return false
		}
	}
	return true
}

// nesting follows the bracket depth of JSON text byte by byte, skipping
// what is inside strings.
type nesting struct {
	depth             int
	inString, escaped bool
}

// step takes the next byte and returns the depth after it.
func (n *nesting) step(c byte) int {
	if n.inString {
		switch {
		case n.escaped:
			n.escaped = false
		case c == '\\':
			n.escaped = true
		case c == '"':
			n.inString = false
		}
		return n.depth
	}
	switch c {
	case '"':
		n.inString = true
	case '[', '{':
		n.depth++
	case ']', '}':
		n.depth--
	}
	return n.depth
}
