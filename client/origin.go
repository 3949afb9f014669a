package client

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/ams-dev/ams/wire"
)

// Origin is scheme://host[:port] in canonical form: lower case, without a
// default port, so two spellings of one broker compare equal. A credential
// is bound to one origin (the CLI saves it with the account).
func Origin(raw string) (string, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("ams: %q is not an http(s) origin", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("ams: %q is not an origin (scheme://host[:port] only)", raw)
	}
	scheme, host, port := u.Scheme, strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// SameOrigin reports whether a and b name the same scheme, host and port.
func SameOrigin(a, b string) bool {
	oa, errA := Origin(a)
	ob, errB := Origin(b)
	return errA == nil && errB == nil && oa == ob
}

// IsLoopback reports whether origin's host is this machine (localhost,
// 127.0.0.0/8, ::1), where plain http exposes nothing on the network.
func IsLoopback(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if host == "localhost" {
		return true // not *.localhost: not every resolver keeps those local
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrInsecureOrigin refuses plain http to a host other than loopback: the
// bearer and the link's t would cross the network in clear.
var ErrInsecureOrigin = errors.New("plain http to a host other than loopback")

// CheckTransport refuses plain http to anything but loopback unless
// allowInsecure.
func CheckTransport(origin string, allowInsecure bool) error {
	u, err := url.Parse(origin)
	if err != nil {
		return err
	}
	if u.Scheme == "http" && !allowInsecure && !IsLoopback(origin) {
		return fmt.Errorf("%w: %s", ErrInsecureOrigin, origin)
	}
	return nil
}

// TokenError is a token the broker would refuse, caught before it is sent.
// Code is the broker's own name for the refusal.
type TokenError struct {
	Code    string
	Message string
}

func (e *TokenError) Error() string { return e.Message + " (" + e.Code + ")" }

// CheckToken refuses what the broker would: data over the token limit
// (wire.DefaultLimits.TokenBytes, closed 4400 token_too_large) and data
// that is not UTF-8 (JSON cannot carry it; it would arrive altered).
func CheckToken(data string) error {
	if limit := wire.DefaultLimits.TokenBytes; len(data) > limit {
		return &TokenError{Code: wire.CloseTokenTooLarge.Reason, Message: fmt.Sprintf("a token of %d bytes is over the %d-byte limit", len(data), limit)}
	}
	if !utf8.ValidString(data) {
		return &TokenError{Code: "invalid_utf8", Message: "a token must be UTF-8 text"}
	}
	return nil
}

// ProtocolError is an answer or frame that breaks the protocol: not UTF-8,
// not a JSON object with a string type, or too large. It comes from a host
// that is not (or no longer) a well-behaved AMS broker.
type ProtocolError struct {
	Reason string
}

func (e *ProtocolError) Error() string { return "ams: protocol error: " + e.Reason }
