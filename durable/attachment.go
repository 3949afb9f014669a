package durable

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/ams-dev/ams/wire"
)

// AttachmentBudget is the most an attachment may weigh once serialized.
// workerd caps attachments at 2 KiB; metadata that does not fit moves to
// Durable Object storage and the attachment keeps only a flag.
const AttachmentBudget = 2048

// Attachment is everything a socket needs to be routed after the Durable
// Object wakes from hibernation. It is serialized onto the socket itself, so
// the set of attachments is the conversation's state.
type Attachment struct {
	// ConnID names this connection; it is also the socket's hibernation tag.
	ConnID   string `json:"c"`
	StreamID string `json:"i"`
	Name     string `json:"n"`
	Owner    string `json:"o"`
	Self     bool   `json:"s,omitempty"`
	// Metadata is the stream's JSON object, absent when MetadataStored.
	Metadata json.RawMessage `json:"m,omitempty"`
	// MetadataStored says the metadata was too large and lives in storage
	// under ConnID.
	MetadataStored bool `json:"ms,omitempty"`
	// Subscribed limits delivery to these stream names; empty is all.
	Subscribed []string `json:"f,omitempty"`
	// Receipts asks for an x_receipt per accepted token.
	Receipts bool `json:"r,omitempty"`
	// Generation is the magic-link generation that admitted the stream.
	Generation int64 `json:"g,omitempty"`
	// Acks says the connection acknowledges what it reads (flow control).
	Acks bool `json:"a,omitempty"`
	// PeerIdentity is what the peer said it is (wire.ParsePeerIdentity).
	PeerIdentity json.RawMessage `json:"pi,omitempty"`
	// TapOf, on an MCP member's push leg (tap.go), is the member's
	// connection id: the socket is no stream.
	TapOf string `json:"tap,omitempty"`
}

// Hears reports whether this connection receives frames of stream from:
// never its own stream unless self-subscribed, and only the subscribed
// streams, each named by its name or its id (str_…, as D0017 of the hosted
// reference filters).
func (a *Attachment) Hears(fromStreamID, fromName string) bool {
	if fromStreamID == a.StreamID && !a.Self {
		return false
	}
	return len(a.Subscribed) == 0 || slices.Contains(a.Subscribed, fromName) || slices.Contains(a.Subscribed, fromStreamID)
}

// Stream is the stream as peers see it.
func (a *Attachment) Stream() wire.StreamInfo {
	return wire.StreamInfo{ID: a.StreamID, Name: a.Name, Owner: a.Owner, Metadata: a.Metadata, PeerIdentity: a.PeerIdentity}
}

// Encode serializes a for the socket. When the metadata makes it exceed the
// budget, the returned attachment leaves it out and overflow holds it.
func (a Attachment) Encode() (encoded []byte, overflow []byte) {
	a.MetadataStored = false
	encoded = a.marshal()
	if len(encoded) <= AttachmentBudget {
		return encoded, nil
	}
	overflow = a.Metadata
	a.Metadata, a.MetadataStored = nil, true
	encoded = a.marshal()
	return encoded, overflow
}

// marshal is wire.MarshalVerbatim(a), byte for byte
// (FuzzAttachmentMarshal), without reflection: every join encodes one.
func (a Attachment) marshal() []byte {
	b := make([]byte, 0, 128+len(a.ConnID)+len(a.StreamID)+len(a.Name)+len(a.Owner)+len(a.Metadata)+len(a.PeerIdentity))
	b = append(b, `{"c":`...)
	b = wire.AppendVerbatimString(b, a.ConnID)
	b = append(b, `,"i":`...)
	b = wire.AppendVerbatimString(b, a.StreamID)
	b = append(b, `,"n":`...)
	b = wire.AppendVerbatimString(b, a.Name)
	b = append(b, `,"o":`...)
	b = wire.AppendVerbatimString(b, a.Owner)
	if a.Self {
		b = append(b, `,"s":true`...)
	}
	var ok bool
	if len(a.Metadata) > 0 {
		b = append(b, `,"m":`...)
		if b, ok = wire.AppendCompact(b, a.Metadata); !ok {
			return wire.MarshalVerbatim(a)
		}
	}
	if a.MetadataStored {
		b = append(b, `,"ms":true`...)
	}
	if len(a.Subscribed) > 0 {
		b = append(b, `,"f":[`...)
		for i, s := range a.Subscribed {
			if i > 0 {
				b = append(b, ',')
			}
			b = wire.AppendVerbatimString(b, s)
		}
		b = append(b, ']')
	}
	if a.Receipts {
		b = append(b, `,"r":true`...)
	}
	if a.Generation != 0 {
		b = append(b, `,"g":`...)
		b = strconv.AppendInt(b, a.Generation, 10)
	}
	if a.Acks {
		b = append(b, `,"a":true`...)
	}
	if len(a.PeerIdentity) > 0 {
		b = append(b, `,"pi":`...)
		if b, ok = wire.AppendCompact(b, a.PeerIdentity); !ok {
			return wire.MarshalVerbatim(a)
		}
	}
	if a.TapOf != "" {
		b = append(b, `,"tap":`...)
		b = wire.AppendVerbatimString(b, a.TapOf)
	}
	return append(b, '}')
}

// DecodeAttachment parses what Encode produced.
func DecodeAttachment(encoded []byte) (Attachment, error) {
	var a Attachment
	err := json.Unmarshal(encoded, &a)
	return a, err
}
