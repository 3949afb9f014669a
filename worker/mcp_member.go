package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/ams-dev/ams/wire"
)

// The member tools. A call names its member in one of three ways, tried in
// this order: a handle (authenticated, wire.MemberHandle); a magic link (the
// magic_link argument, or the endpoint's own) with stream_name, or the
// session's member of that conversation, or — without a session — the
// caller's one member there; and, with neither, the member the session
// joined, which the session's object remembers. send and recv join a member
// that is absent on their own (self-rehydration), unless its reader left
// it or was taken over: a member belongs to the one join (its reader) that
// made it, so two sessions never share a read position.

// errSessionEnded is a call in a session that was ended with DELETE.
var errSessionEnded = fail(wire.ErrSessionNotFound, "this MCP session was ended: initialize a new one")

// sessionOp runs op on the request's session object.
func (c *mcpCall) sessionOp(ctx context.Context, op, handle string) (wire.SessionState, error) {
	st, err := c.s.Objects.Session(ctx, c.session.Nonce, op, wire.SessionState{Handle: handle})
	if err != nil {
		return st, err
	}
	if st.Ended && op != "end" {
		c.sessionEnded = true
		return st, errSessionEnded
	}
	return st, nil
}

// seal is the handle of the member name of account in rec, owned by reader.
func (c *mcpCall) seal(rec *ConversationRecord, accountID, name, reader string, identity json.RawMessage, pushOnly bool) string {
	return c.s.Peppers.SealHandle(wire.MemberHandle{
		ConversationID: rec.ConversationID, Namespace: rec.Namespace, Alias: rec.Alias,
		AccountID: accountID, StreamName: name, Reader: reader, Generation: rec.LinkGeneration,
		PeerIdentity: identity, PushOnly: pushOnly,
	})
}

// memberInput names the member a call is about.
type memberInput struct {
	Handle     string `json:"handle"`
	MagicLink  string `json:"magic_link"`
	StreamName string `json:"stream_name"`
}

// target is a resolved member call, and the handle to bind the session to
// once the call succeeds ("" for none).
type target struct {
	call wire.MemberCall
	bind string
	// held is the session's handle when the call acts on the member the
	// session is bound to: a call that rejoins it binds it again, so the
	// session's push leg taps the member anew (mcp_push.go).
	held string
}

func notJoined(message string) error { return fail(wire.ErrNotJoined, message) }

