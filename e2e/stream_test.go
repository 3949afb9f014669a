//go:build e2e

package e2e

import (
	"encoding/json"
	"testing"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

func TestFanOutAndSelfExclusion(t *testing.T) {
	acc := newAccount(t)
	conv := mint(t, acc, client.NewConversation{})
	a, joinedA := join(t, conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: "agent-a"})
	if joinedA.ConversationID != conv.ConversationID || joinedA.StreamName != "agent-a" || len(joinedA.Peers) != 0 {
		t.Fatalf("joined: %s", joinedA.Raw)
	}
	other := newAccount(t)
	b, joinedB := join(t, conv.MagicLink, client.DialOptions{Credential: other.Credential, StreamName: "agent-b"})
	if len(joinedB.Peers) != 1 || joinedB.Peers[0].StreamName != "agent-a" {
		t.Fatalf("b's peers: %s", joinedB.Raw)
	}
	sj := next(t, a, wire.TypeStreamJoined)
	if sj.StreamID != joinedB.StreamID || sj.OwnerAccountID != other.AccountID {
		t.Fatalf("stream_joined: %s", sj.Raw)
	}
	ctx := testContext(t, 0)
	_ = ctx
	if err := a.SendToken(testContext(t, 1e10), "hello"); err != nil {
		t.Fatal(err)
	}
	tok := next(t, b, wire.TypeToken)
	if tok.Data == nil || *tok.Data != "hello" || tok.StreamID != joinedA.StreamID {
		t.Fatalf("token: %s", tok.Raw)
	}
	quiet(t, a)
	var got map[string]any
	_ = json.Unmarshal(tok.Raw, &got)
	t.Logf("token frame: %s", tok.Raw)
}
