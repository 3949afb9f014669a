//go:build e2e

package e2e

import (
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// buildCLI builds the ams binary for one test and returns a runner with a
// private config and state.
func buildCLI(t *testing.T) *cliRunner {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ams")
	build := exec.Command("go", "build", "-o", bin, "./cmd/ams")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/ams: %v\n%s", err, out)
	}
	return &cliRunner{bin: bin, home: t.TempDir()}
}

// terminalControls reports a byte that drives a terminal: C0 but newline
// and tab, DEL, or a C1 control (U+0080..U+009F) in UTF-8.
func terminalControls(s string) bool {
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r < 0xa0) {
			return true
		}
	}
	return false
}

// TestCLIPeerCannotWriteToTheTerminal: a peer's tokens and metadata holding
// OSC, CSI and C1 sequences go through the real broker to `ams tail` and
// `ams inspect`, which print them escaped; --raw prints JSON that decodes
// to exactly what the peer sent.
func TestCLIPeerCannotWriteToTheTerminal(t *testing.T) {
	cli := buildCLI(t)
	ns := "esc-" + randomHex(4)
	cli.run(t, "", "--host", broker.URL, "account", "create", ns).wantCode(t, 0)
	res := cli.run(t, "", "mint")
	res.wantCode(t, 0)
	link := strings.TrimSpace(res.stdout)

	evil := []string{"\u001b]0;pwned\u0007", "\u001b[2J\u001b[H", "\u009b31m red", "\u202eevil\u202c", "bell\u0007\u0000nul"}
	peer, _ := join(t, link, client.DialOptions{
		Credential: newAccount(t).Credential, StreamName: "peer",
		Metadata: mustJSON(t, map[string]string{"title": "\u001b]0;meta\u0007\u009b"}),
	})
	human := cli.start(t, "tail", link, "--name", "human")
	raw := cli.start(t, "tail", link, "--name", "rawtail", "--raw")
	human.waitStderr(t, "joined ")
	raw.waitStdout(t, `"type":"joined"`)
	cliNext(t, peer, wire.TypeStreamJoined)
	cliNext(t, peer, wire.TypeStreamJoined)
	ctx := testContext(t, 30*time.Second)
	for _, tok := range evil {
		if err := peer.SendToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := peer.SetMetadata(ctx, mustJSON(t, map[string]string{"status": "\u001b[5m\u009b"})); err != nil {
		t.Fatal(err)
	}
	human.waitStdout(t, `peer: bell\u0007\u0000nul`)
	human.waitStderr(t, "~ peer metadata")
	raw.waitStdout(t, `"type":"stream_metadata"`)
	if out, errw := human.stdoutText(), human.stderrText(); terminalControls(out) || terminalControls(errw) {
		t.Fatalf("tail printed controls:\nstdout %q\nstderr %q", out, errw)
	}
	if !strings.Contains(human.stdoutText(), `peer: \u001b]0;pwned\u0007`) || !strings.Contains(human.stdoutText(), `peer: \u009b31m red`) {
		t.Fatalf("tokens not shown escaped: %q", human.stdoutText())
	}
	if terminalControls(raw.stdoutText()) {
		t.Fatalf("--raw printed controls: %q", raw.stdoutText())
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(raw.stdoutText()), "\n") {
		if f := cliFrameLine(t, line); f.Type == wire.TypeToken {
			got = append(got, *f.Data)
		}
	}
	if strings.Join(got, "|") != strings.Join(evil, "|") {
		t.Fatalf("--raw tokens decode to %q, want %q", got, evil)
	}

	res = cli.run(t, "", "inspect", link)
	res.wantCode(t, 0)
	if terminalControls(res.stdout) || !strings.Contains(res.stdout, `\u001b]0;meta\u0007\u009b`) && !strings.Contains(res.stdout, `\u001b[5m\u009b`) {
		t.Fatalf("inspect: %q", res.stdout)
	}
}

// TestCLIResumeAcrossBrokerRestart: `ams join --resume` (no --name) is
// typing when the broker goes down; lines typed while it is down are sent
// once it is back, the stream keeps the name the broker generated, and the
// CLI never prints its own line as a peer's.
func TestCLIResumeAcrossBrokerRestart(t *testing.T) {
	persist := t.TempDir()
	port := freePort()
	vars := map[string]string{"AMS_CREDENTIAL_PEPPER": randomHex(16), "AMS_PERMISSIVE_TOKEN_PEPPER": randomHex(16)}
	b, err := StartBroker(BrokerOptions{Vars: vars, PersistDir: persist, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Stop() }()
	cli := buildCLI(t)
	cli.run(t, "", "--host", b.URL, "account", "create", "typist").wantCode(t, 0)
	res := cli.run(t, "", "mint")
	res.wantCode(t, 0)
	link := strings.TrimSpace(res.stdout)

	ctx := testContext(t, 4*time.Minute)
	peerAcc, err := b.client("").CreateAccount(ctx, "listener")
	if err != nil {
		t.Fatal(err)
	}
	peer, err := client.OpenSession(ctx, link, client.SessionOptions{Dial: client.DialOptions{Credential: peerAcc.Credential, StreamName: "peer"}})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	p := cli.start(t, "join", link, "--resume")
	joinedLine := p.waitStderr(t, "joined ")
	m := regexp.MustCompile(` as (\S+) \(seq`).FindStringSubmatch(joinedLine)
	if m == nil {
		t.Fatalf("joined line %q", joinedLine)
	}
	name := m[1]
	// peerTokens reads the peer's session until want distinct tokens of
	// name came. A line whose receipt was lost with the connection is sent
	// again (at least once, docs/CLI.md): a repeat is allowed right after
	// its first copy, never a loss or a reordering.
	var fromCLI, distinct []string
	peerTokens := func(want int) {
		t.Helper()
		for len(distinct) < want {
			f, err := peer.Read(ctx)
			if err != nil {
				t.Fatalf("peer after %q: %v", fromCLI, err)
			}
			if f.Type != wire.TypeToken || f.StreamName != name {
				continue
			}
			fromCLI = append(fromCLI, *f.Data)
			if len(distinct) == 0 || distinct[len(distinct)-1] != *f.Data {
				distinct = append(distinct, *f.Data)
			}
		}
	}
	io.WriteString(p.stdin, "before\n")
	peerTokens(1)

	b.Stop()
	p.waitStderr(t, "connection lost")
	io.WriteString(p.stdin, "typed while down 1\n")
	io.WriteString(p.stdin, "typed while down 2\n")
	b, err = StartBroker(BrokerOptions{Vars: vars, PersistDir: persist, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	p.waitStderr(t, "resumed ")
	peerTokens(3)
	if strings.Join(distinct, "|") != "before|typed while down 1|typed while down 2" || len(fromCLI) > 2*len(distinct) {
		t.Fatalf("the peer got %q", fromCLI)
	}
	t.Logf("the peer got %q", fromCLI)
	if err := peer.Send(ctx, "welcome back"); err != nil {
		t.Fatal(err)
	}
	p.waitStdout(t, "peer: welcome back")
	for _, line := range strings.Split(p.stderrText(), "\n") {
		if strings.HasPrefix(line, "resumed ") && !strings.Contains(line, " as "+name+" ") {
			t.Fatalf("resumed under another name than %s: %q", name, line)
		}
	}
	if out := p.stdoutText(); strings.Contains(out, name+": ") {
		t.Fatalf("the CLI printed its own line as a peer's:\n%s", out)
	}
}
