package durable

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ams-dev/ams/wire"
)

// memMembers is the in-memory MemberStore of the tests: the double of the
// Durable Object's members table (members_js.go). Records go through JSON
// on the way in and out, as they do in SQLite, so nothing aliases the live
// member and a record that does not survive serialization fails the test.
type memMembers struct {
	t       *testing.T
	rows    map[string][]byte
	puts    int
	deletes int
}

func newMemMembers(t *testing.T) *memMembers {
	return &memMembers{t: t, rows: map[string][]byte{}}
}

func (s *memMembers) Put(r MemberRecord) {
	raw, err := json.Marshal(r)
	if err != nil {
		s.t.Errorf("member record %+v does not serialize: %v", r, err)
	}
	s.rows[r.ConnID] = raw
	s.puts++
}

func (s *memMembers) Delete(connID string) {
	delete(s.rows, connID)
	s.deletes++
}

func (s *memMembers) List() []MemberRecord {
	ids := make([]string, 0, len(s.rows))
	for id := range s.rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	records := make([]MemberRecord, 0, len(ids))
	for _, id := range ids {
		var r MemberRecord
		if err := json.Unmarshal(s.rows[id], &r); err != nil {
			s.t.Fatalf("stored member %s: %v", id, err)
		}
		records = append(records, r)
	}
	return records
}

// row returns the stored record of the member of stream streamID.
func (s *memMembers) row(streamID string) (MemberRecord, bool) {
	for _, r := range s.List() {
		if r.StreamID == streamID && r.Left == "" {
			return r, true
		}
	}
	return MemberRecord{}, false
}

// memberHarness is a conversation with a controllable clock and a member
// store, which can be woken (rebuilt over the same storage).
type memberHarness struct {
	*harness
	now   time.Time
	store *memMembers
	// sockets are the WebSocket peers joined through the harness, for wake.
	sockets map[string]*recordingSocket
}

func newMemberHarness(t *testing.T, limits wire.Limits) *memberHarness {
	m := &memberHarness{now: testTime, store: newMemMembers(t), sockets: map[string]*recordingSocket{}}
	m.harness = &harness{t: t, log: newMemLog(t), limits: limits}
	m.build()
	return m
}

func (m *memberHarness) build() {
	h := m.harness
	h.conv = NewConversation(h.limits, func() time.Time { return m.now }, func() string {
		h.next++
		return fmt.Sprintf("conn%04d", h.next)
	}, h.log)
}

// wake simulates hibernation: a new Conversation over the same log, restored
// from the sockets' attachments (serialized and parsed back) and the stored
// members, as load() in conversation_js.go does.
func (m *memberHarness) wake() {
	m.t.Helper()
	var peers []*Peer
	live := slices.Clone(m.conv.peers)
	m.build()
	for _, p := range live {
		sock, ok := p.Socket.(*recordingSocket)
		if !ok {
			continue
		}
		encoded, overflow := p.Attachment.Encode()
		back, err := DecodeAttachment(encoded)
		if err != nil {
			m.t.Fatal(err)
		}
		if overflow != nil {
			back.Metadata = overflow
		}
		peers = append(peers, &Peer{Attachment: back, Socket: sock})
	}
	// The adapter restores sockets first, then members.
	m.conv.Restore(awake(append(peers, RestoreMembers(m.store)...)))
}

func (m *memberHarness) ws(account, name string, self bool, metadata string) (*Peer, *recordingSocket) {
	m.t.Helper()
	p, s := m.join(account, name, self, metadata)
	m.sockets[p.ConnID] = s
	return p, s
}

// member joins an MCP member and returns its stream id and joined frame.
func (m *memberHarness) member(req wire.Join) (string, []byte) {
	m.t.Helper()
	joined, refusal := m.conv.JoinMember(m.store, convID, req)
	if refusal != nil {
		m.t.Fatalf("member %s/%s refused: %+v", req.AccountID, req.StreamName, *refusal)
	}
	return req.StreamID, joined
}

func (m *memberHarness) recv(account, streamID string, cursor *int64) Reading {
	m.t.Helper()
	r, err := m.conv.MemberRecv(account, streamID, cursor)
	if err != nil {
		m.t.Fatalf("MemberRecv(%s, %s): %+v", account, streamID, *err)
	}
	return r
}

func (m *memberHarness) send(account, streamID, data string) int64 {
	m.t.Helper()
	seq, err, refusal := m.conv.MemberSend(account, streamID, data)
	if err != nil || refusal != nil {
		m.t.Fatalf("MemberSend(%s, %.20q): %v %v", streamID, data, err, refusal)
	}
	return seq
}

func frameStrings(frames [][]byte) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f)
	}
	return out
}

