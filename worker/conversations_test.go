package worker

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"testing"

	"github.com/ams-dev/ams/wire"
)

func TestMagicLink(t *testing.T) {
	token := wire.NewPermissiveToken()
	tests := []struct {
		name string
		req  func() *http.Request
		want string
	}{
		{
			"https from the URL scheme",
			func() *http.Request {
				r, _ := http.NewRequest("POST", "https://ams.klappy.dev/v1/demo/conversations", nil)
				return r
			},
			"https://ams.klappy.dev/demo/conversations/falcon-pulse-9421?t=" + token,
		},
		{
			"http from the URL scheme",
			func() *http.Request {
				r, _ := http.NewRequest("POST", "http://localhost:8787/v1/demo/conversations", nil)
				return r
			},
			"http://localhost:8787/demo/conversations/falcon-pulse-9421?t=" + token,
		},
		{
			"https from TLS when the URL has no scheme",
			func() *http.Request {
				r := &http.Request{Method: "POST", URL: &url.URL{Path: "/v1/demo/conversations"}, Host: "tls.example", TLS: &tls.ConnectionState{}}
				return r
			},
			"https://tls.example/demo/conversations/falcon-pulse-9421?t=" + token,
		},
		{
			"http without scheme or TLS",
			func() *http.Request {
				return &http.Request{Method: "POST", URL: &url.URL{Path: "/v1/demo/conversations"}, Host: "plain.example:8080"}
			},
			"http://plain.example:8080/demo/conversations/falcon-pulse-9421?t=" + token,
		},
		{
			"the Host header, not the URL host",
			func() *http.Request {
				r, _ := http.NewRequest("POST", "https://internal.example/v1/demo/conversations", nil)
				r.Host = "public.example"
				return r
			},
			"https://public.example/demo/conversations/falcon-pulse-9421?t=" + token,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MagicLink(tt.req(), "demo", "falcon-pulse-9421", token); got != tt.want {
				t.Errorf("MagicLink = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMagicLinkParsesBack checks a link, plus /connect, reaches the connect
// endpoint with the same namespace, alias and token, even for a token that
// needs escaping.
func TestMagicLinkParsesBack(t *testing.T) {
	r, _ := http.NewRequest("POST", "https://ams.example/v1/ns-1/conversations", nil)
	for _, token := range []string{wire.NewPermissiveToken(), "a+b/c=d&e f?#%"} {
		link := MagicLink(r, "ns-1", "calm-otter-1234", token)
		u, err := url.Parse(link)
		if err != nil {
			t.Fatalf("MagicLink = %q does not parse: %v", link, err)
		}
		if got := u.Query().Get("t"); got != token {
			t.Errorf("t = %q, want %q (link %s)", got, token, link)
		}
		if len(u.Query()) != 1 || u.Fragment != "" {
			t.Errorf("link %s carries more than t", link)
		}
		p, ok := match(ConnectPattern, u.Path+"/connect")
		if !ok || p.ns != "ns-1" || p.alias != "calm-otter-1234" {
			t.Errorf("%s/connect matches %v with %+v", u.Path, ok, p)
		}
	}
}
