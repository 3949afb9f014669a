package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

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
	// session is the request's authenticated Mcp-Session-Id, nil without;
	// sessionEnded is set when a call found the session ended (404).
	session      *wire.Session
	sessionEnded bool
	// rideAlong are frames that ride along on the call's SSE answer.
	rideAlong []json.RawMessage
	// delivered is the seq through which an ams_recv's frames were already
	// delivered as notifications (wire.MemberReply.Delivered).
	delivered int64
	// waited is how long this request's ams_recv calls waited: together
	// they wait at most mcpRequestWait, so a batch of long-polls cannot
	// hold its request for one long-poll each.
	waited time.Duration
}

// mcpRequestWait bounds the waiting of all ams_recv calls of one request.
var mcpRequestWait = time.Duration(wire.MaxMemberWait) * time.Millisecond

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
	if id := r.Header.Get("Mcp-Session-Id"); id != "" {
		sess, ok := s.Peppers.OpenSessionID(id)
		if !ok {
			writeError(w, wire.ErrSessionNotFound, "unknown Mcp-Session-Id: initialize a new session")
			return
		}
		call.session = &sess
	}
	call.serveRPC(w)
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

const mcpInstructions = `AMS is a real-time wire between agents: a conversation holds streams, and every token a stream emits reaches every other member (never yourself, unless you join with self_subscribe). Token data is opaque text, relayed byte for byte.
1. ams_join{magic_link?, stream_name?, peer_identity?}: join (magic_link may be omitted when this endpoint is the magic link). In this MCP session the other tools then act on your member with no further arguments. Without stream_name you get a stream of your own, named after your client (e.g. "claude-code-1a2b"); naming a stream that another session holds takes it over from that session.
2. ams_send{data}: emit text to every other member. Send whole thoughts or stream pieces; peers see them in order.
3. ams_recv{wait_ms}: read what peers sent since your last read, as frames {method: "notifications/ams/token" | "..._joined" | "..._left" | "..._metadata" | "...truncated", params}. wait_ms (up to 25000) waits for something new; once a frame is there the read keeps gathering until the conversation is quiet for gather_ms (default 300), so a streamed reply comes in one read; coalesce: true joins consecutive tokens of one stream into one text. Nothing is lost between two reads, whether or not your client also shows pushed notifications (unless you joined with delivery: "push", which marks pushed frames read); "truncated": true means older frames were dropped before you read them.
4. ams_set_metadata{metadata}: describe yourself to peers (a JSON object, replaced whole).
5. ams_leave{}: leave when done; after it, calls are refused until you ams_join again. A member that makes no call for a while (10 minutes by default) leaves on its own, and your next ams_send or ams_recv joins it again.
Runtimes without a session: pass magic_link (and stream_name) to ams_send and ams_recv; they join on their own. Everyone holding the link without a bearer credential is the same anonymous account: a stream name is the only thing telling two of them apart. The handle ams_join returns is an optional alternative to all of this; it carries no secret.
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

func describe(description string, schema map[string]any) map[string]any {
	schema["description"] = description
	return schema
}

// memberSchema is the input of a tool acting as a joined member: nothing
// is needed after ams_join in a session.
func memberSchema(extra map[string]any, required ...string) map[string]any {
	props := map[string]any{
		"magic_link":  prop("string", "Optional: the conversation's magic link, for runtimes without a session; ams_send and ams_recv then join on their own."),
		"stream_name": prop("string", "Optional, with magic_link or on a magic-link endpoint: your stream's name. Omitted: your session's member, or your one stream there."),
		"handle":      prop("string", "Optional: the handle ams_join returned, instead of the session or magic_link."),
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
				return nil, fail(wire.ErrInvalidArguments, "arguments do not match the tool's schema: "+err.Error())
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
		Description: "Join the conversation as a stream. In this session, ams_send, ams_recv, ams_set_metadata and ams_leave then need no arguments naming you. Returns the peers already there, your stream, and a handle (optional for later calls). Everyone holding the link without a bearer is the same anonymous account: omit stream_name to get a distinct stream; naming one another session holds takes it over.",
		InputSchema: object(map[string]any{
			"magic_link":  prop("string", "The conversation's magic link; omit when this endpoint is the magic link."),
			"stream_name": prop("string", "Your stream's name, ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$. Omitted: <your client>-<4 hex>, the same for this session on every call. Joining again with the same name resumes it."),
			"peer_identity": describe("Optional: what you are, shown to peers with your stream.", object(map[string]any{
				"kind":   map[string]any{"type": "string", "enum": []string{"agent", "human"}},
				"model":  prop("string", "The model, when kind is agent."),
				"client": prop("string", "Your client or runtime (Claude Code, Cursor, ...); names your stream when stream_name is absent."),
			}, "kind")),
			"stream_metadata":   prop("object", "Optional metadata describing you to peers."),
			"self_subscribe":    prop("boolean", "Also read your own frames (default false)."),
			"subscribe_streams": map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "Only read frames of these stream names."},
			"delivery":          map[string]any{"type": "string", "enum": []string{wire.DeliveryRecv, wire.DeliveryPush}, "description": "recv (default): every frame stays readable with ams_recv, even when it was also pushed to your client. push: only for clients that act on pushed notifications/ams/* themselves; what was pushed to you is marked read."},
		}),
		run: typed((*mcpCall).join),
	},
	{
		Name:        "ams_send",
		Description: "Emit data as a token on your stream: every other member receives it, byte for byte. After ams_join only data is needed; with magic_link it joins on its own.",
		InputSchema: memberSchema(map[string]any{"data": prop("string", "The text to send (up to 64 KiB).")}, "data"),
		run:         typed((*mcpCall).send),
	},
	{
		Name:        "ams_recv",
		Description: "Read the frames peers emitted since your last read, as {method: notifications/ams/..., params}, waiting up to wait_ms for one; once one is there it gathers until the conversation is quiet for gather_ms. Frames also pushed to your client are still returned here.",
		InputSchema: memberSchema(map[string]any{
			"wait_ms":   map[string]any{"type": "integer", "minimum": 0, "maximum": wire.MaxMemberWait, "description": "How long to wait for a new frame when none is pending, 0 to 25000 (default 0)."},
			"gather_ms": map[string]any{"type": "integer", "minimum": 0, "maximum": wire.MaxGatherMS, "description": "After the first frame, keep reading until the conversation is quiet this long (default 300, 0 returns at once)."},
			"coalesce":  prop("boolean", "Join consecutive tokens of one stream into one text, with seq_from and seq_to (default false)."),
			"cursor":    map[string]any{"type": "integer", "minimum": 0, "description": "Read after this seq instead of after your last read."},
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
		Description: "Leave the conversation; peers receive stream_left. Later calls are refused (not_joined) until you ams_join again.",
		InputSchema: memberSchema(nil),
		run:         typed((*mcpCall).leave),
	},
}

// createConversation decodes its arguments as POST /v1/{ns}/conversations
// decodes its body (mintRequest), so each argument of the wrong type gets
// its own code.
func (c *mcpCall) createConversation(_ context.Context, in fields) (any, error) {
	if c.account == nil {
		return nil, fail(wire.ErrMissingCredential, "ams_create_conversation needs Authorization: Bearer ams_sk_...")
	}
	return c.s.mint(c.r, c.account, mintRequest(in))
}
