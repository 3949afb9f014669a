//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// answer is one HTTP answer of a race.
type answer struct {
	status int
	body   map[string]any
}

// key names an answer by status and error code ("201 ", "409 namespace_taken").
func (a answer) key() string {
	code, _ := a.body["error"].(string)
	return fmt.Sprint(a.status, " ", code)
}

// raceCalls sends n copies of one request at once.
func raceCalls(t *testing.T, n int, method, path string, header map[string]string, body string) []answer {
	t.Helper()
	answers := make([]answer, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range answers {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			status, _, reply := call(t, method, path, header, body)
			answers[i] = answer{status, reply}
		}()
	}
	start.Done()
	done.Wait()
	return answers
}

func countAnswers(answers []answer) map[string]int {
	counts := map[string]int{}
	for _, a := range answers {
		counts[a.key()]++
	}
	return counts
}

// TestNamespaceClaimRace: 20 concurrent registrations of one namespace give
// one account; the other 19 are told the name is taken.
func TestNamespaceClaimRace(t *testing.T) {
	ns := "race-" + randomHex(5)
	counts := countAnswers(raceCalls(t, 20, "POST", "/v1/accounts", nil, `{"namespace":"`+ns+`"}`))
	if counts["201 "] != 1 || counts["409 namespace_taken"] != 19 {
		t.Fatalf("20 concurrent claims of %s: %v, want one 201 and 19 × 409 namespace_taken", ns, counts)
	}
	status, _, body := call(t, "POST", "/v1/accounts", nil, `{"namespace":"`+ns+`"}`)
	wantError(t, status, body, wire.ErrNamespaceTaken)
}

// TestAliasClaimRace: 20 concurrent mints of one alias give one
// conversation, and its link is the one that joins.
func TestAliasClaimRace(t *testing.T) {
	acc := newAccount(t)
	auth := map[string]string{"Authorization": "Bearer " + acc.Credential}
	answers := raceCalls(t, 20, "POST", "/v1/"+acc.Namespace+"/conversations", auth, `{"alias":"contested"}`)
	var links []string
	for _, a := range answers {
		if a.status == http.StatusCreated {
			links = append(links, a.body["magic_link"].(string))
		}
	}
	if counts := countAnswers(answers); counts["201 "] != 1 || counts["409 alias_taken"] != 19 || len(links) != 1 {
		t.Fatalf("20 concurrent mints of one alias: %v, want one 201 and 19 × 409 alias_taken", counts)
	}
	join(t, links[0], client.DialOptions{Credential: acc.Credential, StreamName: "winner"})
}