// target resolves a member call; rejoin lets it join an absent member.
func (c *mcpCall) target(ctx context.Context, in memberInput, rejoin bool) (target, error) {
	if in.StreamName != "" && !wire.ValidStreamName(in.StreamName) {
		return target{}, fail(wire.ErrInvalidStreamName, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
	}
	if in.Handle != "" {
		h, ok := c.s.Peppers.OpenHandle(in.Handle)
		if !ok {
			return target{}, notJoined("this handle was not issued by this service: call ams_join")
		}
		return c.fromHandle(ctx, h, rejoin)
	}
	var rec *ConversationRecord
	var token string
	switch {
	case in.MagicLink != "":
		var err error
		if rec, token, _, err = c.conversation(ctx, in.MagicLink); err != nil {
			return target{}, err
		}
	case c.bound != nil:
		rec, token = c.bound, c.boundToken
	}
	if rec == nil {
		if c.session == nil {
			return target{}, notJoined("call ams_join first, or pass magic_link")
		}
		st, err := c.sessionOp(ctx, "get", "")
		if err != nil {
			return target{}, err
		}
		h, ok := c.s.Peppers.OpenHandle(st.Handle)
		if !ok {
			return target{}, notJoined("this session has not joined a conversation: call ams_join, or pass magic_link")
		}
		t, err := c.fromHandle(ctx, h, rejoin)
		t.held = st.Handle
		return t, err
	}
	account := c.accountFor(token)
	name, reader, bind, held, pushOnly := in.StreamName, "", "", "", false
	var identity json.RawMessage
	if c.session != nil {
		st, err := c.sessionOp(ctx, "get", "")
		if err != nil {
			return target{}, err
		}
		if h, ok := c.s.Peppers.OpenHandle(st.Handle); ok && h.ConversationID == rec.ConversationID &&
			h.AccountID == account && (name == "" || name == h.StreamName) {
			name, reader, identity, held, pushOnly = h.StreamName, h.Reader, h.PeerIdentity, st.Handle, h.PushOnly
		} else {
			if name == "" {
				name = c.s.Peppers.AutoStreamName(c.session.Client, c.session.Nonce)
			}
			reader = wire.NewReader()
			bind = c.seal(rec, account, name, reader, nil, false)
		}
	}
	t := target{call: wire.MemberCall{ConversationID: rec.ConversationID, AccountID: account, Reader: reader}, bind: bind, held: held}
	joinName := name
	if name != "" {
		t.call.StreamID = c.s.Peppers.StreamID(rec.ConversationID, account, name)
	} else {
		joinName = c.s.Peppers.AutoStreamName("", account)
	}
	if rejoin {
		t.call.Rejoin = c.rejoin(rec.ConversationID, account, joinName, rec.LinkGeneration, identity, pushOnly)
	}
	return t, nil
}

func (c *mcpCall) rejoin(conversationID, account, name string, generation int64, identity json.RawMessage, pushOnly bool) *wire.Join {
	return &wire.Join{
		ConversationID: conversationID, AccountID: account, StreamName: name,
		StreamID: c.s.Peppers.StreamID(conversationID, account, name),
		Metadata: wire.EmptyObject, LinkGeneration: generation, PeerIdentity: identity, PushOnly: pushOnly,
	}
}

// fromHandle checks a handle against the caller and the conversation's
// record before any object is reached: a handle of a bearer account needs
// that bearer, and a handle from before a rotation is stale.
func (c *mcpCall) fromHandle(ctx context.Context, h wire.MemberHandle, rejoin bool) (target, error) {
	switch {
	case c.account != nil && c.account.AccountID != h.AccountID:
		return target{}, notJoined("this handle belongs to another identity")
	case c.account == nil && !strings.HasPrefix(h.AccountID, wire.AnonAccountPrefix):
		return target{}, fail(wire.ErrMissingCredential, "this handle acts for an account: send its bearer credential")
	}
	rec, err := c.s.findConversation(ctx, h.Namespace, h.Alias)
	var ae *apiError
	if errors.As(err, &ae) || err == nil && rec.ConversationID != h.ConversationID {
		return target{}, notJoined("the conversation of this handle no longer exists")
	}
	if err != nil {
		return target{}, err
	}
	if h.Generation < rec.LinkGeneration {
		return target{}, notJoined("the magic link was rotated since this handle was issued: join again with the new link")
	}
	t := target{call: wire.MemberCall{
		ConversationID: h.ConversationID, AccountID: h.AccountID, Reader: h.Reader,
		StreamID: c.s.Peppers.StreamID(h.ConversationID, h.AccountID, h.StreamName),
	}}
	if rejoin {
		t.call.Rejoin = c.rejoin(h.ConversationID, h.AccountID, h.StreamName, h.Generation, h.PeerIdentity, h.PushOnly)
	}
	return t, nil
}

// run sends a member call to the conversation object, turns a refusal into
// a tool error with its protocol code, and binds the session on success.
func (c *mcpCall) run(ctx context.Context, op string, t target) (wire.MemberReply, error) {
	reply, err := c.s.Objects.Member(ctx, op, t.call)
	if err != nil {
		return reply, err
	}
	if reply.Error != "" {
		status := 409
		if reply.Error == wire.ErrNotJoined.Code {
			status = wire.ErrNotJoined.Status
		}
		return reply, fail(wire.Error{Status: status, Code: reply.Error}, reply.Message)
	}
	bind := t.bind
	if bind == "" && reply.Rejoined {
		bind = t.held
	}
	if bind != "" {
		if _, err := c.sessionOp(ctx, "bind", bind); err != nil {
			return reply, err
		}
	}
	return reply, nil
}

type joinInput struct {
	MagicLink        string          `json:"magic_link"`
	StreamName       string          `json:"stream_name"`
	StreamMetadata   json.RawMessage `json:"stream_metadata"`
	SelfSubscribe    bool            `json:"self_subscribe"`
	SubscribeStreams []string        `json:"subscribe_streams"`
	PeerIdentity     json.RawMessage `json:"peer_identity"`
	Delivery         string          `json:"delivery"`
}

func (c *mcpCall) join(ctx context.Context, in joinInput) (any, error) {
	rec, token, _, err := c.conversation(ctx, in.MagicLink)
	if err != nil {
		return nil, err
	}
	identity, client, ok := wire.ParsePeerIdentity(in.PeerIdentity)
	if !ok {
		return nil, fail(wire.ErrInvalidArguments, `peer_identity must be {"kind":"agent"|"human", "model"?: string, "client"?: string}`)
	}
	var pushOnly bool
	switch in.Delivery {
	case "", wire.DeliveryRecv:
	case wire.DeliveryPush:
		pushOnly = true
	default:
		return nil, fail(wire.ErrInvalidArguments, `delivery must be "recv" (the default: every frame stays readable with ams_recv) or "push" (what the push leg delivered is marked read)`)
	}
	accountID := c.accountFor(token)
	name, reader := in.StreamName, ""
	if c.session != nil {
		reader = wire.NewReader()
		if client == "" {
			client = c.session.Client
		}
	}
	switch {
	case name == "" && c.session != nil:
		name = c.s.Peppers.AutoStreamName(client, c.session.Nonce)
	case name == "":
		name = c.s.Peppers.AutoStreamName(client, accountID)
	case !wire.ValidStreamName(name):
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
	streamID := c.s.Peppers.StreamID(rec.ConversationID, accountID, name)
	handle := c.seal(rec, accountID, name, reader, identity, pushOnly)
	t := target{call: wire.MemberCall{
		ConversationID: rec.ConversationID, AccountID: accountID, StreamID: streamID, Reader: reader,
		Join: &wire.Join{
			ConversationID: rec.ConversationID, AccountID: accountID, StreamID: streamID, StreamName: name,
			Metadata: metadata, SelfSubscribe: in.SelfSubscribe, SubscribeStreams: subscribe,
			LinkGeneration: rec.LinkGeneration, PeerIdentity: identity, PushOnly: pushOnly,
		},
	}}
	if c.session != nil {
		t.bind = handle
	}
	reply, err := c.run(ctx, "join", t)
	if err != nil {
		return nil, err
	}
	joined := gjson.ParseBytes(reply.Joined)
	out := map[string]any{
		"ok":                    true,
		"conversation_id":       rec.ConversationID,
		"stream_id":             streamID,
		"stream_name":           name,
		"metadata":              json.RawMessage(joined.Get("metadata").Raw),
		"self_subscribe":        in.SelfSubscribe,
		"peers":                 json.RawMessage(joined.Get("peers").Raw),
		"handle":                handle,
		"cursor":                reply.Cursor,
		"alias":                 rec.Alias,
		"owner_account_id":      accountID,
		"conversation_metadata": rec.Metadata,
		"delivery":              wire.DeliveryRecv,
	}
	if pushOnly {
		out["delivery"] = wire.DeliveryPush
	}
	if joined.Get("resumed").Bool() {
		out["resumed"] = true
	}
	if sub := joined.Get("subscribed_streams"); sub.Exists() {
		out["subscribed_streams"] = json.RawMessage(sub.Raw)
	}
	if identity != nil {
		out["peer_identity"] = identity
	}
	return out, nil
}

type sendInput struct {
	memberInput
	Data json.RawMessage `json:"data"`
}

func (c *mcpCall) send(ctx context.Context, in sendInput) (any, error) {
	// data stays the JSON text the client sent, so peers get it byte for byte.
	if len(in.Data) == 0 || in.Data[0] != '"' {
		return nil, fail(wire.ErrInvalidArguments, "data is required and must be a string")
	}
	if !utf8.Valid(in.Data) {
		return nil, fail(wire.ErrInvalidArguments, "data must be valid UTF-8")
	}
	t, err := c.target(ctx, in.memberInput, true)
	if err != nil {
		return nil, err
	}
	t.call.Data = in.Data
	t.call.RideAlong = c.acceptsEvents()
	reply, err := c.run(ctx, "send", t)
	if err != nil {
		return nil, err
	}
	c.rideAlong = reply.Frames
	return withRejoined(map[string]any{"ok": true, "ts": reply.TS, "seq": reply.Seq, "stream_name": reply.StreamName}, reply), nil
}

// acceptsEvents says the answer may be an event stream, on which the
// member's unread frames ride along as notifications.
func (c *mcpCall) acceptsEvents() bool {
	return strings.Contains(c.r.Header.Get("Accept"), "text/event-stream")
}

func withRejoined(out map[string]any, reply wire.MemberReply) map[string]any {
	if reply.Rejoined {
		out["rejoined"] = true
	}
	return out
}

type recvInput struct {
	memberInput
	WaitMS   int    `json:"wait_ms"`
	Cursor   *int64 `json:"cursor"`
	GatherMS *int   `json:"gather_ms"`
	Coalesce bool   `json:"coalesce"`
}

func (c *mcpCall) recv(ctx context.Context, in recvInput) (any, error) {
	t, err := c.target(ctx, in.memberInput, true)
	if err != nil {
		return nil, err
	}
	left := int(max(mcpRequestWait-c.waited, 0) / time.Millisecond)
	t.call.WaitMS, t.call.Cursor = min(max(in.WaitMS, 0), wire.MaxMemberWait, left), in.Cursor
	t.call.GatherMS = min(wire.DefaultGatherMS, left)
	if in.GatherMS != nil {
		t.call.GatherMS = min(max(*in.GatherMS, 0), wire.MaxGatherMS, left)
	}
	started := time.Now()
	reply, err := c.run(ctx, "recv", t)
	c.waited += time.Since(started)
	if err != nil {
		return nil, err
	}
	frames := reply.Frames
	if in.Coalesce {
		frames = coalesceTokens(frames)
	}
	out := make([]json.RawMessage, 0, len(frames)+1)
	if reply.Truncated {
		out = append(out, json.RawMessage(`{"method":"notifications/ams/truncated","params":{}}`))
	}
	for _, f := range frames {
		out = append(out, notificationOf(f))
	}
	c.delivered = reply.Delivered
	return withRejoined(map[string]any{
		"ok": true, "frames": out, "truncated": reply.Truncated, "cursor": reply.Cursor, "stream_name": reply.StreamName,
	}, reply), nil
}

// notificationOf is a wire frame as the MCP notification a reference client
// expects: {method: "notifications/ams/<type>", params: the frame without
// type}, every value copied verbatim.
func notificationOf(frame json.RawMessage) json.RawMessage {
	parsed := gjson.ParseBytes(frame)
	b := []byte(`{"method":`)
	b = wire.AppendJSONString(b, "notifications/ams/"+parsed.Get("type").Str)
	b = append(b, `,"params":{`...)
	first := true
	parsed.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "type" {
			return true
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, k.Raw...)
		b = append(b, ':')
		b = append(b, v.Raw...)
		return true
	})
	return append(b, "}}"...)
}

