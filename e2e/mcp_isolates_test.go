//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// followBroker sends every request to the broker current names, whatever
// host the client put in its URL: one MCP session spans two processes.
type followBroker struct{ current *atomic.Pointer[url.URL] }

func (f followBroker) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = f.current.Load().Scheme, f.current.Load().Host, f.current.Load().Host
	return http.DefaultTransport.RoundTrip(r)
}

// TestMCPSessionAcrossIsolates (11.1): an MCP session (the official Go SDK
// client, the reference dialect) joins in one `wrangler dev` process, which
// then ends; a second process over the same state — another isolate with
// no Worker memory of the session — serves the same session's
// ams_send{data} and ams_recv{wait_ms} with no handle, because the binding
// lives in the session's Durable Object and the member in the
// conversation's.
func TestMCPSessionAcrossIsolates(t *testing.T) {
	persist, vars := ownState(t)
	first, err := StartBroker(BrokerOptions{Vars: vars, PersistDir: persist})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			first.Stop()
		}
	}()
	status, _, acc := callURL(t, first.URL, "POST", "/v1/accounts", nil, `{"namespace":"iso-`+randomHex(5)+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("account: %d %v", status, acc)
	}
	credential := acc["credential"].(string)
	status, _, minted := callURL(t, first.URL, "POST", "/v1/"+acc["namespace"].(string)+"/conversations",
		map[string]string{"Authorization": "Bearer " + credential}, `{}`)
	if status != http.StatusCreated {
		t.Fatalf("mint: %d %v", status, minted)
	}
	link := minted["magic_link"].(string)

	var current atomic.Pointer[url.URL]
	u, _ := url.Parse(first.URL)
	current.Store(u)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agent, err := mcp.NewClient(&mcp.Implementation{Name: "Isolated Agent", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: link, HTTPClient: &http.Client{Transport: followBroker{&current}}, DisableStandaloneSSE: true, MaxRetries: -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-06-18"})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	// The TypeScript SDK client's session starts in the first process too.
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte(first.URL), 0o644)
	ts := exec.Command("node", filepath.Join(repoRoot, "e2e/ts/isolates.mjs"))
	ts.Dir = repoRoot
	ts.Env = append(os.Environ(), "AMS_LINK="+link, "AMS_TARGET_FILE="+target)
	tsIn, _ := ts.StdinPipe()
	tsOut, _ := ts.StdoutPipe()
	var tsErr bytes.Buffer
	ts.Stderr = &tsErr
	if err := ts.Start(); err != nil {
		t.Fatal(err)
	}
	defer ts.Process.Kill()
	tsLines := bufio.NewScanner(tsOut)
	phase := func(n int) map[string]any {
		t.Helper()
		var out map[string]any
		if !tsLines.Scan() || json.Unmarshal(tsLines.Bytes(), &out) != nil || out["phase"] != float64(n) {
			t.Fatalf("isolates.mjs phase %d: %q\n%s", n, tsLines.Text(), tsErr.String())
		}
		return out
	}
	tsName := phase(1)["name"].(string)

	joined := tool(t, agent, "ams_join", map[string]any{"peer_identity": map[string]any{"kind": "agent", "model": "iso"}})
	name := joined["stream_name"].(string)
	if sent := tool(t, agent, "ams_send", map[string]any{"data": "from the first isolate"}); sent["ok"] != true {
		t.Fatalf("send in the first isolate: %v", sent)
	}

	first.Stop()
	stopped = true
	second, err := StartBroker(BrokerOptions{Vars: vars, PersistDir: persist})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	u, _ = url.Parse(second.URL)
	current.Store(u)
	os.WriteFile(target, []byte(second.URL), 0o644)
	parsed, _ := client.ParseMagicLink(link)
	ws, hello := join(t, second.URL+"/"+parsed.Namespace+"/conversations/"+parsed.Alias+"?t="+parsed.Token,
		client.DialOptions{Credential: credential, StreamName: "watcher"})
	if !slices.ContainsFunc(hello.Peers, func(p client.Stream) bool { return p.StreamName == name }) ||
		!slices.ContainsFunc(hello.Peers, func(p client.Stream) bool { return p.StreamName == tsName }) {
		t.Fatalf("the member is not among the peers after the restart: %s", hello.Raw)
	}
	sent := tool(t, agent, "ams_send", map[string]any{"data": "from the second isolate"})
	if sent["ok"] != true || sent["rejoined"] == true {
		t.Fatalf("send in the second isolate: %v", sent)
	}
	if tok := next(t, ws, wire.TypeToken); *tok.Data != "from the second isolate" || tok.StreamName != name {
		t.Fatalf("the peer got %s", tok.Raw)
	}
	fmt.Fprintln(tsIn, "go")
	if tok := next(t, ws, wire.TypeToken); *tok.Data != "ts from the second isolate" || tok.StreamName != tsName {
		t.Fatalf("the peer got %s from the TypeScript session", tok.Raw)
	}
	if err := ws.SendToken(testContext(t, 5*time.Second), "to the agent"); err != nil {
		t.Fatal(err)
	}
	frames := framesOf(t, tool(t, agent, "ams_recv", map[string]any{"wait_ms": 10000}))
	var got []string
	for _, f := range frames {
		if f["type"] == wire.TypeToken {
			got = append(got, f["data"].(string))
		}
	}
	if strings.Join(got, "|") != "ts from the second isolate|to the agent" {
		t.Fatalf("ams_recv in the second isolate: %v", frames)
	}
	// The TypeScript session read it too (it also hears the Go agent's
	// "from the second isolate"), and did not have to join again.
	out := phase(2)
	var tsGot []string
	for _, f := range out["frames"].([]any) {
		if f := f.(map[string]any); f["method"] == "notifications/ams/token" {
			tsGot = append(tsGot, f["params"].(map[string]any)["data"].(string))
		}
	}
	if out["rejoined"] != false || !slices.Contains(tsGot, "to the agent") || !slices.Contains(tsGot, "from the second isolate") {
		t.Fatalf("the TypeScript session in the second isolate: %v", out)
	}
	// Every frame reaches the SDK's notification handler at most once, over
	// the GET leg, ride-alongs and ams_recv's event stream together.
	seen := map[string]bool{}
	for _, d := range out["pushed"].([]any) {
		if seen[d.(string)] {
			t.Errorf("the TypeScript session was notified of %q twice: %v", d, out["pushed"])
		}
		seen[d.(string)] = true
	}
	t.Logf("TypeScript SDK's own GET leg, reconnected to the second process, and its answers notified %v", out["pushed"])
}
