package wire

import "encoding/json"

// MemberPath is where the Worker reaches a conversation object for the MCP
// member operations; the operation name follows it (join, send, recv,
// metadata, leave).
const MemberPath = "/member/"

// MemberCall is a member operation the Worker forwards after authenticating
// the caller as AccountID.
type MemberCall struct {
	ConversationID string          `json:"conversation_id"`
	AccountID      string          `json:"account_id"`
	StreamID       string          `json:"stream_id"`
	Join           *Join           `json:"join,omitempty"`
	Data           *string         `json:"data,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	Cursor         *int64          `json:"cursor,omitempty"`
	WaitMS         int             `json:"wait_ms,omitempty"`
}

// MemberReply is the object's answer. Error is a protocol code (an HTTP
// error code or a close reason) when the operation was refused.
type MemberReply struct {
	Error     string            `json:"error,omitempty"`
	Message   string            `json:"message,omitempty"`
	Joined    json.RawMessage   `json:"joined,omitempty"`
	Seq       int64             `json:"seq,omitempty"`
	Frames    []json.RawMessage `json:"frames,omitempty"`
	Cursor    int64             `json:"cursor,omitempty"`
	Truncated bool              `json:"truncated,omitempty"`
}

// MaxMemberWait bounds an MCP long-poll (ams_recv wait_ms).
const MaxMemberWait = 25000