// TestMemberIsARealStream: WebSocket peers see a member's stream_joined,
// tokens, stream_metadata and stream_left, each with the next seq, and
// inspect lists it.
func TestMemberIsARealStream(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	_, sw := m.ws("acc_W", "web", false, `{"k":"w"}`)
	sw.reset()

	req := joinRequest("acc_M", "agent", false, `{"role":"bot"}`)
	id, joined := m.member(req)
	jf := decodeFrame(t, string(joined))
	if str(t, jf["type"]) != wire.TypeJoined || str(t, jf["stream_id"]) != id || str(t, jf["stream_name"]) != "agent" {
		t.Fatalf("member's joined frame %s", joined)
	}
	var peers []wire.StreamInfo
	_ = json.Unmarshal(jf["peers"], &peers)
	if len(peers) != 1 || peers[0].Name != "web" || string(peers[0].Metadata) != `{"k":"w"}` {
		t.Errorf("joined peers %s", jf["peers"])
	}
	if streams := m.conv.Streams(); len(streams) != 2 || streams[1].ID != id || streams[1].Owner != "acc_M" || string(streams[1].Metadata) != `{"role":"bot"}` {
		t.Errorf("Streams() = %+v", streams)
	}
	row, ok := m.store.row(id)
	if !ok || row.Cursor != m.conv.Seq() || row.Owner != "acc_M" || row.LastSeen != testTime.UnixMilli() {
		t.Errorf("stored member %+v (found %v), seq %d", row, ok, m.conv.Seq())
	}

	f := expectFrames(t, "web", sw, wire.TypeStreamJoined)[0]
	if str(t, f["stream_id"]) != id || str(t, f["stream_name"]) != "agent" || str(t, f["owner_account_id"]) != "acc_M" || string(f["metadata"]) != `{"role":"bot"}` {
		t.Errorf("stream_joined %s", sw.frames()[0])
	}
	joinedSeq := seqOf(t, f)
	sw.reset()

	seq := m.send("acc_M", id, "hello")
	f = expectFrames(t, "web", sw, wire.TypeToken)[0]
	if seqOf(t, f) != seq || seq != joinedSeq+1 || str(t, f["data"]) != "hello" || str(t, f["stream_id"]) != id ||
		str(t, f["owner_account_id"]) != "acc_M" || str(t, f["ts"]) != testTS {
		t.Errorf("token %s (MemberSend seq %d)", sw.frames()[0], seq)
	}
	sw.reset()

	mseq, err := m.conv.MemberSetMetadata("acc_M", id, []byte(`{"role":"critic"}`))
	if err != nil {
		t.Fatal(*err)
	}
	f = expectFrames(t, "web", sw, wire.TypeStreamMetadata)[0]
	if seqOf(t, f) != mseq || mseq != seq+1 || string(f["metadata"]) != `{"role":"critic"}` || str(t, f["stream_id"]) != id {
		t.Errorf("stream_metadata %s (seq %d)", sw.frames()[0], mseq)
	}
	if row, _ := m.store.row(id); string(row.Metadata) != `{"role":"critic"}` {
		t.Errorf("stored metadata %s after MemberSetMetadata", row.Metadata)
	}
	if s := m.conv.Streams(); string(s[1].Metadata) != `{"role":"critic"}` {
		t.Errorf("inspect metadata %s", s[1].Metadata)
	}
	sw.reset()

	if err := m.conv.MemberLeave("acc_M", id); err != nil {
		t.Fatal(*err)
	}
	f = expectFrames(t, "web", sw, wire.TypeStreamLeft)[0]
	if seqOf(t, f) != mseq+1 || str(t, f["stream_id"]) != id || str(t, f["stream_name"]) != "agent" || str(t, f["owner_account_id"]) != "acc_M" {
		t.Errorf("stream_left %s", sw.frames()[0])
	}
	if _, ok := m.store.row(id); len(m.store.rows) != 1 || m.store.List()[0].Left != leftExplicitly {
		t.Errorf("member row left behind (%v), or no tombstone: %v", ok, m.store.List())
	}
	if m.conv.Len() != 1 {
		t.Errorf("Len() = %d after leave", m.conv.Len())
	}
	expectNoClose(t, "web", sw)
	// Every event went through the log, which is what members read.
	if got := len(m.log.all); got != 5 {
		t.Errorf("log holds %d events, want 5", got)
	}
}

// TestMemberHearsPeersInWireShape: a member reads exactly the frames a
// WebSocket peer received live, byte for byte, minus its own.
func TestMemberHearsPeersInWireShape(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	_, sObs := m.ws("acc_O", "observer", false, "")
	pa, _ := m.ws("acc_A", "a", false, "")
	id, _ := m.member(joinRequest("acc_M", "agent", false, ""))
	sObs.reset()

	m.token(pa, `quote \" emoji 😀 ctl \u0001`)
	m.send("acc_M", id, "mine")
	m.setMetadata(pa, `{"x": [1, 2, {"y": null}]}`)
	pb, _ := m.ws("acc_B", "b", false, `{"b":1}`)
	m.token(pb, "from b")
	m.send("acc_M", id, "mine again")
	m.conv.Leave(pb.ConnID)

	var want []string
	for _, text := range sObs.frames() {
		if str(t, decodeFrame(t, text)["stream_id"]) != id {
			want = append(want, text)
		}
	}
	r := m.recv("acc_M", id, nil)
	if got := frameStrings(r.Frames); !slices.Equal(got, want) {
		t.Fatalf("member read\n%q\nobserver (minus the member's own) got\n%q", got, want)
	}
	if r.Cursor != m.conv.Seq() || r.Truncated {
		t.Errorf("cursor %d truncated %v, seq %d", r.Cursor, r.Truncated, m.conv.Seq())
	}
	if len(want) != 5 {
		t.Errorf("expected 5 frames from peers, got %d", len(want))
	}
}

func TestMemberSelfSubscribe(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	pa, _ := m.ws("acc_A", "a", false, "")
	id, _ := m.member(joinRequest("acc_M", "agent", true, ""))
	s1 := m.send("acc_M", id, "one")
	m.token(pa, "two")
	s3, _ := m.conv.MemberSetMetadata("acc_M", id, []byte(`{"v":2}`))
	r := m.recv("acc_M", id, nil)
	var seqs []int64
	for _, f := range r.Frames {
		seqs = append(seqs, seqOf(t, decodeFrame(t, string(f))))
	}
	if !slices.Equal(seqs, []int64{s1, s1 + 1, s3}) {
		t.Errorf("self-subscribed member read seqs %v, want %v: %q", seqs, []int64{s1, s1 + 1, s3}, frameStrings(r.Frames))
	}
	// Its own stream_joined is behind its cursor.
	for _, f := range r.Frames {
		if str(t, decodeFrame(t, string(f))["type"]) == wire.TypeStreamJoined {
			t.Errorf("member read its own stream_joined: %s", f)
		}
	}
}

