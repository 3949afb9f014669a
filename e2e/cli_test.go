//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// TestCLI builds the `ams` binary once and drives it as a person would,
// against the shared broker, with a Go WebSocket peer on the other side.
func TestCLI(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ams")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ams")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ams: %v\n%s", err, out)
	}
	home := t.TempDir()
	cli := &cliRunner{bin: bin, home: home}
	var link string

	if !t.Run("AccountCreateAndMint", func(t *testing.T) {
		ns := "cli-" + randomHex(5)
		res := cli.run(t, "", "--host", broker.URL, "account", "create", ns)
		res.wantCode(t, 0)
		if !strings.Contains(res.stdout, "credential  ams_sk_") || !strings.Contains(res.stdout, "namespace   "+ns) {
			t.Fatalf("account not printed:\n%s", res.stdout)
		}
		if !strings.Contains(res.stderr, "shown once") {
			t.Fatalf("no warning that the credential is shown once: %q", res.stderr)
		}
		info, err := os.Stat(cli.configPath())
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Fatalf("config mode %v, want 0600", info.Mode().Perm())
		}

		res = cli.run(t, "", "mint")
		res.wantCode(t, 0)
		link = strings.TrimSpace(res.stdout)
		if strings.Count(res.stdout, "\n") != 1 || !strings.HasPrefix(link, broker.URL+"/"+ns+"/conversations/") {
			t.Fatalf("mint should print the magic link alone on stdout, got %q", res.stdout)
		}
		if strings.Contains(res.stderr, "ams_sk_") {
			t.Fatalf("mint printed the credential: %q", res.stderr)
		}

		res = cli.run(t, "", "mint", "--json", "--alias", "tour-"+randomHex(3), "--metadata", `{"topic":"cli"}`)
		res.wantCode(t, 0)
		var conv client.Conversation
		if err := json.Unmarshal([]byte(res.stdout), &conv); err != nil || conv.MagicLink == "" {
			t.Fatalf("mint --json: %v\n%s", err, res.stdout)
		}
		var meta map[string]string
		if json.Unmarshal(conv.Metadata, &meta) != nil || meta["topic"] != "cli" {
			t.Fatalf("metadata %s", conv.Metadata)
		}
	}) {
		return
	}
	peerAccount := newAccount(t)
	peerOpts := client.DialOptions{Credential: peerAccount.Credential, StreamName: "peer"}

	t.Run("SendStreamsStdinTokenByToken", func(t *testing.T) {
		peer, _ := join(t, link, peerOpts)
		p := cli.start(t, "send", link, "-", "--name", "llm")
		chunks := []string{"Hel", "lo, wö", "rld 🙂\n"}
		for _, chunk := range chunks {
			// Each write waits for the previous token, so each read is one token.
			io.WriteString(p.stdin, chunk)
			tok := cliNextToken(t, peer)
			if *tok.Data != chunk || tok.StreamName != "llm" {
				t.Fatalf("peer got %s, want %q from llm", tok.Raw, chunk)
			}
		}
		p.stdin.Close()
		if code := p.wait(t); code != 0 {
			t.Fatalf("send exited %d: %s", code, p.stderrText())
		}
		if !strings.Contains(p.stderrText(), "3 tokens accepted") {
			t.Fatalf("no receipt summary: %q", p.stderrText())
		}

		res := cli.run(t, "a\nb\r\n\nc", "send", link, "-", "--lines", "--name", "liner")
		res.wantCode(t, 0)
		for _, want := range []string{"a", "b", "", "c"} {
			if tok := cliNextToken(t, peer); *tok.Data != want || tok.StreamName != "liner" {
				t.Fatalf("--lines: peer got %s, want %q", tok.Raw, want)
			}
		}

		res = cli.run(t, "", "send", link, "one whole token\n with a newline")
		res.wantCode(t, 0)
		if tok := cliNextToken(t, peer); *tok.Data != "one whole token\n with a newline" {
			t.Fatalf("send TEXT: peer got %s", tok.Raw)
		}
	})

	t.Run("JoinPrintsPeersAndSendsStdinLines", func(t *testing.T) {
		peer, _ := join(t, link, peerOpts)
		p := cli.start(t, "join", link, "--name", "shell")
		p.waitStderr(t, "joined ")
		cliNext(t, peer, wire.TypeStreamJoined)
		if err := peer.SendToken(testContext(t, 10*time.Second), "hello shell"); err != nil {
			t.Fatal(err)
		}
		p.waitStdout(t, "peer: hello shell")
		io.WriteString(p.stdin, "hello peer\n")
		if tok := cliNextToken(t, peer); *tok.Data != "hello peer" || tok.StreamName != "shell" {
			t.Fatalf("peer got %s", tok.Raw)
		}
		// Ctrl-C leaves the conversation normally.
		p.cmd.Process.Signal(os.Interrupt)
		if code := p.wait(t); code != 0 {
			t.Fatalf("join exited %d after SIGINT: %s", code, p.stderrText())
		}
		if left := cliNext(t, peer, wire.TypeStreamLeft); left.StreamName != "shell" {
			t.Fatalf("stream_left of %s", left.StreamName)
		}
	})

	t.Run("TailRawPrintsWireFrames", func(t *testing.T) {
		peer, _ := join(t, link, peerOpts)
		p := cli.start(t, "tail", link, "--raw", "--name", "watcher")
		joined := cliFrameLine(t, p.waitStdout(t, `"type":"joined"`))
		if joined.StreamName != "watcher" {
			t.Fatalf("joined %s", joined.Raw)
		}
		cliNext(t, peer, wire.TypeStreamJoined)
		if err := peer.SendToken(testContext(t, 10*time.Second), `{"json":"inside"}`); err != nil {
			t.Fatal(err)
		}
		tok := cliFrameLine(t, p.waitStdout(t, `"type":"token"`))
		if *tok.Data != `{"json":"inside"}` || tok.StreamName != "peer" || tok.Seq == 0 {
			t.Fatalf("token line %s", tok.Raw)
		}
		if p.stderrText() != "" {
			t.Fatalf("--raw printed on stderr: %q", p.stderrText())
		}
	})

	t.Run("InspectListsStreams", func(t *testing.T) {
		join(t, link, peerOpts)
		res := cli.run(t, "", "inspect", link, "--json")
		res.wantCode(t, 0)
		var info client.ConversationInfo
		if err := json.Unmarshal([]byte(res.stdout), &info); err != nil {
			t.Fatalf("inspect --json: %v\n%s", err, res.stdout)
		}
		var names []string
		for _, s := range info.Streams {
			names = append(names, s.StreamName)
		}
		if !strings.Contains(","+strings.Join(names, ",")+",", ",peer,") {
			t.Fatalf("streams %q lack peer", names)
		}
		res = cli.run(t, "", "inspect", link)
		res.wantCode(t, 0)
		if !strings.Contains(res.stdout, info.ConversationID) || !strings.Contains(res.stdout, "peer") {
			t.Fatalf("inspect:\n%s", res.stdout)
		}
	})

	t.Run("RefusalsHaveExitCodesAndHelpfulMessages", func(t *testing.T) {
		parsed, err := client.ParseMagicLink(link)
		if err != nil {
			t.Fatal(err)
		}
		wrongT := parsed
		wrongT.Token = "not-the-token"
		unknown := parsed
		unknown.Alias = "no-such-" + randomHex(3)
		for _, tc := range []struct {
			args []string
			code int
			text string
		}{
			{[]string{"join", wrongT.String()}, 2, "the magic link is not valid (wrong or rotated t) (close 4001 invalid_magic_link)"},
			{[]string{"tail", unknown.String()}, 2, "close 4005 conversation_not_found"},
			{[]string{"send", wrongT.String(), "x"}, 2, "the magic link is not valid"},
			{[]string{"inspect", wrongT.String()}, 2, "(403 invalid_token)"},
			{[]string{"join", link, "--name", "bad name"}, 2, "4400 invalid_stream_name_header"},
			{[]string{"inspect", fmt.Sprintf("http://127.0.0.1:%d/ns/conversations/a?t=x", freePort())}, 3, "cannot reach the broker"},
			{[]string{"join", "not-a-link"}, 1, "is not a magic link"},
		} {
			res := cli.run(t, "", tc.args...)
			if res.code != tc.code || !strings.Contains(res.stderr, tc.text) {
				t.Errorf("ams %q: exit %d, stderr %q; want exit %d and %q", tc.args, res.code, res.stderr, tc.code, tc.text)
			}
		}
		res := cli.runEnv(t, []string{"AMS_CREDENTIAL=ams_sk_wrong"}, "", "send", link, "x")
		if res.code != 2 || !strings.Contains(res.stderr, "4002 invalid_credential") {
			t.Errorf("AMS_CREDENTIAL must win over the config: exit %d, %q", res.code, res.stderr)
		}
	})

	t.Run("ResumePicksUpMissedTokens", func(t *testing.T) {
		peer, _ := join(t, link, peerOpts)
		first := cli.start(t, "join", link, "--name", "resumer", "--resume")
		first.waitStderr(t, "joined ")
		cliNext(t, peer, wire.TypeStreamJoined)
		ctx := testContext(t, 20*time.Second)
		for _, tok := range []string{"one", "two"} {
			if err := peer.SendToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		first.waitStdout(t, "peer: two")
		time.Sleep(time.Second) // the position is saved every quarter second
		first.cmd.Process.Kill()
		first.wait(t)
		cliNext(t, peer, wire.TypeStreamLeft)
		for _, tok := range []string{"three", "four"} {
			if err := peer.SendToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		// No --name: the state file remembers the stream this command used.
		second := cli.start(t, "join", link, "--resume")
		second.waitStderr(t, "nothing missed")
		second.waitStdout(t, "peer: three")
		second.waitStdout(t, "peer: four")
		if out := second.stdoutText(); strings.Contains(out, "peer: one") || strings.Contains(out, "peer: two") {
			t.Fatalf("resume replayed frames it had already printed:\n%s", out)
		}
		if !strings.Contains(second.stderrText(), " as resumer ") {
			t.Fatalf("resumed as another stream: %q", second.stderrText())
		}
	})
}

// cliRunner runs the built binary with a private config and state file and
// none of the caller's AMS_* variables.
type cliRunner struct {
	bin  string
	home string
}

func (c *cliRunner) configPath() string { return filepath.Join(c.home, "config", "ams.json") }

func (c *cliRunner) env(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AMS_") && !strings.HasPrefix(kv, "XDG_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+c.home, "AMS_CONFIG="+c.configPath(), "AMS_STATE="+filepath.Join(c.home, "state", "resume.json"))
	return append(env, extra...)
}

