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

// recordingSocket is a Socket that remembers everything done to it.
type recordingSocket struct {
	sent     []*Outbound
	closes   []wire.Close
	saved    []Attachment
	released int
}

func (s *recordingSocket) Send(o *Outbound)   { s.sent = append(s.sent, o) }
func (s *recordingSocket) Close(c wire.Close) { s.closes = append(s.closes, c) }
func (s *recordingSocket) Save(a Attachment)  { s.saved = append(s.saved, a) }
func (s *recordingSocket) Release()           { s.released++ }
func (s *recordingSocket) frames() []string   { return texts(s.sent) }
func (s *recordingSocket) reset()             { s.sent, s.closes, s.saved = nil, nil, nil }
func (s *recordingSocket) quiet() bool        { return len(s.sent) == 0 && len(s.closes) == 0 }
func texts(out []*Outbound) (frames []string) {
	for _, o := range out {
		frames = append(frames, string(o.Text))
	}
	return frames
}

const convID = "conv_01HZY0000000000000000000AA"

var (
	peppers  = wire.Peppers{Credential: "c", Permissive: "p"}
	testTime = time.Date(2024, 5, 6, 7, 8, 9, 10_000_000, time.UTC)
	testTS   = "2024-05-06T07:08:09.010Z"
)

// harness is a conversation whose connection ids sort in creation order,
// like the ULIDs of production.
type harness struct {
	t      *testing.T
	conv   *Conversation
	log    *memLog
	limits wire.Limits
	next   int
}

func newHarness(t *testing.T, limits wire.Limits) *harness {
	return newHarnessOver(t, limits, newMemLog(t))
}

// newHarnessOver builds a conversation over an existing log, as a Durable
// Object waking up (or restarting) finds its storage.
func newHarnessOver(t *testing.T, limits wire.Limits, log *memLog) *harness {
	h := &harness{t: t, log: log, limits: limits}
	h.conv = NewConversation(limits, func() time.Time { return testTime }, func() string {
		h.next++
		return fmt.Sprintf("conn%04d", h.next)
	}, log)
	return h
}

func joinRequest(account, name string, self bool, metadata string) wire.Join {
	j := wire.Join{
		ConversationID: convID,
		AccountID:      account,
		StreamID:       peppers.StreamID(convID, account, name),
		StreamName:     name,
		SelfSubscribe:  self,
	}
	if metadata != "" {
		j.Metadata = json.RawMessage(metadata)
	}
	return j
}

// join admits and attaches a stream, failing the test on refusal.
func (h *harness) join(account, name string, self bool, metadata string) (*Peer, *recordingSocket) {
	h.t.Helper()
	return h.joinWith(joinRequest(account, name, self, metadata))
}

// joinWith admits and attaches req, resuming after req.ResumeAfter.
func (h *harness) joinWith(req wire.Join) (*Peer, *recordingSocket) {
	h.t.Helper()
	p, refusal := h.conv.Admit(req)
	if refusal != nil {
		h.t.Fatalf("join %s/%s refused: %+v", req.AccountID, req.StreamName, *refusal)
	}
	sock := &recordingSocket{}
	p.Socket = sock
	h.conv.Attach(convID, p, req.ResumeAfter)
	return p, sock
}

func decodeFrame(t *testing.T, text string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatalf("frame %q: %v", text, err)
	}
	return m
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a string", raw)
	}
	return s
}

// expectFrames checks sock received exactly frames of the given types.
func expectFrames(t *testing.T, who string, sock *recordingSocket, types ...string) []map[string]json.RawMessage {
	t.Helper()
	var got []string
	var frames []map[string]json.RawMessage
	for _, text := range sock.frames() {
		m := decodeFrame(t, text)
		got = append(got, str(t, m["type"]))
		frames = append(frames, m)
	}
	if !slices.Equal(got, types) {
		t.Fatalf("%s received %v, want %v: %q", who, got, types, sock.frames())
	}
	return frames
}

func expectNoClose(t *testing.T, who string, sock *recordingSocket) {
	t.Helper()
	if len(sock.closes) != 0 {
		t.Fatalf("%s was closed %v", who, sock.closes)
	}
}