func TestMemberSubscriptionFilter(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	pa, _ := m.ws("acc_A", "a", false, "")
	pb, _ := m.ws("acc_B", "b", false, "")
	req := joinRequest("acc_M", "agent", false, "")
	req.SubscribeStreams = []string{"a", "c"}
	id, joined := m.member(req)
	if got := decodeFrame(t, string(joined))["subscribed_streams"]; string(got) != `["a","c"]` {
		t.Errorf("joined subscribed_streams %s", got)
	}
	m.token(pa, "a1")
	m.token(pb, "b1")
	pc, _ := m.ws("acc_C", "c", false, "")
	m.token(pc, "c1")
	m.setMetadata(pb, `{"z":1}`)
	m.conv.Leave(pa.ConnID)
	r := m.recv("acc_M", id, nil)
	var got []string
	for _, f := range r.Frames {
		d := decodeFrame(t, string(f))
		got = append(got, str(t, d["type"])+":"+str(t, d["stream_name"]))
	}
	want := []string{"token:a", "stream_joined:c", "token:c", "stream_left:a"}
	if !slices.Equal(got, want) {
		t.Errorf("filtered read %v, want %v", got, want)
	}
	if r.Cursor != m.conv.Seq() {
		t.Errorf("cursor %d, want %d: filtered frames still advance the cursor", r.Cursor, m.conv.Seq())
	}
}

func TestMemberRecvCursor(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	pa, _ := m.ws("acc_A", "a", false, "")
	id, _ := m.member(joinRequest("acc_M", "agent", false, ""))
	joinedAt := m.conv.Seq()

	t.Run("nothing yet", func(t *testing.T) {
		r := m.recv("acc_M", id, nil)
		if len(r.Frames) != 0 || r.Cursor != joinedAt || r.Truncated {
			t.Errorf("first read %+v, want empty at %d", r, joinedAt)
		}
	})
	m.token(pa, "1")
	m.token(pa, "2")
	t.Run("stored cursor advances", func(t *testing.T) {
		r := m.recv("acc_M", id, nil)
		if len(r.Frames) != 2 || r.Cursor != joinedAt+2 {
			t.Fatalf("read %q cursor %d", frameStrings(r.Frames), r.Cursor)
		}
		if row, _ := m.store.row(id); row.Cursor != joinedAt+2 {
			t.Errorf("stored cursor %d, want %d", row.Cursor, joinedAt+2)
		}
		if r := m.recv("acc_M", id, nil); len(r.Frames) != 0 || r.Cursor != joinedAt+2 {
			t.Errorf("second read %q cursor %d: a frame was read twice", frameStrings(r.Frames), r.Cursor)
		}
		m.token(pa, "3")
		r = m.recv("acc_M", id, nil)
		if len(r.Frames) != 1 || str(t, decodeFrame(t, string(r.Frames[0]))["data"]) != "3" {
			t.Errorf("third read %q", frameStrings(r.Frames))
		}
	})
	t.Run("explicit cursor rereads", func(t *testing.T) {
		r := m.recv("acc_M", id, seqPtr(joinedAt+1))
		if len(r.Frames) != 2 || r.Cursor != m.conv.Seq() || r.Truncated {
			t.Fatalf("read after %d: %q cursor %d truncated %v", joinedAt+1, frameStrings(r.Frames), r.Cursor, r.Truncated)
		}
		if str(t, decodeFrame(t, string(r.Frames[0]))["data"]) != "2" {
			t.Errorf("first frame after %d is %s", joinedAt+1, r.Frames[0])
		}
		// Before the member joined: the peers' history is readable too.
		r = m.recv("acc_M", id, seqPtr(0))
		if r.Truncated || len(r.Frames) != 4 { // stream_joined a, tokens 1 2 3
			t.Errorf("read after 0: %q truncated %v", frameStrings(r.Frames), r.Truncated)
		}
	})
	t.Run("cursor from the future", func(t *testing.T) {
		future := m.conv.Seq() + 100
		r := m.recv("acc_M", id, &future)
		if len(r.Frames) != 0 || r.Cursor != future {
			t.Errorf("read after %d: %q cursor %d, want none at %d", future, frameStrings(r.Frames), r.Cursor, future)
		}
		if row, _ := m.store.row(id); row.Cursor != future {
			t.Errorf("stored cursor %d, want %d", row.Cursor, future)
		}
		// Back to the present.
		now := m.conv.Seq()
		m.recv("acc_M", id, &now)
		m.token(pa, "4")
		if r := m.recv("acc_M", id, nil); len(r.Frames) != 1 {
			t.Errorf("after resetting the cursor: %q", frameStrings(r.Frames))
		}
	})
}

