package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/tidwall/gjson"

	"github.com/ams-dev/ams/wire"
)

// The MCP edge wrapper (PROTOCOL §6) serves Streamable HTTP at POST /mcp and
// at POST {magic link}, where the conversation is pre-bound. It keeps nothing
// in Worker memory: a joined member's identity and read position live in the
// conversation's Durable Object, addressed by the handle ams_join returns, so
// any isolate serves any call. mcp_rpc.go speaks JSON-RPC for every protocol
// revision; this file is the tools.

// mcpCall is the context of one MCP request.
type mcpCall struct {
	s *Service
	r *http.Request
	// account is the bearer's account, nil when the caller sent none.
	account *Account
	// bound is the conversation of a magic-link route, with its token.
	bound      *ConversationRecord
	boundToken string
}

// serveMCP is POST /mcp and POST {magic link}. An invalid bearer is refused
// outright, never downgraded to the anonymous identity.
func (s *Service) serveMCP(w http.ResponseWriter, r *http.Request, p params) {
	call := &mcpCall{s: s, r: r}
	ctx := r.Context()
	if credential := bearer(r); credential != "" {
		acc, err := s.authenticate(ctx, credential)
		if err != nil {
			respond(w, err)
			return
		}
		call.account = acc
	}
	if p.alias != "" {
		token := r.URL.Query().Get("t")
		if token == "" {
			writeError(w, wire.ErrMissingToken, "the magic link's t is missing")
			return
		}
		rec, err := s.verifyLink(ctx, p.ns, p.alias, token)
		if err != nil {
			respond(w, err)
			return
		}
		call.bound, call.boundToken = rec, token
	}
	call.serveRPC(w)
}

// endMCPSession answers DELETE: sessions hold no state, so there is nothing
// to end, and any isolate may say so.
func (s *Service) endMCPSession(w http.ResponseWriter, _ *http.Request, _ params) {
	w.WriteHeader(http.StatusNoContent)
}

// verifyLink resolves a conversation and checks its link token.
func (s *Service) verifyLink(ctx context.Context, ns, alias, token string) (*ConversationRecord, error) {
	rec, err := s.findConversation(ctx, ns, alias)
	if err != nil {
		return nil, err
	}
	if rec, err = s.currentLink(ctx, rec, token); err != nil || rec != nil {
		return rec, err
	}
	return nil, fail(wire.ErrInvalidToken, "the link token is not valid for this conversation")
}

const mcpInstructions = `AMS is a real-time wire between agents: a conversation holds streams, and every token a stream emits reaches every other member. You are a member once you join.
1. ams_join: join the conversation (pass magic_link unless this endpoint is the magic link itself). Keep the returned handle.
2. ams_send{handle, data}: emit text to every other member. Send whole thoughts or stream pieces; peers see them in order.
3. ams_recv{handle, wait_ms}: read what peers sent since your last read (token, stream_joined, stream_left, stream_metadata frames). wait_ms up to 25000 waits for something new. Nothing is lost between two reads; "truncated": true means older frames were dropped before you read them.
4. ams_set_metadata{handle, metadata}: describe yourself to peers (a JSON object, replaced whole).
5. ams_leave{handle}: leave when done. A member that makes no call for a while (10 minutes by default) leaves on its own.
ams_create_conversation (bearer credential required) mints a new conversation and returns its magic link, which you can hand to other agents.`

// instructions teaches an agent the tools, and the bound conversation's own
// metadata.instructions.
func (c *mcpCall) instructions() string {
	text := mcpInstructions
	if c.bound != nil {
		text += "\nThis endpoint is bound to conversation " + c.bound.Alias + " (" + c.bound.ConversationID + "): ams_join needs no magic_link."
		if extra := gjson.GetBytes(c.bound.Metadata, "instructions"); extra.Type == gjson.String && extra.Str != "" {
			text += "\nThe conversation's own instructions: " + extra.Str
		}
	}
	return text
}

// tool is one MCP tool: its description, its input JSON Schema and its logic,
// which returns the structured result or an error carrying a protocol code.
type tool struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	InputSchema map[string]any `json:"inputSchema"`
	run         func(c *mcpCall, ctx context.Context, args json.RawMessage) (any, error)
}

func prop(typ, description string) map[string]any {
	return map[string]any{"type": typ, "description": description}
}

func object(props map[string]any, required ...string) map[string]any {
	schema := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		schema["required"] = required
	}
	return schema
}

