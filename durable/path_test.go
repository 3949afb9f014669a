package durable

import (
	"net/url"
	"testing"
)

func TestRequestPathIsURLParse(t *testing.T) {
	for _, raw := range []string{
		"https://conversation.internal/connect",
		"https://conversation.internal/streams",
		"https://conversation.internal/x/member/recv",
		"https://conversation.internal/",
		"https://conversation.internal",
		"https://conversation.internal/a%2Fb",
		"https://conversation.internal/a?b=c",
		"https://conversation.internal/a#b",
		"https://conversation.internal/a b",
		"https://conversation.internal/a\x7f",
		"https://conversation.internal//a/../b",
		"https://conversation.internal/é",
		"https://other.example/connect",
		"http://conversation.internal/connect",
		"https://conversation.internal:8443/connect",
		"https://conversation.internal/%zz",
		"://bad",
	} {
		got, err := requestPath(raw)
		u, wantErr := url.Parse(raw)
		if (err == nil) != (wantErr == nil) || err == nil && got != u.Path {
			t.Errorf("requestPath(%q) = %q, %v; url.Parse: %v", raw, got, err, wantErr)
		}
	}
}
