package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/wire"
)

// printer renders frames: tokens as `name: data` lines on stdout and the
// rest as notes on stderr, or, raw, every frame as one JSON line on stdout.
type printer struct {
	out io.Writer
	raw bool

	mu   sync.Mutex // serialises notes from the reader and writer goroutines
	errw io.Writer
}

func (p *printer) note(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	io.WriteString(p.errw, "ams: "+redactToken(fmt.Sprintf(format, args...))+"\n")
}

// frame prints one received frame.
func (p *printer) frame(f *client.Frame) {
	if p.raw {
		p.out.Write(rawLine(f.Raw))
		return
	}
	if f.Type == wire.TypeToken && f.Data != nil {
		io.WriteString(p.out, tokenLine(f.StreamName, *f.Data))
		return
	}
	if text := eventLine(f); text != "" {
		p.mu.Lock()
		io.WriteString(p.errw, text)
		p.mu.Unlock()
	}
}

// tokenLine is `name: data` on one line. A newline or carriage return
// inside data prints as \n or \r, so one token is always one line; --raw
// shows the exact data.
func tokenLine(name, data string) string {
	data = strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(data)
	return name + ": " + data + "\n"
}

// eventLine describes a frame other than a token for a person, or "" for
// frames a person does not need (pong, x_receipt).
func eventLine(f *client.Frame) string {
	switch f.Type {
	case wire.TypeJoined:
		return joinedLine(f)
	case wire.TypeStreamJoined:
		return fmt.Sprintf("+ %s joined%s\n", f.StreamName, metadataSuffix(f.Metadata))
	case wire.TypeStreamLeft:
		return fmt.Sprintf("- %s left\n", f.StreamName)
	case wire.TypeStreamMetadata:
		return fmt.Sprintf("~ %s metadata %s\n", f.StreamName, compactJSON(f.Metadata))
	case wire.TypePong, wire.TypeReceipt:
		return ""
	}
	return fmt.Sprintf("? %s\n", rawLine(f.Raw))
}

func joinedLine(f *client.Frame) string {
	var b strings.Builder
	verb := "joined"
	if f.Recovered != nil {
		verb = "resumed"
	}
	fmt.Fprintf(&b, "%s %s as %s (seq %d)", verb, f.ConversationID, f.StreamName, f.Seq)
	if f.Resumed {
		b.WriteString(", taking over a connection of the same stream")
	}
	switch {
	case f.Recovered != nil && *f.Recovered:
		b.WriteString(", nothing missed")
	case f.Recovered != nil:
		b.WriteString(", but some frames were older than the broker's replay buffer and are lost")
	}
	b.WriteString("\n")
	if len(f.Peers) == 0 {
		b.WriteString("  no peers yet\n")
	}
	for _, peer := range f.Peers {
		fmt.Fprintf(&b, "  peer %s%s\n", peer.StreamName, metadataSuffix(peer.Metadata))
	}
	if len(f.SubscribedStreams) > 0 {
		fmt.Fprintf(&b, "  subscribed to %s\n", strings.Join(f.SubscribedStreams, ", "))
	}
	return b.String()
}

func metadataSuffix(m json.RawMessage) string {
	c := compactJSON(m)
	if c == "" || c == "{}" || c == "null" {
		return ""
	}
	return " " + c
}

func compactJSON(m json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, m) != nil {
		return string(m)
	}
	return b.String()
}

// rawLine is a frame as one line: the broker's JSON, compacted only when it
// holds a newline (metadata is relayed as sent, so it may be indented).
func rawLine(raw []byte) []byte {
	if bytes.ContainsAny(raw, "\r\n") {
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			raw = b.Bytes()
		}
	}
	return append(append([]byte{}, raw...), '\n')
}
