//go:build e2e

package e2e

import (
	"bytes"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// TestFrameFarOverTheLimit: a 30 MiB frame is refused for its length,
// before it is copied into Go or parsed, so what it holds (here not even
// JSON) does not matter: 4400 token_too_large. The others see the stream
// leave and are served on.
func TestFrameFarOverTheLimit(t *testing.T) {
	r := newRoom(t)
	watcher, _ := r.join(t, newAccount(t), "watcher")
	big, joinedBig := r.join(t, r.owner, "big")
	next(t, watcher, wire.TypeStreamJoined)

	ctx := testContext(t, 60*time.Second)
	start := time.Now()
	if err := big.WriteRaw(ctx, bytes.Repeat([]byte("x"), 30<<20)); err != nil {
		t.Fatal(err)
	}
	closedWith(t, big, wire.CloseTokenTooLarge)
	t.Logf("a 30 MiB frame was refused %s after it was written", time.Since(start))
	if left := next(t, watcher, wire.TypeStreamLeft); left.StreamID != joinedBig.StreamID {
		t.Fatalf("stream_left: %s", left.Raw)
	}
	speaker, _ := r.join(t, r.owner, "speaker")
	next(t, watcher, wire.TypeStreamJoined)
	if err := speaker.SendToken(ctx, "still serving"); err != nil {
		t.Fatal(err)
	}
	if tok := next(t, watcher, wire.TypeToken); *tok.Data != "still serving" {
		t.Fatalf("after the big frame: %s", tok.Raw)
	}
}
