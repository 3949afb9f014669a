//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// hibernationIdle is how long sockets stay idle so that local workerd
// evicts the conversation object (it does after about 10-15 s).
func hibernationIdle() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("AMS_E2E_HIBERNATION_IDLE")); err == nil {
		return d
	}
	return 20 * time.Second
}

// waitForWake idles, then returns once the broker logged that the object
// holding streamIDs was rebuilt from its sockets' attachments. The trigger
// is the first event after the idle period.
func waitForWake(t *testing.T, b *Broker, streamIDs []string, trigger func()) {
	t.Helper()
	mark := len(b.Logs())
	time.Sleep(hibernationIdle())
	trigger()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(b.Logs()[mark:], "\n") {
			if !strings.Contains(line, "conversation object woke") {
				continue
			}
			all := true
			for _, id := range streamIDs {
				all = all && strings.Contains(line, id)
			}
			if all {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the conversation object did not hibernate and wake within %s (no wake log for %v)", hibernationIdle(), streamIDs)
}

func TestHibernationKeepsEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("hibernation needs a real idle period")
	}
	r := newRoom(t)
	other := newAccount(t)
	big := `{"bio":"` + strings.Repeat("long metadata ", 800) + `","emoji":"🦉"}` // > 2 KiB: lives in storage
	a, joinedA := r.join(t, r.owner, "alpha", withMetadata(`{"role":"planner"}`))
	b, joinedB := r.join(t, other, "beta", withMetadata(big), selfSubscribe)
	c, joinedC := r.join(t, r.owner, "gamma")
	next(t, a, wire.TypeStreamJoined)
	next(t, a, wire.TypeStreamJoined)
	next(t, b, wire.TypeStreamJoined)

	var info *client.ConversationInfo
	waitForWake(t, broker, []string{joinedA.StreamID, joinedB.StreamID, joinedC.StreamID}, func() {
		var err error
		info, err = broker.client("").Inspect(testContext(t, 10*time.Second), r.conv.MagicLink)
		if err != nil {
			t.Fatalf("inspect after idle: %v", err)
		}
	})
	want := map[string]string{"alpha": `{"role":"planner"}`, "beta": big, "gamma": `{}`}
	if len(info.Streams) != 3 {
		t.Fatalf("inspect after wake lists %d streams", len(info.Streams))
	}
	for _, s := range info.Streams {
		if !jsonEqual(s.Metadata, want[s.StreamName]) {
			t.Fatalf("stream %s metadata after wake: %.80s", s.StreamName, s.Metadata)
		}
	}

	// A new joiner sees every peer, with ids, owners and metadata intact.
	d, joinedD := r.join(t, newAccount(t), "delta")
	peers := map[string]client.Stream{}
	for _, p := range joinedD.Peers {
		peers[p.StreamName] = p
	}
	if len(peers) != 3 || peers["alpha"].StreamID != joinedA.StreamID || peers["beta"].OwnerAccountID != other.AccountID ||
		!jsonEqual(peers["beta"].Metadata, big) || peers["gamma"].StreamID != joinedC.StreamID {
		t.Fatalf("peers after wake: %s", joinedD.Raw)
	}
	// No spurious stream_left/stream_joined: delta's arrival is the next frame.
	for _, conn := range []*client.Conn{a, b, c} {
		if f := next(t, conn, wire.TypeStreamJoined); f.StreamID != joinedD.StreamID {
			t.Fatalf("unexpected frame after wake: %s", f.Raw)
		}
	}

	// Fan-out and self-exclusion hold; beta still hears itself.
	ctx := testContext(t, 30*time.Second)
	if err := a.SendToken(ctx, "after the nap"); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*client.Conn{b, c, d} {
		if tok := next(t, conn, wire.TypeToken); *tok.Data != "after the nap" || tok.StreamID != joinedA.StreamID || tok.OwnerAccountID != r.owner.AccountID {
			t.Fatalf("token after wake: %s", tok.Raw)
		}
	}
	quiet(t, a)
	if err := b.SendToken(ctx, "beta speaks"); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*client.Conn{b, a, c, d} {
		if tok := next(t, conn, wire.TypeToken); *tok.Data != "beta speaks" {
			t.Fatalf("beta's token: %s", tok.Raw)
		}
	}
	quiet(t, b)

	// Metadata set before a second nap survives it too.
	if err := c.SetMetadata(ctx, json.RawMessage(`{"after":"first nap"}`)); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*client.Conn{a, b, d} {
		next(t, conn, wire.TypeStreamMetadata)
	}
	waitForWake(t, broker, []string{joinedA.StreamID, joinedB.StreamID, joinedC.StreamID, joinedD.StreamID}, func() {
		if err := c.SendToken(ctx, "second wake"); err != nil {
			t.Fatal(err)
		}
	})
	for _, conn := range []*client.Conn{a, b, d} {
		if tok := next(t, conn, wire.TypeToken); *tok.Data != "second wake" {
			t.Fatalf("after second wake: %s", tok.Raw)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, conn := range []*client.Conn{b, c, d} {
		if f := next(t, conn, wire.TypeStreamLeft); f.StreamID != joinedA.StreamID {
			t.Fatalf("stream_left: %s", f.Raw)
		}
	}
	info, err := broker.client("").Inspect(ctx, r.conv.MagicLink)
	if err != nil || len(info.Streams) != 3 {
		t.Fatalf("inspect at the end: %+v %v", info, err)
	}
	for _, s := range info.Streams {
		if s.StreamName == "gamma" && !jsonEqual(s.Metadata, `{"after":"first nap"}`) {
			t.Fatalf("gamma's metadata after second wake: %s", s.Metadata)
		}
	}
	if strings.Contains(broker.Logs(), "Go program has already exited") {
		t.Fatal("the Go program exited during the test")
	}
}

// storedMetadataRows counts the overflow-metadata rows containing marker in
// the SQLite files of every conversation object of b.
func storedMetadataRows(t *testing.T, b *Broker, marker string) int {
	t.Helper()
	sqlite, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatal("the sqlite3 command reads the objects' storage: apt-get install sqlite3")
	}
	files, _ := filepath.Glob(filepath.Join(b.StateDir(), "v3", "do", "*Conversation", "*.sqlite"))
	rows := 0
	for _, f := range files {
		out, err := exec.Command(sqlite, f, "SELECT count(*) FROM stream_metadata WHERE metadata LIKE '%"+marker+"%'").Output()
		if err != nil {
			continue // not a conversation's database, or no such table yet
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		rows += n
	}
	return rows
}

// TestHibernationLeaveIsAnnounced: a peer that closes while the object is
// hibernating (its close is what wakes it) leaves as it would have awake:
// the other peer gets stream_left with the next seq, a newcomer's
// joined.peers and inspect agree that it is gone, and its overflow
// metadata is deleted from storage.
func TestHibernationLeaveIsAnnounced(t *testing.T) {
	if testing.Short() {
		t.Skip("hibernation needs a real idle period")
	}
	r := newRoom(t)
	marker := "leaver-" + randomHex(6)
	big := `{"bio":"` + marker + strings.Repeat(" long metadata", 200) + `"}` // > 2 KiB: lives in storage
	stayer, joinedStayer := r.join(t, r.owner, "stayer")
	leaver, joinedLeaver := r.join(t, newAccount(t), "leaver", withMetadata(big))
	arrived := next(t, stayer, wire.TypeStreamJoined)
	if n := storedMetadataRows(t, broker, marker); n != 1 {
		t.Fatalf("%d stored metadata rows for the leaver before it left, want 1", n)
	}

	waitForWake(t, broker, []string{joinedStayer.StreamID}, func() {
		if err := leaver.Close(); err != nil {
			t.Logf("leaver's close: %v", err)
		}
	})
	left := next(t, stayer, wire.TypeStreamLeft)
	if left.StreamID != joinedLeaver.StreamID || left.Seq != arrived.Seq+1 {
		t.Fatalf("stream_left after the wake: %s, want the leaver's with seq %d", left.Raw, arrived.Seq+1)
	}

	ctx := testContext(t, 30*time.Second)
	info, err := broker.client("").Inspect(ctx, r.conv.MagicLink)
	if err != nil || len(info.Streams) != 1 || info.Streams[0].StreamID != joinedStayer.StreamID {
		t.Fatalf("inspect after the leave: %+v %v", info, err)
	}
	_, joinedNew := r.join(t, newAccount(t), "newcomer")
	if len(joinedNew.Peers) != 1 || joinedNew.Peers[0].StreamID != joinedStayer.StreamID || joinedNew.Seq != left.Seq {
		t.Fatalf("newcomer's joined after the leave: %s", joinedNew.Raw)
	}
	if f := next(t, stayer, wire.TypeStreamJoined); f.StreamName != "newcomer" || f.Seq != left.Seq+1 {
		t.Fatalf("after the leave: %s", f.Raw)
	}
	waitFor(t, func() bool { return storedMetadataRows(t, broker, marker) == 0 }, "the leaver's stored metadata to be deleted")
}