// TestMintBeforeKV: an account and a mint whose KV writes have not landed
// (fault injection holds them back, as another location sees KV before it
// catches up) work at once, from this isolate and from a fresh one (a second
// wrangler dev over the same state, so no cache helps): the owner mints,
// inspects and joins, because the namespace's object answers, and joins
// another account's conversation, because its credential's object answers.
// The alias stays taken too.
func TestMintBeforeKV(t *testing.T) {
	persist, err := os.MkdirTemp("", "ams-e2e-claims-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(persist) })
	vars := map[string]string{
		"AMS_CREDENTIAL_PEPPER":       randomHex(32),
		"AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(32),
		wire.FaultInjectionVar:        "1",
	}
	first, err := StartBroker(BrokerOptions{Vars: vars, PersistDir: persist})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 2*time.Minute)
	// The account's records are held back too: its credential is known
	// only to the namespace's owner.
	status, _, created := callURL(t, first.URL, "POST", "/v1/accounts", map[string]string{wire.FaultKVLagHeader: "1"},
		`{"namespace":"lag-`+randomHex(5)+`"}`)
	if status != http.StatusCreated {
		first.Stop()
		t.Fatalf("lagging account: %d %v", status, created)
	}
	acc := &client.Account{Namespace: created["namespace"].(string), Credential: created["credential"].(string)}
	auth := map[string]string{"Authorization": "Bearer " + acc.Credential, wire.FaultKVLagHeader: "1"}
	// Another account's conversation, whose records KV has: the lagging
	// credential joins it too (its own object vouches for it, not the
	// conversation's namespace).
	status, _, host := callURL(t, first.URL, "POST", "/v1/accounts", nil, `{"namespace":"host-`+randomHex(5)+`"}`)
	if status != http.StatusCreated {
		first.Stop()
		t.Fatalf("host account: %d %v", status, host)
	}
	status, _, hosted := callURL(t, first.URL, "POST", "/v1/"+host["namespace"].(string)+"/conversations",
		map[string]string{"Authorization": "Bearer " + host["credential"].(string)}, `{"alias":"hosted"}`)
	if status != http.StatusCreated {
		first.Stop()
		t.Fatalf("host mint: %d %v", status, hosted)
	}
	status, _, minted := callURL(t, first.URL, "POST", "/v1/"+acc.Namespace+"/conversations", auth, `{"alias":"early"}`)
	if status != http.StatusCreated {
		first.Stop()
		t.Fatalf("lagging mint: %d %v", status, minted)
	}
	link := minted["magic_link"].(string)
	check := func(b *Broker) {
		t.Helper()
		// First, before anything in this isolate has vouched for the
		// credential.
		hostLink, _ := client.ParseMagicLink(hosted["magic_link"].(string))
		conn, joined, err := client.Join(ctx, b.URL+"/"+hostLink.Namespace+"/conversations/hosted?t="+hostLink.Token,
			client.DialOptions{Credential: acc.Credential, StreamName: "guest"})
		if err != nil {
			t.Fatalf("join of another account's conversation before KV: %v", err)
		}
		conn.CloseNow()
		if joined.ConversationID != hosted["conversation_id"] {
			t.Fatalf("joined %s", joined.Raw)
		}
		parsed, _ := client.ParseMagicLink(link)
		inspect := "/v1/" + acc.Namespace + "/conversations/early?t=" + parsed.Token
		status, _, body := callURL(t, b.URL, "GET", inspect, nil, "")
		if status != http.StatusOK || body["conversation_id"] != minted["conversation_id"] {
			t.Fatalf("inspect before KV: %d %v", status, body)
		}
		relinked := b.URL + "/" + acc.Namespace + "/conversations/early?t=" + parsed.Token
		conn, joined, err = client.Join(ctx, relinked, client.DialOptions{Credential: acc.Credential, StreamName: "early-bird"})
		if err != nil {
			t.Fatalf("join before KV: %v", err)
		}
		conn.CloseNow()
		if joined.ConversationID != minted["conversation_id"] {
			t.Fatalf("joined %s", joined.Raw)
		}
		status, _, body = callURL(t, b.URL, "POST", "/v1/"+acc.Namespace+"/conversations",
			map[string]string{"Authorization": "Bearer " + acc.Credential}, `{"alias":"early"}`)
		wantError(t, status, body, wire.ErrAliasTaken)
	}
	check(first)
	first.Stop()
	second, err := StartBroker(BrokerOptions{Vars: vars, PersistDir: persist})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	check(second)

	// A rotation whose KV write does not land: the caller's new link is the
	// one valid link, here and in a fresh isolate.
	status, _, rotated := callURL(t, second.URL, "POST", "/v1/"+acc.Namespace+"/conversations/early/rotate", auth, "")
	if status != http.StatusOK {
		t.Fatalf("lagging rotation: %d %v", status, rotated)
	}
	newLink := rotated["magic_link"].(string)
	check = func(b *Broker) {
		t.Helper()
		for l, valid := range map[string]bool{link: false, newLink: true} {
			parsed, _ := client.ParseMagicLink(l)
			relinked := b.URL + "/" + acc.Namespace + "/conversations/early?t=" + parsed.Token
			if got := linkAdmits(t, relinked, acc, "after-rotation"); got != valid {
				t.Errorf("link %s admits %v after the lagging rotation, want %v", parsed.Token[:6], got, valid)
			}
			status, _, _ := callURL(t, b.URL, "GET", "/v1/"+acc.Namespace+"/conversations/early?t="+parsed.Token, nil, "")
			if want := map[bool]int{true: 200, false: 403}[valid]; status != want {
				t.Errorf("inspect with %s: %d, want %d", parsed.Token[:6], status, want)
			}
		}
	}
	check(second)
	second.Stop()
	third, err := StartBroker(BrokerOptions{Vars: vars, PersistDir: persist})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Stop()
	check(third)
}