func TestMemberRecvTruncated(t *testing.T) {
	limits := wire.DefaultLimits
	limits.ReplayEvents = 5
	m := newMemberHarness(t, limits)
	pa, _ := m.ws("acc_A", "a", false, "")
	id, _ := m.member(joinRequest("acc_M", "agent", false, ""))
	for i := range 20 {
		m.token(pa, fmt.Sprint(i))
	}
	r := m.recv("acc_M", id, nil)
	if !r.Truncated {
		t.Errorf("20 events past a buffer of 5: not truncated")
	}
	if r.Cursor != m.conv.Seq() {
		t.Errorf("cursor %d, want %d", r.Cursor, m.conv.Seq())
	}
	// What is read is what the buffer still holds, in order, ending at the newest.
	var seqs []int64
	for _, f := range r.Frames {
		seqs = append(seqs, seqOf(t, decodeFrame(t, string(f))))
	}
	if len(seqs) == 0 || len(seqs) > 5 || seqs[len(seqs)-1] != m.conv.Seq() || !strictlyIncreasing(seqs) {
		t.Errorf("truncated read seqs %v", seqs)
	}
	if !slices.Equal(seqs, m.log.storedSeqs()) {
		t.Errorf("read %v, buffer holds %v", seqs, m.log.storedSeqs())
	}
	// Caught up: the next read is complete again.
	m.token(pa, "next")
	if r := m.recv("acc_M", id, nil); r.Truncated || len(r.Frames) != 1 {
		t.Errorf("read after catching up: %q truncated %v", frameStrings(r.Frames), r.Truncated)
	}
	if r := m.recv("acc_M", id, seqPtr(0)); !r.Truncated {
		t.Errorf("explicit cursor 0 over a trimmed buffer: not truncated")
	}
	// A cursor inside the buffer is complete.
	inside := m.conv.Seq() - 2
	if r := m.recv("acc_M", id, &inside); r.Truncated || len(r.Frames) != 2 {
		t.Errorf("cursor %d inside the buffer: %q truncated %v", inside, frameStrings(r.Frames), r.Truncated)
	}
}

func TestMemberRecvReplayOff(t *testing.T) {
	limits := wire.DefaultLimits
	limits.ReplayEvents = 0
	m := newMemberHarness(t, limits)
	pa, sa := m.ws("acc_A", "a", false, "")
	id, _ := m.member(joinRequest("acc_M", "agent", false, ""))
	if r := m.recv("acc_M", id, nil); r.Truncated || len(r.Frames) != 0 {
		t.Errorf("nothing happened: %+v", r)
	}
	m.token(pa, "lost")
	r := m.recv("acc_M", id, nil)
	if !r.Truncated || len(r.Frames) != 0 || r.Cursor != m.conv.Seq() {
		t.Errorf("with replay off a missed token must read as truncated: %+v", r)
	}
	// The member still emits to peers.
	sa.reset()
	m.send("acc_M", id, "out")
	expectFrames(t, "a", sa, wire.TypeToken)
}

// TestMemberNothingLostBetweenReads: however many events happen between
// two reads (within the buffer), the reads together hold every frame the
// member hears, each once, in seq order.
func TestMemberNothingLostBetweenReads(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	pa, _ := m.ws("acc_A", "a", false, "")
	pb, _ := m.ws("acc_B", "b", false, "")
	req := joinRequest("acc_M", "agent", false, "")
	id, _ := m.member(req)
	member := m.conv.stream(id).Attachment
	start := m.conv.Seq()
	var got []int64
	bursts := []int{0, 1, 7, 300, 2, 850, 0, 40}
	n := 0
	for _, burst := range bursts {
		for i := 0; i < burst; i++ {
			n++
			switch n % 7 {
			case 0:
				m.setMetadata(pb, fmt.Sprintf(`{"n":%d}`, n))
			case 3:
				m.send("acc_M", id, fmt.Sprint("own ", n))
			case 5:
				p, _ := m.ws("acc_C", fmt.Sprintf("c%d", n), false, "")
				m.conv.Leave(p.ConnID)
			default:
				if n%2 == 0 {
					m.token(pa, fmt.Sprint(n))
				} else {
					m.token(pb, fmt.Sprint(n))
				}
			}
		}
		r := m.recv("acc_M", id, nil)
		if r.Truncated {
			t.Fatalf("burst of %d within a buffer of %d reported truncated", burst, m.limits.ReplayEvents)
		}
		for _, f := range r.Frames {
			got = append(got, seqOf(t, decodeFrame(t, string(f))))
		}
	}
	want := entitled(m.log, member, start, m.conv.Seq())
	if !slices.Equal(got, want) {
		t.Fatalf("reads returned %d frames, member is entitled to %d (first diff near %v)", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []int64) []int64 {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return []int64{int64(i), a[i], b[i]}
		}
	}
	return []int64{int64(min(len(a), len(b)))}
}

func TestMemberSendValidation(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	_, sa := m.ws("acc_A", "a", false, "")
	id, _ := m.member(joinRequest("acc_M", "agent", true, ""))
	m.recv("acc_M", id, nil)
	sa.reset()
	limit := m.limits.TokenBytes

	t.Run("one byte over", func(t *testing.T) {
		before := m.conv.Seq()
		seq, err, refusal := m.conv.MemberSend("acc_M", id, strings.Repeat("x", limit+1))
		if err != nil || refusal == nil || *refusal != wire.CloseTokenTooLarge || seq != 0 {
			t.Fatalf("MemberSend of %d bytes: %d %v %v, want token_too_large", limit+1, seq, err, refusal)
		}
		if m.conv.Seq() != before || !sa.quiet() {
			t.Errorf("a refused token was emitted: seq %d→%d, peer got %d frames", before, m.conv.Seq(), len(sa.sent))
		}
		// The member stays joined: a refused send is not an ejection.
		if _, ok := m.store.row(id); !ok || m.conv.stream(id) == nil {
			t.Error("the member was removed by a refused send")
		}
	})
	t.Run("multi-byte one byte over", func(t *testing.T) {
		data := strings.Repeat("😀", limit/4) + "x"
		if _, _, refusal := m.conv.MemberSend("acc_M", id, data); refusal == nil || *refusal != wire.CloseTokenTooLarge {
			t.Errorf("%d UTF-8 bytes accepted", len(data))
		}
	})
	t.Run("escapes do not count", func(t *testing.T) {
		// Every byte escapes to six in JSON, but the limit is on data itself.
		data := strings.Repeat("\x01", limit)
		sa.reset()
		if _, err, refusal := m.conv.MemberSend("acc_M", id, data); err != nil || refusal != nil {
			t.Fatalf("%d control bytes refused: %v %v", limit, err, refusal)
		}
		if got := str(t, decodeFrame(t, sa.frames()[0])["data"]); got != data {
			t.Errorf("control bytes relayed as %d bytes", len(got))
		}
	})
	t.Run("exactly the limit", func(t *testing.T) {
		for _, data := range []string{strings.Repeat("x", limit), strings.Repeat("😀", limit/4)} {
			sa.reset()
			seq, err, refusal := m.conv.MemberSend("acc_M", id, data)
			if err != nil || refusal != nil || seq != m.conv.Seq() {
				t.Fatalf("%d bytes refused: %v %v", len(data), err, refusal)
			}
			f := expectFrames(t, "a", sa, wire.TypeToken)[0]
			if got := str(t, f["data"]); got != data {
				t.Errorf("relayed %d bytes, sent %d", len(got), len(data))
			}
		}
	})
	t.Run("round trip", func(t *testing.T) {
		for _, data := range []string{
			"",
			`"quoted" and \backslash\ and \"both\"`,
			"emoji 😀👩‍👩‍👧 é ñ 中文",
			"ctl \x00 \x01 \x1f \x7f \n \r \t \b \f",
			"\u2028 \u2029 </script> <!-- & '",
			`{"looks":"like json"}`,
			"  leading and trailing spaces  ",
		} {
			sa.reset()
			seq := m.send("acc_M", id, data)
			f := expectFrames(t, "a", sa, wire.TypeToken)[0]
			if got := str(t, f["data"]); got != data {
				t.Errorf("sent %q, peer received %q", data, got)
			}
			// The self-subscribed member reads the very bytes the peer got.
			r := m.recv("acc_M", id, seqPtr(seq-1))
			if len(r.Frames) != 1 || string(r.Frames[0]) != sa.frames()[0] {
				t.Errorf("member read %q, peer got %q", frameStrings(r.Frames), sa.frames())
			}
		}
	})
}

