package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/wire"
)

// Frame is any server → client frame; fields absent from a type stay zero.
type Frame struct {
	Type           string          `json:"type"`
	ConversationID string          `json:"conversation_id,omitempty"`
	StreamID       string          `json:"stream_id,omitempty"`
	StreamName     string          `json:"stream_name,omitempty"`
	OwnerAccountID string          `json:"owner_account_id,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	SelfSubscribe  bool            `json:"self_subscribe,omitempty"`
	Peers          []Stream        `json:"peers,omitempty"`
	Resumed        bool            `json:"resumed,omitempty"`
	TS             string          `json:"ts,omitempty"`
	Data           *string         `json:"data,omitempty"`
	// Seq orders every token, stream_joined, stream_left and stream_metadata
	// of the conversation; joined carries the latest seq, x_receipt the seq
	// given to the emitter's token.
	Seq               int64    `json:"seq,omitempty"`
	Recovered         *bool    `json:"recovered,omitempty"`
	SubscribedStreams []string `json:"subscribed_streams,omitempty"`
	// Raw is the frame exactly as received.
	Raw []byte `json:"-"`
}

// DialOptions are the stream-plane request headers.
type DialOptions struct {
	Credential    string
	StreamName    string
	Metadata      json.RawMessage
	SelfSubscribe bool
	// ResumeAfter asks for every frame after this seq (X-AMS-Resume-After).
	ResumeAfter *int64
	// SubscribeStreams limits delivery to these stream names.
	SubscribeStreams []string
	// Receipts asks for an x_receipt per accepted token.
	Receipts bool
	// Acks opts into flow control: Read acknowledges what it returns, and
	// a connection that falls a window behind is closed 4290 instead of
	// making the broker queue without bound.
	Acks bool
	// Subprotocols are offered in Sec-WebSocket-Protocol, as a browser does
	// (wire.SubprotocolV1 and wire.SubprotocolBearer + credential).
	Subprotocols []string
	// Header carries any further headers (extensions).
	Header http.Header
	// ReadLimit bounds one received frame; zero means DefaultReadLimit.
	ReadLimit int64
	// JoinTimeout bounds Join: the upgrade and the joined frame; zero
	// means DefaultJoinTimeout. A host that never says joined is an error.
	JoinTimeout time.Duration
}

// DefaultReadLimit bounds one frame: the largest a default broker sends
// is joined listing every peer (wire.Limits.StreamListBytes, 17 MiB for
// 1000 streams at the metadata limit), with 1 MiB to spare.
var DefaultReadLimit = int64(wire.DefaultLimits.StreamListBytes() + 1<<20)

// DefaultJoinTimeout is how long Join waits for the upgrade and joined.
const DefaultJoinTimeout = 15 * time.Second

// Conn is one stream's WebSocket.
type Conn struct {
	ws *websocket.Conn
	// acks is set when the connection acknowledges what Read returns.
	acks                bool
	ackSeq              int64
	ackFrames, ackBytes int
}

// Acknowledge every ackEveryFrames frames or ackEveryBytes bytes, well
// inside the broker's window.
const (
	ackEveryFrames = 32
	ackEveryBytes  = 64 << 10
)

// Dial opens a stream on the conversation of magicLink. The upgrade succeeds
// even when the broker refuses; the refusal arrives as the close that the
// first Read returns (see CloseOf).
func Dial(ctx context.Context, magicLink string, opts DialOptions) (*Conn, error) {
	link, err := ParseMagicLink(magicLink)
	if err != nil {
		return nil, err
	}
	header := http.Header{}
	for k, v := range opts.Header {
		header[k] = v
	}
	if opts.Credential != "" {
		header.Set("Authorization", "Bearer "+opts.Credential)
	}
	if opts.StreamName != "" {
		header.Set(wire.HeaderStreamName, opts.StreamName)
	}
	if opts.Metadata != nil {
		header.Set(wire.HeaderStreamMetadata, base64.StdEncoding.EncodeToString(opts.Metadata))
	}
	if opts.SelfSubscribe {
		header.Set(wire.HeaderSelfSubscribe, "true")
	}
	if opts.ResumeAfter != nil {
		header.Set(wire.HeaderResumeAfter, strconv.FormatInt(*opts.ResumeAfter, 10))
	}
	if opts.SubscribeStreams != nil {
		header.Set(wire.HeaderSubscribeStreams, strings.Join(opts.SubscribeStreams, ","))
	}
	if opts.Receipts {
		header.Set(wire.HeaderReceipts, "true")
	}
	if opts.Acks {
		header.Set(wire.HeaderAcks, "true")
	}
	ws, res, err := websocket.Dial(ctx, link.ConnectURL(), wsDialOptions(header, opts.Subprotocols))
	if err != nil {
		if res != nil && res.StatusCode >= 300 && res.StatusCode < 400 {
			// Following it would re-send the bearer (Go keeps Authorization
			// for the same host on another port) and t to any host.
			return nil, &APIError{Status: res.StatusCode, Message: "redirect to " + res.Header.Get("Location") + " not followed"}
		}
		return nil, err
	}
	limit := opts.ReadLimit
	if limit == 0 {
		limit = DefaultReadLimit
	}
	ws.SetReadLimit(limit)
	return &Conn{ws: ws, acks: opts.Acks}, nil
}

// Subprotocol is the subprotocol the broker selected.
func (c *Conn) Subprotocol() string { return c.ws.Subprotocol() }

// Join dials and reads the joined frame, returning the refusal as an
// error, within opts.JoinTimeout.
func Join(ctx context.Context, magicLink string, opts DialOptions) (*Conn, *Frame, error) {
	timeout := opts.JoinTimeout
	if timeout <= 0 {
		timeout = DefaultJoinTimeout
	}
	jctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := Dial(jctx, magicLink, opts)
	if err != nil {
		return nil, nil, joinError(ctx, err, timeout)
	}
	joined, err := conn.Read(jctx)
	if err != nil {
		conn.CloseNow()
		return nil, nil, joinError(ctx, err, timeout)
	}
	if joined.Type != wire.TypeJoined {
		conn.CloseNow()
		return nil, nil, &ProtocolError{Reason: "the first frame is " + strconv.Quote(joined.Type) + ", not joined"}
	}
	return conn, joined, nil
}

// ErrJoinTimeout is a join that got no joined frame in time.
var ErrJoinTimeout = errors.New("no joined frame in time")

// joinError names a join deadline that passed (rather than the caller's
// context ending) as ErrJoinTimeout.
func joinError(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return fmt.Errorf("ams: %w (%s)", ErrJoinTimeout, timeout)
	}
	return err
}

// Read returns the next frame. When the broker closes the socket, the error
// carries its code and reason (see CloseOf).
func (c *Conn) Read(ctx context.Context) (*Frame, error) {
	_, raw, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	f, err := parseFrame(raw)
	if err != nil {
		return nil, err
	}
	if c.acks && f.Seq > 0 && f.Type != wire.TypeReceipt {
		c.acknowledge(ctx, f.Seq, len(raw))
	}
	return f, nil
}

// parseFrame decodes one server frame, refusing what no broker sends: text
// that is not UTF-8 (RFC 6455 forbids it), anything but a JSON object, a
// frame without a string type.
func parseFrame(raw []byte) (*Frame, error) {
	if !utf8.Valid(raw) {
		return nil, &ProtocolError{Reason: "a frame is not UTF-8"}
	}
	f := &Frame{Raw: raw}
	if err := json.Unmarshal(raw, f); err != nil || len(bytes.TrimLeft(raw, " \t\r\n")) == 0 || bytes.TrimLeft(raw, " \t\r\n")[0] != '{' {
		return nil, &ProtocolError{Reason: fmt.Sprintf("a frame is not a JSON object of the protocol (%d bytes)", len(raw))}
	}
	if f.Type == "" {
		return nil, &ProtocolError{Reason: "a frame has no type"}
	}
	return f, nil
}

// acknowledge counts a frame read and sends x_ack when enough piled up.
func (c *Conn) acknowledge(ctx context.Context, seq int64, size int) {
	c.ackSeq = max(c.ackSeq, seq)
	c.ackFrames++
	c.ackBytes += size
	if c.ackFrames < ackEveryFrames && c.ackBytes < ackEveryBytes {
		return
	}
	c.ackFrames, c.ackBytes = 0, 0
	_ = c.WriteRaw(ctx, []byte(`{"type":"x_ack","seq":`+strconv.FormatInt(c.ackSeq, 10)+`}`))
}

// SendToken emits data on this stream.
func (c *Conn) SendToken(ctx context.Context, data string) error {
	raw, _ := json.Marshal(struct {
		Type string `json:"type"`
		Data string `json:"data"`
	}{wire.TypeToken, data})
	return c.WriteRaw(ctx, raw)
}

// SetMetadata replaces this stream's metadata.
func (c *Conn) SetMetadata(ctx context.Context, metadata json.RawMessage) error {
	raw, _ := json.Marshal(struct {
		Type     string          `json:"type"`
		Metadata json.RawMessage `json:"metadata"`
	}{wire.TypeSetMetadata, metadata})
	return c.WriteRaw(ctx, raw)
}

// Ping asks for a pong.
func (c *Conn) Ping(ctx context.Context) error {
	return c.WriteRaw(ctx, []byte(wire.PingFrame))
}

// WriteRaw sends one text message as is.
func (c *Conn) WriteRaw(ctx context.Context, msg []byte) error {
	return c.ws.Write(ctx, websocket.MessageText, msg)
}

// WriteBinary sends one binary message (which the broker refuses).
func (c *Conn) WriteBinary(ctx context.Context, msg []byte) error {
	return c.ws.Write(ctx, websocket.MessageBinary, msg)
}

// Close closes the stream normally.
func (c *Conn) Close() error { return c.ws.Close(websocket.StatusNormalClosure, "") }

// CloseNow drops the connection without a close handshake.
func (c *Conn) CloseNow() error { return c.ws.CloseNow() }

// CloseOf returns the close code and reason carried by a Read error, or
// code -1 when err is not a close.
func CloseOf(err error) (int, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code), ce.Reason
	}
	return -1, ""
}