func TestAdmitRefusalOrder(t *testing.T) {
	limits := wire.DefaultLimits
	limits.StreamsPerAccount = 2
	limits.ConnectionsPerConversation = 3
	h := newHarness(t, limits)
	_, sa1 := h.join("acc_A", "a1", false, "")
	_, sa2 := h.join("acc_A", "a2", false, "")
	_, sb1 := h.join("acc_B", "b1", false, "")
	// acc_A is at its stream limit and the conversation is full.
	tests := []struct {
		name          string
		account, want string
		refusal       *wire.Close
	}{
		{"name owned by another account beats every limit", "acc_C", "a1", &wire.CloseStreamNameOwnerConflict},
		{"another account's name, same caller over limit", "acc_B", "a2", &wire.CloseStreamNameOwnerConflict},
		{"account limit before conversation full", "acc_A", "a3", &wire.CloseConcurrencyLimit},
		{"conversation full", "acc_C", "c1", &wire.CloseConversationFull},
		{"takeover admitted at both limits", "acc_A", "a1", nil},
		{"takeover of the other account's own stream", "acc_B", "b1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range []*recordingSocket{sa1, sa2, sb1} {
				s.reset()
			}
			p, refusal := h.conv.Admit(joinRequest(tt.account, tt.want, false, ""))
			if tt.refusal == nil {
				if refusal != nil {
					t.Fatalf("refused with %+v, want admitted", *refusal)
				}
				if p == nil || p.StreamID != peppers.StreamID(convID, tt.account, tt.want) {
					t.Fatalf("admitted peer %+v", p)
				}
			} else if refusal == nil || *refusal != *tt.refusal {
				t.Fatalf("got %v, want %+v", refusal, *tt.refusal)
			}
			// Admit decides without side effects.
			if h.conv.Len() != 3 {
				t.Errorf("Len() = %d after Admit, want 3", h.conv.Len())
			}
			for _, s := range []*recordingSocket{sa1, sa2, sb1} {
				if !s.quiet() {
					t.Errorf("Admit touched a live socket: %q %v", s.frames(), s.closes)
				}
			}
		})
	}
}

func TestAdmitAccountLimitWithRoomInConversation(t *testing.T) {
	limits := wire.DefaultLimits
	limits.StreamsPerAccount = 1
	h := newHarness(t, limits)
	h.join("acc_A", "a1", false, "")
	if _, refusal := h.conv.Admit(joinRequest("acc_A", "a2", false, "")); refusal == nil || *refusal != wire.CloseConcurrencyLimit {
		t.Errorf("second stream of acc_A: %v, want concurrency_limit", refusal)
	}
	if _, refusal := h.conv.Admit(joinRequest("acc_B", "b1", false, "")); refusal != nil {
		t.Errorf("first stream of acc_B refused: %+v", *refusal)
	}
}

func TestAdmitBuildsPeer(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	p, refusal := h.conv.Admit(joinRequest("acc_A", "a1", true, `{"k":"v"}`))
	if refusal != nil {
		t.Fatal(*refusal)
	}
	want := Attachment{ConnID: "conn0001", StreamID: peppers.StreamID(convID, "acc_A", "a1"), Name: "a1", Owner: "acc_A", Self: true}
	if p.ConnID != want.ConnID || p.StreamID != want.StreamID || p.Name != want.Name || p.Owner != want.Owner || !p.Self {
		t.Errorf("admitted %+v, want %+v", p.Attachment, want)
	}
	if string(p.Metadata) != `{"k":"v"}` {
		t.Errorf("metadata %s", p.Metadata)
	}
	p, _ = h.conv.Admit(joinRequest("acc_A", "a2", false, ""))
	if string(p.Metadata) != `{}` {
		t.Errorf("absent metadata became %q, want {}", p.Metadata)
	}
	if p.ConnID != "conn0002" {
		t.Errorf("ConnID %q, want a fresh id", p.ConnID)
	}
}