func TestMemberNotJoined(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	pw, sw := m.ws("acc_W", "web", false, "")
	id, _ := m.member(joinRequest("acc_M", "agent", false, ""))
	unknown := peppers.StreamID(convID, "acc_M", "nobody")
	cases := []struct {
		name, account, streamID string
	}{
		{"unknown stream", "acc_M", unknown},
		{"wrong account", "acc_X", id},
		{"empty account", "", id},
		{"a WebSocket stream", "acc_W", pw.StreamID},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			before := m.conv.Seq()
			sw.reset()
			if _, err, refusal := m.conv.MemberSend(tt.account, tt.streamID, "x"); err == nil || *err != wire.ErrNotJoined || refusal != nil {
				t.Errorf("MemberSend: %v %v, want not_joined", err, refusal)
			}
			if _, err := m.conv.MemberSetMetadata(tt.account, tt.streamID, []byte(`{}`)); err == nil || *err != wire.ErrNotJoined {
				t.Errorf("MemberSetMetadata: %v, want not_joined", err)
			}
			if _, err := m.conv.MemberRecv(tt.account, tt.streamID, nil); err == nil || *err != wire.ErrNotJoined {
				t.Errorf("MemberRecv: %v, want not_joined", err)
			}
			if err := m.conv.MemberLeave(tt.account, tt.streamID); err == nil || *err != wire.ErrNotJoined {
				t.Errorf("MemberLeave: %v, want not_joined", err)
			}
			if m.conv.Seq() != before || !sw.quiet() || m.conv.Len() != 2 {
				t.Errorf("a refused call had effects: seq %d→%d, web got %q %v, %d streams", before, m.conv.Seq(), sw.frames(), sw.closes, m.conv.Len())
			}
		})
	}
	if err := m.conv.MemberLeave("acc_M", id); err != nil {
		t.Fatal(*err)
	}
	if _, err := m.conv.MemberRecv("acc_M", id, nil); err == nil || *err != wire.ErrNotJoined {
		t.Errorf("MemberRecv after leave: %v, want not_joined", err)
	}
	if err := m.conv.MemberLeave("acc_M", id); err == nil || *err != wire.ErrNotJoined {
		t.Errorf("second MemberLeave: %v, want not_joined", err)
	}
}

func TestMemberJoinRefusals(t *testing.T) {
	limits := wire.DefaultLimits
	limits.StreamsPerAccount = 1
	m := newMemberHarness(t, limits)
	m.ws("acc_W", "web", false, "")
	if _, refusal := m.conv.JoinMember(m.store, convID, joinRequest("acc_M", "web", false, "")); refusal == nil || *refusal != wire.CloseStreamNameOwnerConflict {
		t.Errorf("member on another account's name: %v", refusal)
	}
	m.member(joinRequest("acc_M", "one", false, ""))
	if _, refusal := m.conv.JoinMember(m.store, convID, joinRequest("acc_M", "two", false, "")); refusal == nil || *refusal != wire.CloseConcurrencyLimit {
		t.Errorf("member over the account limit: %v", refusal)
	}
	if len(m.store.rows) != 1 {
		t.Errorf("refused joins left rows: %v", m.store.List())
	}
}

