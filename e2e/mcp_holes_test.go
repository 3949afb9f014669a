//go:build e2e

package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// storedObjects counts the Durable Objects with storage under persist.
func storedObjects(t *testing.T, persist string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(persist, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".sqlite") {
			n++
		}
		return nil
	})
	return n
}

// rawTool calls an MCP tool with a raw JSON-RPC body (no SDK: the bytes on
// the wire are what is checked) and returns the answer's body.
func rawTool(t *testing.T, endpoint, name, arguments string) []byte {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + name + `","arguments":` + arguments + `}}`
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", name, res.StatusCode, raw)
	}
	return raw
}

// toolCode is the error code of a raw tool answer ("" when it succeeded).
func toolCode(t *testing.T, raw []byte) string {
	t.Helper()
	var reply struct {
		Result struct {
			IsError           bool           `json:"isError"`
			StructuredContent map[string]any `json:"structuredContent"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil {
		t.Fatalf("answer %s", raw)
	}
	if !reply.Result.IsError {
		return ""
	}
	code, _ := reply.Result.StructuredContent["error"].(string)
	return code
}

// TestMCPHolesRaw (issue 10, items 4 and 5) against wrangler dev, on the
// wire bytes: handles that were never issued (the old unauthenticated
// base64 form, one sealed under another key, garbage) are not_joined and
// leave no Durable Object with storage behind; data crosses MCP verbatim (a
// lone surrogate reaches the WebSocket peer as the same escape, ams_recv
// returns HTML characters unescaped) and a missing or non-string data is an
// error that emits nothing.
func TestMCPHolesRaw(t *testing.T) {
	persist, vars := ownState(t)
	b, err := StartBroker(BrokerOptions{Vars: vars, PersistDir: persist})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	status, _, created := callURL(t, b.URL, "POST", "/v1/accounts", nil, `{"namespace":"holes-`+randomHex(4)+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("account: %d %v", status, created)
	}
	acc := &client.Account{AccountID: created["account_id"].(string), Namespace: created["namespace"].(string), Credential: created["credential"].(string)}
	status, _, minted := callURL(t, b.URL, "POST", "/v1/"+acc.Namespace+"/conversations",
		map[string]string{"Authorization": "Bearer " + acc.Credential}, `{}`)
	if status != http.StatusCreated {
		t.Fatalf("mint: %d %v", status, minted)
	}
	link := minted["magic_link"].(string)
	ws, _ := join(t, link, client.DialOptions{Credential: acc.Credential, StreamName: "web"})
	if code := toolCode(t, rawTool(t, link, "ams_join", `{"stream_name":"agent"}`)); code != "" {
		t.Fatalf("join: %s", code)
	}
	next(t, ws, wire.TypeStreamJoined)

	// Forged handles, each naming a conversation that does not exist.
	before := storedObjects(t, persist)
	parsed, _ := client.ParseMagicLink(link)
	fresh := wire.NewConversationID()
	oldForm, _ := json.Marshal(map[string]string{"c": fresh, "s": "agent", "l": link})
	forged := []string{
		base64.RawURLEncoding.EncodeToString(oldForm),
		wire.Peppers{Credential: "x", Permissive: "not-the-deployment's"}.SealHandle(wire.MemberHandle{
			ConversationID: fresh, Namespace: parsed.Namespace, Alias: parsed.Alias, AccountID: acc.AccountID, StreamName: "agent",
		}),
		"garbage",
	}
	for _, h := range forged {
		for _, tool := range []string{"ams_send", "ams_recv", "ams_set_metadata", "ams_leave"} {
			args, _ := json.Marshal(map[string]any{"handle": h, "data": "x", "metadata": map[string]any{}})
			if code := toolCode(t, rawTool(t, b.URL+"/mcp", tool, string(args))); code != wire.ErrNotJoined.Code {
				t.Errorf("%s with a forged handle %.12s…: %q, want not_joined", tool, h, code)
			}
		}
	}
	if after := storedObjects(t, persist); after != before {
		t.Errorf("forged handles left %d objects with storage (was %d)", after, before)
	}

	// Verbatim data, to a WebSocket peer and back.
	const lone = `"\ud83d lone <b>&amp; \u2028"`
	if code := toolCode(t, rawTool(t, link, "ams_send", `{"stream_name":"agent","data":`+lone+`}`)); code != "" {
		t.Fatalf("send: %s", code)
	}
	tok := next(t, ws, wire.TypeToken)
	if !bytes.HasSuffix(tok.Raw, []byte(`"data":`+lone+`}`)) {
		t.Errorf("the WebSocket peer got %s, want data %s verbatim", tok.Raw, lone)
	}
	for _, args := range []string{`{"stream_name":"agent"}`, `{"stream_name":"agent","data":null}`, `{"stream_name":"agent","data":5}`, `{"stream_name":"agent","data":{"a":1}}`} {
		if code := toolCode(t, rawTool(t, link, "ams_send", args)); code != wire.ErrInvalidArguments.Code {
			t.Errorf("send %s: %q, want invalid_arguments", args, code)
		}
	}
	const html = `"<b>&amp; \u003e"`
	if err := ws.WriteRaw(testContext(t, 5*time.Second), []byte(`{"type":"token","data":`+html+`}`)); err != nil {
		t.Fatal(err)
	}
	got := rawTool(t, link, "ams_recv", `{"stream_name":"agent","wait_ms":5000}`)
	if !bytes.Contains(got, []byte(`<b>&amp;`)) || bytes.Contains(got, []byte(`\u003cb`)) {
		t.Errorf("ams_recv answered %s, want <b>&amp; unescaped", got)
	}
	// Nothing else reached the peer: the refused sends emitted no token.
	if err := ws.WriteRaw(testContext(t, 5*time.Second), []byte(`{"type":"token","data":"marker"}`)); err != nil {
		t.Fatal(err)
	}
	if code := toolCode(t, rawTool(t, link, "ams_send", `{"stream_name":"agent","data":"last"}`)); code != "" {
		t.Fatalf("send: %s", code)
	}
	if tok := next(t, ws, wire.TypeToken); *tok.Data != "last" {
		t.Errorf("after the refused sends the peer got %s, want the token \"last\"", tok.Raw)
	}
}

// TestMCPBatchBounds (issue 10, item 7): a JSON-RPC batch of
// wire.MaxRPCBatch messages is answered in full; one more is refused whole
// (-32600) before any of it runs; a request over wire.MCPBodyBytes is a JSON
// 413.
func TestMCPBatchBounds(t *testing.T) {
	batch := func(n int) []byte {
		var msgs []string
		for i := range n {
			msgs = append(msgs, `{"jsonrpc":"2.0","id":`+strconv.Itoa(i)+`,"method":"tools/list"}`)
		}
		return []byte("[" + strings.Join(msgs, ",") + "]")
	}
	post := func(body []byte) (int, []byte) {
		req, _ := http.NewRequest("POST", broker.URL+"/mcp", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("MCP-Protocol-Version", "2025-03-26")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, raw
	}
	status, raw := post(batch(wire.MaxRPCBatch))
	var replies []map[string]any
	if err := json.Unmarshal(raw, &replies); status != http.StatusOK || err != nil || len(replies) != wire.MaxRPCBatch {
		t.Fatalf("a batch of %d: %d, %d replies (%.200s)", wire.MaxRPCBatch, status, len(replies), raw)
	}
	status, raw = post(batch(wire.MaxRPCBatch + 1))
	var refused struct {
		Error struct{ Code int } `json:"error"`
	}
	if err := json.Unmarshal(raw, &refused); err != nil || refused.Error.Code != -32600 {
		t.Fatalf("a batch of %d: %d %.200s, want one -32600 error", wire.MaxRPCBatch+1, status, raw)
	}
	status, raw = post(bytes.Repeat([]byte(" "), wire.MCPBodyBytes+1))
	var answer map[string]any
	if err := json.Unmarshal(raw, &answer); status != http.StatusRequestEntityTooLarge || err != nil || answer["error"] != wire.ErrBodyTooLarge.Code {
		t.Fatalf("a request over %d bytes: %d %.200s", wire.MCPBodyBytes, status, raw)
	}
}
