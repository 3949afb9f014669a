package client

import "testing"

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"http://LOCALHOST:8787/":   "http://localhost:8787",
		"https://ams.example:443":  "https://ams.example",
		"http://ams.example:80":    "http://ams.example",
		"https://ams.example:8443": "https://ams.example:8443",
		"http://[::1]:8787":        "http://[::1]:8787",
	} {
		if got, err := Origin(in); err != nil || got != want {
			t.Errorf("Origin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://h", "http://", "http://u:p@h", "http://h/path", "http://h?t=x", "localhost:8787"} {
		if got, err := Origin(bad); err == nil {
			t.Errorf("Origin(%q) = %q, want an error", bad, got)
		}
	}
	if !SameOrigin("http://127.0.0.1:8787", "http://127.0.0.1:8787/") || SameOrigin("http://127.0.0.1:8787", "http://127.0.0.1:8788") ||
		SameOrigin("http://h", "https://h") || SameOrigin("http://h", "http://h.evil") {
		t.Error("SameOrigin")
	}
}

func TestPlainHTTPIsForLoopbackOnly(t *testing.T) {
	for origin, ok := range map[string]bool{
		"http://localhost:8787": true, "http://127.0.0.1": true, "http://127.1.2.3:9": true, "http://[::1]:1": true,
		"https://anywhere.example": true, "http://anywhere.example": false, "http://192.168.1.2:8787": false,
		"http://x.localhost": false, "http://localhost.evil.example": false, "http://0.0.0.0:8787": false,
	} {
		if err := CheckTransport(origin, false); (err == nil) != ok {
			t.Errorf("CheckTransport(%q) = %v, want allowed %v", origin, err, ok)
		}
		if err := CheckTransport(origin, true); err != nil {
			t.Errorf("CheckTransport(%q, insecure) = %v", origin, err)
		}
	}
}
