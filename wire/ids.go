package wire

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"time"

	"github.com/oklog/ulid/v2"
)

// Identifier prefixes of PROTOCOL §1.
const (
	AccountPrefix       = "acc_"
	AnonAccountPrefix   = "acc_anon_"
	ConversationPrefix  = "conv_"
	StreamPrefix        = "str_"
	CredentialPrefix    = "ams_sk_"
	DefaultStreamPrefix = "stream-"
	IDKindUUID          = "uuid"
)

// Peppers are the two deployment secrets. Both must be set: a deployment
// without them refuses to serve (server_misconfigured) rather than hash with
// a guessable default.
type Peppers struct {
	Credential string
	Permissive string
}

// Complete reports whether both peppers are present.
func (p Peppers) Complete() bool { return p.Credential != "" && p.Permissive != "" }

// NewAccountID returns a fresh acc_ + ULID.
func NewAccountID() string { return AccountPrefix + ulid.Make().String() }

// NewConversationID returns a fresh conv_ + ULID.
func NewConversationID() string { return ConversationPrefix + ulid.Make().String() }

// NewCredential returns a fresh bearer credential: ams_sk_ + 32 random bytes.
func NewCredential() string { return CredentialPrefix + randomToken(32) }

// NewPermissiveToken returns a fresh magic-link token t: 32 random bytes.
func NewPermissiveToken() string { return randomToken(32) }

// NewDefaultStreamName returns stream- followed by 8 base64url characters.
func NewDefaultStreamName() string { return DefaultStreamPrefix + randomToken(6) }

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func pepperedHash(pepper, value string) string {
	sum := sha256.Sum256([]byte(pepper + ":" + value))
	return hex.EncodeToString(sum[:])
}

// CredentialHash is the only form in which a credential is stored.
func (p Peppers) CredentialHash(credential string) string {
	return pepperedHash(p.Credential, credential)
}

// PermissiveTokenHash is the only form in which a magic-link token is stored.
func (p Peppers) PermissiveTokenHash(token string) string {
	return pepperedHash(p.Permissive, token)
}

// StreamID is deterministic in (conversation, account, name), so a reconnect
// of the same stream keeps its id.
func (p Peppers) StreamID(conversationID, accountID, streamName string) string {
	h := pepperedHash(p.Permissive, "stream|"+conversationID+"|"+accountID+"|"+streamName)
	return StreamPrefix + h[:26]
}

// AnonAccountID is the identity of a bearer-less MCP caller holding link token t.
func (p Peppers) AnonAccountID(token string) string {
	return AnonAccountPrefix + pepperedHash(p.Permissive, "anon-account|"+token)[:26]
}

// HashesEqual compares two stored-form hashes in constant time.
func HashesEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// TimeLayout is RFC 3339 in UTC with milliseconds, the format of every ts.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Timestamp formats t as a wire timestamp.
func Timestamp(t time.Time) string { return t.UTC().Format(TimeLayout) }
