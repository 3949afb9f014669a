//go:build e2e

package e2e

import (
	"fmt"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// garbage returns a hostile client message: broken JSON, wrong types,
// deep nesting, invalid UTF-8, oversized data.
func garbage(rng *rand.Rand) []byte {
	switch rng.Intn(9) {
	case 0:
		b := make([]byte, 1+rng.Intn(200))
		rng.Read(b)
		return b
	case 1:
		return []byte(strings.Repeat("[", 5000) + strings.Repeat("]", 5000))
	case 2:
		return []byte(`{"type":"token","data":` + strings.Repeat(`{"a":`, 3000) + `1` + strings.Repeat(`}`, 3000) + `}`)
	case 3:
		return []byte(`{"type":"token","data":"\xff\xfe broken utf-8"`)
	case 4:
		return []byte(`{"type":"set_metadata","metadata":"` + strings.Repeat("x", 100) + `"}`)
	case 5:
		return []byte(`{"type":"token","data":"` + strings.Repeat("y", wire.DefaultLimits.TokenBytes+1+rng.Intn(1000)) + `"}`)
	case 6:
		return []byte(`{"type":["token"],"data":"x"}`)
	case 7:
		return []byte(`{"type":"token","data":"x"}garbage`)
	default:
		return []byte(`{"type":"` + strings.Repeat("t", rng.Intn(100)) + `"}`)
	}
}

func TestBarrageLeavesOthersServed(t *testing.T) {
	r := newRoom(t)
	speaker, joinedSpeaker := r.join(t, r.owner, "speaker")
	listener, _ := r.join(t, newAccount(t), "listener")
	next(t, speaker, wire.TypeStreamJoined)
	ctx := testContext(t, 120*time.Second)

	const tokens = 300
	received := make(chan error, 1)
	go func() {
		seen := 0
		for seen < tokens {
			f, err := listener.Read(ctx)
			if err != nil {
				received <- fmt.Errorf("listener lost after %d tokens: %v", seen, err)
				return
			}
			if f.Type != wire.TypeToken || f.StreamID != joinedSpeaker.StreamID {
				continue // offenders joining and leaving
			}
			if *f.Data != fmt.Sprint(seen) {
				received <- fmt.Errorf("token %d arrived as %q", seen, *f.Data)
				return
			}
			seen++
		}
		received <- nil
	}()
	go func() {
		for i := 0; i < tokens; i++ {
			if speaker.SendToken(ctx, fmt.Sprint(i)) != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			acc, err := broker.client("").CreateAccount(ctx, "barrage-"+randomHex(5))
			if err != nil {
				errs <- err
				return
			}
			for i := 0; i < 8; i++ {
				conn, _, err := client.Join(ctx, r.conv.MagicLink, client.DialOptions{Credential: acc.Credential, StreamName: fmt.Sprint("bad-", w, "-", i)})
				if err != nil {
					errs <- err
					return
				}
				msg := garbage(rng)
				if rng.Intn(4) == 0 {
					err = conn.WriteBinary(ctx, msg)
				} else {
					err = conn.WriteRaw(ctx, msg)
				}
				if err != nil {
					errs <- err
					return
				}
				for {
					_, err := conn.Read(ctx)
					if err == nil {
						continue
					}
					if code, reason := client.CloseOf(err); code != 4400 {
						errs <- fmt.Errorf("garbage %.60q closed %d %s", msg, code, reason)
					}
					break
				}
				conn.CloseNow()
			}
		}(w)
	}
	// Hostile HTTP at the same time: every answer is a protocol error, never a crash.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/v1/accounts", strings.Repeat("{", 70000)},
			{"POST", "/v1/accounts", "\xff\xfe"},
			{"POST", "/v1/accounts", `{"namespace":"` + strings.Repeat("a", 1000) + `"}`},
			{"GET", "/v1/../../etc/passwd/conversations/x", ""},
			{"GET", "/v1/a%2F..%2Fb/conversations/x?t=1", ""},
			{"POST", "/v1/x/conversations", `{"metadata":` + strings.Repeat("[", 10000) + `}`},
			{"GET", "/" + strings.Repeat("a/", 500), ""},
		} {
			req, _ := http.NewRequestWithContext(ctx, c.method, broker.URL+c.path, strings.NewReader(c.body))
			req.Header.Set("X-Injected", "a\tb")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				continue
			}
			res.Body.Close()
			if res.StatusCode >= 500 || res.Header.Get("Content-Type") == "" {
				errs <- fmt.Errorf("%s %.40s answered %d", c.method, c.path, res.StatusCode)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-received; err != nil {
		t.Fatal(err)
	}
	if logs := broker.Logs(); strings.Contains(logs, "Go program has already exited") || strings.Contains(logs, "recovered panic") {
		t.Fatalf("the Go runtime failed during the barrage:\n%s", logs)
	}
}
