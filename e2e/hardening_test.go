//go:build e2e

package e2e

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// TestBrowserJoin joins the way a browser must: query parameters instead of
// X-AMS-* headers, the bearer as a subprotocol beside ams.v1.
func TestBrowserJoin(t *testing.T) {
	r := newRoom(t)
	watcher, _ := r.join(t, newAccount(t), "watcher")
	link, _ := client.ParseMagicLink(r.conv.MagicLink)
	q := url.Values{
		"t":               {link.Token},
		"stream_name":     {"browser"},
		"stream_metadata": {base64.StdEncoding.EncodeToString([]byte(`{"ua":"chromium"}`))},
		"self_subscribe":  {"true"},
		"receipts":        {"1"},
	}
	browserLink := link.Origin + "/" + link.Namespace + "/conversations/" + link.Alias + "?" + q.Encode()
	ctx := testContext(t, 30*time.Second)
	conn, joined, err := client.Join(ctx, browserLink, client.DialOptions{
		Subprotocols: []string{wire.SubprotocolV1, wire.SubprotocolBearer + r.owner.Credential},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if conn.Subprotocol() != wire.SubprotocolV1 {
		t.Fatalf("selected subprotocol %q", conn.Subprotocol())
	}
	if joined.StreamName != "browser" || !joined.SelfSubscribe || !jsonEqual(joined.Metadata, `{"ua":"chromium"}`) {
		t.Fatalf("joined: %s", joined.Raw)
	}
	sj := next(t, watcher, wire.TypeStreamJoined)
	if sj.OwnerAccountID != r.owner.AccountID {
		t.Fatalf("the subprotocol bearer's account: %s", sj.Raw)
	}
	conn.SendToken(ctx, "from the browser")
	next(t, conn, wire.TypeToken) // self-subscribed
	next(t, conn, wire.TypeReceipt)
	next(t, watcher, wire.TypeToken)

	// A refusal still selects ams.v1, or a browser would never see the close code.
	q.Set("t", "wrong")
	bad := link.Origin + "/" + link.Namespace + "/conversations/" + link.Alias + "?" + q.Encode()
	refusedConn, err := client.Dial(ctx, bad, client.DialOptions{Subprotocols: []string{wire.SubprotocolV1, wire.SubprotocolBearer + r.owner.Credential}})
	if err != nil {
		t.Fatal(err)
	}
	if refusedConn.Subprotocol() != wire.SubprotocolV1 {
		t.Fatalf("refusal selected %q", refusedConn.Subprotocol())
	}
	closedWith(t, refusedConn, wire.CloseInvalidMagicLink)
}

func TestMagicLinkRotation(t *testing.T) {
	r := newRoom(t)
	ctx := testContext(t, 60*time.Second)
	other := newAccount(t)
	old1, _ := r.join(t, r.owner, "owner-stream")
	old2, _ := r.join(t, other, "guest")
	next(t, old1, wire.TypeStreamJoined)
	agent := mcpSession(t, broker.URL+"/mcp", other.Credential, "")
	handle := tool(t, agent, "ams_join", map[string]any{"magic_link": r.conv.MagicLink, "stream_name": "mcp-guest"})["handle"].(string)

	link, _ := client.ParseMagicLink(r.conv.MagicLink)
	path := "/v1/" + link.Namespace + "/conversations/" + link.Alias + "/rotate"
	status, _, body := call(t, "POST", path, map[string]string{"Authorization": "Bearer " + other.Credential}, "")
	wantError(t, status, body, wire.ErrNamespaceMismatch)
	status, _, body = call(t, "POST", path, nil, "")
	wantError(t, status, body, wire.ErrMissingCredential)
	status, _, body = call(t, "POST", "/v1/"+link.Namespace+"/conversations/nope/rotate", map[string]string{"Authorization": "Bearer " + r.owner.Credential}, "")
	wantError(t, status, body, wire.ErrNotFound)

	status, _, body = call(t, "POST", path, map[string]string{"Authorization": "Bearer " + r.owner.Credential}, "")
	newLink, _ := body["magic_link"].(string)
	if status != 200 || newLink == "" || newLink == r.conv.MagicLink {
		t.Fatalf("rotate: %d %v", status, body)
	}
	closedWith(t, old1, wire.CloseMagicLinkRotated)
	closedWith(t, old2, wire.CloseMagicLinkRotated)

	// The old link admits no one; the new one does, with a quiet room.
	conn, err := client.Dial(ctx, r.conv.MagicLink, client.DialOptions{Credential: r.owner.Credential, StreamName: "late"})
	if err != nil {
		t.Fatal(err)
	}
	closedWith(t, conn, wire.CloseInvalidMagicLink)
	fresh, joined := join(t, newLink, client.DialOptions{Credential: r.owner.Credential, StreamName: "owner-stream"})
	if len(joined.Peers) != 0 || joined.Resumed {
		t.Fatalf("after rotation the room still holds %s", joined.Raw)
	}
	// The MCP member admitted by the old link is gone too.
	tool(t, agent, "ams_send", map[string]any{"handle": handle, "data": "x"}, "not_joined")
	tool(t, agent, "ams_join", map[string]any{"magic_link": r.conv.MagicLink}, "invalid_token")
	quiet(t, fresh)
	if status, _, _ := call(t, "GET", "/v1/"+link.Namespace+"/conversations/"+link.Alias+"?t="+link.Token, nil, ""); status != http.StatusForbidden {
		t.Fatalf("inspect with the old t: %d", status)
	}
}

// TestSlowSubscriberClosed: a flow-controlled subscriber that stops reading
// (and so stops acknowledging) is closed 4290 once a window behind; an
// acknowledging one and a plain one receive every token meanwhile.
func TestSlowSubscriberClosed(t *testing.T) {
	r := newRoom(t)
	ctx := testContext(t, 90*time.Second)
	speaker, joinedSpeaker := r.join(t, r.owner, "speaker")
	slow, err := client.Dial(ctx, r.conv.MagicLink, client.DialOptions{Credential: newAccount(t).Credential, StreamName: "slow", Acks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	keen, _ := r.join(t, newAccount(t), "keen", func(o *client.DialOptions) { o.Acks = true })
	plain, _ := r.join(t, newAccount(t), "plain")
	for i := 0; i < 3; i++ {
		next(t, speaker, wire.TypeStreamJoined)
	}
	next(t, keen, wire.TypeStreamJoined)

	// A burst past the window, a pause longer than the grace period in
	// which the slow one acknowledges nothing, then more.
	burst, total := wire.DefaultLimits.AckWindowFrames+200, wire.DefaultLimits.AckWindowFrames+300
	go func() {
		for i := 0; i < total; i++ {
			if i == burst {
				time.Sleep(time.Duration(wire.DefaultLimits.AckGraceMillis+500) * time.Millisecond)
			}
			if speaker.SendToken(ctx, strconv.Itoa(i)) != nil {
				return
			}
		}
	}()
	expectTokens(t, ctx, []*client.Conn{keen, plain}, joinedSpeaker.StreamID, total)
	// The speaker saw the slow one leave; the keen one stayed.
	left := next(t, speaker, wire.TypeStreamLeft)
	if left.StreamName != "slow" {
		t.Fatalf("stream_left: %s", left.Raw)
	}
	info, err := broker.client("").Inspect(ctx, r.conv.MagicLink)
	if err != nil || len(info.Streams) != 3 {
		t.Fatalf("inspect: %+v %v", info, err)
	}
	// Reading at last, the slow one drains what was queued, then the close.
	tokens := 0
	for {
		f, err := slow.Read(ctx)
		if err != nil {
			code, reason := client.CloseOf(err)
			if code != wire.CloseSubscriberBackpressure.Code || reason != wire.CloseSubscriberBackpressure.Reason {
				t.Fatalf("slow subscriber closed %d %q: %v", code, reason, err)
			}
			break
		}
		if f.Type == wire.TypeToken {
			tokens++
		}
	}
	if tokens >= total || tokens < wire.DefaultLimits.AckWindowFrames-10 {
		t.Fatalf("the slow subscriber got %d of %d tokens before its close", tokens, total)
	}
}
