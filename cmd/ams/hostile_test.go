package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/wire"
)

// fakeHost is a loopback server that logs every request's headers and the
// messages its WebSockets receive; serve scripts each connection.
type fakeHost struct {
	*httptest.Server
	mu       sync.Mutex
	headers  []http.Header
	messages []string
}

func newFakeHost(t *testing.T, serve func(f *fakeHost, ws *websocket.Conn, r *http.Request)) *fakeHost {
	f := &fakeHost{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.headers = append(f.headers, r.Header.Clone())
		f.mu.Unlock()
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ws.SetReadLimit(1 << 20)
		serve(f, ws, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeHost) link() string { return f.URL + "/ns/conversations/room?t=tok" }

func (f *fakeHost) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.headers)
}

func (f *fakeHost) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.messages...)
}

// joinAndRecord says joined, then records each message and answers a token
// with a receipt.
func joinAndRecord(f *fakeHost, ws *websocket.Conn, r *http.Request) {
	ctx := r.Context()
	ws.Write(ctx, websocket.MessageText, []byte(`{"type":"joined","stream_id":"str_me","stream_name":"me","seq":1}`))
	for seq := 2; ; seq++ {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.messages = append(f.messages, string(msg))
		f.mu.Unlock()
		ws.Write(ctx, websocket.MessageText, []byte(`{"type":"x_receipt","seq":`+strconv.Itoa(seq)+`}`))
	}
}

// savedAccount writes a config whose current account is bound to host.
func savedAccount(t *testing.T, host string) map[string]string {
	dir := t.TempDir()
	cfg := `{"current":"demo","accounts":{"demo":{"host":"` + host + `","account_id":"acc_1","credential":"ams_sk_saved"}}}`
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"AMS_CONFIG": path, "AMS_STATE": filepath.Join(dir, "state.json")}
}

// TestSavedCredentialStaysOnItsHost: a link on another port of the same
// machine gets no bearer from the saved account; the CLI says why and
// dials nothing.
func TestSavedCredentialStaysOnItsHost(t *testing.T) {
	home := newFakeHost(t, joinAndRecord)
	evil := newFakeHost(t, joinAndRecord)
	vars := savedAccount(t, home.URL)
	for _, args := range [][]string{
		{"join", evil.link()},
		{"tail", evil.link()},
		{"send", evil.link(), "hi"},
		{"--host", evil.URL, "mint"},
	} {
		code, _, errw := runWith(t, vars, "", args...)
		if code != ExitUsage || !strings.Contains(errw, "is bound to "+home.URL) || !strings.Contains(errw, "not sent to "+evil.URL) {
			t.Errorf("ams %q: exit %d, stderr %q", args[0], code, errw)
		}
	}
	if n := evil.requests(); n != 0 {
		t.Fatalf("the other host got %d requests", n)
	}
	// The account's own host gets it.
	code, _, errw := runWith(t, vars, "", "send", home.link(), "hi", "--quiet")
	if code != ExitOK {
		t.Fatalf("send to the account's host: exit %d, %s", code, errw)
	}
	if got := home.headers[0].Get("Authorization"); got != "Bearer ams_sk_saved" {
		t.Fatalf("the account's host got Authorization %q", got)
	}
}

func TestPlainHTTPOffLoopbackIsRefused(t *testing.T) {
	vars := savedAccount(t, "http://ams.example.dev")
	for _, args := range [][]string{
		{"inspect", "http://ams.example.dev/ns/conversations/a?t=x"},
		{"join", "http://ams.example.dev/ns/conversations/a?t=x"},
		{"--host", "http://ams.example.dev", "account", "create", "ns"},
	} {
		code, _, errw := runWith(t, vars, "", args...)
		if code != ExitUsage || !strings.Contains(errw, "refusing plain http") {
			t.Errorf("ams %q: exit %d, stderr %q", args, code, errw)
		}
	}
}

// TestSendTimeoutCoversTheJoin: a host that upgrades and never says joined
// ends `send --timeout` instead of hanging.
func TestSendTimeoutCoversTheJoin(t *testing.T) {
	silent := newFakeHost(t, func(f *fakeHost, ws *websocket.Conn, r *http.Request) { <-r.Context().Done() })
	vars := savedAccount(t, silent.URL)
	done := make(chan struct{})
	var code int
	var errw string
	go func() {
		code, _, errw = runWith(t, vars, "", "send", silent.link(), "hi", "--timeout", "300ms")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("send --timeout 300ms still running after 20 s")
	}
	if code != ExitNetwork || !strings.Contains(errw, "never said joined") {
		t.Fatalf("exit %d, stderr %q", code, errw)
	}
}

