package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

func TestDescribeMapsProtocolCodesToExitCodes(t *testing.T) {
	closeErr := func(c wire.Close) error {
		return fmt.Errorf("read: %w", websocket.CloseError{Code: websocket.StatusCode(c.Code), Reason: c.Reason})
	}
	for _, tc := range []struct {
		err  error
		code int
		text string
	}{
		{closeErr(wire.CloseInvalidMagicLink), ExitRefused, "the magic link is not valid (wrong or rotated t)"},
		{closeErr(wire.CloseStreamNameOwnerConflict), ExitRefused, "another account holds this stream name"},
		{closeErr(wire.CloseConversationNotFound), ExitRefused, "no conversation at this link"},
		{closeErr(wire.CloseInvalidCredential), ExitRefused, "does not know this credential"},
		{closeErr(wire.CloseInternalError), ExitNetwork, "4500"},
		{closeErr(wire.Close{Code: 4999, Reason: "new_reason"}), ExitRefused, "4999 new_reason"},
		{&client.APIError{Status: 401, Code: "missing_credential"}, ExitRefused, "ams account create"},
		{&client.APIError{Status: 401, Code: "invalid_credential"}, ExitRefused, "(401 invalid_credential)"},
		{&client.APIError{Status: 403, Code: "invalid_token"}, ExitRefused, "wrong or rotated t"},
		{&client.APIError{Status: 409, Code: "namespace_taken"}, ExitRefused, "taken"},
		{&client.APIError{Status: 500, Code: "server_misconfigured"}, ExitNetwork, "misconfigured"},
		{&client.APIError{Status: 502, Message: "<html>bad gateway</html>"}, ExitNetwork, "bad gateway"},
		{usagef("bad flag"), ExitUsage, "bad flag"},
		{wrapNetwork(fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), "http://h"), ExitNetwork, "cannot reach the broker at http://h"},
		{errors.New("something else"), ExitNetwork, "something else"},
	} {
		text, code := describe(tc.err)
		if code != tc.code || !strings.Contains(text, tc.text) {
			t.Errorf("describe(%v) = %q, %d; want %d containing %q", tc.err, text, code, tc.code, tc.text)
		}
	}
}

func TestEveryRefusalCloseHasAHint(t *testing.T) {
	for _, c := range []wire.Close{
		wire.CloseInvalidMagicLink, wire.CloseStreamDisplaced, wire.CloseMagicLinkRotated,
		wire.CloseInvalidCredential, wire.CloseConcurrencyLimit, wire.CloseConversationFull,
		wire.CloseStreamNameOwnerConflict, wire.CloseConversationNotFound,
		wire.CloseInvalidStreamNameHeader, wire.CloseInvalidStreamMetadata,
		wire.CloseInvalidSubscribeStreams, wire.CloseInvalidResumeAfter,
		wire.CloseTokenTooLarge, wire.CloseSubscriberBackpressure,
	} {
		if closeHints[c.Reason] == "" {
			t.Errorf("no hint for close %d %s", c.Code, c.Reason)
		}
	}
}

func TestExitCodesAreDistinctAndDocumented(t *testing.T) {
	seen := map[int]bool{}
	for _, e := range exitCodes {
		if seen[e.code] {
			t.Fatalf("exit code %d listed twice", e.code)
		}
		seen[e.code] = true
	}
	table := exitCodeTable()
	for _, c := range []int{ExitOK, ExitUsage, ExitRefused, ExitNetwork} {
		if !seen[c] || !strings.Contains(table, fmt.Sprintf("  %d  ", c)) {
			t.Errorf("exit code %d is not documented", c)
		}
	}
}

func TestErrorsNeverQuoteTheLinkToken(t *testing.T) {
	err := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/ns/conversations/a/connect?t=s3cret&stream_name=x", Err: errors.New("connection refused")}
	var errw strings.Builder
	report(Env{Stderr: &errw}, err)
	if strings.Contains(errw.String(), "s3cret") || !strings.Contains(errw.String(), "t=…") {
		t.Fatalf("%q", errw.String())
	}
}
