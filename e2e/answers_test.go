//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// TestFieldTypes: a field of the wrong type gets that field's code, as the
// hosted reference answers, not invalid_json; ams_create_conversation
// answers its arguments with the same codes (MCP Go SDK client).
func TestFieldTypes(t *testing.T) {
	for _, body := range []string{`{"namespace":5}`, `{"namespace":null}`, `{"namespace":["a"]}`, `{}`} {
		status, _, reply := call(t, "POST", "/v1/accounts", nil, body)
		wantError(t, status, reply, wire.ErrInvalidNamespace)
	}
	acc := newAccount(t)
	auth := map[string]string{"Authorization": "Bearer " + acc.Credential}
	owner := mcpSession(t, broker.URL+"/mcp", acc.Credential, "")
	for _, c := range []struct {
		body string
		want wire.Error
	}{
		{`{"alias":5}`, wire.ErrInvalidAlias},
		{`{"alias":{"a":1}}`, wire.ErrInvalidAlias},
		{`{"stream_name":true}`, wire.ErrInvalidStreamName},
		{`{"stream_name":12}`, wire.ErrInvalidStreamName},
		{`{"id_kind":7}`, wire.ErrUnsupportedIDKind},
		{`{"id_kind":null}`, wire.ErrUnsupportedIDKind},
		{`{"metadata":"x"}`, wire.ErrInvalidMetadata},
		{`{"metadata":[1]}`, wire.ErrInvalidMetadata},
		{`{"stream_metadata":3}`, wire.ErrInvalidStreamMetadata},
		// Several faults: the reference's order decides (alias first).
		{`{"metadata":1,"alias":2}`, wire.ErrInvalidAlias},
		{`{"stream_metadata":1,"id_kind":2}`, wire.ErrUnsupportedIDKind},
	} {
		status, _, reply := call(t, "POST", "/v1/"+acc.Namespace+"/conversations", auth, c.body)
		if status != c.want.Status || reply["error"] != c.want.Code {
			t.Errorf("mint %s: %d %v, want %s", c.body, status, reply, c.want.Code)
		}
		var args map[string]any
		if err := json.Unmarshal([]byte(c.body), &args); err != nil {
			t.Fatal(err)
		}
		tool(t, owner, "ams_create_conversation", args, c.want.Code)
	}
	// As in the reference, an empty alias or stream name is a generated one.
	status, _, reply := call(t, "POST", "/v1/"+acc.Namespace+"/conversations", auth, `{"alias":"","stream_name":""}`)
	if status != http.StatusCreated || reply["alias"] == "" || reply["stream_name"] == "" {
		t.Errorf("mint with empty alias and stream name: %d %v", status, reply)
	}
}

// TestMetadataLimits: conversation metadata may fill the whole body; stream
// metadata over its limit is metadata_too_large.
func TestMetadataLimits(t *testing.T) {
	acc := newAccount(t)
	auth := map[string]string{"Authorization": "Bearer " + acc.Credential}
	big := strings.Repeat("p", wire.DefaultLimits.BodyBytes-200)
	status, _, reply := call(t, "POST", "/v1/"+acc.Namespace+"/conversations", auth, `{"metadata":{"prompt":"`+big+`"}}`)
	if status != http.StatusCreated {
		t.Fatalf("mint with %d bytes of metadata: %d %v", len(big), status, reply)
	}
	parsed, _ := client.ParseMagicLink(reply["magic_link"].(string))
	status, _, inspected := call(t, "GET", "/v1/"+acc.Namespace+"/conversations/"+parsed.Alias+"?t="+parsed.Token, nil, "")
	if meta, _ := inspected["metadata"].(map[string]any); status != http.StatusOK || meta["prompt"] != big {
		t.Fatalf("inspect of the big metadata: %d", status)
	}
	over := strings.Repeat("s", wire.DefaultLimits.MetadataBytes)
	status, _, reply = call(t, "POST", "/v1/"+acc.Namespace+"/conversations", auth, `{"stream_metadata":{"s":"`+over+`"}}`)
	wantError(t, status, reply, wire.ErrMetadataTooLarge)
}

// chunkedBody streams n bytes without a Content-Length.
type chunkedBody struct{ left int }

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, io.EOF
	}
	n := min(len(p), b.left, 16<<10)
	for i := range p[:n] {
		p[i] = ' '
	}
	b.left -= n
	return n, nil
}