func TestExpireMembers(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	const idle = 10 * time.Minute
	t0 := m.now
	_, sw := m.ws("acc_W", "web", false, "")
	if next := m.conv.ExpireMembers(idle); !next.IsZero() {
		t.Errorf("no members: next deadline %v", next)
	}
	id1, _ := m.member(joinRequest("acc_M", "m1", false, ""))
	m.now = t0.Add(3 * time.Minute)
	id2, _ := m.member(joinRequest("acc_M", "m2", false, ""))
	m.now = t0.Add(5 * time.Minute)
	id3, _ := m.member(joinRequest("acc_N", "m3", false, ""))

	// A call refreshes a member: m1 reads at 8 minutes.
	m.now = t0.Add(8 * time.Minute)
	m.recv("acc_M", id1, nil)
	if row, _ := m.store.row(id1); row.LastSeen != m.now.UnixMilli() {
		t.Errorf("stored LastSeen %d after a read, want %d", row.LastSeen, m.now.UnixMilli())
	}
	sw.reset()

	// Just short of m2's idle limit: nobody leaves.
	m.now = t0.Add(3*time.Minute + idle - time.Millisecond)
	next := m.conv.ExpireMembers(idle)
	if !next.Equal(t0.Add(3*time.Minute + idle)) {
		t.Errorf("next deadline %v, want m2's %v", next, t0.Add(3*time.Minute+idle))
	}
	if !sw.quiet() || m.conv.Len() != 4 {
		t.Fatalf("expired too early: %q, %d streams", sw.frames(), m.conv.Len())
	}

	// Past it: m2 leaves, the others stay.
	m.now = t0.Add(3*time.Minute + idle + time.Millisecond)
	next = m.conv.ExpireMembers(idle)
	f := expectFrames(t, "web", sw, wire.TypeStreamLeft)[0]
	if str(t, f["stream_id"]) != id2 || seqOf(t, f) != m.conv.Seq() {
		t.Errorf("stream_left %s, want m2's", sw.frames()[0])
	}
	if _, ok := m.store.row(id2); ok {
		t.Error("expired member row kept")
	}
	if _, err := m.conv.MemberRecv("acc_M", id2, nil); err == nil || *err != wire.ErrNotJoined {
		t.Errorf("expired member reads: %v", err)
	}
	if want := t0.Add(5*time.Minute + idle); !next.Equal(want) {
		t.Errorf("next deadline %v, want m3's %v", next, want)
	}
	expectNoClose(t, "web", sw)

	// Long after: m1 and m3 leave; the WebSocket peer never expires.
	sw.reset()
	m.now = t0.Add(time.Hour)
	if next := m.conv.ExpireMembers(idle); !next.IsZero() {
		t.Errorf("all members gone: next deadline %v", next)
	}
	expectFrames(t, "web", sw, wire.TypeStreamLeft, wire.TypeStreamLeft)
	if m.conv.Len() != 1 || len(m.store.rows) != 0 {
		t.Errorf("after expiry: %d streams, rows %v", m.conv.Len(), m.store.List())
	}
	_ = id3
}

func TestExpireMembersRefreshedByEveryCall(t *testing.T) {
	const idle = time.Minute
	for _, op := range []string{"send", "metadata", "recv"} {
		t.Run(op, func(t *testing.T) {
			m := newMemberHarness(t, wire.DefaultLimits)
			t0 := m.now
			id, _ := m.member(joinRequest("acc_M", "m", false, ""))
			m.now = t0.Add(50 * time.Second)
			switch op {
			case "send":
				m.send("acc_M", id, "x")
			case "metadata":
				if _, err := m.conv.MemberSetMetadata("acc_M", id, []byte(`{"a":1}`)); err != nil {
					t.Fatal(*err)
				}
			case "recv":
				m.recv("acc_M", id, nil)
			}
			if row, _ := m.store.row(id); row.LastSeen != m.now.UnixMilli() {
				t.Errorf("stored LastSeen %d, want %d", row.LastSeen, m.now.UnixMilli())
			}
			m.now = t0.Add(90 * time.Second)
			if next := m.conv.ExpireMembers(idle); !next.Equal(t0.Add(110 * time.Second)) {
				t.Errorf("next deadline %v, want %v", next, t0.Add(110*time.Second))
			}
			if m.conv.Len() != 1 {
				t.Error("a refreshed member expired")
			}
			// The refresh survives a wake-up.
			m.wake()
			m.now = t0.Add(100 * time.Second)
			if m.conv.ExpireMembers(idle); m.conv.Len() != 1 {
				t.Error("a refreshed member expired after a wake-up")
			}
		})
	}
}

// TestMembersSurviveWake: after hibernation the members are live again with
// their cursor, metadata and subscription, and no peer notices the wake.
func TestMembersSurviveWake(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	pa, sa := m.ws("acc_A", "a", false, "")
	pb, _ := m.ws("acc_B", "b", false, "")
	req := joinRequest("acc_M", "agent", false, `{"v":1}`)
	req.SubscribeStreams = []string{"a", "agent"}
	id, _ := m.member(req)
	m.token(pa, "before")
	m.recv("acc_M", id, nil)
	if _, err := m.conv.MemberSetMetadata("acc_M", id, []byte(`{"v":2}`)); err != nil {
		t.Fatal(*err)
	}
	m.token(pa, "unread 1")
	m.token(pb, "filtered")
	m.token(pa, "unread 2")
	cursor, _ := m.store.row(id)
	seqBefore := m.conv.Seq()
	sa.reset()

	m.now = m.now.Add(time.Minute)
	m.wake()
	if !sa.quiet() {
		t.Errorf("a peer saw the wake-up: %q %v", sa.frames(), sa.closes)
	}
	if m.conv.Seq() != seqBefore || m.conv.Len() != 3 {
		t.Fatalf("after wake: seq %d (was %d), %d streams", m.conv.Seq(), seqBefore, m.conv.Len())
	}
	if s := m.conv.Streams(); s[2].ID != id || string(s[2].Metadata) != `{"v":2}` {
		t.Errorf("restored member %+v", s[2])
	}
	r := m.recv("acc_M", id, nil)
	var datas []string
	for _, f := range r.Frames {
		datas = append(datas, str(t, decodeFrame(t, string(f))["data"]))
	}
	if !slices.Equal(datas, []string{"unread 1", "unread 2"}) || r.Truncated || r.Cursor != seqBefore {
		t.Errorf("read after wake from cursor %d: %v truncated %v cursor %d", cursor.Cursor, datas, r.Truncated, r.Cursor)
	}
	// It still emits, with the next seq, and is still self-excluded.
	seq := m.send("acc_M", id, "after")
	f := expectFrames(t, "a", sa, wire.TypeToken)[0]
	if seqOf(t, f) != seqBefore+1 || seq != seqBefore+1 || str(t, f["stream_id"]) != id {
		t.Errorf("token after wake %s", sa.frames()[0])
	}
	if r := m.recv("acc_M", id, nil); len(r.Frames) != 0 {
		t.Errorf("member heard itself after wake: %q", frameStrings(r.Frames))
	}
	// Ownership survives the wake: another account cannot take its name.
	if _, refusal := m.conv.Admit(joinRequest("acc_X", "agent", false, "")); refusal == nil || *refusal != wire.CloseStreamNameOwnerConflict {
		t.Errorf("restored member's name: %v", refusal)
	}
	// And it can leave; peers see it.
	sa.reset()
	if err := m.conv.MemberLeave("acc_M", id); err != nil {
		t.Fatal(*err)
	}
	expectFrames(t, "a", sa, wire.TypeStreamLeft)
}

