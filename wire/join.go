package wire

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// Headers of the stream plane (PROTOCOL §3 and §5).
const (
	HeaderStreamName       = "X-AMS-Stream-Name"
	HeaderStreamMetadata   = "X-AMS-Stream-Metadata"
	HeaderSelfSubscribe    = "X-AMS-Self-Subscribe"
	HeaderResumeAfter      = "X-AMS-Resume-After"
	HeaderSubscribeStreams = "X-AMS-Subscribe-Streams"
	HeaderReceipts         = "X-AMS-Receipts"
)

// QueryForms maps each stream-plane header to the query parameter a browser,
// which cannot set WebSocket headers, may use instead (PROTOCOL §5).
var QueryForms = map[string]string{
	HeaderStreamName:       "stream_name",
	HeaderStreamMetadata:   "stream_metadata",
	HeaderSelfSubscribe:    "self_subscribe",
	HeaderResumeAfter:      "resume_after",
	HeaderSubscribeStreams: "subscribe_streams",
	HeaderReceipts:         "receipts",
}

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
	// ResumeAfter asks for every frame after this seq to be replayed.
	ResumeAfter *int64 `json:"resume_after,omitempty"`
	// SubscribeStreams limits delivery to these stream names; nil is all.
	SubscribeStreams []string `json:"subscribe_streams,omitempty"`
	Receipts         bool     `json:"receipts,omitempty"`
}

// ParseResumeAfter reads X-AMS-Resume-After: a non-negative integer seq.
func ParseResumeAfter(v string) (*int64, bool) {
	if v == "" {
		return nil, true
	}
	v = strings.TrimSpace(v)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || v[0] == '+' {
		return nil, false
	}
	return &n, true
}

// ParseSubscribeStreams reads X-AMS-Subscribe-Streams: a comma-separated list
// of valid stream names, at most max of them. An absent header is nil (all
// streams).
func ParseSubscribeStreams(v string, max int) ([]string, bool) {
	if v == "" {
		return nil, true
	}
	var names []string
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if !ValidStreamName(name) {
			return nil, false
		}
		if !slices.Contains(names, name) {
			if len(names) == max {
				return nil, false
			}
			names = append(names, name)
		}
	}
	return names, true
}
