package wire

import "encoding/json"

// Minted is the answer of a mint (POST /v1/{ns}/conversations and the MCP
// tool ams_create_conversation), as PROTOCOL §2 names its fields.
type Minted struct {
	ConversationID string          `json:"conversation_id"`
	Alias          string          `json:"alias"`
	MagicLink      string          `json:"magic_link"`
	StreamID       string          `json:"stream_id"`
	StreamName     string          `json:"stream_name"`
	Metadata       json.RawMessage `json:"metadata"`
	StreamMetadata json.RawMessage `json:"stream_metadata"`
	CreatedAt      string          `json:"created_at"`
}
