//go:build e2e

package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// refused dials with raw headers and checks the immediate close.
func refused(t *testing.T, base, path string, header http.Header, want wire.Close) {
	t.Helper()
	conn, err := client.Dial(testContext(t, 10*time.Second), base+path, client.DialOptions{Header: header})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	defer conn.CloseNow()
	closedWith(t, conn, want)
}

func TestConnectRefusalTable(t *testing.T) {
	owner := newAccount(t)
	conv := mint(t, owner, client.NewConversation{})
	link, _ := client.ParseMagicLink(conv.MagicLink)
	good := "/" + link.Namespace + "/conversations/" + link.Alias
	unknown := "/" + link.Namespace + "/conversations/no-such-alias"
	bearer := func(cred string) http.Header { return http.Header{"Authorization": {"Bearer " + cred}} }
	with := func(h http.Header, k, v string) http.Header { h = h.Clone(); h.Set(k, v); return h }
	ok := bearer(owner.Credential)
	meta := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	rows := []struct {
		name   string
		path   string
		header http.Header
		want   wire.Close
	}{
		// Each row also breaks every later check, proving the order.
		{"t missing", unknown + "?x=1", bearer("bogus"), wire.CloseInvalidMagicLink},
		{"t empty", good + "?t=", ok, wire.CloseInvalidMagicLink},
		{"alias unknown", unknown + "?t=wrong", bearer("bogus"), wire.CloseConversationNotFound},
		{"alias malformed", "/" + link.Namespace + "/conversations/Not_An_Alias?t=x", ok, wire.CloseConversationNotFound},
		{"t wrong", good + "?t=wrong", bearer("bogus"), wire.CloseInvalidMagicLink},
		{"bearer missing", good + "?t=" + link.Token, with(http.Header{}, wire.HeaderStreamName, "-bad"), wire.CloseInvalidCredential},
		{"bearer invalid", good + "?t=" + link.Token, with(bearer("ams_sk_nope"), wire.HeaderStreamName, "-bad"), wire.CloseInvalidCredential},
		{"bearer not a bearer", good + "?t=" + link.Token, http.Header{"Authorization": {"Basic " + owner.Credential}}, wire.CloseInvalidCredential},
		{"stream name invalid", good + "?t=" + link.Token, with(with(ok, wire.HeaderStreamName, "has space"), wire.HeaderStreamMetadata, "!!"), wire.CloseInvalidStreamNameHeader},
		{"stream name too long", good + "?t=" + link.Token, with(ok, wire.HeaderStreamName, strings.Repeat("a", 64)), wire.CloseInvalidStreamNameHeader},
		{"metadata not base64", good + "?t=" + link.Token, with(ok, wire.HeaderStreamMetadata, "!!not base64"), wire.CloseInvalidStreamMetadata},
		{"metadata an array", good + "?t=" + link.Token, with(ok, wire.HeaderStreamMetadata, meta("[1,2]")), wire.CloseInvalidStreamMetadata},
		{"metadata not JSON", good + "?t=" + link.Token, with(ok, wire.HeaderStreamMetadata, meta("{oops")), wire.CloseInvalidStreamMetadata},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) { refused(t, broker.URL, row.path, row.header, row.want) })
	}

	t.Run("name held by another account", func(t *testing.T) {
		join(t, conv.MagicLink, client.DialOptions{Credential: owner.Credential, StreamName: "taken"})
		other := newAccount(t)
		refused(t, broker.URL, good+"?t="+link.Token, with(bearer(other.Credential), wire.HeaderStreamName, "taken"), wire.CloseStreamNameOwnerConflict)
	})

	t.Run("plain GET", func(t *testing.T) {
		status, _, body := call(t, "GET", good+"/connect?t="+link.Token, nil, "")
		wantError(t, status, body, wire.ErrUpgradeRequired)
	})
}

// TestConnectLimits runs a deployment with small limits to reach them.
func TestConnectLimits(t *testing.T) {
	b, err := StartBroker(BrokerOptions{Vars: map[string]string{
		"AMS_CREDENTIAL_PEPPER":                  randomHex(16),
		"AMS_PERMISSIVE_TOKEN_PEPPER":            randomHex(16),
		"AMS_LIMIT_STREAMS_PER_ACCOUNT":          "2",
		"AMS_LIMIT_CONNECTIONS_PER_CONVERSATION": "3",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	ctx := testContext(t, 60*time.Second)
	c := b.client("")
	a, err := c.CreateAccount(ctx, "limits-a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.CreateAccount(ctx, "limits-b")
	if err != nil {
		t.Fatal(err)
	}
	conv, err := b.client(a.Credential).CreateConversation(ctx, a.Namespace, client.NewConversation{})
	if err != nil {
		t.Fatal(err)
	}
	dial := func(cred, name string) *client.Conn {
		conn, err := client.Dial(ctx, conv.MagicLink, client.DialOptions{Credential: cred, StreamName: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		return conn
	}
	for i := 0; i < 2; i++ {
		next(t, dial(a.Credential, fmt.Sprint("a", i)), wire.TypeJoined)
	}
	closedWith(t, dial(a.Credential, "a2"), wire.CloseConcurrencyLimit)
	// A takeover of an existing stream is not a new stream.
	next(t, dial(a.Credential, "a0"), wire.TypeJoined)
	next(t, dial(other.Credential, "b0"), wire.TypeJoined)
	closedWith(t, dial(other.Credential, "b1"), wire.CloseConversationFull)
	// The name check comes before the limits.
	closedWith(t, dial(other.Credential, "a1"), wire.CloseStreamNameOwnerConflict)
}
