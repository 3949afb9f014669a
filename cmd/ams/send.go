package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

const sendUsage = `Usage: ams send LINK TEXT
       ams send LINK - [--lines]
       ams send --link-file F TEXT|-

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
  --link-file F     read LINK from the first line of F instead of argv
                    (then: ams send TEXT); AMS_LINK works too
  --config F        the config file

A token over 64 KiB or input that is not UTF-8 is refused before it is
sent (exit 2).

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
	var lf linkFlags
	lf.register(fs)
	pos, err := parseCommand(fs, sendUsage, args, 1, 2, env)
	if err != nil {
		return err
	}
	fromStdin := pos[len(pos)-1] == "-"
	link, rest, err := lf.resolve(pos, 2, fromStdin, env)
	if err != nil {
		return err
	}
	text := rest[0]
	if *lines && !fromStdin {
		return usagef("--lines reads stdin: use `ams send LINK - --lines`")
	}
	if !fromStdin {
		if err := client.CheckToken(text); err != nil {
			return err
		}
	}
	id, err := loadIdentity(g, *ns, link.Origin, env)
	if err != nil {
		return err
	}
	if err := id.requireCredential(); err != nil {
		return err
	}
	p := &printer{out: env.Stdout, errw: env.Stderr}
	opts := client.SessionOptions{
		Dial: client.DialOptions{Credential: id.Credential, StreamName: *name, Metadata: metadata.raw, Receipts: true, JoinTimeout: *timeout},
		// A dropped connection is resumed and the unacknowledged tokens
		// are written again: exit 0 still means every token was accepted.
		OnLost: func(cause error, after int64) { p.note("connection lost (%s); reconnecting", rootCause(cause)) },
	}
	s, err := client.OpenSession(ctx, link.String(), opts)
	if err != nil {
		return wrapNetwork(err, link.Origin)
	}
	defer s.Close()

	readCtx, stopReading := context.WithCancel(context.Background())
	defer stopReading()
	var mu sync.Mutex
	var tally receiptTally
	counted := make(chan struct{}, 1)
	go func() {
		for {
			f, err := s.Read(readCtx)
			if err != nil {
				return // Send and Flush return the session's error
			}
			if f.Type == wire.TypeReceipt {
				mu.Lock()
				tally.add(f.Seq)
				mu.Unlock()
				select {
				case counted <- struct{}{}:
				default:
				}
			}
		}
	}()
	summary := func(total int) string {
		mu.Lock()
		defer mu.Unlock()
		return tally.summary(total)
	}

	send := func(data string) error { return s.Send(ctx, data) }
	var n int
	switch {
	case !fromStdin:
		if err = send(text); err == nil {
			n = 1
		}
	case *lines:
		n, err = pumpLines(env.Stdin, send)
	default:
		n, err = pumpChunks(env.Stdin, send)
	}
	if err != nil {
		var te *client.TokenError
		if errors.As(err, &te) {
			p.note("refused before sending: %d token%s queued before it", n, plural(n))
			flushCtx, cancel := context.WithTimeout(ctx, *timeout)
			_ = s.Flush(flushCtx)
			cancel()
			p.note("%s", summary(n))
			return err
		}
		if ctx.Err() != nil {
			return &networkError{msg: "interrupted: " + summary(n)}
		}
		p.note("stopped after %s", summary(n))
		return wrapNetwork(err, link.Origin)
	}
	flushCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := s.Flush(flushCtx); err != nil {
		switch {
		case ctx.Err() != nil:
			return &networkError{msg: "interrupted: " + summary(n)}
		case flushCtx.Err() != nil:
			return &networkError{msg: fmt.Sprintf("timed out after %s waiting for receipts: %s", *timeout, summary(n))}
		}
		p.note("the broker ended the stream after %s", summary(n))
		return wrapNetwork(err, link.Origin)
	}
	// Every token is acknowledged; the reader goroutine books the last
	// receipts just after the session did.
	for {
		mu.Lock()
		c := tally.count
		mu.Unlock()
		if c >= n {
			break
		}
		select {
		case <-counted:
		case <-flushCtx.Done():
			return &networkError{msg: fmt.Sprintf("timed out after %s waiting for receipts: %s", *timeout, summary(n))}
		}
	}
	if !*quiet {
		p.note("%s, sent as %s", summary(n), s.Name())
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