type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
}

func (c *cliRunner) run(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	return c.runEnv(t, nil, stdin, args...)
}

// runEnv runs one command to completion, within 60 seconds.
func (c *cliRunner) runEnv(t *testing.T, extra []string, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = c.env(extra)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("ams %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("ams %q did not finish in time; stderr: %s", args, stderr.String())
	}
	return cliResult{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// cliProc is a running ams: stdin to write, stdout and stderr as lines.
type cliProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *cliLines
	stderr *cliLines
	done   chan struct{}
}

// start runs a long-lived command; cleanup kills it.
func (c *cliRunner) start(t *testing.T, args ...string) *cliProc {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env(nil)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, _ := cmd.StdoutPipe()
	errPipe, _ := cmd.StderrPipe()
	p := &cliProc{cmd: cmd, stdin: stdin, stdout: newCLILines(outPipe), stderr: newCLILines(errPipe), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		<-p.stdout.eof
		<-p.stderr.eof
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns the exit code, failing the test after 30 seconds.
func (p *cliProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		t.Fatalf("ams did not exit; stderr: %s", p.stderrText())
		return -1
	}
}

func (p *cliProc) waitStdout(t *testing.T, substr string) string {
	t.Helper()
	return p.stdout.waitFor(t, substr, p)
}

func (p *cliProc) waitStderr(t *testing.T, substr string) string {
	t.Helper()
	return p.stderr.waitFor(t, substr, p)
}

func (p *cliProc) stdoutText() string { return p.stdout.text() }
func (p *cliProc) stderrText() string { return p.stderr.text() }

// cliLines collects a pipe's lines and wakes waiters as they arrive.
type cliLines struct {
	mu      sync.Mutex
	lines   []string
	changed chan struct{}
	eof     chan struct{}
}

func newCLILines(r io.Reader) *cliLines {
	l := &cliLines{changed: make(chan struct{}), eof: make(chan struct{})}
	go func() {
		defer close(l.eof)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *cliLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return ""
	}
	return strings.Join(l.lines, "\n") + "\n"
}

// waitFor returns the first line containing substr, within 20 seconds.
func (l *cliLines) waitFor(t *testing.T, substr string, p *cliProc) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if strings.Contains(line, substr) {
				l.mu.Unlock()
				return line
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-l.eof:
			if !strings.Contains(l.text(), substr) {
				t.Fatalf("ams ended without printing %q\nstdout:\n%s\nstderr:\n%s", substr, p.stdoutText(), p.stderrText())
			}
		case <-deadline:
			t.Fatalf("ams did not print %q in 20s\nstdout:\n%s\nstderr:\n%s", substr, p.stdoutText(), p.stderrText())
		}
	}
}

// cliFrameLine parses one line of --raw output.
func cliFrameLine(t *testing.T, line string) *client.Frame {
	t.Helper()
	f := &client.Frame{Raw: []byte(line)}
	if err := json.Unmarshal([]byte(line), f); err != nil {
		t.Fatalf("--raw line is not JSON: %q", line)
	}
	return f
}

// cliNext reads until a frame of type typ, skipping others.
func cliNext(t *testing.T, conn *client.Conn, typ string) *client.Frame {
	t.Helper()
	ctx := testContext(t, 20*time.Second)
	for {
		f, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("want a %s frame: %v", typ, err)
		}
		if f.Type == typ {
			return f
		}
	}
}

// cliNextToken reads until the next token, skipping joins and leaves.
func cliNextToken(t *testing.T, conn *client.Conn) *client.Frame {
	t.Helper()
	return cliNext(t, conn, wire.TypeToken)
}
