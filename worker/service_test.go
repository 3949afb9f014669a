package worker

import (
	"net/http"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, path string
		ok            bool
		ns, alias     string
	}{
		{"/healthz", "/healthz", true, "", ""},
		{"/healthz", "/healthz/x", false, "", ""},
		{"/healthz", "/", false, "", ""},
		{"/healthz", "", false, "", ""},
		{"/healthz", "healthz", false, "", ""},
		{"/healthz", "/HEALTHZ", false, "", ""},
		{"/v1/accounts", "/v1/accounts", true, "", ""},
		{"/v1/accounts", "/v2/accounts", false, "", ""},
		{"/v1/accounts", "/v1/account", false, "", ""},
		{"/v1/accounts", "/v1/accounts/x", false, "", ""},
		{"/v1/{ns}/conversations", "/v1/demo-9421/conversations", true, "demo-9421", ""},
		{"/v1/{ns}/conversations", "/v1/demo/conversation", false, "", ""},
		{"/v1/{ns}/conversations", "/v1/demo/conversations/x", false, "", ""},
		{"/v1/{ns}/conversations", "/v1/conversations", false, "", ""},
		{"/v1/{ns}/conversations/{alias}", "/v1/demo/conversations/falcon-pulse-9421", true, "demo", "falcon-pulse-9421"},
		{"/v1/{ns}/conversations/{alias}", "/x1/demo/conversations/a", false, "", ""},
		{"/v1/{ns}/conversations/{alias}", "/demo/conversations/a", false, "", ""},
		// Captures are raw: the handlers validate them.
		{"/v1/{ns}/conversations/{alias}", "/v1/Bad_NS/conversations/UP.per", true, "Bad_NS", "UP.per"},
		{ConnectPattern, "/demo/conversations/a1/connect", true, "demo", "a1"},
		{ConnectPattern, "/v1/demo/conversations/a1/connect", false, "", ""},
		{ConnectPattern, "/demo/conversations/a1", false, "", ""},
		{ConnectPattern, "/demo/conversations/a1/connect/x", false, "", ""},
		{ConnectPattern, "/demo/conversation/a1/connect", false, "", ""},
		{ConnectPattern, "/demo/conversations/a1/Connect", false, "", ""},
		{ConnectPattern, "/demo//conversations/a1/connect", false, "", ""},
	}
	for _, tt := range tests {
		p, ok := match(tt.pattern, tt.path)
		if ok != tt.ok {
			t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.path, ok, tt.ok)
			continue
		}
		if ok && (p.ns != tt.ns || p.alias != tt.alias) {
			t.Errorf("match(%q, %q) captured ns=%q alias=%q, want %q %q", tt.pattern, tt.path, p.ns, p.alias, tt.ns, tt.alias)
		}
	}
}

// TestRoutesAreDistinct checks each documented example path reaches exactly
// the route meant for it, first in table order.
func TestRoutesAreDistinct(t *testing.T) {
	tests := []struct{ path, pattern string }{
		{"/healthz", "/healthz"},
		{"/v1/accounts", "/v1/accounts"},
		{"/v1/demo/conversations", "/v1/{ns}/conversations"},
		{"/v1/demo/conversations/falcon-pulse-9421", "/v1/{ns}/conversations/{alias}"},
		{"/demo/conversations/falcon-pulse-9421/connect", ConnectPattern},
	}
	for _, tt := range tests {
		got := ""
		for _, route := range Routes {
			if _, ok := match(route.Pattern, tt.path); ok {
				got = route.Pattern
				break
			}
		}
		if got != tt.pattern {
			t.Errorf("%s routes to %q, want %q", tt.path, got, tt.pattern)
		}
	}
}

func TestBearer(t *testing.T) {
	tests := []struct {
		name   string
		header []string // values of Authorization; nil means absent
		want   string
	}{
		{"absent", nil, ""},
		{"empty", []string{""}, ""},
		{"canonical", []string{"Bearer ams_sk_abc"}, "ams_sk_abc"},
		{"lower case scheme", []string{"bearer ams_sk_abc"}, "ams_sk_abc"},
		{"upper case scheme", []string{"BEARER ams_sk_abc"}, "ams_sk_abc"},
		{"extra spaces trimmed", []string{"Bearer    ams_sk_abc  "}, "ams_sk_abc"},
		{"scheme only", []string{"Bearer"}, ""},
		{"scheme and space only", []string{"Bearer "}, ""},
		{"scheme and spaces only", []string{"Bearer    "}, ""},
		{"other scheme", []string{"Basic dXNlcjpwYXNz"}, ""},
		{"no scheme", []string{"ams_sk_abc"}, ""},
		{"scheme without space", []string{"Bearerams_sk_abc"}, ""},
		{"token scheme", []string{"Token ams_sk_abc"}, ""},
		{"credential kept verbatim", []string{"Bearer ams_sk_-_AZaz09"}, "ams_sk_-_AZaz09"},
		{"first header wins", []string{"Bearer first", "Bearer second"}, "first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "https://ams.example/v1/demo/conversations", nil)
			for _, v := range tt.header {
				r.Header.Add("Authorization", v)
			}
			if got := bearer(r); got != tt.want {
				t.Errorf("bearer(%q) = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}