// TestSendRefusesLocally: invalid UTF-8 and a line over the token limit
// are refused with exit 2 and the broker's code, and never sent.
func TestSendRefusesLocally(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		code  string
		sent  int
	}{
		{"invalid UTF-8", []string{"-"}, "bad \xff\xfe", "invalid_utf8", 0},
		{"long line", []string{"-", "--lines"}, "ok\n" + strings.Repeat("x", wire.DefaultLimits.TokenBytes+1) + "\nnever\n", wire.CloseTokenTooLarge.Reason, 1},
		{"long TEXT", []string{strings.Repeat("y", wire.DefaultLimits.TokenBytes+1)}, "", wire.CloseTokenTooLarge.Reason, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := newFakeHost(t, joinAndRecord)
			vars := savedAccount(t, host.URL)
			code, _, errw := runWith(t, vars, tc.stdin, append([]string{"send", host.link()}, tc.args...)...)
			if code != ExitRefused || !strings.Contains(errw, tc.code) {
				t.Fatalf("exit %d, stderr %q", code, errw)
			}
			time.Sleep(50 * time.Millisecond)
			if got := host.received(); len(got) != tc.sent {
				t.Fatalf("the broker received %d messages, want %d: %.80q", len(got), tc.sent, got)
			}
		})
	}
}

// hasControls reports a byte that drives a terminal: C0 but newline and
// tab, DEL, or a C1 control in UTF-8 (U+0080..U+009F).
func hasControls(s string) bool {
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r < 0xa0) {
			return true
		}
	}
	return false
}

// TestHostileFramesDoNotReachTheTerminal: every field a host controls
// (token data, names, metadata, unknown frames, the close reason) prints
// escaped, human and --raw alike, and --raw stays the JSON received.
func TestHostileFramesDoNotReachTheTerminal(t *testing.T) {
	const evil = "\u001b]0;pwned\u0007\u001b[2J\u009b31m\u202e"
	evilJSON, _ := json.Marshal(evil)
	host := newFakeHost(t, func(f *fakeHost, ws *websocket.Conn, r *http.Request) {
		ctx := r.Context()
		for _, frame := range []string{
			`{"type":"joined","stream_id":"str_me","stream_name":"me` + "\u009b" + `","seq":1,"peers":[{"stream_id":"p","stream_name":` + string(evilJSON) + `,"metadata":{"k":` + string(evilJSON) + `}}]}`,
			`{"type":"stream_joined","stream_id":"q","stream_name":` + string(evilJSON) + `,"seq":2}`,
			`{"type":"token","stream_id":"q","stream_name":"peer","seq":3,"data":` + string(evilJSON) + `}`,
			`{"type":"stream_metadata","stream_id":"q","stream_name":"peer","seq":4,"metadata":{"x":` + string(evilJSON) + `}}`,
			`{"type":"x_` + "\u009b" + `","seq":5}`,
		} {
			ws.Write(ctx, websocket.MessageText, []byte(frame))
		}
		ws.Close(4400, "bye\u001b[2J\u009b")
	})
	vars := savedAccount(t, host.URL)
	code, out, errw := runWith(t, vars, "", "tail", host.link())
	if code == ExitOK || hasControls(out) || hasControls(errw) {
		t.Fatalf("exit %d; stdout %q; stderr %q", code, out, errw)
	}
	if !strings.Contains(out, `peer: \u001b]0;pwned\u0007\u001b[2J\u009b31m\u202e`) {
		t.Fatalf("the token is not shown escaped: %q", out)
	}
	_, out, errw = runWith(t, vars, "", "tail", host.link(), "--raw")
	if hasControls(out) || hasControls(errw) {
		t.Fatalf("--raw: stdout %q; stderr %q", out, errw)
	}
	frames := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var f struct {
			Type string
			Data *string
		}
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("--raw line is not JSON: %q", line)
		}
		if f.Type == wire.TypeToken && *f.Data != evil {
			t.Fatalf("--raw token decodes to %q, want %q", *f.Data, evil)
		}
		frames++
	}
	if frames != 5 {
		t.Fatalf("--raw printed %d frames: %q", frames, out)
	}
}