// coalesceTokens joins each run of consecutive tokens of one stream into
// one token frame: its data is the run's data in order, its seq the last,
// and seq_from, seq_to and tokens say what it covers. Other frames pass.
func coalesceTokens(frames []json.RawMessage) []json.RawMessage {
	var out []json.RawMessage
	for i := 0; i < len(frames); {
		first := gjson.ParseBytes(frames[i])
		j := i + 1
		if first.Get("type").Str == wire.TypeToken {
			for j < len(frames) {
				next := gjson.ParseBytes(frames[j])
				if next.Get("type").Str != wire.TypeToken || next.Get("stream_id").Str != first.Get("stream_id").Str {
					break
				}
				j++
			}
		}
		if j == i+1 {
			out = append(out, frames[i])
			i = j
			continue
		}
		var data []byte
		for _, f := range frames[i:j] {
			raw := gjson.GetBytes(f, "data").Raw
			data = append(data, raw[1:len(raw)-1]...)
		}
		last := gjson.ParseBytes(frames[j-1])
		b := []byte{'{'}
		last.ForEach(func(k, v gjson.Result) bool {
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = append(append(b, k.Raw...), ':')
			if k.Str == "data" {
				b = append(append(append(b, '"'), data...), '"')
			} else {
				b = append(b, v.Raw...)
			}
			return true
		})
		b = append(b, `,"seq_from":`...)
		b = append(b, first.Get("seq").Raw...)
		b = append(b, `,"seq_to":`...)
		b = append(b, last.Get("seq").Raw...)
		b = append(b, `,"tokens":`...)
		b = strconv.AppendInt(b, int64(j-i), 10)
		out = append(out, append(b, '}'))
		i = j
	}
	return out
}