func TestAttachNormalJoin(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	pa, sa := h.join("acc_A", "a", false, `{"role":"a"}`)
	expectFrames(t, "first joiner", sa, "joined")
	pb, sb := h.join("acc_B", "b", false, "")
	pc, sc := h.join("acc_A", "c", false, `{"role":"c"}`)

	frames := expectFrames(t, "c", sc, "joined")
	joined := frames[0]
	if str(t, joined["conversation_id"]) != convID || str(t, joined["stream_id"]) != pc.StreamID || str(t, joined["stream_name"]) != "c" {
		t.Errorf("joined %q", sc.frames()[0])
	}
	if string(joined["metadata"]) != `{"role":"c"}` || string(joined["self_subscribe"]) != "false" {
		t.Errorf("joined %q", sc.frames()[0])
	}
	if _, ok := joined["resumed"]; ok {
		t.Errorf("a fresh join carries resumed: %q", sc.frames()[0])
	}
	var peers []wire.StreamInfo
	if err := json.Unmarshal(joined["peers"], &peers); err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 || peers[0].ID != pa.StreamID || peers[1].ID != pb.StreamID {
		t.Fatalf("peers %s, want a then b (not c itself)", joined["peers"])
	}
	if peers[0].Owner != "acc_A" || peers[0].Name != "a" || string(peers[0].Metadata) != `{"role":"a"}` || string(peers[1].Metadata) != `{}` {
		t.Errorf("peers %s", joined["peers"])
	}

	// a saw b and c join; b saw c join; nobody else saw anything.
	got := expectFrames(t, "a", sa, "joined", "stream_joined", "stream_joined")
	if str(t, got[1]["stream_id"]) != pb.StreamID || str(t, got[2]["stream_id"]) != pc.StreamID {
		t.Errorf("a saw %q", sa.frames())
	}
	got = expectFrames(t, "b", sb, "joined", "stream_joined")
	sj := got[1]
	if str(t, sj["stream_id"]) != pc.StreamID || str(t, sj["stream_name"]) != "c" || str(t, sj["owner_account_id"]) != "acc_A" || string(sj["metadata"]) != `{"role":"c"}` {
		t.Errorf("stream_joined %q", sb.frames()[1])
	}
	for name, s := range map[string]*recordingSocket{"a": sa, "b": sb, "c": sc} {
		expectNoClose(t, name, s)
	}
	if h.conv.Len() != 3 {
		t.Errorf("Len() = %d", h.conv.Len())
	}
	streams := h.conv.Streams()
	if len(streams) != 3 || streams[0].ID != pa.StreamID || streams[1].ID != pb.StreamID || streams[2].ID != pc.StreamID {
		t.Errorf("Streams() = %+v, want join order", streams)
	}
}

func TestAttachSelfSubscribedJoinerGetsOnlyJoined(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	_, sa := h.join("acc_A", "a", false, "")
	_, sb := h.join("acc_B", "b", true, "")
	expectFrames(t, "a", sa, "joined", "stream_joined")
	// PROTOCOL §3: stream_joined goes to everyone else, even a self-subscriber.
	expectFrames(t, "self-subscribed joiner", sb, "joined")
}

func TestTakeover(t *testing.T) {
	limits := wire.DefaultLimits
	limits.StreamsPerAccount = 1
	limits.ConnectionsPerConversation = 2
	h := newHarness(t, limits)
	old, sOld := h.join("acc_A", "a", false, `{"v":1}`)
	_, sb := h.join("acc_B", "b", false, "")
	sOld.reset()
	sb.reset()

	// At both limits, the same account and name is still a takeover; with
	// unchanged metadata it is invisible to peers.
	seq := h.conv.Seq()
	p, sNew := h.join("acc_A", "a", false, `{"v":1}`)
	if h.conv.Seq() != seq {
		t.Errorf("an invisible takeover used a seq: %d → %d", seq, h.conv.Seq())
	}
	if p.StreamID != old.StreamID || p.ConnID == old.ConnID {
		t.Fatalf("takeover peer %+v, old %+v", p.Attachment, old.Attachment)
	}
	if !slices.Equal(sOld.closes, []wire.Close{wire.CloseStreamDisplaced}) {
		t.Errorf("old socket closes %v, want stream_displaced", sOld.closes)
	}
	if len(sOld.sent) != 0 {
		t.Errorf("old socket received %q", sOld.frames())
	}
	if !sb.quiet() {
		t.Errorf("peer saw the takeover: %q %v", sb.frames(), sb.closes)
	}
	frames := expectFrames(t, "new socket", sNew, "joined")
	if string(frames[0]["resumed"]) != "true" || str(t, frames[0]["stream_id"]) != old.StreamID {
		t.Errorf("joined %q, want resumed true and the same stream_id", sNew.frames()[0])
	}
	var peers []wire.StreamInfo
	_ = json.Unmarshal(frames[0]["peers"], &peers)
	if len(peers) != 1 || peers[0].Name != "b" {
		t.Errorf("peers %s, want only b", frames[0]["peers"])
	}
	expectNoClose(t, "new socket", sNew)
	if h.conv.Len() != 2 || h.conv.Peer(old.ConnID) != nil || h.conv.Peer(p.ConnID) != p {
		t.Errorf("after takeover Len=%d, old=%v, new=%v", h.conv.Len(), h.conv.Peer(old.ConnID), h.conv.Peer(p.ConnID))
	}

	// The displaced socket's close and messages are no-ops.
	sNew.reset()
	if h.conv.Leave(old.ConnID) {
		t.Error("Leave of the displaced conn reported live")
	}
	h.conv.Receive(old.ConnID, []byte(`{"type":"token","data":"ghost"}`))
	h.conv.ReceiveBinary(old.ConnID)
	for name, s := range map[string]*recordingSocket{"old": sOld, "new": sNew, "b": sb} {
		if len(s.sent) != 0 {
			t.Errorf("%s received %q after the displaced socket acted", name, s.frames())
		}
	}
	if len(sOld.closes) != 1 {
		t.Errorf("displaced socket closed again: %v", sOld.closes)
	}

	// The new socket speaks for the stream.
	h.conv.Receive(p.ConnID, []byte(`{"type":"token","data":"live"}`))
	got := expectFrames(t, "b", sb, "token")
	if str(t, got[0]["stream_id"]) != old.StreamID {
		t.Errorf("token %q", sb.frames()[0])
	}
}