// TestErrorsAreJSON: the Worker's failures are JSON {error, message}: a
// chunked 5 MB body (413, and the Worker keeps serving, unrestarted), a path
// with a bad escape (404), a 16 KB link token (an answer, never a hang).
func TestErrorsAreJSON(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	for range 3 {
		req, _ := http.NewRequestWithContext(ctx, "POST", broker.URL+"/v1/accounts", &chunkedBody{left: 5 << 20})
		req.ContentLength = -1
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("chunked 5 MB body: %v", err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var reply map[string]any
		if json.Unmarshal(raw, &reply) != nil || res.StatusCode != wire.ErrBodyTooLarge.Status || reply["error"] != wire.ErrBodyTooLarge.Code || reply["message"] == "" {
			t.Fatalf("chunked 5 MB body: %d %q", res.StatusCode, raw)
		}
	}
	if status, _, body := call(t, "POST", "/v1/accounts", nil, `{"namespace":"after-`+randomHex(4)+`"}`); status != http.StatusCreated {
		t.Fatalf("after the big bodies: %d %v", status, body)
	}
	for _, path := range []string{"/v1/%zz/conversations", "/%E0%A4%A", "/v1/demo/conversations/%/connect", "/v1/accounts%"} {
		status, body := rawRequest(t, "GET "+path+" HTTP/1.1")
		wantError(t, status, body, wire.ErrNotFound)
	}
	r := newRoom(t)
	link, _ := client.ParseMagicLink(r.conv.MagicLink)
	long := strings.Repeat("A", 16<<10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		status, _, body := call(t, "GET", "/v1/"+link.Namespace+"/conversations/"+link.Alias+"?t="+long, nil, "")
		if status != http.StatusForbidden && status != http.StatusRequestURITooLong {
			t.Errorf("inspect with a 16 KB t: %d %v", status, body)
		}
		if status == http.StatusForbidden && body["error"] != wire.ErrInvalidToken.Code {
			t.Errorf("inspect with a 16 KB t: %v", body)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("inspect with a 16 KB t hangs")
	}
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, _, err := client.Join(dialCtx, broker.URL+"/"+link.Namespace+"/conversations/"+link.Alias+"?t="+long,
		client.DialOptions{Credential: r.owner.Credential})
	if err == nil {
		conn.CloseNow()
		t.Fatal("a 16 KB t joined")
	}
	if dialCtx.Err() != nil {
		t.Fatalf("join with a 16 KB t hangs: %v", err)
	}
	if logs := broker.Logs(); strings.Contains(logs, "restarted") || strings.Contains(logs, "Go program has already exited") {
		t.Fatalf("the Worker restarted:\n%s", logs)
	}
}

// TestSecretsNotLogged: no link token or credential reaches the log, even
// in the requests that fail.
func TestSecretsNotLogged(t *testing.T) {
	r := newRoom(t)
	link, _ := client.ParseMagicLink(r.conv.MagicLink)
	base := "/v1/" + link.Namespace + "/conversations/" + link.Alias
	auth := map[string]string{"Authorization": "Bearer " + r.owner.Credential}
	call(t, "GET", base+"?t="+link.Token, nil, "")
	rawRequest(t, "GET "+base+"?t="+link.Token+"%zz HTTP/1.1")
	rawRequest(t, "GET /"+link.Namespace+"/conversations/"+link.Alias+"%zz?t="+link.Token+" HTTP/1.1", "Authorization: Bearer "+r.owner.Credential)
	call(t, "GET", base, auth, "")
	call(t, "POST", base+"/nope?t="+link.Token, auth, "")
	if res, err := http.Get(r.conv.MagicLink); err == nil { // the link page
		res.Body.Close()
	}
	conn, _ := join(t, r.conv.MagicLink, client.DialOptions{Credential: r.owner.Credential, StreamName: "logged"})
	conn.CloseNow()
	if refused, _, err := client.Join(testContext(t, 20*time.Second), r.conv.MagicLink+"x", client.DialOptions{Credential: r.owner.Credential}); err == nil {
		refused.CloseNow()
	}
	time.Sleep(500 * time.Millisecond) // let the log lines of the last requests arrive
	logs := broker.Logs()
	for name, secret := range map[string]string{"t": link.Token, "credential": r.owner.Credential, "credential body": strings.TrimPrefix(r.owner.Credential, wire.CredentialPrefix)} {
		if strings.Contains(logs, secret) {
			i := strings.Index(logs, secret)
			t.Errorf("the %s reaches the log: %q", name, logs[max(0, i-120):min(len(logs), i+len(secret)+20)])
		}
	}
}

// TestSubscribeByStreamID: X-AMS-Subscribe-Streams takes stream ids
// (str_…) as well as names (the reference's D0017 filters by id).
func TestSubscribeByStreamID(t *testing.T) {
	r := newRoom(t)
	a, joinedA := r.join(t, r.owner, "talker")
	b, _ := r.join(t, r.owner, "chatter")
	next(t, a, wire.TypeStreamJoined)
	listener, joined := r.join(t, r.owner, "listener", func(o *client.DialOptions) { o.SubscribeStreams = []string{joinedA.StreamID} })
	if !bytes.Contains(joined.Raw, []byte(`"subscribed_streams":["`+joinedA.StreamID+`"]`)) {
		t.Fatalf("joined does not echo the id: %s", joined.Raw)
	}
	next(t, a, wire.TypeStreamJoined)
	next(t, b, wire.TypeStreamJoined)
	ctx := testContext(t, 20*time.Second)
	if err := b.SendToken(ctx, "from chatter"); err != nil {
		t.Fatal(err)
	}
	if err := a.SendToken(ctx, "from talker"); err != nil {
		t.Fatal(err)
	}
	got := next(t, listener, wire.TypeToken)
	if got.Data == nil || *got.Data != "from talker" {
		t.Fatalf("listener got %s, want only talker's token", got.Raw)
	}
	quiet(t, listener)
	// An id that is no stream's is a valid filter that matches nothing yet.
	_, joined = r.join(t, r.owner, "nobody", func(o *client.DialOptions) { o.SubscribeStreams = []string{"str_" + strings.Repeat("0", 26)} })
	if joined.Type != wire.TypeJoined {
		t.Fatalf("joined %s", fmt.Sprint(joined.Raw))
	}
}

// rawRequest sends a request line Go's client would refuse to send (a bad
// escape) and decodes the JSON answer.
func rawRequest(t *testing.T, line string, headers ...string) (int, map[string]any) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(broker.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "%s\r\nHost: %s\r\n%sConnection: close\r\n\r\n", line, strings.TrimPrefix(broker.URL, "http://"), strings.Join(append(headers, ""), "\r\n"))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s: %d %q is not JSON", line, res.StatusCode, raw)
	}
	return res.StatusCode, body
}
