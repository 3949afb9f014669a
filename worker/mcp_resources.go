package worker

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/ams-dev/ams/wire"
)

// Prompts and resources (PROTOCOL §6, the reference's D0023 surface). The
// prompts are the conversation's metadata.prompts, served verbatim; the
// resources are the protocol, the conversation conventions, the
// conversation's record and its live peers. The conversation is the
// endpoint's (a magic link), else the one the session joined.

// rpcResourceNotFound is MCP's error for an unknown resource URI.
const rpcResourceNotFound = -32002

// context is the conversation prompts and resources are about, nil when the
// call has none.
func (c *mcpCall) context(ctx context.Context) (*ConversationRecord, error) {
	if c.bound != nil {
		return c.bound, nil
	}
	if c.session == nil {
		return nil, nil
	}
	st, err := c.sessionOp(ctx, "get", "")
	if err != nil {
		return nil, err
	}
	h, ok := c.s.Peppers.OpenHandle(st.Handle)
	if !ok {
		return nil, nil
	}
	rec, err := c.s.findConversation(ctx, h.Namespace, h.Alias)
	if err != nil || rec.ConversationID != h.ConversationID {
		return nil, nil
	}
	return rec, nil
}

// prompts are the conversation's metadata.prompts that name themselves.
func prompts(rec *ConversationRecord) []gjson.Result {
	if rec == nil {
		return nil
	}
	var out []gjson.Result
	for _, p := range gjson.GetBytes(rec.Metadata, "prompts").Array() {
		if p.IsObject() && p.Get("name").Type == gjson.String {
			out = append(out, p)
		}
	}
	return out
}

func (c *mcpCall) listPrompts(ctx context.Context) (map[string]any, *rpcError) {
	rec, err := c.context(ctx)
	if err != nil {
		return nil, c.rpcFailure(err)
	}
	list := []map[string]json.RawMessage{}
	for _, p := range prompts(rec) {
		entry := map[string]json.RawMessage{"name": json.RawMessage(p.Get("name").Raw)}
		for _, k := range []string{"title", "description", "arguments"} {
			if v := p.Get(k); v.Exists() {
				entry[k] = json.RawMessage(v.Raw)
			}
		}
		list = append(list, entry)
	}
	return map[string]any{"prompts": list}, nil
}

func (c *mcpCall) getPrompt(ctx context.Context, params json.RawMessage) (map[string]any, *rpcError) {
	rec, err := c.context(ctx)
	if err != nil {
		return nil, c.rpcFailure(err)
	}
	name := gjson.GetBytes(params, "name").Str
	for _, p := range prompts(rec) {
		if p.Get("name").Str != name {
			continue
		}
		out := map[string]any{"messages": json.RawMessage("[]")}
		if m := p.Get("messages"); m.IsArray() {
			out["messages"] = json.RawMessage(m.Raw)
		}
		if d := p.Get("description"); d.Exists() {
			out["description"] = json.RawMessage(d.Raw)
		}
		return out, nil
	}
	return nil, &rpcError{Code: rpcInvalidParams, Message: "no prompt " + name}
}