func TestTokenFanout(t *testing.T) {
	tests := []struct {
		name       string
		self       bool
		senderGets bool
	}{
		{"without self-subscribe", false, false},
		{"with self-subscribe", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, wire.DefaultLimits)
			sender, sSender := h.join("acc_A", "writer", tt.self, "")
			_, sSibling := h.join("acc_A", "reader", false, "") // same account, another stream
			_, sOther := h.join("acc_B", "other", false, "")
			for _, s := range []*recordingSocket{sSender, sSibling, sOther} {
				s.reset()
			}
			msg := []byte(`{"type":"token","data":"h\u00e9llo \ud83d\ude00 \"q\""}`)
			h.conv.Receive(sender.ConnID, msg)

			receivers := []*recordingSocket{sSibling, sOther}
			if tt.senderGets {
				receivers = append(receivers, sSender)
			} else if len(sSender.sent) != 0 {
				t.Errorf("sender heard itself: %q", sSender.frames())
			}
			var shared *Outbound
			for i, s := range receivers {
				frames := expectFrames(t, fmt.Sprint("receiver ", i), s, "token")
				f := frames[0]
				if str(t, f["stream_id"]) != sender.StreamID || str(t, f["stream_name"]) != "writer" || str(t, f["owner_account_id"]) != "acc_A" {
					t.Errorf("token %q", s.frames()[0])
				}
				if str(t, f["ts"]) != testTS {
					t.Errorf("ts %s, want %s", f["ts"], testTS)
				}
				if string(f["data"]) != `"h\u00e9llo \ud83d\ude00 \"q\""` {
					t.Errorf("data %s is not the literal the client sent", f["data"])
				}
				if shared == nil {
					shared = s.sent[0]
				} else if s.sent[0] != shared {
					t.Errorf("receiver %d got a different *Outbound: the frame was encoded more than once", i)
				}
				expectNoClose(t, fmt.Sprint("receiver ", i), s)
			}
		})
	}
}

func TestBroadcastSharesOutbound(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	var socks []*recordingSocket
	for i := 0; i < 4; i++ {
		_, s := h.join(fmt.Sprint("acc_", i), fmt.Sprint("s", i), false, "")
		socks = append(socks, s)
	}
	leaver, _ := h.join("acc_L", "l", false, "")
	h.conv.Leave(leaver.ConnID) // after a stream_joined, a stream_left
	// socks[3] saw: stream_joined(l), stream_left(l); socks[0] also saw joins of 1..3.
	for _, idx := range []int{1, 2} { // the last two frames of every socket
		var first *Outbound
		for i, s := range socks {
			o := s.sent[len(s.sent)-idx]
			if first == nil {
				first = o
			} else if o != first {
				t.Errorf("socket %d got its own copy of broadcast frame %q", i, o.Text)
			}
		}
	}
}

