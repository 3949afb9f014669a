package worker

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// cspDirectives splits a Content-Security-Policy into directive → sources.
func cspDirectives(t *testing.T, policy string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range strings.Split(policy, ";") {
		name, sources, _ := strings.Cut(strings.TrimSpace(d), " ")
		if name != "" {
			out[name] = sources
		}
	}
	return out
}

// TestHomePageCSP: the demo page may connect only to its own origin, over
// fetch and over ws/wss, and sets form-action, base-uri and nosniff.
func TestHomePageCSP(t *testing.T) {
	for _, tc := range []struct{ host, connect string }{
		{"ams.example.dev", "'self' ws://ams.example.dev wss://ams.example.dev"},
		{"127.0.0.1:8787", "'self' ws://127.0.0.1:8787 wss://127.0.0.1:8787"},
		{"[::1]:8787", "'self' ws://[::1]:8787 wss://[::1]:8787"},
		// A Host that could carry a directive of its own is not pasted in.
		{"evil.dev; connect-src *", "'self'"},
		{"evil.dev wss:", "'self'"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = tc.host
		w := httptest.NewRecorder()
		(&Service{}).homePage(w, r, params{})
		h := w.Result().Header
		policy := h.Get("Content-Security-Policy")
		d := cspDirectives(t, policy)
		if d["connect-src"] != tc.connect {
			t.Errorf("Host %q: connect-src %q, want %q (policy %q)", tc.host, d["connect-src"], tc.connect, policy)
		}
		for name, want := range map[string]string{"form-action": "'none'", "base-uri": "'none'", "frame-ancestors": "'none'", "script-src": "'self'"} {
			if d[name] != want {
				t.Errorf("Host %q: %s %q, want %q", tc.host, name, d[name], want)
			}
		}
		if strings.Contains(policy, " ws: ") || strings.Contains(policy, "wss:;") || strings.Contains(policy, "*") {
			t.Errorf("policy allows any host: %q", policy)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("home page without nosniff")
		}
	}
}

// TestSiteAssetNosniff: assets are served with their type and nosniff.
func TestSiteAssetNosniff(t *testing.T) {
	w := httptest.NewRecorder()
	(&Service{}).siteAsset(w, httptest.NewRequest(http.MethodGet, "/site/app.js", nil), params{asset: "app.js"})
	if got := w.Result().Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Fatalf("asset nosniff %q", got)
	}
}

// TestLinkPageCSP: the magic link's HTML page sends a CSP that allows its
// one inline style (by hash, matching what the page holds) and nothing else.
func TestLinkPageCSP(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/demo/conversations/swift-falcon-1?t=secret", nil)
	r.Header.Set("Accept", "text/html")
	w := httptest.NewRecorder()
	(&Service{}).linkPage(w, r, params{ns: "demo", alias: "swift-falcon-1"})
	res := w.Result()
	d := cspDirectives(t, res.Header.Get("Content-Security-Policy"))
	for name, want := range map[string]string{"default-src": "'none'", "form-action": "'none'", "base-uri": "'none'", "frame-ancestors": "'none'"} {
		if d[name] != want {
			t.Errorf("%s %q, want %q", name, d[name], want)
		}
	}
	if res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("link page without nosniff")
	}
	styles := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindAllStringSubmatch(w.Body.String(), -1)
	if len(styles) != 1 {
		t.Fatalf("want one inline style, got %d", len(styles))
	}
	if want := "'" + styleHash(styles[0][1]) + "'"; d["style-src"] != want {
		t.Fatalf("style-src %q does not allow the page's style (%s)", d["style-src"], want)
	}
	if strings.Contains(w.Body.String(), "<script") {
		t.Fatalf("the link page has a script its CSP forbids")
	}
}
