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
	// HeaderAcks opts a connection into flow control: it acknowledges what
	// it reads with x_ack frames, and is closed 4290 when it falls a window
	// behind (docs/DELIVERY.md).
	HeaderAcks = "X-AMS-Acks"
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
	HeaderAcks:             "acks",
	HeaderPeerIdentity:     "peer_identity",
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
	Acks             bool     `json:"acks,omitempty"`
	// LinkGeneration is the generation of the magic link that admitted the
	// join; a rotation closes every stream of an older generation.
	LinkGeneration int64 `json:"link_generation,omitempty"`
	// Subprotocol is the WebSocket subprotocol to select in the 101 ("ams.v1"
	// when the client offered it), empty otherwise.
	Subprotocol string `json:"subprotocol,omitempty"`
	// PeerIdentity is what the peer says it is (ParsePeerIdentity).
	PeerIdentity json.RawMessage `json:"peer_identity,omitempty"`
	// PushOnly, for an MCP member, says it opted into push-only delivery
	// (DeliveryPush): what its push leg delivered is marked read.
	PushOnly bool `json:"push_only,omitempty"`
}

// HeaderPeerIdentity carries a WebSocket client's peer identity, a JSON
// object as ams_join's peer_identity (extension; query form peer_identity).
const HeaderPeerIdentity = "X-AMS-Peer-Identity"

// maxIdentityField bounds each string of a peer identity.
const maxIdentityField = 128

// ParsePeerIdentity checks a peer identity, {"kind": "agent"|"human",
// "model"?: string, "client"?: string}, and returns it re-encoded with those
// fields only, and its client. Absent (empty or null) is valid and nil.
func ParsePeerIdentity(raw json.RawMessage) (json.RawMessage, string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", true
	}
	var id struct {
		Kind   string  `json:"kind"`
		Model  *string `json:"model,omitempty"`
		Client *string `json:"client,omitempty"`
	}
	if !ShallowJSON(raw, MaxJSONDepth) || !IsJSONObject(raw) || json.Unmarshal(raw, &id) != nil || id.Kind != "agent" && id.Kind != "human" {
		return nil, "", false
	}
	client := ""
	for _, f := range []*string{id.Model, id.Client} {
		if f != nil && (len(*f) > maxIdentityField || *f == "") {
			return nil, "", false
		}
	}
	if id.Client != nil {
		client = *id.Client
	}
	out, _ := json.Marshal(id)
	return out, client, true
}

// Browser join (PROTOCOL §5): a browser cannot set headers on a WebSocket,
// so it offers the subprotocols "ams.v1" and "ams.bearer.<credential>"; the
// server selects "ams.v1".
const (
	SubprotocolV1     = "ams.v1"
	SubprotocolBearer = "ams.bearer."
)

// ParseSubprotocols reads a Sec-WebSocket-Protocol header: the credential
// offered as a subprotocol, if any, and whether "ams.v1" was offered.
func ParseSubprotocols(header string) (credential string, offersV1 bool) {
	for _, p := range strings.Split(header, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == SubprotocolV1:
			offersV1 = true
		case strings.HasPrefix(p, SubprotocolBearer) && credential == "":
			credential = p[len(SubprotocolBearer):]
		}
	}
	return credential, offersV1
}

// ParseResumeAfter reads X-AMS-Resume-After: a non-negative integer seq.
func ParseResumeAfter(v string) (*int64, bool) {
	if v == "" {
		return nil, true
	}
	v = strings.TrimSpace(v)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || v[0] == '+' || v[0] == '-' {
		return nil, false
	}
	return &n, true
}

// ParseSubscribeStreams reads X-AMS-Subscribe-Streams: a comma-separated list
// of stream names or stream ids (a str_… id is a valid name too), at most
// max of them. An absent header is nil (all streams).
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

// Paths and headers of a conversation object's magic link: POST RotatePath
// with LinkTokenHashHeader has the object issue the next generation (the
// reply is its LinkState); GET LinkPath reads the current LinkState.
const (
	RotatePath          = "/rotate"
	LinkPath            = "/link"
	LinkTokenHashHeader = "X-AMS-Link-Token-Hash"
)

// LinkState is a conversation's current magic link as its object issued it:
// the generation, and the hash of its token (empty until the object's first
// rotation; before that the KV record's hash is the link).
type LinkState struct {
	Generation int64  `json:"generation"`
	TokenHash  string `json:"token_hash,omitempty"`
}

// Admits reports whether a token hashing to tokenHash is the current link,
// given the record KV holds (recordHash at recordGeneration), which may be
// stale: once the object issued a link, its hash decides; before, the
// record's does, unless the object has seen a newer generation than the
// record (a rotation from before the object kept hashes).
func (l LinkState) Admits(tokenHash, recordHash string, recordGeneration int64) bool {
	if l.TokenHash != "" {
		return HashesEqual(tokenHash, l.TokenHash)
	}
	return HashesEqual(tokenHash, recordHash) && recordGeneration >= l.Generation
}