func TestSetMetadata(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	p, sp := h.join("acc_A", "a", false, `{"v":1}`)
	_, sb := h.join("acc_B", "b", false, "")
	sp.reset()
	sb.reset()

	msg := []byte(`{"type":"set_metadata","metadata":{"v":2, "e":"\u00e9"}}`)
	h.conv.Receive(p.ConnID, msg)
	const want = `{"v":2, "e":"\u00e9"}`
	if len(sp.saved) != 1 || string(sp.saved[0].Metadata) != want || sp.saved[0].ConnID != p.ConnID || sp.saved[0].StreamID != p.StreamID {
		t.Fatalf("saved %+v, want one attachment with metadata %s", sp.saved, want)
	}
	if len(sp.sent) != 0 {
		t.Errorf("sender heard its own metadata: %q", sp.frames())
	}
	frames := expectFrames(t, "b", sb, "stream_metadata")
	f := frames[0]
	if string(f["metadata"]) != want || str(t, f["ts"]) != testTS || str(t, f["stream_id"]) != p.StreamID || str(t, f["owner_account_id"]) != "acc_A" {
		t.Errorf("stream_metadata %q", sb.frames()[0])
	}

	// The client's buffer may be reused: the stored metadata is a copy.
	copy(msg, strings.Repeat("X", len(msg)))
	if string(h.conv.Peer(p.ConnID).Metadata) != want {
		t.Errorf("metadata aliases the message buffer: %q", h.conv.Peer(p.ConnID).Metadata)
	}
	if s := h.conv.Streams(); string(s[0].Metadata) != want {
		t.Errorf("Streams() metadata %s", s[0].Metadata)
	}
	// A later joiner sees the new metadata in its peers list.
	_, sc := h.join("acc_C", "c", false, "")
	var peers []wire.StreamInfo
	_ = json.Unmarshal(decodeFrame(t, sc.frames()[0])["peers"], &peers)
	if len(peers) != 2 || string(peers[0].Metadata) != want {
		t.Errorf("late joiner peers %+v", peers)
	}
}

func TestSetMetadataSelfSubscribed(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	p, sp := h.join("acc_A", "a", true, "")
	sp.reset()
	h.conv.Receive(p.ConnID, []byte(`{"type":"set_metadata","metadata":{"x":1}}`))
	expectFrames(t, "self-subscribed sender", sp, "stream_metadata")
}

func TestPing(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	p, sp := h.join("acc_A", "a", true, "")
	_, sb := h.join("acc_B", "b", false, "")
	sp.reset()
	sb.reset()
	h.conv.Receive(p.ConnID, []byte(`{"type":"ping"}`))
	if got := sp.frames(); len(got) != 1 || got[0] != wire.PongFrame {
		t.Errorf("sender got %q, want one pong", got)
	}
	if !sb.quiet() {
		t.Errorf("peer got %q", sb.frames())
	}
	expectNoClose(t, "sender", sp)
}

func TestMalformedFrameEjectsSender(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want wire.Close
	}{
		{"not json", `hello`, wire.CloseMalformedFrame},
		{"token without data", `{"type":"token"}`, wire.CloseMalformedFrame},
		{"unknown type", `{"type":"shout"}`, wire.CloseUnknownFrameType},
		{"token too large", `{"type":"token","data":"` + strings.Repeat("x", wire.DefaultLimits.TokenBytes+1) + `"}`, wire.CloseTokenTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, wire.DefaultLimits)
			p, sp := h.join("acc_A", "a", true, "")
			_, sb := h.join("acc_B", "b", false, "")
			_, sc := h.join("acc_A", "c", false, "")
			sp.reset()
			sb.reset()
			sc.reset()
			h.conv.Receive(p.ConnID, []byte(tt.msg))
			if !slices.Equal(sp.closes, []wire.Close{tt.want}) {
				t.Errorf("sender closes %v, want %+v", sp.closes, tt.want)
			}
			if len(sp.sent) != 0 {
				t.Errorf("ejected sender received %q", sp.frames())
			}
			for name, s := range map[string]*recordingSocket{"b": sb, "c": sc} {
				f := expectFrames(t, name, s, "stream_left")[0]
				if str(t, f["stream_id"]) != p.StreamID || str(t, f["stream_name"]) != "a" || str(t, f["owner_account_id"]) != "acc_A" {
					t.Errorf("%s got %q", name, s.frames())
				}
				expectNoClose(t, name, s)
			}
			if h.conv.Len() != 2 || h.conv.Peer(p.ConnID) != nil {
				t.Errorf("ejected stream still live")
			}
			// Messages racing the close are ignored.
			h.conv.Receive(p.ConnID, []byte(`{"type":"ping"}`))
			if len(sp.sent) != 0 || len(sb.sent) != 1 {
				t.Errorf("ejected connection still served")
			}
		})
	}
}

