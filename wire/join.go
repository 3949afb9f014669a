package wire

import "encoding/json"

// Headers of the stream plane (PROTOCOL §3 and §5).
const (
	HeaderStreamName     = "X-AMS-Stream-Name"
	HeaderStreamMetadata = "X-AMS-Stream-Metadata"
	HeaderSelfSubscribe  = "X-AMS-Self-Subscribe"
)

// JoinHeader carries an admitted Join from the Worker to the conversation's
// Durable Object. The Worker sets it after authenticating and never forwards
// a client's copy; the Durable Object is reachable only through the Worker.
const JoinHeader = "X-AMS-Join"

// Join is a connect request that passed every check the Worker can make
// (link token, bearer, headers); the Durable Object makes the rest.
type Join struct {
	ConversationID string          `json:"conversation_id"`
	AccountID      string          `json:"account_id"`
	StreamID       string          `json:"stream_id"`
	StreamName     string          `json:"stream_name"`
	Metadata       json.RawMessage `json:"metadata"`
	SelfSubscribe  bool            `json:"self_subscribe"`
}
