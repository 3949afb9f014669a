//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// TestMCPTypeScriptSDK runs e2e/ts/dialect.mjs: the official TypeScript SDK
// client speaking the reference dialect (join, send{data}, recv{wait_ms},
// push on the GET leg, a streamed reply in one read, self-rehydration,
// takeover, prompts and resources, DELETE) while a WebSocket peer watches.
func TestMCPTypeScriptSDK(t *testing.T) {
	root, _ := filepath.Abs("..")
	if _, err := os.Stat(filepath.Join(root, "node_modules/@modelcontextprotocol/sdk")); err != nil {
		t.Fatalf("@modelcontextprotocol/sdk is not installed (make deps): %v", err)
	}
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{Metadata: json.RawMessage(`{"prompts":[{"name":"hello","messages":[]}]}`)})
	ws, _ := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "watcher"})

	cmd := exec.Command("node", filepath.Join(root, "e2e/ts/dialect.mjs"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "AMS_URL="+broker.URL, "AMS_LINK="+conv.MagicLink)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dialect.mjs: %v\n%s\n%s", err, stderr.String(), stdout.String())
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("dialect.mjs did not finish\n%s", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var summary struct {
		NameA, NameB          string
		PushMillis            float64
		CallsPerStreamedReply int
		ClosedPushed          bool
		Prompts               []string
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &summary); err != nil {
		t.Fatalf("summary %q: %v", stdout.String(), err)
	}
	t.Logf("TypeScript SDK: push of a token in %v ms; %d ams_recv calls for a streamed reply of 18 words 40 ms apart; notifications/ams/closed pushed on takeover: %v",
		summary.PushMillis, summary.CallsPerStreamedReply, summary.ClosedPushed)
	if len(summary.Prompts) != 1 || summary.Prompts[0] != "hello" {
		t.Errorf("prompts %v", summary.Prompts)
	}
	// The WebSocket peer saw A join with its identity, A's token verbatim,
	// and B leave when its session ended.
	sawIdentity, sawToken, sawLeft := false, false, false
	for !sawLeft {
		f := nextAny(t, ws)
		switch {
		case f.Type == wire.TypeStreamJoined && f.StreamName == summary.NameA:
			sawIdentity = strings.Contains(string(f.Raw), `"peer_identity":{"kind":"agent","model":"ts-model","client":"Claude Code"}`)
		case f.Type == wire.TypeToken && f.StreamName == summary.NameA:
			sawToken = sawToken || *f.Data == "hello from ts <b>&amp;"
		case f.Type == wire.TypeStreamLeft && f.StreamName == summary.NameB:
			sawLeft = true
		}
	}
	if !sawIdentity || !sawToken {
		t.Errorf("the WebSocket peer saw identity %v, token %v", sawIdentity, sawToken)
	}
}

// nextAny reads the next frame of any type.
func nextAny(t *testing.T, conn *client.Conn) *client.Frame {
	t.Helper()
	f, err := conn.Read(testContext(t, 20*time.Second))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return f
}