// memberSchema is the input of a tool acting as a joined member.
func memberSchema(extra map[string]any, required ...string) map[string]any {
	props := map[string]any{
		"handle":      prop("string", "The handle ams_join returned."),
		"stream_name": prop("string", "Instead of handle, on a magic-link endpoint: the stream name you joined with."),
	}
	for k, v := range extra {
		props[k] = v
	}
	return object(props, required...)
}

// typed adapts a tool function taking decoded arguments.
func typed[In any](fn func(c *mcpCall, ctx context.Context, in In) (any, error)) func(*mcpCall, context.Context, json.RawMessage) (any, error) {
	return func(c *mcpCall, ctx context.Context, args json.RawMessage) (any, error) {
		var in In
		if len(args) > 0 && string(args) != "null" {
			if err := json.Unmarshal(args, &in); err != nil {
				return nil, fail(wire.Error{Status: 400, Code: "invalid_arguments"}, "arguments do not match the tool's schema: "+err.Error())
			}
		}
		return fn(c, ctx, in)
	}
}

var mcpTools = []tool{
	{
		Name:        "ams_create_conversation",
		Description: "Mint a new AMS conversation owned by your account (requires a bearer credential). Returns its magic_link: hand it to other agents so they can join.",
		InputSchema: object(map[string]any{
			"alias":           prop("string", "Optional readable name, ^[a-z0-9][a-z0-9-]{0,62}$; generated when absent."),
			"stream_name":     prop("string", "Optional name of your own stream in it."),
			"metadata":        prop("object", "Optional conversation metadata; an \"instructions\" string is shown to agents that join."),
			"stream_metadata": prop("object", "Optional metadata of your stream."),
		}),
		run: typed((*mcpCall).createConversation),
	},
	{
		Name:        "ams_join",
		Description: "Join the conversation as a stream. Returns a handle for the other tools, the peers already there, and a cursor.",
		InputSchema: object(map[string]any{
			"magic_link":        prop("string", "The conversation's magic link; omit when this endpoint is the magic link."),
			"stream_name":       prop("string", "Your stream's name, ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$; generated when absent. Joining again with the same name resumes it."),
			"stream_metadata":   prop("object", "Optional metadata describing you to peers."),
			"self_subscribe":    prop("boolean", "Also read your own frames (default false)."),
			"subscribe_streams": map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "Only read frames of these stream names."},
		}),
		run: typed((*mcpCall).join),
	},
	{
		Name:        "ams_send",
		Description: "Emit data as a token on your stream: every other member receives it.",
		InputSchema: memberSchema(map[string]any{"data": prop("string", "The text to send (up to 64 KiB).")}, "data"),
		run:         typed((*mcpCall).send),
	},
	{
		Name:        "ams_recv",
		Description: "Read the frames peers emitted since your last read (or since cursor), waiting up to wait_ms for one to arrive.",
		InputSchema: memberSchema(map[string]any{
			"wait_ms": map[string]any{"type": "integer", "minimum": 0, "maximum": wire.MaxMemberWait, "description": "How long to wait for a new frame when none is pending, 0 to 25000 (default 0)."},
			"cursor":  map[string]any{"type": "integer", "minimum": 0, "description": "Read after this seq instead of after your last read."},
		}),
		run: typed((*mcpCall).recv),
	},
	{
		Name:        "ams_set_metadata",
		Description: "Replace your stream's metadata; peers receive a stream_metadata frame.",
		InputSchema: memberSchema(map[string]any{"metadata": prop("object", "The new metadata object.")}, "metadata"),
		run:         typed((*mcpCall).setMetadata),
	},
	{
		Name:        "ams_leave",
		Description: "Leave the conversation; peers receive stream_left.",
		InputSchema: memberSchema(nil),
		run:         typed((*mcpCall).leave),
	},
}

type createInput struct {
	Alias          *string         `json:"alias"`
	StreamName     *string         `json:"stream_name"`
	Metadata       json.RawMessage `json:"metadata"`
	StreamMetadata json.RawMessage `json:"stream_metadata"`
}

func (c *mcpCall) createConversation(_ context.Context, in createInput) (any, error) {
	if c.account == nil {
		return nil, fail(wire.ErrMissingCredential, "ams_create_conversation needs Authorization: Bearer ams_sk_...")
	}
	return c.s.mint(c.r, c.account, createConversationBody{
		Alias: in.Alias, StreamName: in.StreamName, Metadata: in.Metadata, StreamMetadata: in.StreamMetadata,
	})
}

