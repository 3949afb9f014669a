//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// room is a conversation with an owner account, ready to join.
type room struct {
	owner *client.Account
	conv  *client.Conversation
}

func newRoom(t *testing.T) room {
	acc := newAccount(t)
	return room{owner: acc, conv: mint(t, acc, client.NewConversation{})}
}

func (r room) join(t *testing.T, acc *client.Account, name string, opts ...func(*client.DialOptions)) (*client.Conn, *client.Frame) {
	o := client.DialOptions{Credential: acc.Credential, StreamName: name}
	for _, f := range opts {
		f(&o)
	}
	return join(t, r.conv.MagicLink, o)
}

func selfSubscribe(o *client.DialOptions) { o.SelfSubscribe = true }

func withMetadata(m string) func(*client.DialOptions) {
	return func(o *client.DialOptions) { o.Metadata = json.RawMessage(m) }
}

// fieldsOf returns the top-level field names of a frame.
func fieldsOf(t *testing.T, raw []byte) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("frame is not a JSON object: %s", raw)
	}
	var names []string
	for _, k := range []string{"type", "seq", "conversation_id", "stream_id", "stream_name", "owner_account_id", "metadata", "self_subscribe", "peers", "resumed", "recovered", "subscribed_streams", "ts", "data"} {
		if _, ok := m[k]; ok {
			names = append(names, k)
			delete(m, k)
		}
	}
	for k := range m {
		names = append(names, "UNEXPECTED:"+k)
	}
	return strings.Join(names, ",")
}