// linkAdmits dials link and reports whether it was admitted (a joined
// frame) or refused 4001 invalid_magic_link.
func linkAdmits(t *testing.T, link string, acc *client.Account, name string) bool {
	t.Helper()
	conn, _, err := client.Join(testContext(t, 30*time.Second), link, client.DialOptions{Credential: acc.Credential, StreamName: name})
	if err == nil {
		conn.CloseNow()
		return true
	}
	if code, reason := client.CloseOf(err); code != wire.CloseInvalidMagicLink.Code || reason != wire.CloseInvalidMagicLink.Reason {
		t.Fatalf("join %s: %v, want joined or 4001 invalid_magic_link", name, err)
	}
	return false
}

// TestRotationsRace: concurrent rotations (every one starting from the same
// cached, unrotated record) each get their own generation from the
// conversation's object, and only the newest link admits or inspects.
func TestRotationsRace(t *testing.T) {
	r := newRoom(t)
	link, _ := client.ParseMagicLink(r.conv.MagicLink)
	base := "/v1/" + link.Namespace + "/conversations/" + link.Alias
	// Warm the isolate's cache with the unrotated record.
	if status, _, body := call(t, "GET", base+"?t="+link.Token, nil, ""); status != http.StatusOK {
		t.Fatalf("inspect: %d %v", status, body)
	}
	const n = 4
	links := map[int64]string{}
	for _, a := range raceCalls(t, n, "POST", base+"/rotate", map[string]string{"Authorization": "Bearer " + r.owner.Credential}, "") {
		if a.status != http.StatusOK {
			t.Fatalf("rotate: %d %v", a.status, a.body)
		}
		links[int64(a.body["link_generation"].(float64))] = a.body["magic_link"].(string)
	}
	if len(links) != n {
		t.Fatalf("%d concurrent rotations gave generations %v, want %d distinct", n, links, n)
	}
	if !linkAdmits(t, links[n], r.owner, "newest") {
		t.Fatalf("the newest link (generation %d) is refused", n)
	}
	for g := int64(1); g < n; g++ {
		if linkAdmits(t, links[g], r.owner, fmt.Sprint("gen-", g)) {
			t.Errorf("the link of generation %d survived the rotation to %d", g, n)
		}
		parsed, _ := client.ParseMagicLink(links[g])
		if status, _, _ := call(t, "GET", base+"?t="+parsed.Token, nil, ""); status != http.StatusForbidden {
			t.Errorf("inspect with generation %d: %d, want 403", g, status)
		}
	}
	if linkAdmits(t, r.conv.MagicLink, r.owner, "original") {
		t.Error("the original link survived")
	}
}