// memberHandle addresses a joined member across calls and isolates. It
// carries the magic link, so it is as secret as the link itself.
type memberHandle struct {
	ConversationID string `json:"c"`
	StreamName     string `json:"s"`
	MagicLink      string `json:"l"`
}

func (h memberHandle) encode() string {
	raw, _ := json.Marshal(h)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func decodeHandle(s string) (memberHandle, bool) {
	var h memberHandle
	raw, err := base64.RawURLEncoding.DecodeString(s)
	return h, err == nil && json.Unmarshal(raw, &h) == nil && h.ConversationID != "" && h.StreamName != ""
}

// conversation resolves the conversation a call names: its magic_link
// argument, else the endpoint's.
func (c *mcpCall) conversation(ctx context.Context, magicLink string) (*ConversationRecord, string, string, error) {
	if magicLink == "" {
		if c.bound == nil {
			return nil, "", "", fail(wire.Error{Status: 400, Code: wire.CloseInvalidMagicLink.Reason}, "pass magic_link, or call the magic link itself as the MCP endpoint")
		}
		return c.bound, c.boundToken, MagicLink(c.r, c.bound.Namespace, c.bound.Alias, c.boundToken), nil
	}
	link, err := wire.ParseMagicLink(magicLink)
	if err != nil || link.Token == "" {
		return nil, "", "", fail(wire.Error{Status: 400, Code: wire.CloseInvalidMagicLink.Reason}, "magic_link is not a magic link")
	}
	rec, err := c.s.verifyLink(ctx, link.Namespace, link.Alias, link.Token)
	if err != nil {
		return nil, "", "", err
	}
	return rec, link.Token, magicLink, nil
}

// accountFor is the caller's account id: the bearer's, or the anonymous
// account of the link token.
func (c *mcpCall) accountFor(token string) string {
	if c.account != nil {
		return c.account.AccountID
	}
	return c.s.Peppers.AnonAccountID(token)
}

type joinInput struct {
	MagicLink        string          `json:"magic_link"`
	StreamName       string          `json:"stream_name"`
	StreamMetadata   json.RawMessage `json:"stream_metadata"`
	SelfSubscribe    bool            `json:"self_subscribe"`
	SubscribeStreams []string        `json:"subscribe_streams"`
}

func (c *mcpCall) join(ctx context.Context, in joinInput) (any, error) {
	rec, token, link, err := c.conversation(ctx, in.MagicLink)
	if err != nil {
		return nil, err
	}
	name := in.StreamName
	if name == "" {
		name = wire.NewDefaultStreamName()
	} else if !wire.ValidStreamName(name) {
		return nil, fail(wire.ErrInvalidStreamName, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
	}
	metadata, err := metadataField(in.StreamMetadata, c.s.Limits.MetadataBytes, wire.ErrInvalidStreamMetadata, "stream_metadata")
	if err != nil {
		return nil, err
	}
	subscribe, ok := subscribeList(in.SubscribeStreams, c.s.Limits.SubscribeStreams)
	if !ok {
		return nil, fail(wire.Error{Status: 400, Code: wire.CloseInvalidSubscribeStreams.Reason}, "subscribe_streams must be valid stream names")
	}
	accountID := c.accountFor(token)
	streamID := c.s.Peppers.StreamID(rec.ConversationID, accountID, name)
	reply, err := c.member(ctx, "join", wire.MemberCall{
		ConversationID: rec.ConversationID, AccountID: accountID, StreamID: streamID,
		Join: &wire.Join{
			ConversationID: rec.ConversationID, AccountID: accountID, StreamID: streamID, StreamName: name,
			Metadata: metadata, SelfSubscribe: in.SelfSubscribe, SubscribeStreams: subscribe,
			LinkGeneration: rec.LinkGeneration,
		},
	})
	if err != nil {
		return nil, err
	}
	var joined struct {
		Peers []wire.StreamInfo `json:"peers"`
	}
	_ = json.Unmarshal(reply.Joined, &joined)
	return map[string]any{
		"handle":           memberHandle{ConversationID: rec.ConversationID, StreamName: name, MagicLink: link}.encode(),
		"conversation_id":  rec.ConversationID,
		"alias":            rec.Alias,
		"stream_id":        streamID,
		"stream_name":      name,
		"owner_account_id": accountID,
		"metadata":         rec.Metadata,
		"peers":            joined.Peers,
		"cursor":           reply.Cursor,
		"joined":           reply.Joined,
	}, nil
}

// memberInput names the member a call is about.
type memberInput struct {
	Handle     string `json:"handle"`
	StreamName string `json:"stream_name"`
}

// target resolves a member call to its conversation, account and stream.
func (c *mcpCall) target(in memberInput) (wire.MemberCall, error) {
	var convID, name, token string
	if h, ok := decodeHandle(in.Handle); ok {
		convID, name = h.ConversationID, h.StreamName
		if link, err := wire.ParseMagicLink(h.MagicLink); err == nil {
			token = link.Token
		}
	} else if in.Handle == "" && in.StreamName != "" && c.bound != nil {
		convID, name, token = c.bound.ConversationID, in.StreamName, c.boundToken
	} else {
		return wire.MemberCall{}, fail(wire.ErrNotJoined, "pass the handle ams_join returned")
	}
	if c.account == nil && token == "" {
		return wire.MemberCall{}, fail(wire.ErrMissingCredential, "no bearer and no link token to act as")
	}
	accountID := c.accountFor(token)
	return wire.MemberCall{ConversationID: convID, AccountID: accountID, StreamID: c.s.Peppers.StreamID(convID, accountID, name)}, nil
}

// member runs an operation on the conversation object and turns a refusal
// into a tool error with its protocol code.
func (c *mcpCall) member(ctx context.Context, op string, call wire.MemberCall) (wire.MemberReply, error) {
	reply, err := c.s.Objects.Member(ctx, op, call)
	if err != nil {
		return reply, err
	}
	if reply.Error != "" {
		return reply, fail(wire.Error{Status: 409, Code: reply.Error}, reply.Message)
	}
	return reply, nil
}

type sendInput struct {
	memberInput
	Data string `json:"data"`
}

func (c *mcpCall) send(ctx context.Context, in sendInput) (any, error) {
	call, err := c.target(in.memberInput)
	if err != nil {
		return nil, err
	}
	call.Data = &in.Data
	reply, err := c.member(ctx, "send", call)
	if err != nil {
		return nil, err
	}
	return map[string]int64{"seq": reply.Seq}, nil
}

type recvInput struct {
	memberInput
	WaitMS int    `json:"wait_ms"`
	Cursor *int64 `json:"cursor"`
}

func (c *mcpCall) recv(ctx context.Context, in recvInput) (any, error) {
	call, err := c.target(in.memberInput)
	if err != nil {
		return nil, err
	}
	call.WaitMS, call.Cursor = min(max(in.WaitMS, 0), wire.MaxMemberWait), in.Cursor
	reply, err := c.member(ctx, "recv", call)
	if err != nil {
		return nil, err
	}
	frames := reply.Frames
	if frames == nil {
		frames = []json.RawMessage{}
	}
	return map[string]any{"frames": frames, "cursor": reply.Cursor, "truncated": reply.Truncated}, nil
}

type metadataInput struct {
	memberInput
	Metadata json.RawMessage `json:"metadata"`
}

func (c *mcpCall) setMetadata(ctx context.Context, in metadataInput) (any, error) {
	call, err := c.target(in.memberInput)
	if err != nil {
		return nil, err
	}
	if !wire.IsJSONObject(in.Metadata) {
		return nil, fail(wire.ErrInvalidMetadata, "metadata must be a JSON object")
	}
	metadata, err := metadataField(in.Metadata, c.s.Limits.MetadataBytes, wire.ErrInvalidMetadata, "metadata")
	if err != nil {
		return nil, err
	}
	call.Metadata = metadata
	reply, err := c.member(ctx, "metadata", call)
	if err != nil {
		return nil, err
	}
	return map[string]int64{"seq": reply.Seq}, nil
}

func (c *mcpCall) leave(ctx context.Context, in memberInput) (any, error) {
	call, err := c.target(in)
	if err != nil {
		return nil, err
	}
	if _, err := c.member(ctx, "leave", call); err != nil {
		return nil, err
	}
	return map[string]bool{"left": true}, nil
}

// subscribeList checks ams_join's subscribe_streams element by element: each
// a valid stream name, duplicates dropped, at most max.
func subscribeList(names []string, max int) ([]string, bool) {
	if names == nil {
		return nil, true
	}
	var out []string
	for _, name := range names {
		if !wire.ValidStreamName(name) {
			return nil, false
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, len(out) <= max
}