func TestFramesHaveExactFields(t *testing.T) {
	r := newRoom(t)
	a, joinedA := r.join(t, r.owner, "agent-a", withMetadata(`{"role":"writer"}`))
	if got := fieldsOf(t, joinedA.Raw); got != "type,seq,conversation_id,stream_id,stream_name,metadata,self_subscribe,peers" {
		t.Fatalf("joined fields: %s", got)
	}
	if joinedA.SelfSubscribe || !jsonEqual(joinedA.Metadata, `{"role":"writer"}`) || joinedA.ConversationID != r.conv.ConversationID {
		t.Fatalf("joined: %s", joinedA.Raw)
	}
	if joinedA.StreamID != r.conv.StreamID && r.conv.StreamName == "agent-a" {
		t.Fatalf("stream id differs from the mint's")
	}

	other := newAccount(t)
	b, joinedB := r.join(t, other, "agent-b")
	if len(joinedB.Peers) != 1 {
		t.Fatalf("peers: %s", joinedB.Raw)
	}
	peer := joinedB.Peers[0]
	if peer.StreamID != joinedA.StreamID || peer.StreamName != "agent-a" || peer.OwnerAccountID != r.owner.AccountID || !jsonEqual(peer.Metadata, `{"role":"writer"}`) {
		t.Fatalf("peer entry: %+v", peer)
	}
	sj := next(t, a, wire.TypeStreamJoined)
	if got := fieldsOf(t, sj.Raw); got != "type,seq,stream_id,stream_name,owner_account_id,metadata" {
		t.Fatalf("stream_joined fields: %s", got)
	}
	if sj.StreamID != joinedB.StreamID || sj.StreamName != "agent-b" || sj.OwnerAccountID != other.AccountID || !jsonEqual(sj.Metadata, `{}`) {
		t.Fatalf("stream_joined: %s", sj.Raw)
	}

	ctx := testContext(t, 20*time.Second)
	before := time.Now().UTC().Add(-time.Second)
	if err := a.SendToken(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	tok := next(t, b, wire.TypeToken)
	if got := fieldsOf(t, tok.Raw); got != "type,seq,stream_id,stream_name,owner_account_id,ts,data" {
		t.Fatalf("token fields: %s", got)
	}
	ts, err := time.Parse(wire.TimeLayout, tok.TS)
	if err != nil || ts.Before(before) || ts.After(time.Now().UTC().Add(time.Second)) || !timestampPattern.MatchString(tok.TS) {
		t.Fatalf("token ts %q", tok.TS)
	}
	if *tok.Data != "hello" || tok.StreamID != joinedA.StreamID || tok.StreamName != "agent-a" || tok.OwnerAccountID != r.owner.AccountID {
		t.Fatalf("token: %s", tok.Raw)
	}

	if err := a.SetMetadata(ctx, json.RawMessage(`{"role":"reviewer","n":2}`)); err != nil {
		t.Fatal(err)
	}
	sm := next(t, b, wire.TypeStreamMetadata)
	if got := fieldsOf(t, sm.Raw); got != "type,seq,stream_id,stream_name,owner_account_id,metadata,ts" {
		t.Fatalf("stream_metadata fields: %s", got)
	}
	if !jsonEqual(sm.Metadata, `{"role":"reviewer","n":2}`) || sm.StreamID != joinedA.StreamID || !timestampPattern.MatchString(sm.TS) {
		t.Fatalf("stream_metadata: %s", sm.Raw)
	}
	info, err := broker.client("").Inspect(ctx, r.conv.MagicLink)
	if err != nil || len(info.Streams) != 2 || !jsonEqual(info.Streams[0].Metadata, `{"role":"reviewer","n":2}`) {
		t.Fatalf("inspect after set_metadata: %+v %v", info, err)
	}
	// Full replacement, not a patch.
	if err := a.SetMetadata(ctx, json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	if sm := next(t, b, wire.TypeStreamMetadata); !jsonEqual(sm.Metadata, `{}`) {
		t.Fatalf("replacement: %s", sm.Raw)
	}
	quiet(t, a) // a heard none of its own frames

	if err := a.WriteRaw(ctx, []byte(wire.PingFrame)); err != nil {
		t.Fatal(err)
	}
	if pong := next(t, a, wire.TypePong); string(pong.Raw) != wire.PongFrame {
		t.Fatalf("pong: %s", pong.Raw)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	left := next(t, b, wire.TypeStreamLeft)
	if got := fieldsOf(t, left.Raw); got != "type,seq,stream_id,stream_name,owner_account_id" {
		t.Fatalf("stream_left fields: %s", got)
	}
	if left.StreamID != joinedA.StreamID || left.StreamName != "agent-a" || left.OwnerAccountID != r.owner.AccountID {
		t.Fatalf("stream_left: %s", left.Raw)
	}
}

func TestTokenDataIsByteIdentical(t *testing.T) {
	r := newRoom(t)
	a, _ := r.join(t, r.owner, "emitter")
	b, _ := r.join(t, newAccount(t), "listener")
	next(t, a, wire.TypeStreamJoined)
	ctx := testContext(t, 30*time.Second)
	samples := []string{
		"",
		" ",
		"plain ascii",
		"emoji 🧠🚀👩‍👩‍👧‍👦 and flags 🇺🇦🇯🇵",
		"accents: naïve café Ünïcödé, CJK 漢字かな, RTL עברית العربية",
		"quotes \" and backslashes \\ and \\\" mixed",
		"control \u0000 \u0001 \u001f \t \n \r \b \f",
		"json-looking {\"type\":\"token\",\"data\":\"x\"}",
		"html <script>alert(1)</script> & ' \u2028 \u2029",
		"trailing spaces   \n\n",
		strings.Repeat("long-", 10000),
		"\U0010FFFF max code point",
	}
	for _, s := range samples {
		if err := a.SendToken(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range samples {
		tok := next(t, b, wire.TypeToken)
		if *tok.Data != s {
			t.Fatalf("sample %d changed: sent %q, got %q", i, s, *tok.Data)
		}
	}
	// Escapes the client chose are relayed as sent: the raw literal is unchanged.
	raw := `{"type":"token","data":"\u00e9\ud83d\ude00\/\"x\""}`
	if err := a.WriteRaw(ctx, []byte(raw)); err != nil {
		t.Fatal(err)
	}
	tok := next(t, b, wire.TypeToken)
	if !strings.HasSuffix(string(tok.Raw), `"data":"\u00e9\ud83d\ude00\/\"x\""}`) || *tok.Data != "é😀/\"x\"" {
		t.Fatalf("raw relay: %s", tok.Raw)
	}
}

func TestOrderOf500Tokens(t *testing.T) {
	r := newRoom(t)
	a, _ := r.join(t, r.owner, "fast")
	listeners := make([]*client.Conn, 3)
	for i := range listeners {
		listeners[i], _ = r.join(t, newAccount(t), fmt.Sprint("listener-", i))
	}
	for i := range listeners {
		next(t, a, wire.TypeStreamJoined)
		for j := i + 1; j < len(listeners); j++ {
			next(t, listeners[i], wire.TypeStreamJoined)
		}
	}
	ctx := testContext(t, 60*time.Second)
	go func() {
		for i := 0; i < 500; i++ {
			if err := a.SendToken(ctx, fmt.Sprint(i)); err != nil {
				return
			}
		}
	}()
	for _, l := range listeners {
		for i := 0; i < 500; i++ {
			if tok := next(t, l, wire.TypeToken); *tok.Data != fmt.Sprint(i) {
				t.Fatalf("token %d arrived as %q", i, *tok.Data)
			}
		}
	}
	quiet(t, a)
}

func TestSelfExclusionIsPerStream(t *testing.T) {
	r := newRoom(t)
	ctx := testContext(t, 30*time.Second)
	a, _ := r.join(t, r.owner, "main")
	sibling, _ := r.join(t, r.owner, "sibling") // same account, another stream
	next(t, a, wire.TypeStreamJoined)
	mirror, joinedMirror := r.join(t, r.owner, "mirror", selfSubscribe)
	if !joinedMirror.SelfSubscribe || fieldsOf(t, joinedMirror.Raw) != "type,seq,conversation_id,stream_id,stream_name,metadata,self_subscribe,peers" {
		t.Fatalf("joined with self-subscribe: %s", joinedMirror.Raw)
	}
	next(t, a, wire.TypeStreamJoined)
	next(t, sibling, wire.TypeStreamJoined)

	if err := a.SendToken(ctx, "from main"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, sibling, wire.TypeToken); *tok.Data != "from main" {
		t.Fatalf("sibling: %s", tok.Raw)
	}
	if tok := next(t, mirror, wire.TypeToken); *tok.Data != "from main" {
		t.Fatalf("mirror: %s", tok.Raw)
	}
	quiet(t, a)

	// The self-subscriber hears its own tokens and metadata, once.
	if err := mirror.SendToken(ctx, "echo me"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, mirror, wire.TypeToken); *tok.Data != "echo me" || tok.StreamID != joinedMirror.StreamID {
		t.Fatalf("self echo: %s", tok.Raw)
	}
	if err := mirror.SetMetadata(ctx, json.RawMessage(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	next(t, mirror, wire.TypeStreamMetadata)
	quiet(t, mirror)
	for _, c := range []*client.Conn{a, sibling} {
		next(t, c, wire.TypeToken)
		next(t, c, wire.TypeStreamMetadata)
	}
}

func TestTakeover(t *testing.T) {
	r := newRoom(t)
	ctx := testContext(t, 30*time.Second)
	watcher, _ := r.join(t, newAccount(t), "watcher")
	first, joined1 := r.join(t, r.owner, "agent", withMetadata(`{"v":1}`))
	next(t, watcher, wire.TypeStreamJoined)

	second, joined2 := r.join(t, r.owner, "agent", withMetadata(`{"v":2}`))
	if !joined2.Resumed || joined2.StreamID != joined1.StreamID || len(joined2.Peers) != 1 || joined2.Peers[0].StreamName != "watcher" {
		t.Fatalf("takeover joined: %s", joined2.Raw)
	}
	closedWith(t, first, wire.CloseStreamDisplaced)
	// The watcher saw neither a stream_left nor a stream_joined; only the
	// metadata the new socket brought.
	if sm := next(t, watcher, wire.TypeStreamMetadata); sm.StreamID != joined1.StreamID || !jsonEqual(sm.Metadata, `{"v":2}`) {
		t.Fatalf("metadata of the takeover: %s", sm.Raw)
	}
	quiet(t, watcher)

	if err := second.SendToken(ctx, "still here"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, watcher, wire.TypeToken); tok.StreamID != joined1.StreamID || *tok.Data != "still here" {
		t.Fatalf("token after takeover: %s", tok.Raw)
	}
	info, err := broker.client("").Inspect(ctx, r.conv.MagicLink)
	if err != nil || len(info.Streams) != 2 {
		t.Fatalf("inspect after takeover: %+v %v", info, err)
	}
	for _, s := range info.Streams {
		if s.StreamName == "agent" && !jsonEqual(s.Metadata, `{"v":2}`) {
			t.Fatalf("takeover kept old metadata: %s", s.Metadata)
		}
	}
}

func TestMalformedFramesCloseOnlyTheSender(t *testing.T) {
	r := newRoom(t)
	ctx := testContext(t, 60*time.Second)
	speaker, joinedSpeaker := r.join(t, r.owner, "speaker")
	listener, _ := r.join(t, newAccount(t), "listener")
	next(t, speaker, wire.TypeStreamJoined)

	bad := []struct {
		msg  string
		want wire.Close
	}{
		{`not json`, wire.CloseMalformedFrame},
		{`[1,2]`, wire.CloseMalformedFrame},
		{`"token"`, wire.CloseMalformedFrame},
		{`{}`, wire.CloseMalformedFrame},
		{`{"type":7}`, wire.CloseMalformedFrame},
		{`{"type":"token"}`, wire.CloseMalformedFrame},
		{`{"type":"token","data":42}`, wire.CloseMalformedFrame},
		{`{"type":"token","data":null}`, wire.CloseMalformedFrame},
		{`{"type":"set_metadata","metadata":[1]}`, wire.CloseMalformedFrame},
		{`{"type":"set_metadata"}`, wire.CloseMalformedFrame},
		{`{"type":"token","data":"x"`, wire.CloseMalformedFrame},
		{`{"type":"shout","data":"x"}`, wire.CloseUnknownFrameType},
		{`{"type":"token","data":"` + strings.Repeat("x", wire.DefaultLimits.TokenBytes+1) + `"}`, wire.CloseTokenTooLarge},
	}
	owner := newAccount(t)
	for i, c := range bad {
		offender, _ := r.join(t, owner, fmt.Sprint("offender-", i))
		next(t, speaker, wire.TypeStreamJoined)
		next(t, listener, wire.TypeStreamJoined)
		if err := offender.WriteRaw(ctx, []byte(c.msg)); err != nil {
			t.Fatal(err)
		}
		closedWith(t, offender, c.want)
		next(t, speaker, wire.TypeStreamLeft)
		next(t, listener, wire.TypeStreamLeft)
		// The conversation keeps serving the others.
		if err := speaker.SendToken(ctx, fmt.Sprint("after ", i)); err != nil {
			t.Fatal(err)
		}
		if tok := next(t, listener, wire.TypeToken); *tok.Data != fmt.Sprint("after ", i) || tok.StreamID != joinedSpeaker.StreamID {
			t.Fatalf("after bad frame %d: %s", i, tok.Raw)
		}
	}

	binary, _ := r.join(t, owner, "binary")
	next(t, speaker, wire.TypeStreamJoined)
	next(t, listener, wire.TypeStreamJoined)
	if err := binary.WriteBinary(ctx, []byte(`{"type":"token","data":"x"}`)); err != nil {
		t.Fatal(err)
	}
	closedWith(t, binary, wire.CloseMalformedFrame)
	next(t, listener, wire.TypeStreamLeft)

	// Exactly at the limit is accepted.
	exact := strings.Repeat("é", wire.DefaultLimits.TokenBytes/2)
	if err := speaker.SendToken(ctx, exact); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, listener, wire.TypeToken); *tok.Data != exact {
		t.Fatal("64 KiB token changed")
	}
}
