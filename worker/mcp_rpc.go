package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/ams-dev/ams/wire"
)

// MCP protocol revisions served, newest first. From 2026-07-28 there is no
// initialize: each request carries its version in params._meta and the
// client may first call server/discover. Earlier revisions open with
// initialize; the session they get holds no state, so any isolate serves it.
var mcpVersions = []string{"2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

const (
	mcpStatelessRevision = "2026-07-28"
	mcpLatestSessionful  = "2025-11-25"
	mcpMetaVersion       = "io.modelcontextprotocol/protocolVersion"
	mcpMetaServerInfo    = "io.modelcontextprotocol/serverInfo"
)

var mcpServerInfo = map[string]string{"name": "ams", "title": "AMS: Agent Messaging Service", "version": "1.0.0"}

// JSON-RPC 2.0 error codes.
const (
	rpcParseError          = -32700
	rpcInvalidRequest      = -32600
	rpcMethodNotFound      = -32601
	rpcInvalidParams       = -32602
	rpcUnsupportedProtocol = -32022
)

type rpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

type rpcReply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// serveRPC answers one POST: a JSON-RPC message, or a batch (2025-03-26).
// Notifications and responses get 202 with no body.
func (c *mcpCall) serveRPC(w http.ResponseWriter) {
	body, err := io.ReadAll(io.LimitReader(c.r.Body, wire.MCPBodyBytes+1))
	if err != nil || len(body) > wire.MCPBodyBytes {
		writeError(w, wire.ErrBodyTooLarge, "the JSON-RPC request exceeds the limit")
		return
	}
	body = bytes.TrimSpace(body)
	if !wire.ShallowJSON(body, wire.MaxJSONDepth) || !json.Valid(body) {
		writeRPC(w, http.StatusBadRequest, rpcReply{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{Code: rpcParseError, Message: "parse error"}})
		return
	}
	ctx := c.r.Context()
	if len(body) > 0 && body[0] == '[' {
		var batch []json.RawMessage
		_ = json.Unmarshal(body, &batch)
		if len(batch) == 0 {
			writeRPC(w, http.StatusOK, rpcReply{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{Code: rpcInvalidRequest, Message: "empty batch"}})
			return
		}
		if len(batch) > wire.MaxRPCBatch {
			writeRPC(w, http.StatusOK, rpcReply{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{Code: rpcInvalidRequest,
				Message: "a batch holds at most " + strconv.Itoa(wire.MaxRPCBatch) + " messages"}})
			return
		}
		var replies []rpcReply
		for _, raw := range batch {
			if reply, ok := c.handle(ctx, w, raw); ok {
				replies = append(replies, reply)
			}
		}
		if c.sessionEnded {
			writeError(w, wire.ErrSessionNotFound, "this MCP session was ended: initialize a new one")
			return
		}
		if len(replies) == 0 {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		writeRPC(w, http.StatusOK, replies)
		return
	}
	reply, ok := c.handle(ctx, w, body)
	if c.sessionEnded {
		writeError(w, wire.ErrSessionNotFound, "this MCP session was ended: initialize a new one")
		return
	}
	if !ok {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if notes := c.notifications(body, reply); notes != nil {
		writeEventStream(w, append(notes, reply))
		return
	}
	writeRPC(w, http.StatusOK, reply)
}

// notifications are the frames an ams_recv returns, or the frames that ride
// along on another tool call, already in the shape of
// the PROTOCOL §6 notifications, as JSON-RPC notifications for a client
// that accepts an event stream. They precede the call's result on the same
// stream (and stay in the result: hosts drop notifications they do not
// know, so nothing is marked read that only a notification carried), but a
// frame is notified once: an ams_recv does not notify again what the push
// leg or a ride-along delivered. nil otherwise.
func (c *mcpCall) notifications(request []byte, reply rpcReply) []any {
	if !c.acceptsEvents() || reply.Error != nil || gjson.GetBytes(request, "method").Str != "tools/call" {
		return nil
	}
	if len(c.rideAlong) > 0 {
		notes := []any{}
		for _, f := range c.rideAlong {
			notes = append(notes, json.RawMessage(pushNotification(f)))
		}
		return notes
	}
	if gjson.GetBytes(request, "params.name").Str != "ams_recv" {
		return nil
	}
	result, _ := reply.Result.(map[string]any)
	structured, _ := result["structuredContent"].(json.RawMessage)
	if result["isError"] == true || structured == nil {
		return nil
	}
	notes := []any{}
	for _, frame := range gjson.GetBytes(structured, "frames").Array() {
		if seq := frame.Get("params.seq").Int(); seq > 0 && seq <= c.delivered {
			continue // pushed on the leg or ridden along already
		}
		notes = append(notes, rpcNotification(frame.Get("method").Str, json.RawMessage(frame.Get("params").Raw)))
	}
	return notes
}

func rpcNotification(method string, params any) map[string]any {
	return map[string]any{"jsonrpc": "2.0", "method": method, "params": params}
}

// writeEventStream answers with Server-Sent Events, one message each.
func writeEventStream(w http.ResponseWriter, messages []any) {
	var buf bytes.Buffer
	for _, m := range messages {
		buf.WriteString("event: message\ndata: ")
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(m) // ends the data line
		buf.WriteString("\n")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

func writeRPC(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	raw := buf.Bytes()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(raw)
}

// handle answers one message; ok is false for a notification or a response.
func (c *mcpCall) handle(ctx context.Context, w http.ResponseWriter, raw json.RawMessage) (reply rpcReply, ok bool) {
	var msg rpcMessage
	if err := json.Unmarshal(raw, &msg); err != nil || msg.JSONRPC != "2.0" {
		return rpcReply{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{Code: rpcInvalidRequest, Message: "not a JSON-RPC 2.0 message"}}, true
	}
	if len(msg.ID) == 0 || string(msg.ID) == "null" || msg.Method == "" {
		return rpcReply{}, false // a notification (initialized, cancelled, ...) or a client's response
	}
	reply = rpcReply{JSONRPC: "2.0", ID: msg.ID}
	version := c.requestVersion(msg.Params)
	if version != "" && !slices.Contains(mcpVersions, version) && msg.Method != "initialize" {
		reply.Error = &rpcError{Code: rpcUnsupportedProtocol, Message: "unsupported protocol version " + version,
			Data: map[string]any{"supported": mcpVersions, "requested": version}}
		return reply, true
	}
	result, rerr := c.dispatch(ctx, w, msg)
	if rerr != nil {
		reply.Error = rerr
		return reply, true
	}
	if version >= mcpStatelessRevision {
		result["resultType"] = "complete"
		result["_meta"] = map[string]any{mcpMetaServerInfo: mcpServerInfo}
	}
	reply.Result = result
	return reply, true
}

// requestVersion is the revision a request speaks: its _meta's, else the
// MCP-Protocol-Version header's.
func (c *mcpCall) requestVersion(params json.RawMessage) string {
	var p struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	if json.Unmarshal(params, &p) == nil {
		var v string
		if json.Unmarshal(p.Meta[mcpMetaVersion], &v) == nil && v != "" {
			return v
		}
	}
	return c.r.Header.Get("Mcp-Protocol-Version")
}

func (c *mcpCall) capabilities() map[string]any {
	return map[string]any{
		"tools":     map[string]any{"listChanged": false},
		"prompts":   map[string]any{"listChanged": false},
		"resources": map[string]any{"listChanged": false, "subscribe": false},
	}
}

func (c *mcpCall) dispatch(ctx context.Context, w http.ResponseWriter, msg rpcMessage) (map[string]any, *rpcError) {
	switch msg.Method {
	case "initialize":
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		_ = json.Unmarshal(msg.Params, &p)
		version := mcpLatestSessionful
		if slices.Contains(mcpVersions, p.ProtocolVersion) && p.ProtocolVersion < mcpStatelessRevision {
			version = p.ProtocolVersion
		}
		// The id is authenticated, so a made-up one is refused before it can
		// reach a session object; it carries the client's name for default
		// stream names.
		var hello struct {
			ClientInfo struct {
				Name string `json:"name"`
			} `json:"clientInfo"`
		}
		_ = json.Unmarshal(msg.Params, &hello)
		w.Header().Set("Mcp-Session-Id", c.s.Peppers.NewSessionID(hello.ClientInfo.Name))
		return map[string]any{
			"protocolVersion": version,
			"capabilities":    c.capabilities(),
			"serverInfo":      mcpServerInfo,
			"instructions":    c.instructions(),
		}, nil
	case "server/discover":
		return map[string]any{
			"supportedVersions": mcpVersions,
			"capabilities":      c.capabilities(),
			"instructions":      c.instructions(),
		}, nil
	case "ping":
		return map[string]any{}, nil
	case "prompts/list":
		return c.listPrompts(ctx)
	case "prompts/get":
		return c.getPrompt(ctx, msg.Params)
	case "resources/list":
		return c.listResources(ctx)
	case "resources/templates/list":
		return map[string]any{"resourceTemplates": []any{}}, nil
	case "resources/read":
		return c.readResource(ctx, msg.Params)
	case "tools/list":
		return map[string]any{"tools": mcpTools}, nil
	case "tools/call":
		var p struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(msg.Params, &p); err != nil {
			return nil, &rpcError{Code: rpcInvalidParams, Message: "tools/call params must name a tool"}
		}
		for _, t := range mcpTools {
			if t.Name == p.Name {
				return c.callTool(ctx, t, p.Arguments), nil
			}
		}
		return nil, &rpcError{Code: rpcInvalidParams, Message: "unknown tool " + p.Name}
	}
	return nil, &rpcError{Code: rpcMethodNotFound, Message: "method not found: " + msg.Method}
}

// callTool runs a tool: its result as JSON text and structuredContent, or
// isError with a protocol code. A panic in a tool answers internal_error.
func (c *mcpCall) callTool(ctx context.Context, t tool, args json.RawMessage) (result map[string]any) {
	defer func() {
		if r := recover(); r != nil {
			result = toolResult(map[string]string{"error": wire.ErrInternal.Code, "message": "unexpected failure"}, true)
		}
	}()
	out, err := t.run(c, ctx, args)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			// Operators see what failed (an object unreachable, a reply
			// unreadable); the caller sees internal_error.
			fmt.Fprintf(os.Stderr, "ams: tool %s: %v\n", t.Name, err)
			ae = &apiError{code: wire.ErrInternal, message: "unexpected failure"}
		}
		return toolResult(map[string]string{"error": ae.code.Code, "message": ae.message}, true)
	}
	return toolResult(out, false)
}

func toolResult(v any, isError bool) map[string]any {
	// Frames are relayed as the wire sent them: no HTML escaping added.
	raw := wire.MarshalVerbatim(v)
	result := map[string]any{
		"content":           []map[string]string{{"type": "text", "text": string(raw)}},
		"structuredContent": json.RawMessage(raw),
	}
	if isError {
		result["isError"] = true
	}
	return result
}