// TestHostileControlPlaneDoesNotReachTheTerminal: inspect's fields and an
// error body from a hostile host print escaped (and a long body clipped).
func TestHostileControlPlaneDoesNotReachTheTerminal(t *testing.T) {
	answer := `{"conversation_id":"c\u001b[2J","namespace":"ns\u009b","alias":"a","created_at":"\u0007","streams":[{"stream_id":"s\u001b]0;x\u0007","stream_name":"n\u009b1m","owner_account_id":"o","metadata":{"m":"\u001b"}}]}`
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("\x1b]0;owned\x07\xc2\x9b2J" + strings.Repeat("z", 5000)))
			return
		}
		w.Write([]byte(answer))
	}))
	defer srv.Close()
	link := srv.URL + "/ns/conversations/a?t=x"
	code, out, errw := runWith(t, nil, "", "inspect", link)
	if code != ExitOK || hasControls(out) || hasControls(errw) || !strings.Contains(out, `c\u001b[2J`) {
		t.Fatalf("inspect: exit %d; stdout %q; stderr %q", code, out, errw)
	}
	fail.Store(true)
	code, out, errw = runWith(t, nil, "", "inspect", link)
	if code != ExitRefused || hasControls(out) || hasControls(errw) || len(errw) > 1000 {
		t.Fatalf("inspect error: exit %d; stdout %q; stderr %q", code, out, errw)
	}
}

// TestLinkFromFileOrEnvironment: the link (a secret) need not be in argv.
func TestLinkFromFileOrEnvironment(t *testing.T) {
	host := newFakeHost(t, joinAndRecord)
	vars := savedAccount(t, host.URL)
	file := filepath.Join(t.TempDir(), "link")
	os.WriteFile(file, []byte(host.link()+"\n"), 0o600)
	for _, tc := range []struct {
		env   map[string]string
		stdin string
		args  []string
	}{
		{map[string]string{"AMS_LINK": host.link()}, "", []string{"send", "from-env"}},
		{nil, "", []string{"send", "--link-file", file, "from-file"}},
		{nil, host.link() + "\n", []string{"send", "--link-file", "-", "from-stdin"}},
	} {
		v := map[string]string{}
		for k, val := range vars {
			v[k] = val
		}
		for k, val := range tc.env {
			v[k] = val
		}
		if code, _, errw := runWith(t, v, tc.stdin, tc.args...); code != ExitOK {
			t.Fatalf("ams %q: exit %d, %s", tc.args, code, errw)
		}
	}
	time.Sleep(50 * time.Millisecond)
	got := strings.Join(host.received(), " ")
	for _, want := range []string{"from-env", "from-file", "from-stdin"} {
		if !strings.Contains(got, want) {
			t.Fatalf("%s not received: %s", want, got)
		}
	}
	code, _, errw := runWith(t, vars, "", "send", "--link-file", "-", "-")
	if code != ExitUsage || !strings.Contains(errw, "reads stdin") {
		t.Fatalf("--link-file - with send -: exit %d, %q", code, errw)
	}
}

// TestJoinRefusesAnOverlongLine: join sends the lines before it, then
// leaves with exit 2 rather than send or hold the long line.
func TestJoinRefusesAnOverlongLine(t *testing.T) {
	host := newFakeHost(t, joinAndRecord)
	vars := savedAccount(t, host.URL)
	stdin := "first\n" + strings.Repeat("x", 200<<10) + "\nnever\n"
	code, _, errw := runWith(t, vars, stdin, "join", host.link())
	if code != ExitRefused || !strings.Contains(errw, wire.CloseTokenTooLarge.Reason) {
		t.Fatalf("exit %d, stderr %q", code, errw)
	}
	time.Sleep(50 * time.Millisecond)
	if got := host.received(); len(got) != 1 || !strings.Contains(got[0], `"first"`) {
		t.Fatalf("the broker received %.200q", got)
	}
}

// TestTailResumeNoticesASilentConnection: the first connection goes
// silent after joined (a proxy that stopped forwarding); `tail --resume`
// notices through keep-alive (client.DefaultKeepAlive), reconnects and
// prints the token the second connection carries.
func TestTailResumeNoticesASilentConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the keep-alive deadline")
	}
	var conns atomic.Int32
	host := newFakeHost(t, func(f *fakeHost, ws *websocket.Conn, r *http.Request) {
		ctx := r.Context()
		ws.Write(ctx, websocket.MessageText, []byte(`{"type":"joined","stream_id":"str_t","stream_name":"t","seq":3}`))
		if conns.Add(1) == 1 {
			for { // read pings, answer nothing
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
		}
		ws.Write(ctx, websocket.MessageText, []byte(`{"type":"token","stream_id":"str_p","stream_name":"peer","seq":4,"data":"missed no more"}`))
		ws.Read(ctx)
	})
	vars := savedAccount(t, host.URL)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	errw := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"tail", host.link(), "--resume"}, Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: errw, Getenv: func(k string) string { return vars[k] }})
	}()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "peer: missed no more") {
		select {
		case <-deadline:
			cancel()
			t.Fatalf("no token after 60 s; stderr %q", errw.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errw.String(), "went silent") {
		t.Fatalf("stderr does not say why it reconnected: %q", errw.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the program's goroutines and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
