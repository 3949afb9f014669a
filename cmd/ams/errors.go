package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// Exit codes: one per kind of failure, so scripts can tell them apart.
const (
	ExitOK      = 0 // done
	ExitUsage   = 1 // bad arguments, flags, input, or missing configuration
	ExitRefused = 2 // the broker refused: an HTTP 4xx or a WebSocket close 4xxx
	ExitNetwork = 3 // the broker is unreachable, failing (5xx, 4500) or the connection was lost
)

var exitCodes = []struct {
	code    int
	meaning string
}{
	{ExitOK, "ok"},
	{ExitUsage, "usage: bad arguments or flags, invalid input, no credential"},
	{ExitRefused, "refused by the broker (HTTP 4xx, WebSocket close 4xxx)"},
	{ExitNetwork, "network: broker unreachable or failing, connection lost"},
}

func exitCodeTable() string {
	var b strings.Builder
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %d  %s\n", e.code, e.meaning)
	}
	return b.String()
}

// usageError is a mistake in how ams was called.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// networkError is a failure to reach or keep the broker.
type networkError struct {
	msg string
	err error
}

func (e *networkError) Error() string { return e.msg }
func (e *networkError) Unwrap() error { return e.err }

// report prints err for a person and returns the exit code it maps to.
func report(env Env, err error) int {
	if err == nil || err == errHelp {
		return ExitOK
	}
	msg, code := describe(err)
	fmt.Fprintln(env.Stderr, "ams: "+redactToken(msg))
	return code
}

// linkToken matches the t of a magic link inside a message (Go's URL
// errors quote the URL they failed on).
var linkToken = regexp.MustCompile(`([?&]t=)[^&\s"']+`)

// redactToken hides a link's t in text meant for a person: the link is a
// secret, and terminals are recorded, shared and screenshotted.
func redactToken(s string) string { return linkToken.ReplaceAllString(s, "${1}…") }

// describe turns any error of a command into a message and an exit code.
func describe(err error) (string, int) {
	var ue *usageError
	if errors.As(err, &ue) {
		return ue.msg, ExitUsage
	}
	var te *client.TokenError
	if errors.As(err, &te) {
		// Refused here for the broker: it would refuse the same (4400).
		return te.Message + ": nothing of it was sent (" + te.Code + ")", ExitRefused
	}
	var api *client.APIError
	if errors.As(err, &api) {
		return describeAPIError(api)
	}
	var pe *client.ProtocolError
	if errors.As(err, &pe) {
		return "the host does not speak the AMS protocol: " + pe.Reason, ExitNetwork
	}
	if errors.Is(err, client.ErrJoinTimeout) {
		return "the broker accepted the connection but never said joined: " + err.Error(), ExitNetwork
	}
	if code, reason := client.CloseOf(err); code >= 4000 {
		return describeClose(code, reason)
	}
	var ne *networkError
	if errors.As(err, &ne) {
		return ne.msg, ExitNetwork
	}
	var urlErr *url.Error
	var opErr *net.OpError
	if errors.As(err, &urlErr) || errors.As(err, &opErr) {
		return "cannot reach the broker: " + err.Error(), ExitNetwork
	}
	if code, reason := client.CloseOf(err); code >= 0 {
		return fmt.Sprintf("the connection closed (%d %s)", code, reason), ExitNetwork
	}
	return err.Error(), ExitNetwork
}