func TestReceiveBinary(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	p, sp := h.join("acc_A", "a", false, "")
	_, sb := h.join("acc_B", "b", false, "")
	sp.reset()
	sb.reset()
	h.conv.ReceiveBinary("unknown-conn")
	if !sp.quiet() || !sb.quiet() {
		t.Fatal("binary message on an unknown conn had an effect")
	}
	h.conv.ReceiveBinary(p.ConnID)
	if !slices.Equal(sp.closes, []wire.Close{wire.CloseMalformedFrame}) {
		t.Errorf("closes %v, want malformed_frame", sp.closes)
	}
	expectFrames(t, "b", sb, "stream_left")
	if h.conv.Len() != 1 {
		t.Errorf("Len() = %d", h.conv.Len())
	}
}

func TestReceiveUnknownConn(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	_, sa := h.join("acc_A", "a", false, "")
	sa.reset()
	h.conv.Receive("nobody", []byte(`{"type":"token","data":"x"}`))
	h.conv.Receive("nobody", []byte(`garbage`))
	if !sa.quiet() {
		t.Errorf("message of an unknown conn reached a peer: %q %v", sa.frames(), sa.closes)
	}
}

func TestLeave(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	pa, sa := h.join("acc_A", "a", true, `{"m":1}`)
	_, sb := h.join("acc_B", "b", false, "")
	sa.reset()
	sb.reset()

	if h.conv.Leave("unknown") {
		t.Error("Leave of an unknown conn reported live")
	}
	if !sa.quiet() || !sb.quiet() {
		t.Fatal("Leave of an unknown conn sent frames")
	}
	if !h.conv.Leave(pa.ConnID) {
		t.Error("Leave of a live conn reported not live")
	}
	if len(sa.sent) != 0 || len(sa.closes) != 0 {
		t.Errorf("leaver got %q %v; Leave follows a close, it does not close", sa.frames(), sa.closes)
	}
	f := expectFrames(t, "b", sb, "stream_left")[0]
	if len(f) != 5 || str(t, f["stream_id"]) != pa.StreamID || seqOf(t, f) != h.conv.Seq() {
		t.Errorf("stream_left %q", sb.frames()[0])
	}
	if h.conv.Leave(pa.ConnID) {
		t.Error("second Leave reported live")
	}
	if len(sb.sent) != 1 {
		t.Errorf("second Leave sent %q", sb.frames())
	}
	if h.conv.Len() != 1 {
		t.Errorf("Len() = %d", h.conv.Len())
	}
}

// restored builds the peers a woken object would get: each attachment
// serialized and parsed back, as the adapter does.
func restored(t *testing.T, attachments ...Attachment) ([]*Peer, []*recordingSocket) {
	t.Helper()
	var peers []*Peer
	var socks []*recordingSocket
	for _, a := range attachments {
		encoded, overflow := a.Encode()
		back, err := DecodeAttachment(encoded)
		if err != nil {
			t.Fatal(err)
		}
		if overflow != nil {
			back.Metadata = overflow // read back from storage
		}
		s := &recordingSocket{}
		peers = append(peers, &Peer{Attachment: back, Socket: s})
		socks = append(socks, s)
	}
	return peers, socks
}

func att(conn, account, name string, self bool, metadata string) Attachment {
	return Attachment{
		ConnID:   conn,
		StreamID: peppers.StreamID(convID, account, name),
		Name:     name,
		Owner:    account,
		Self:     self,
		Metadata: json.RawMessage(metadata),
	}
}

