package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// The MCP wrapper hands out two tokens that later calls bring back: the
// member handle ams_join returns and the Mcp-Session-Id of initialize. Both
// are authenticated, so a forged or altered one is refused before it can
// reach (and so create) a Durable Object, and neither carries a secret: a
// handle lands in model transcripts, so it never holds the link's t.
//
// Their key is derived from the permissive-token pepper by HMAC-SHA256 with
// a label per use ("ams/mcp-handle/v1", ...). HMAC keyed with a
// high-entropy secret is a PRF, so each label yields a key independent of
// the others and of the pepper's other uses (plain SHA-256 of
// pepper ":" value, a different construction, whose outputs are never an
// HMAC of these labels). Deriving instead of adding a third secret keeps
// every existing deployment working with the secrets it has; rotating the
// pepper (which already invalidates every link) invalidates handles too.

const (
	handlePrefix  = "amsh1."
	sessionPrefix = "amss1."
)

// MemberHandle names an MCP member: the stream, the account it acts as, and
// the reader (the join that owns the member's read position).
type MemberHandle struct {
	ConversationID string `json:"c"`
	Namespace      string `json:"n"`
	Alias          string `json:"a"`
	AccountID      string `json:"u"`
	StreamName     string `json:"s"`
	Reader         string `json:"r"`
	// Generation is the magic-link generation the member was admitted by:
	// a handle from before a rotation is stale.
	Generation int64 `json:"g,omitempty"`
	// PeerIdentity is the member's, kept for when it rejoins on its own.
	PeerIdentity json.RawMessage `json:"i,omitempty"`
	// PushOnly is the member's delivery (DeliveryPush), kept for the same.
	PushOnly bool `json:"p,omitempty"`
}

// Session is what an Mcp-Session-Id says: a random nonce naming the session
// and the slug of the client's name from initialize, for default stream names.
type Session struct {
	Nonce  string `json:"n"`
	Client string `json:"c,omitempty"`
}

func (p Peppers) mac(label string, msg []byte) []byte {
	k := hmac.New(sha256.New, []byte(p.Permissive))
	k.Write([]byte("ams/" + label + "/v1"))
	m := hmac.New(sha256.New, k.Sum(nil))
	m.Write(msg)
	return m.Sum(nil)
}

// seal renders v as prefix + base64url(JSON) + "." + base64url(tag).
func (p Peppers) seal(label, prefix string, v any) string {
	raw, _ := json.Marshal(v)
	body := prefix + base64.RawURLEncoding.EncodeToString(raw)
	return body + "." + base64.RawURLEncoding.EncodeToString(p.mac(label, []byte(body)))
}

// open checks the tag of s (in constant time) and decodes its JSON into v.
func (p Peppers) open(label, prefix, s string, v any) bool {
	if len(s) > 2048 || !strings.HasPrefix(s, prefix) || p.Permissive == "" {
		return false
	}
	dot := strings.LastIndexByte(s, '.')
	if dot <= len(prefix) {
		return false
	}
	tag, err := base64.RawURLEncoding.DecodeString(s[dot+1:])
	if err != nil || !hmac.Equal(tag, p.mac(label, []byte(s[:dot]))) {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(prefix):dot])
	return err == nil && json.Unmarshal(raw, v) == nil
}

// SealHandle renders an authenticated, opaque member handle.
func (p Peppers) SealHandle(h MemberHandle) string { return p.seal("mcp-handle", handlePrefix, h) }

// OpenHandle reads a handle SealHandle made; ok is false for anything else.
func (p Peppers) OpenHandle(s string) (MemberHandle, bool) {
	var h MemberHandle
	ok := p.open("mcp-handle", handlePrefix, s, &h)
	return h, ok && h.ConversationID != "" && h.AccountID != "" && ValidStreamName(h.StreamName)
}

// NewSessionID returns a fresh authenticated Mcp-Session-Id.
func (p Peppers) NewSessionID(client string) string {
	return p.seal("mcp-session", sessionPrefix, Session{Nonce: randomToken(16), Client: Slug(client)})
}

// OpenSessionID reads a session id NewSessionID made.
func (p Peppers) OpenSessionID(s string) (Session, bool) {
	var sess Session
	ok := p.open("mcp-session", sessionPrefix, s, &sess)
	return sess, ok && sess.Nonce != ""
}

// AutoStreamName is the stream name of a member that joined without one:
// the slug of its client's name and 4 hex derived from discriminator (its
// session, else its identity), so the same session keeps its name and two
// sessions get two streams.
func (p Peppers) AutoStreamName(client, discriminator string) string {
	slug := Slug(client)
	if slug == "" {
		slug = "peer"
	}
	return slug + "-" + hex.EncodeToString(p.mac("auto-stream-name", []byte(discriminator)))[:4]
}

// Slug lowercases s and keeps runs of [a-z0-9] joined by single hyphens, at
// most 24 characters: a valid start of a stream name, or empty.
func Slug(s string) string {
	var b strings.Builder
	hyphen := false
	for _, r := range strings.ToLower(s) {
		if b.Len() >= 24 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if hyphen && b.Len() > 0 {
				if b.Len()+2 > 24 {
					break
				}
				b.WriteByte('-')
			}
			hyphen = false
			b.WriteRune(r)
			continue
		}
		hyphen = true
	}
	return strings.TrimRight(b.String(), "-")
}

// NewReader returns a fresh reader id: the owner of one join of a member.
func NewReader() string { return randomToken(12) }
