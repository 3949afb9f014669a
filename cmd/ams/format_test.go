package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ams-dev/ams/client"
)

func frameOf(t *testing.T, raw string) *client.Frame {
	t.Helper()
	f := &client.Frame{Raw: []byte(raw)}
	if err := json.Unmarshal([]byte(raw), f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPrinterTokensOnStdoutEventsOnStderr(t *testing.T) {
	var out, errw bytes.Buffer
	p := &printer{out: &out, errw: &errw}
	for _, raw := range []string{
		`{"type":"joined","conversation_id":"conv_1","stream_name":"me","seq":4,"peers":[{"stream_name":"bot","metadata":{"role":"x"}}]}`,
		`{"type":"stream_joined","stream_name":"alice","metadata":{}}`,
		`{"type":"token","stream_name":"alice","data":"hi\nthere"}`,
		`{"type":"token","stream_name":"alice","data":""}`,
		`{"type":"stream_metadata","stream_name":"alice","metadata":{"mood": "ok"}}`,
		`{"type":"pong"}`,
		`{"type":"x_receipt","seq":9}`,
		`{"type":"stream_left","stream_name":"alice"}`,
	} {
		p.frame(frameOf(t, raw))
	}
	if want := "alice: hi\\nthere\nalice: \n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	wantErr := "joined conv_1 as me (seq 4)\n  peer bot {\"role\":\"x\"}\n+ alice joined\n~ alice metadata {\"mood\":\"ok\"}\n- alice left\n"
	if errw.String() != wantErr {
		t.Errorf("stderr %q, want %q", errw.String(), wantErr)
	}
}

func TestJoinedLineSaysWhetherResumeRecovered(t *testing.T) {
	ok := eventLine(frameOf(t, `{"type":"joined","conversation_id":"c","stream_name":"me","seq":9,"recovered":true}`))
	lost := eventLine(frameOf(t, `{"type":"joined","conversation_id":"c","stream_name":"me","seq":9,"recovered":false}`))
	if !strings.HasPrefix(ok, "resumed c as me (seq 9), nothing missed") || !strings.Contains(lost, "lost") {
		t.Fatalf("recovered: %q\nnot recovered: %q", ok, lost)
	}
}

func TestRawPrintsEveryFrameAsOneJSONLine(t *testing.T) {
	var out, errw bytes.Buffer
	p := &printer{out: &out, errw: &errw, raw: true}
	frames := []string{
		`{"type":"joined","seq":1}`,
		"{\"type\":\"stream_metadata\",\"metadata\":{\n  \"a\": \"x\\ny\"\n}}",
		`{"type":"token","data":"  spaced  "}`,
	}
	for _, raw := range frames {
		p.frame(frameOf(t, raw))
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || errw.Len() != 0 {
		t.Fatalf("want 3 lines and nothing on stderr, got %q / %q", out.String(), errw.String())
	}
	if lines[0] != frames[0] || lines[2] != frames[2] {
		t.Errorf("one-line frames must print byte for byte: %q", lines)
	}
	if lines[1] != `{"type":"stream_metadata","metadata":{"a":"x\ny"}}` {
		t.Errorf("multi-line frame not compacted: %q", lines[1])
	}
}
