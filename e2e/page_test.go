//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// chromium finds the browser: AMS_CHROMIUM, else Debian's chromium.
func chromium(t *testing.T) string {
	for _, candidate := range []string{os.Getenv("AMS_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if candidate == "" {
			continue
		}
		if path, err := exec.LookPath(candidate); err == nil {
			return path
		}
	}
	t.Fatal("no Chromium found: install Debian's chromium (.ci/run does) or set AMS_CHROMIUM")
	return ""
}

// browser starts headless Chromium with a viewport of width×height.
func browser(t *testing.T, width, height int) context.Context {
	profile, err := os.MkdirTemp("", "ams-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(width, height),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// This chromedp's protocol tables predate some enum values the browser
	// sends; events it cannot decode are irrelevant to the test.
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
			t.Log(msg)
		}
	}))
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
		// The browser may still be writing its profile as it exits.
		time.Sleep(300 * time.Millisecond)
		os.RemoveAll(profile)
	})
	return ctx
}

// artifact saves a screenshot under e2e/artifacts/ for people to look at.
func artifact(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join(repoRoot, "e2e", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDemoPage drives the page in a real browser: mint, then a Go WebSocket
// peer and the page talk both ways, and both panes show the peer's token.
func TestDemoPage(t *testing.T) {
	ctx := browser(t, 1280, 900)
	var link, statusText string
	err := chromedp.Run(ctx,
		chromedp.Navigate(broker.URL+"/"),
		chromedp.WaitVisible("#mint", chromedp.ByID),
		chromedp.Poll(`document.getElementById("wire-latency").textContent.includes("ok")`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.Click("#mint", chromedp.ByID),
		chromedp.Poll(`document.getElementById("magic-link").value.includes("/conversations/")`, nil, chromedp.WithPollingTimeout(30*time.Second)),
		chromedp.Value("#magic-link", &link, chromedp.ByID),
		chromedp.Poll(`document.getElementById("raw-status").textContent.includes("connected")`, nil, chromedp.WithPollingTimeout(30*time.Second)),
		chromedp.Text("#demo-status", &statusText, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("mint in the browser: %v (status %q)", err, statusText)
	}
	if !strings.HasPrefix(link, broker.URL+"/demo-") {
		t.Fatalf("magic link %q", link)
	}

	// A Go peer joins the link the page shows.
	peer, joined := join(t, link, client.DialOptions{Credential: newAccount(t).Credential, StreamName: "go-peer"})
	names := map[string]bool{}
	for _, p := range joined.Peers {
		names[p.StreamName] = true
	}
	if !names["browser"] || !names["wire-view"] {
		t.Fatalf("the Go peer sees %s", joined.Raw)
	}
	if err := peer.SendToken(testContext(t, 5*time.Second), "hello from Go 🐹"); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Run(ctx,
		chromedp.Poll(`document.getElementById("chat").textContent.includes("go-peer:hello from Go 🐹")`, nil, chromedp.WithPollingTimeout(30*time.Second)),
		chromedp.Poll(`[...document.querySelectorAll("#frames pre")].some(p => { const f = JSON.parse(p.textContent); return f.type === "token" && f.data === "hello from Go 🐹" && f.stream_name === "go-peer" })`, nil, chromedp.WithPollingTimeout(30*time.Second)),
	)
	if err != nil {
		t.Fatalf("the page did not show the Go peer's token in both panes: %v", err)
	}

	// The person types; the Go peer receives it from the browser's stream.
	err = chromedp.Run(ctx,
		chromedp.SendKeys("#token-input", "hi from the page", chromedp.ByID),
		chromedp.Click("#send", chromedp.ByID),
		chromedp.Poll(`document.getElementById("chat").textContent.includes("hi from the page")`, nil, chromedp.WithPollingTimeout(20*time.Second)),
	)
	if err != nil {
		t.Fatal(err)
	}
	for {
		f := next(t, peer, wire.TypeToken)
		if f.StreamName == "browser" {
			if *f.Data != "hi from the page" {
				t.Fatalf("the Go peer got %s", f.Raw)
			}
			break
		}
	}
	artifact(t, ctx, "demo-desktop.png")

	// The protocol section is generated against this host.
	var protocol string
	if err := chromedp.Run(ctx, chromedp.Text("#protocol", &protocol, chromedp.ByID)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"curl " + broker.URL + "/healthz", broker.URL + "/v1/accounts", "/v1/{ns}/conversations", "{magic_link}/connect"} {
		if !strings.Contains(protocol, want) {
			t.Fatalf("protocol section lacks %q", want)
		}
	}
}

// TestDemoPageOnAPhone checks the layout at a phone's width: nothing wider
// than the screen, the Mint button on the first screen (no scrolling to find
// the one thing to do), and the controls are reachable and labelled.
func TestDemoPageOnAPhone(t *testing.T) {
	ctx := browser(t, 390, 844)
	var overflow bool
	var unlabelled int
	var mintBottom, screen float64
	err := chromedp.Run(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile),
		chromedp.Navigate(broker.URL+"/"),
		chromedp.WaitVisible("#mint", chromedp.ByID),
		chromedp.Evaluate(`window.scrollY + document.getElementById("mint").getBoundingClientRect().bottom`, &mintBottom),
		chromedp.Evaluate(`window.innerHeight`, &screen),
		chromedp.Evaluate(`document.documentElement.scrollWidth > window.innerWidth + 1 ||
			[...document.querySelectorAll("main *")].some(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest("pre"))`, &overflow),
		chromedp.Evaluate(`[...document.querySelectorAll("input, button")].filter(e => {
			const label = e.labels && e.labels.length ? e.labels[0].textContent : "";
			return !(label || e.textContent.trim() || e.getAttribute("aria-label"));
		}).length`, &unlabelled),
	)
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Fatal("the page is wider than a phone's screen")
	}
	if mintBottom > screen {
		t.Fatalf("the Mint button ends %.0f px down a %.0f px screen: below the fold", mintBottom, screen)
	}
	if unlabelled != 0 {
		t.Fatalf("%d controls have no accessible name", unlabelled)
	}
	artifact(t, ctx, "demo-phone.png")
}
