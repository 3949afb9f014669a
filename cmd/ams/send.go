package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

const sendUsage = `Usage: ams send LINK TEXT
       ams send LINK - [--lines]

Sends TEXT as one token, or with - streams stdin as tokens: whatever each
read of stdin returns becomes one token as soon as it arrives, so
` + "`some-llm | ams send LINK -`" + ` streams a generation token by token.
With --lines each line (without its newline) is one token instead.
ams asks the broker for a receipt per token (X-AMS-Receipts) and exits 0
only once the broker has accepted and stored every one of them.

Flags:
  --lines           with -, one token per line instead of per read
  --name N          the sending stream's name (default: generated)
  --metadata JSON   the sending stream's metadata, a JSON object
  --timeout D       how long to wait for the last receipts (default 30s)
  --quiet           print nothing on success
  --namespace NS    act as this saved account (default: the current one)
  --config F        the config file

Examples:
  ams send "$LINK" 'hello, agents'
  ollama run llama3 "write a haiku" | ams send "$LINK" - --name llama
  tail -f build.log | ams send "$LINK" - --lines --name ci
`

func runSend(ctx context.Context, g globals, args []string, env Env) error {
	fs := newFlagSet("send", &g)
	lines := fs.Bool("lines", false, "")
	name := fs.String("name", "", "")
	var metadata jsonObject
	fs.Var(&metadata, "metadata", "")
	timeout := fs.Duration("timeout", 30*time.Second, "")
	quiet := fs.Bool("quiet", false, "")
	ns := fs.String("namespace", "", "")
	pos, err := parseCommand(fs, sendUsage, args, 2, 2, env)
	if err != nil {
		return err
	}
	link, err := parseLink(pos[0])
	if err != nil {
		return err
	}
	text, fromStdin := pos[1], pos[1] == "-"
	if *lines && !fromStdin {
		return usagef("--lines reads stdin: use `ams send LINK - --lines`")
	}
	id, err := loadIdentity(g, *ns, env)
	if err != nil {
		return err
	}
	if err := id.requireCredential(); err != nil {
		return err
	}
	p := &printer{out: env.Stdout, errw: env.Stderr}
	opts := client.DialOptions{Credential: id.Credential, StreamName: *name, Metadata: metadata.raw, Receipts: true}
	s, joined, err := openStream(ctx, link.String(), opts, false, nil, p.note)
	if err != nil {
		return wrapNetwork(err, link.Origin)
	}
	defer s.Close()

	type written struct {
		n   int
		err error
	}
	writerDone := make(chan written, 1)
	go func() {
		var n int
		var err error
		switch {
		case !fromStdin:
			err = s.Send(text)
			if err == nil {
				n = 1
			}
		case *lines:
			n, err = pumpLines(env.Stdin, s.Send)
		default:
			n, err = pumpChunks(env.Stdin, s.Send)
		}
		writerDone <- written{n, err}
	}()
	readerDone := make(chan error, 1)
	receipts := make(chan int64, 64)
	go func() {
		for {
			f, err := s.Read()
			if err != nil {
				readerDone <- err
				return
			}
			if f.Type == wire.TypeReceipt {
				receipts <- f.Seq
			}
		}
	}()

	var tally receiptTally
	total := -1
	var deadline <-chan time.Time
	for total < 0 || tally.count < total {
		select {
		case w := <-writerDone:
			if w.err != nil {
				// A write fails because the connection ended; the reader has the reason.
				select {
				case err := <-readerDone:
					p.note("stopped after %s", tally.summary(w.n))
					return wrapNetwork(err, link.Origin)
				case <-time.After(2 * time.Second):
				}
				return fmt.Errorf("sending failed after %s: %v", tally.summary(w.n), w.err)
			}
			total = w.n
			deadline = time.After(*timeout)
		case seq := <-receipts:
			tally.add(seq)
		case err := <-readerDone:
			p.note("the broker ended the stream after %s", tally.summary(total))
			return wrapNetwork(err, link.Origin)
		case <-deadline:
			return &networkError{msg: fmt.Sprintf("timed out after %s waiting for receipts: %s", *timeout, tally.summary(total))}
		case <-ctx.Done():
			return &networkError{msg: "interrupted: " + tally.summary(total)}
		}
	}
	if !*quiet {
		p.note("%s, sent as %s", tally.summary(total), joined.StreamName)
	}
	return nil
}

// receiptTally counts the x_receipts of a send.
type receiptTally struct {
	count       int
	first, last int64
}

func (t *receiptTally) add(seq int64) {
	if t.count == 0 {
		t.first = seq
	}
	t.count++
	t.last = seq
}

// summary says how many tokens the broker accepted, of total when known.
func (t receiptTally) summary(total int) string {
	var b strings.Builder
	if total >= 0 && total != t.count {
		fmt.Fprintf(&b, "%d of %d tokens accepted", t.count, total)
	} else {
		fmt.Fprintf(&b, "%d token%s accepted", t.count, plural(t.count))
	}
	switch {
	case t.count == 1:
		fmt.Fprintf(&b, " (seq %d)", t.first)
	case t.count > 1:
		fmt.Fprintf(&b, " (seq %d..%d)", t.first, t.last)
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