type resource struct {
	URI         string `json:"uri"`
	Name        string `json:"name"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	MimeType    string `json:"mimeType"`
}

func (c *mcpCall) resources(rec *ConversationRecord) []resource {
	list := []resource{
		{URI: "ams://protocol", Name: "ams-protocol", Title: "AMS wire protocol", MimeType: "text/markdown",
			Description: "The routes, frames and close codes of this service."},
		{URI: "ams://conventions/v1", Name: "ams-conventions-v1", Title: "Conversation conventions (v1)", MimeType: "text/markdown",
			Description: "The ams.convention.v1 manifest peers put in stream_metadata.capabilities."},
	}
	if rec != nil {
		base := "ams://conversations/" + rec.ConversationID
		list = append(list,
			resource{URI: base, Name: "ams-conversation", Title: "Conversation " + rec.Alias, MimeType: "application/json",
				Description: "The conversation's record: id, alias, namespace, creation time, metadata."},
			resource{URI: base + "/peers", Name: "ams-conversation-peers", Title: "Peers of " + rec.Alias, MimeType: "application/json",
				Description: "The streams live in the conversation now."})
	}
	return list
}

func (c *mcpCall) listResources(ctx context.Context) (map[string]any, *rpcError) {
	rec, err := c.context(ctx)
	if err != nil {
		return nil, c.rpcFailure(err)
	}
	return map[string]any{"resources": c.resources(rec)}, nil
}

func (c *mcpCall) readResource(ctx context.Context, params json.RawMessage) (map[string]any, *rpcError) {
	rec, err := c.context(ctx)
	if err != nil {
		return nil, c.rpcFailure(err)
	}
	uri := gjson.GetBytes(params, "uri").Str
	var text, mime string
	switch {
	case uri == "ams://protocol":
		text, mime = protocolText(), "text/markdown"
	case uri == "ams://conventions/v1":
		text, mime = conventionsText, "text/markdown"
	case rec != nil && uri == "ams://conversations/"+rec.ConversationID:
		text, mime = string(wire.MarshalVerbatim(map[string]any{
			"conversation_id": rec.ConversationID, "alias": rec.Alias, "namespace": rec.Namespace,
			"owner_account_id": rec.OwnerAccountID, "created_at": rec.CreatedAt, "metadata": rec.Metadata,
		})), "application/json"
	case rec != nil && uri == "ams://conversations/"+rec.ConversationID+"/peers":
		streams, err := c.s.Objects.Streams(ctx, rec.ConversationID)
		if err != nil {
			return nil, c.rpcFailure(err)
		}
		if streams == nil {
			streams = []wire.StreamInfo{}
		}
		text, mime = string(wire.MarshalVerbatim(map[string]any{"peers": streams})), "application/json"
	default:
		return nil, &rpcError{Code: rpcResourceNotFound, Message: "no resource " + uri, Data: map[string]string{"uri": uri}}
	}
	return map[string]any{"contents": []map[string]string{{"uri": uri, "mimeType": mime, "text": text}}}, nil
}

// rpcFailure is an error of prompts or resources as a JSON-RPC error.
func (c *mcpCall) rpcFailure(err error) *rpcError {
	return &rpcError{Code: -32603, Message: err.Error()}
}

// protocolText is the protocol as an agent reads it: the documented routes,
// the frames and the close codes.
func protocolText() string {
	var b strings.Builder
	b.WriteString("# AMS wire protocol\n\nA conversation, addressed by its magic link, holds streams; every frame a stream emits reaches every other stream's subscribers, never the emitter (unless self_subscribe). Token data is opaque and relayed byte for byte.\n\n## Routes\n")
	for _, route := range Routes {
		if route.Doc != "" {
			b.WriteString("- `" + allowed(route) + " " + route.Pattern + "`: " + route.Doc + "\n")
		}
	}
	b.WriteString("- `POST /mcp`, `POST {magic_link}`: this MCP endpoint.\n\n## Frames\n" +
		"Client: `{\"type\":\"token\",\"data\":\"...\"}`, `{\"type\":\"set_metadata\",\"metadata\":{...}}`, `{\"type\":\"ping\"}`.\n" +
		"Server: `joined` (first), `token`, `stream_joined`, `stream_left`, `stream_metadata`, each with the conversation's `seq`; `pong`.\n" +
		"Over MCP, ams_recv returns them as `{method: \"notifications/ams/<type>\", params: <frame without type>}`.\n\n## Close codes\n")
	for _, c := range []wire.Close{wire.CloseInvalidMagicLink, wire.CloseStreamDisplaced, wire.CloseMagicLinkRotated, wire.CloseInvalidCredential,
		wire.CloseConcurrencyLimit, wire.CloseConversationFull, wire.CloseStreamNameOwnerConflict, wire.CloseConversationNotFound,
		wire.CloseMalformedFrame, wire.CloseUnknownFrameType, wire.CloseTokenTooLarge, wire.CloseMetadataTooLarge,
		wire.CloseSubscriberBackpressure, wire.CloseInternalError} {
		b.WriteString("- " + strconv.Itoa(c.Code) + " `" + c.Reason + "`\n")
	}
	return b.String()
}

const conventionsText = `# Conversation conventions (ams.convention.v1)

Peers describe themselves in their stream metadata. By convention,
stream_metadata.capabilities["ams.convention.v1"] is an object with:

- role: what the peer is in this conversation (e.g. "assistant", "reviewer", "operator", "observer").
- function: what it does, in a few words.
- posture: how it takes part ("active", "passive", "on_request").
- scope: what it attends to (stream names, topics).
- attestation: optional claims about itself (model, owner, signature).

The broker never reads or checks it: metadata is relayed verbatim. Read peers'
manifests from joined.peers, stream_joined and stream_metadata frames.
`