// closeHints explains each refusal close of PROTOCOL §3 and §5, keyed by reason.
var closeHints = map[string]string{
	wire.CloseInvalidMagicLink.Reason:        "the magic link is not valid (wrong or rotated t)",
	wire.CloseStreamDisplaced.Reason:         "another connection of this account took over the stream name (use another --name)",
	wire.CloseMagicLinkRotated.Reason:        "the magic link was rotated: ask the conversation's owner for the new one",
	wire.CloseInvalidCredential.Reason:       "the broker does not know this credential (check AMS_CREDENTIAL or run `ams account create` against this host)",
	wire.CloseConcurrencyLimit.Reason:        "this account already has the most streams it may open in this conversation",
	wire.CloseConversationFull.Reason:        "the conversation is full",
	wire.CloseStreamNameOwnerConflict.Reason: "another account holds this stream name in the conversation (choose another --name)",
	wire.CloseConversationNotFound.Reason:    "there is no conversation at this link (unknown alias on this host)",
	wire.CloseInvalidStreamNameHeader.Reason: "the stream name is not valid (letters, digits, '.', '_', '-'; at most 63; starting with a letter or digit)",
	wire.CloseInvalidStreamMetadata.Reason:   "the stream metadata is not a JSON object the broker accepts (or it is too large)",
	wire.CloseInvalidSubscribeStreams.Reason: "the --subscribe list is not valid (stream names, at most 16)",
	wire.CloseInvalidResumeAfter.Reason:      "the broker refused the resume position (delete the state file entry and retry)",
	wire.CloseTokenTooLarge.Reason:           "a token is larger than the broker's 64 KiB limit",
	wire.CloseMetadataTooLarge.Reason:        "the metadata is larger than the broker's limit",
	wire.CloseSubscriberBackpressure.Reason:  "this client fell behind and the broker closed the stream (retry with --resume)",
	wire.CloseMalformedFrame.Reason:          "the broker could not read a frame this client sent",
	wire.CloseInternalError.Reason:           "the broker failed unexpectedly (internal_error)",
}

func describeClose(code int, reason string) (string, int) {
	exit := ExitRefused
	if code == wire.CloseInternalError.Code {
		exit = ExitNetwork
	}
	hint, ok := closeHints[reason]
	if !ok {
		hint = "the broker closed the stream"
	}
	reason = clip(reason, maxQuoted)
	return fmt.Sprintf("%s (close %d %s)", hint, code, reason), exit
}

// apiHints explains control-plane errors of PROTOCOL §2, keyed by code.
var apiHints = map[string]string{
	wire.ErrMissingCredential.Code:     "no credential: run `ams account create NAMESPACE` or set AMS_CREDENTIAL",
	wire.ErrInvalidCredential.Code:     "the broker does not know this credential (check AMS_CREDENTIAL, --config and --host)",
	wire.ErrNamespaceMismatch.Code:     "this credential does not own that namespace (check --namespace)",
	wire.ErrInvalidNamespace.Code:      "a namespace is 1-63 lowercase letters, digits or '-', starting with a letter or digit",
	wire.ErrNamespaceTaken.Code:        "that namespace is taken: choose another",
	wire.ErrInvalidAlias.Code:          "an alias is 1-63 lowercase letters, digits or '-', starting with a letter or digit",
	wire.ErrAliasTaken.Code:            "that alias is taken in this namespace: choose another",
	wire.ErrInvalidStreamName.Code:     "the stream name is not valid (letters, digits, '.', '_', '-'; at most 63)",
	wire.ErrInvalidMetadata.Code:       "the metadata must be a JSON object within the broker's size limit",
	wire.ErrInvalidStreamMetadata.Code: "the stream metadata must be a JSON object within the broker's size limit",
	wire.ErrInvalidToken.Code:          "the magic link is not valid (wrong or rotated t)",
	wire.ErrMissingToken.Code:          "the magic link has no t= parameter",
	wire.ErrNotFound.Code:              "there is no conversation at this link (or this host is not an AMS broker)",
	wire.ErrServerMisconfigured.Code:   "the broker is misconfigured (its peppers are not set)",
	wire.ErrBodyTooLarge.Code:          "the request is larger than the broker's 64 KiB limit",
}

// maxQuoted bounds how much of a host's own text an error message quotes.
const maxQuoted = 300

// clip shortens s to at most n bytes, on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// describeLocal is the message of err, for a note.
func describeLocal(err error) string {
	msg, _ := describe(err)
	return msg
}

func describeAPIError(e *client.APIError) (string, int) {
	exit := ExitRefused
	if e.Status >= 500 {
		exit = ExitNetwork
	}
	hint, ok := apiHints[e.Code]
	if !ok {
		hint = clip(strings.TrimSpace(e.Message), maxQuoted)
		if hint == "" {
			hint = "the broker refused the request"
		}
	}
	code := clip(e.Code, maxQuoted)
	if code == "" {
		code = "(no error code: is this an AMS broker?)"
	}
	return fmt.Sprintf("%s (%d %s)", hint, e.Status, code), exit
}