func TestWebSocketTakeoverOfMember(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	_, sw := m.ws("acc_W", "web", false, "")
	id, _ := m.member(joinRequest("acc_M", "agent", false, ""))
	sw.reset()
	p, s := m.ws("acc_M", "agent", false, "")
	if p.StreamID != id {
		t.Fatal("the takeover has another stream id")
	}
	if f := joinedFrame(t, s); string(f["resumed"]) != "true" {
		t.Errorf("takeover joined %s, want resumed", s.frames()[0])
	}
	if len(m.store.rows) != 0 {
		t.Errorf("member row kept after a WebSocket took its stream: %v", m.store.List())
	}
	if !sw.quiet() {
		t.Errorf("peers saw the takeover: %q", sw.frames())
	}
	if _, err := m.conv.MemberRecv("acc_M", id, nil); err == nil || *err != wire.ErrNotJoined {
		t.Errorf("MemberRecv on the socket's stream: %v, want not_joined", err)
	}
	// A wake must not bring the member back.
	m.wake()
	if m.conv.Len() != 2 {
		t.Errorf("after wake %d streams, want 2", m.conv.Len())
	}
	if _, ok := m.conv.stream(id).Socket.(*recordingSocket); !ok {
		t.Error("after wake the stream is not the socket's")
	}
}

func TestMemberTakeovers(t *testing.T) {
	t.Run("member rejoins", func(t *testing.T) {
		m := newMemberHarness(t, wire.DefaultLimits)
		_, sw := m.ws("acc_W", "web", false, "")
		id, _ := m.member(joinRequest("acc_M", "agent", false, ""))
		sw.reset()
		_, joined := m.member(joinRequest("acc_M", "agent", false, ""))
		if string(decodeFrame(t, string(joined))["resumed"]) != "true" {
			t.Errorf("rejoin %s, want resumed", joined)
		}
		if rows := m.store.List(); len(rows) != 1 || rows[0].StreamID != id || m.conv.Len() != 2 {
			t.Errorf("rows %v, %d streams", rows, m.conv.Len())
		}
		if !sw.quiet() {
			t.Errorf("peers saw the rejoin: %q", sw.frames())
		}
		m.send("acc_M", id, "still works")
		expectFrames(t, "web", sw, wire.TypeToken)
	})
	t.Run("member takes over a socket", func(t *testing.T) {
		m := newMemberHarness(t, wire.DefaultLimits)
		_, sw := m.ws("acc_W", "web", false, "")
		_, s := m.ws("acc_M", "agent", false, "")
		sw.reset()
		id, _ := m.member(joinRequest("acc_M", "agent", false, ""))
		if len(s.closes) != 1 || s.closes[0] != wire.CloseStreamDisplaced {
			t.Errorf("displaced socket closes %v", s.closes)
		}
		if !sw.quiet() {
			t.Errorf("peers saw the takeover: %q", sw.frames())
		}
		m.send("acc_M", id, "x")
		expectFrames(t, "web", sw, wire.TypeToken)
	})
}