// TestReferenceKV: a deployment over an AMS_KV namespace the hosted
// reference wrote keeps working. The records are put into the local KV with
// wrangler, in the reference's shapes (20-character ULIDs, no link
// generation, names never claimed in a namespace object), before the broker
// starts on that state: the account authenticates and mints, its
// conversation inspects and joins, and its names stay taken.
func TestReferenceKV(t *testing.T) {
	persist, vars := ownState(t)
	peppers := wire.Peppers{Credential: vars["AMS_CREDENTIAL_PEPPER"], Permissive: vars["AMS_PERMISSIVE_TOKEN_PEPPER"]}
	const (
		accountID      = "acc_01HZX3K9QW7M2N4P5R"
		conversationID = "conv_01HZX3KA1B2C3D4E5F"
		credential     = "ams_sk_referenceCredential0123456789abcdefghij"
		token          = "referenceToken0123456789abcdefghijklmnop"
	)
	records := []map[string]string{
		{"key": "account:" + accountID, "value": fmt.Sprintf(`{"account_id":%q,"namespace":"legacy","credential_hash":%q,"created_at":"2026-05-02T10:00:00.000Z"}`,
			accountID, peppers.CredentialHash(credential))},
		{"key": "namespace:legacy", "value": accountID},
		{"key": "credindex:" + peppers.CredentialHash(credential), "value": accountID},
		{"key": "conversation:" + conversationID, "value": fmt.Sprintf(`{"conversation_id":%q,"alias":"old-room","namespace":"legacy","owner_account_id":%q,"id_kind":"uuid","permissive_token_hash":%q,"metadata":{"topic":"from the reference"},"created_at":"2026-05-02T10:01:00.000Z"}`,
			conversationID, accountID, peppers.PermissiveTokenHash(token))},
		{"key": "alias:legacy:old-room", "value": conversationID},
	}
	bulk := filepath.Join(persist, "reference.json")
	if err := os.WriteFile(bulk, mustJSON(t, records), 0o600); err != nil {
		t.Fatal(err)
	}
	put := exec.Command(filepath.Join(repoRoot, "node_modules/.bin/wrangler"), "kv", "bulk", "put", bulk,
		"--binding", "AMS_KV", "--local", "--persist-to", persist, "--config", filepath.Join(repoRoot, "wrangler.toml"))
	put.Env = append(os.Environ(), "WRANGLER_SEND_METRICS=false", "CI=true")
	if out, err := put.CombinedOutput(); err != nil {
		t.Fatalf("wrangler kv bulk put: %v\n%s", err, out)
	}
	b, err := StartBroker(BrokerOptions{Vars: vars, PersistDir: persist})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()

	status, _, body := callURL(t, b.URL, "GET", "/v1/legacy/conversations/old-room?t="+token, nil, "")
	if meta, _ := body["metadata"].(map[string]any); status != http.StatusOK || body["conversation_id"] != conversationID || meta["topic"] != "from the reference" {
		t.Fatalf("inspect a reference conversation: %d %v", status, body)
	}
	link := b.URL + "/legacy/conversations/old-room?t=" + token
	conn, joined, err := client.Join(testContext(t, 30*time.Second), link, client.DialOptions{Credential: credential, StreamName: "old-timer"})
	if err != nil {
		t.Fatalf("join a reference conversation: %v", err)
	}
	conn.CloseNow()
	if joined.ConversationID != conversationID {
		t.Fatalf("joined %s", joined.Raw)
	}
	auth := map[string]string{"Authorization": "Bearer " + credential}
	if status, _, body := callURL(t, b.URL, "POST", "/v1/legacy/conversations", auth, `{"alias":"new-room"}`); status != http.StatusCreated {
		t.Fatalf("mint with a reference account: %d %v", status, body)
	}
	status, _, body = callURL(t, b.URL, "POST", "/v1/legacy/conversations", auth, `{"alias":"old-room"}`)
	wantError(t, status, body, wire.ErrAliasTaken)
	status, _, body = callURL(t, b.URL, "POST", "/v1/accounts", nil, `{"namespace":"legacy"}`)
	wantError(t, status, body, wire.ErrNamespaceTaken)
	// Rotating a reference conversation works, and revokes.
	status, _, body = callURL(t, b.URL, "POST", "/v1/legacy/conversations/old-room/rotate", auth, "")
	if status != http.StatusOK {
		t.Fatalf("rotate a reference conversation: %d %v", status, body)
	}
	if status, _, _ := callURL(t, b.URL, "GET", "/v1/legacy/conversations/old-room?t="+token, nil, ""); status != http.StatusForbidden {
		t.Fatalf("the reference link after rotation: %d", status)
	}
}