func TestRestore(t *testing.T) {
	big := `{"blob":"` + strings.Repeat("z", 3000) + `"}`
	peers, socks := restored(t,
		att("conn0001", "acc_A", "a", false, `{"role":"a"}`),
		att("conn0002", "acc_B", "b", true, big),
		att("conn0003", "acc_A", "c", false, `{}`),
	)
	h := newHarness(t, wire.DefaultLimits)
	h.next = 3
	h.conv.Restore(awake(peers))
	for i, s := range socks {
		if !s.quiet() {
			t.Errorf("socket %d saw the wake-up: %q %v", i, s.frames(), s.closes)
		}
	}
	streams := h.conv.Streams()
	if len(streams) != 3 {
		t.Fatalf("Streams() = %+v", streams)
	}
	wantMeta := []string{`{"role":"a"}`, big, `{}`}
	for i, s := range streams {
		if s.ID != peers[i].StreamID || s.Name != peers[i].Name || s.Owner != peers[i].Owner {
			t.Errorf("stream %d = %+v", i, s)
		}
		if string(s.Metadata) != wantMeta[i] {
			t.Errorf("stream %d metadata %.40s, want %.40s", i, s.Metadata, wantMeta[i])
		}
	}

	// Routing works as before the wake-up, self-subscribe included.
	h.conv.Receive("conn0002", []byte(`{"type":"token","data":"after"}`))
	for i, s := range socks {
		expectFrames(t, fmt.Sprint("restored ", i), s, "token")
	}
	// A new joiner sees the restored streams.
	_, sd := h.join("acc_D", "d", false, "")
	var got []wire.StreamInfo
	_ = json.Unmarshal(decodeFrame(t, sd.frames()[0])["peers"], &got)
	if len(got) != 3 || string(got[1].Metadata) != big {
		t.Errorf("joiner after wake-up sees %d peers", len(got))
	}
	// Ownership survives: another account cannot take a restored name.
	if _, refusal := h.conv.Admit(joinRequest("acc_B", "a", false, "")); refusal == nil || *refusal != wire.CloseStreamNameOwnerConflict {
		t.Errorf("restored name a: %v, want stream_name_owner_conflict", refusal)
	}
}

func TestRestoreDuplicateStreamKeepsNewest(t *testing.T) {
	for _, order := range []string{"old first", "new first"} {
		t.Run(order, func(t *testing.T) {
			older := att("conn0005", "acc_A", "a", false, `{"v":"old"}`)
			newer := att("conn0009", "acc_A", "a", false, `{"v":"new"}`)
			other := att("conn0007", "acc_B", "b", false, `{}`)
			list := []Attachment{older, other, newer}
			if order == "new first" {
				list = []Attachment{newer, other, older}
			}
			peers, socks := restored(t, list...)
			byConn := map[string]*recordingSocket{}
			for i, p := range peers {
				byConn[p.ConnID] = socks[i]
			}
			h := newHarness(t, wire.DefaultLimits)
			h.conv.Restore(awake(peers))
			if h.conv.Len() != 2 {
				t.Fatalf("Len() = %d, want 2", h.conv.Len())
			}
			if h.conv.Peer("conn0005") != nil || h.conv.Peer("conn0009") == nil {
				t.Errorf("kept the wrong socket")
			}
			if !slices.Equal(byConn["conn0005"].closes, []wire.Close{wire.CloseStreamDisplaced}) {
				t.Errorf("older closes %v, want stream_displaced", byConn["conn0005"].closes)
			}
			for _, c := range []string{"conn0009", "conn0007"} {
				if !byConn[c].quiet() {
					t.Errorf("%s was touched: %q %v", c, byConn[c].frames(), byConn[c].closes)
				}
			}
			if len(byConn["conn0005"].sent) != 0 {
				t.Errorf("older socket got %q", byConn["conn0005"].frames())
			}
			if m := string(h.conv.Peer("conn0009").Metadata); m != `{"v":"new"}` {
				t.Errorf("kept metadata %s", m)
			}
		})
	}
}

func TestRestoreReplacesState(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	h.join("acc_A", "a", false, "")
	h.join("acc_B", "b", false, "")
	peers, _ := restored(t, att("conn0100", "acc_C", "c", false, `{}`))
	h.conv.Restore(awake(peers))
	if s := h.conv.Streams(); len(s) != 1 || s[0].Name != "c" {
		t.Errorf("Streams() after Restore = %+v, want only c", s)
	}
	if h.conv.Peer("conn0001") != nil {
		t.Error("pre-restore conn still live")
	}
}