func TestRotate(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	pa, sa := m.ws("acc_A", "a", false, "")
	id, _ := m.member(joinRequest("acc_M", "agent", false, ""))
	newer := joinRequest("acc_B", "b", false, "")
	newer.LinkGeneration = 1
	_, sb := m.joinWith(newer)
	m.sockets["b"] = sb
	sb.reset()

	if link, closed := m.conv.Rotate("hash-1"); closed != 2 || link != (wire.LinkState{Generation: 1, TokenHash: "hash-1"}) {
		t.Errorf("first Rotate: %+v, closed %d streams, want generation 1 and 2 closed", link, closed)
	}
	if len(sa.closes) != 1 || sa.closes[0] != wire.CloseMagicLinkRotated {
		t.Errorf("old socket closes %v, want magic_link_rotated", sa.closes)
	}
	if len(m.store.rows) != 0 {
		t.Errorf("old member kept: %v", m.store.List())
	}
	fs := expectFrames(t, "b", sb, wire.TypeStreamLeft, wire.TypeStreamLeft)
	if str(t, fs[0]["stream_id"]) != pa.StreamID || str(t, fs[1]["stream_id"]) != id || seqOf(t, fs[1]) != m.conv.Seq() {
		t.Errorf("stream_left frames %q", sb.frames())
	}
	expectNoClose(t, "b", sb)
	if m.conv.Len() != 1 {
		t.Errorf("%d streams after rotation", m.conv.Len())
	}
	if _, err := m.conv.MemberRecv("acc_M", id, nil); err == nil || *err != wire.ErrNotJoined {
		t.Errorf("rotated member reads: %v", err)
	}
	if m.log.link.Generation != 1 || m.log.link.TokenHash != "hash-1" {
		t.Errorf("persisted link %+v", m.log.link)
	}

	// The old link no longer admits, for sockets and members alike.
	if _, refusal := m.conv.Admit(joinRequest("acc_A", "a", false, "")); refusal == nil || *refusal != wire.CloseInvalidMagicLink {
		t.Errorf("Admit of generation 0: %v, want invalid_magic_link", refusal)
	}
	if _, refusal := m.conv.JoinMember(m.store, convID, joinRequest("acc_M", "agent", false, "")); refusal == nil || *refusal != wire.CloseInvalidMagicLink {
		t.Errorf("JoinMember of generation 0: %v, want invalid_magic_link", refusal)
	}
	// A takeover by an old link is refused too, even of a live stream.
	old := joinRequest("acc_B", "b", false, "")
	if _, refusal := m.conv.Admit(old); refusal == nil || *refusal != wire.CloseInvalidMagicLink {
		t.Errorf("takeover with generation 0: %v", refusal)
	}

	// The link survives a new Conversation over the same log.
	sb.reset()
	m.wake()
	if m.conv.Link() != (wire.LinkState{Generation: 1, TokenHash: "hash-1"}) {
		t.Errorf("after wake, link %+v", m.conv.Link())
	}
	if _, refusal := m.conv.Admit(joinRequest("acc_A", "a", false, "")); refusal == nil || *refusal != wire.CloseInvalidMagicLink {
		t.Errorf("after wake, Admit of generation 0: %v", refusal)
	}
	fresh := joinRequest("acc_A", "a", false, "")
	fresh.LinkGeneration = 1
	if _, refusal := m.conv.Admit(fresh); refusal != nil {
		t.Errorf("after wake, Admit of generation 1 refused: %+v", *refusal)
	}
	// The next rotation issues generation 2 and closes generation 1.
	if link, closed := m.conv.Rotate("hash-2"); link.Generation != 2 || closed != 1 || len(sb.closes) != 1 || sb.closes[0] != wire.CloseMagicLinkRotated {
		t.Errorf("second Rotate: %+v closed %d, b closes %v", link, closed, sb.closes)
	}
	if m.log.link.Generation != 2 {
		t.Errorf("persisted generation %d, want 2", m.log.link.Generation)
	}
}

// TestRotateNewerMemberSurvives: a member admitted by the current link stays.
func TestRotateNewerMemberSurvives(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	req := joinRequest("acc_M", "agent", false, "")
	req.LinkGeneration = 2
	id, _ := m.member(req)
	if _, closed := m.conv.Rotate("hash-1"); closed != 0 {
		t.Errorf("Rotate to generation 1 closed %d streams of generation 2", closed)
	}
	if _, ok := m.store.row(id); !ok {
		t.Error("current-generation member removed")
	}
	m.send("acc_M", id, "still here")
}

func seqPtr(n int64) *int64 { return &n }

// TestMemberReadersAndTombstones (11.2, 11.7): a member belongs to the
// reader that joined it; another reader's join takes it over; a reader
// that left or was taken over is not rejoined by its own send or recv,
// across a wake too, while a fresh reader or an expired member is.
func TestMemberReadersAndTombstones(t *testing.T) {
	m := newMemberHarness(t, wire.DefaultLimits)
	req := joinRequest("acc_M", "claude", false, "")
	call := func(reader string, rejoin bool) wire.MemberCall {
		c := wire.MemberCall{ConversationID: convID, AccountID: "acc_M", StreamID: req.StreamID, Reader: reader, Data: json.RawMessage(`"x"`)}
		if rejoin {
			r := req
			c.Rejoin = &r
		}
		return c
	}
	// Self-rehydration: the first send joins.
	if r := m.conv.Member(m.store, "send", call("r1", true)); r.Error != "" || !r.Rejoined {
		t.Fatalf("rehydrating send: %+v", r)
	}
	// Another reader takes over by joining.
	j := call("r2", false)
	j.Join = &req
	if r := m.conv.Member(m.store, "join", j); r.Error != "" {
		t.Fatalf("takeover: %+v", r)
	}
	for _, rejoin := range []bool{false, true} {
		if r := m.conv.Member(m.store, "send", call("r1", rejoin)); r.Error != wire.ErrNotJoined.Code || !strings.Contains(r.Message, "took it over") {
			t.Errorf("the taken-over reader sends (rejoin %v): %+v", rejoin, r)
		}
	}
	if r := m.conv.Member(m.store, "leave", call("r2", false)); r.Error != "" {
		t.Fatalf("leave: %+v", r)
	}
	m.wake()
	for _, reader := range []string{"r1", "r2"} {
		if r := m.conv.Member(m.store, "recv", call(reader, true)); r.Error != wire.ErrNotJoined.Code {
			t.Errorf("reader %s rejoined after a wake: %+v", reader, r)
		}
	}
	if r := m.conv.Member(m.store, "send", call("r3", true)); r.Error != "" || !r.Rejoined {
		t.Errorf("a fresh reader: %+v", r)
	}
	// Tombstones last the idle period, then are pruned.
	m.now = m.now.Add(time.Duration(wire.DefaultLimits.MemberIdleSeconds+1) * time.Second)
	m.conv.ExpireMembers(time.Duration(wire.DefaultLimits.MemberIdleSeconds) * time.Second)
	if r := m.conv.Member(m.store, "send", call("r2", true)); r.Error != "" || !r.Rejoined {
		t.Errorf("after the idle period: %+v", r)
	}
	for _, r := range m.store.List() {
		if r.Left != "" && r.Reader == "r2" {
			t.Errorf("tombstone kept past the idle period: %+v", r)
		}
	}
}
