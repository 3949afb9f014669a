package worker

import (
	"net/http"
	"testing"
)

func TestIsUpgrade(t *testing.T) {
	tests := []struct {
		upgrade string
		want    bool
	}{
		{"websocket", true},
		{"WebSocket", true},
		{"WEBSOCKET", true},
		{"", false},
		{"h2c", false},
		{"websockets", false},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodGet, "https://ams.example/demo/conversations/a/connect", nil)
		if tt.upgrade != "" {
			r.Header.Set("Upgrade", tt.upgrade)
		}
		if got := IsUpgrade(r); got != tt.want {
			t.Errorf("IsUpgrade(Upgrade: %q) = %v, want %v", tt.upgrade, got, tt.want)
		}
	}
}

func TestIsConnect(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		url     string
		upgrade string
		want    bool
	}{
		{"upgrade on connect", "GET", "https://ams.example/demo/conversations/falcon-pulse-9421/connect?t=abc", "websocket", true},
		{"without query", "GET", "https://ams.example/demo/conversations/a/connect", "websocket", true},
		{"no upgrade header", "GET", "https://ams.example/demo/conversations/a/connect?t=abc", "", false},
		{"other upgrade", "GET", "https://ams.example/demo/conversations/a/connect?t=abc", "h2c", false},
		{"post", "POST", "https://ams.example/demo/conversations/a/connect?t=abc", "websocket", false},
		{"head", "HEAD", "https://ams.example/demo/conversations/a/connect?t=abc", "websocket", false},
		{"v1 prefix", "GET", "https://ams.example/v1/demo/conversations/a/connect?t=abc", "websocket", false},
		{"magic link itself", "GET", "https://ams.example/demo/conversations/a?t=abc", "websocket", false},
		{"control plane", "GET", "https://ams.example/v1/demo/conversations/a", "websocket", false},
		{"healthz", "GET", "https://ams.example/healthz", "websocket", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest(tt.method, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.upgrade != "" {
				r.Header.Set("Upgrade", tt.upgrade)
				r.Header.Set("Connection", "Upgrade")
			}
			if got := IsConnect(r); got != tt.want {
				t.Errorf("IsConnect(%s %s, Upgrade: %q) = %v, want %v", tt.method, tt.url, tt.upgrade, got, tt.want)
			}
		})
	}
}
