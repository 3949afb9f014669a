// Package client is the Go client of AMS: the control plane (accounts,
// conversations, inspect) and the stream plane (a WebSocket per stream with
// typed frames). The tests, the benchmark and the CLI are built on it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/ams-dev/ams/wire"
)

// Client talks to one AMS deployment.
type Client struct {
	// BaseURL is the deployment's origin, e.g. http://localhost:8787.
	BaseURL string
	// Credential is the bearer (ams_sk_...) used where one is needed.
	Credential string
	// HTTP is the client used for control-plane calls; nil means http.DefaultClient.
	// Whatever it says, redirects are not followed (see do).
	HTTP *http.Client
	// MaxResponse bounds the body of one answer; zero means DefaultMaxResponse.
	MaxResponse int64
}

// DefaultMaxResponse bounds a control-plane answer: an inspect of a full
// conversation (wire.Limits.StreamListBytes, plus its own metadata) fits,
// a hostile endless body does not fill memory.
var DefaultMaxResponse = int64(wire.DefaultLimits.StreamListBytes() + 1<<20)

// APIError is a control-plane error response.
type APIError struct {
	Status  int
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("ams: %d %s: %s", e.Status, e.Code, e.Message)
}

// Account is the answer of POST /v1/accounts; Credential is shown only once.
type Account struct {
	AccountID  string `json:"account_id"`
	Namespace  string `json:"namespace"`
	Credential string `json:"credential"`
	CreatedAt  string `json:"created_at"`
}

// CreateAccount registers namespace ns.
func (c *Client) CreateAccount(ctx context.Context, ns string) (*Account, error) {
	var acc Account
	err := c.do(ctx, http.MethodPost, "/v1/accounts", "", map[string]string{"namespace": ns}, &acc)
	return &acc, err
}

// NewConversation holds the optional fields of a mint.
type NewConversation struct {
	Alias          string          `json:"alias,omitempty"`
	StreamName     string          `json:"stream_name,omitempty"`
	IDKind         string          `json:"id_kind,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	StreamMetadata json.RawMessage `json:"stream_metadata,omitempty"`
}

// Conversation is the answer of a mint.
type Conversation = wire.Minted

// CreateConversation mints a conversation in namespace ns with c.Credential.
func (c *Client) CreateConversation(ctx context.Context, ns string, req NewConversation) (*Conversation, error) {
	var conv Conversation
	err := c.do(ctx, http.MethodPost, "/v1/"+ns+"/conversations", c.Credential, req, &conv)
	return &conv, err
}

// Stream is a live stream as inspect lists it.
type Stream struct {
	StreamID       string          `json:"stream_id"`
	StreamName     string          `json:"stream_name"`
	OwnerAccountID string          `json:"owner_account_id"`
	Metadata       json.RawMessage `json:"metadata"`
}

// ConversationInfo is the answer of inspect.
type ConversationInfo struct {
	ConversationID string          `json:"conversation_id"`
	Namespace      string          `json:"namespace"`
	Alias          string          `json:"alias"`
	IDKind         string          `json:"id_kind"`
	Metadata       json.RawMessage `json:"metadata"`
	CreatedAt      string          `json:"created_at"`
	Streams        []Stream        `json:"streams"`
}

// Inspect reads a conversation through its magic link.
func (c *Client) Inspect(ctx context.Context, magicLink string) (*ConversationInfo, error) {
	link, err := ParseMagicLink(magicLink)
	if err != nil {
		return nil, err
	}
	var info ConversationInfo
	path := "/v1/" + link.Namespace + "/conversations/" + link.Alias + "?t=" + url.QueryEscape(link.Token)
	err = c.do(ctx, http.MethodGet, path, "", nil, &info)
	return &info, err
}

// MagicLink is a parsed magic link.
type MagicLink = wire.MagicLink

// ParseMagicLink splits {scheme}://{host}/{ns}/conversations/{alias}?t={token}.
func ParseMagicLink(link string) (MagicLink, error) { return wire.ParseMagicLink(link) }

// noRedirects is hc (or the default client) answering a redirect with the
// redirect itself. Go re-sends Authorization to the same host on another
// port, and the query's t to any host.
func noRedirects(hc *http.Client) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (c *Client) do(ctx context.Context, method, path, credential string, body, into any) error {
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, reader)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	res, err := noRedirects(c.HTTP).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	limit := c.MaxResponse
	if limit <= 0 {
		limit = DefaultMaxResponse
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(raw)) > limit {
		return &ProtocolError{Reason: fmt.Sprintf("the answer of %s %s is larger than %d bytes", method, path, limit)}
	}
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		// The broker never redirects. Following one would send the bearer
		// (or the link's t) wherever the answer points.
		return &APIError{Status: res.StatusCode, Message: "redirect to " + res.Header.Get("Location") + " not followed"}
	}
	if res.StatusCode >= 300 {
		apiErr := &APIError{Status: res.StatusCode}
		if json.Unmarshal(raw, apiErr) != nil || apiErr.Code == "" {
			apiErr.Message = string(raw)
		}
		return apiErr
	}
	return json.Unmarshal(raw, into)
}