type metadataInput struct {
	memberInput
	Metadata json.RawMessage `json:"metadata"`
}

func (c *mcpCall) setMetadata(ctx context.Context, in metadataInput) (any, error) {
	if !wire.IsJSONObject(in.Metadata) {
		return nil, fail(wire.ErrInvalidMetadata, "metadata must be a JSON object")
	}
	metadata, err := metadataField(in.Metadata, c.s.Limits.MetadataBytes, wire.ErrInvalidMetadata, "metadata")
	if err != nil {
		return nil, err
	}
	t, err := c.target(ctx, in.memberInput, false)
	if err != nil {
		return nil, err
	}
	t.call.Metadata = metadata
	t.call.RideAlong = c.acceptsEvents()
	reply, err := c.run(ctx, "metadata", t)
	if err != nil {
		return nil, err
	}
	c.rideAlong = reply.Frames
	return map[string]any{"ok": true, "seq": reply.Seq, "stream_name": reply.StreamName}, nil
}

func (c *mcpCall) leave(ctx context.Context, in memberInput) (any, error) {
	t, err := c.target(ctx, in, false)
	if err != nil {
		return nil, err
	}
	t.bind = "" // a session that left keeps its binding: it stays left until it joins
	reply, err := c.run(ctx, "leave", t)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ok": true, "left": true, "stream_name": reply.StreamName}, nil
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

// endMCPSession answers DELETE with Mcp-Session-Id: the session ends and
// its member leaves. Without a session id it is a 400, with one this
// service did not issue a 404, as the MCP transport specifies.
func (s *Service) endMCPSession(w http.ResponseWriter, r *http.Request, _ params) {
	id := r.Header.Get("Mcp-Session-Id")
	if id == "" {
		writeError(w, wire.ErrMissingSessionID, "DELETE needs the Mcp-Session-Id to end")
		return
	}
	sess, ok := s.Peppers.OpenSessionID(id)
	if !ok {
		writeError(w, wire.ErrSessionNotFound, "unknown Mcp-Session-Id")
		return
	}
	c := &mcpCall{s: s, r: r, session: &sess}
	ctx := r.Context()
	st, err := c.sessionOp(ctx, "end", "")
	if err != nil {
		respond(w, err)
		return
	}
	if h, ok := s.Peppers.OpenHandle(st.Handle); ok {
		// The member leaves whoever its account is: the session that joined it
		// is the one ending, and the reader proves it.
		_, _ = s.Objects.Member(ctx, "leave", wire.MemberCall{
			ConversationID: h.ConversationID, AccountID: h.AccountID, Reader: h.Reader,
			StreamID: s.Peppers.StreamID(h.ConversationID, h.AccountID, h.StreamName),
		})
	}
	w.WriteHeader(http.StatusNoContent)
}
