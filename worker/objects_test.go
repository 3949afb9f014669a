package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ams-dev/ams/durable"
	"github.com/ams-dev/ams/wire"
)

// The worker tests reach conversation objects through fakeObjects, which
// delegates to a real durable.Conversation per conversation, over in-memory
// storage. Its member operations mirror members_js.go (which only builds
// for js/wasm): the same calls on the same Conversation, the same refusal
// codes, the same long-poll. Calls and replies cross JSON as they cross
// HTTP in production.

// memEventLog is an in-memory durable.EventLog.
type memEventLog struct {
	events []durable.Event
	saved  int64
	link   wire.LinkState
}

func (l *memEventLog) Append(e durable.Event) {
	e.Frame = slices.Clone(e.Frame)
	l.events = append(l.events, e)
}

func (l *memEventLog) Since(after int64) []durable.Event {
	var out []durable.Event
	for _, e := range l.events {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out
}

func (l *memEventLog) TrimThrough(seq int64) {
	l.events = slices.DeleteFunc(l.events, func(e durable.Event) bool { return e.Seq <= seq })
}

func (l *memEventLog) Sizes() []durable.EventSize {
	out := make([]durable.EventSize, len(l.events))
	for i, e := range l.events {
		out[i] = durable.EventSize{Seq: e.Seq, Size: len(e.Frame)}
	}
	return out
}

func (l *memEventLog) LastSeq() int64 {
	if n := len(l.events); n > 0 {
		return max(l.saved, l.events[n-1].Seq)
	}
	return l.saved
}

func (l *memEventLog) SaveSeq(seq int64)            { l.saved = seq }
func (l *memEventLog) Lost() int64                  { return 0 }
func (l *memEventLog) Link() wire.LinkState         { return l.link }
func (l *memEventLog) SaveLink(link wire.LinkState) { l.link = link }

// memMemberStore is an in-memory durable.MemberStore.
type memMemberStore struct {
	rows map[string]durable.MemberRecord
}

func (l *memMemberStore) Delete(connID string)       { delete(l.rows, connID) }
func (l *memMemberStore) Put(r durable.MemberRecord) { l.rows[r.ConnID] = r }

func (l *memMemberStore) List() []durable.MemberRecord {
	var out []durable.MemberRecord
	for _, r := range l.rows {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b durable.MemberRecord) int {
		if a.ConnID < b.ConnID {
			return -1
		}
		return 1
	})
	return out
}

// wsSocket is a WebSocket peer as the conversation drives it.
type wsSocket struct {
	mu     sync.Mutex
	sent   []string
	closes []wire.Close
}

func (s *wsSocket) Send(o *durable.Outbound) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, string(o.Text))
}

func (s *wsSocket) Close(c wire.Close) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes = append(s.closes, c)
}

func (s *wsSocket) Save(durable.Attachment) {}

func (s *wsSocket) frames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

func (s *wsSocket) closed() []wire.Close {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.closes)
}

func (s *wsSocket) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent, s.closes = nil, nil
}

// fakeConversation is one conversation object.
type fakeConversation struct {
	conv    *durable.Conversation
	log     *memEventLog
	members *memMemberStore
	waiters durable.Waiters
}

// memSession is an in-memory durable.SessionStore.
type memSession struct{ state wire.SessionState }

func (m *memSession) Load() wire.SessionState   { return m.state }
func (m *memSession) Save(st wire.SessionState) { m.state = st }

// memberCall is one member operation as the fake received it.
type memberCall struct {
	op   string
	call wire.MemberCall
}

type fakeObjects struct {
	t      *testing.T
	limits wire.Limits
	// maxWait bounds the fake's long-poll, whatever wait_ms says.
	maxWait time.Duration

	mu        sync.Mutex
	next      int
	convs     map[string]*fakeConversation
	sessions  map[string]*memSession
	calls     []memberCall
	rotations []int64
	watchers  map[string][]*socketQueue
	taps      int
}

func newFakeObjects(t *testing.T, limits wire.Limits) *fakeObjects {
	return &fakeObjects{t: t, limits: limits, maxWait: 2 * time.Second, convs: map[string]*fakeConversation{}, sessions: map[string]*memSession{}}
}

// get returns the conversation object of id; the caller holds o.mu.
func (o *fakeObjects) get(id string) *fakeConversation {
	if c := o.convs[id]; c != nil {
		return c
	}
	c := &fakeConversation{log: &memEventLog{}, members: &memMemberStore{rows: map[string]durable.MemberRecord{}}}
	c.conv = durable.NewConversation(o.limits, time.Now, func() string {
		o.next++
		return fmt.Sprintf("conn%06d", o.next)
	}, c.log)
	c.conv.OnEmit = c.waiters.Wake
	o.convs[id] = c
	return c
}

func (o *fakeObjects) Streams(_ context.Context, conversationID string) ([]wire.StreamInfo, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.get(conversationID).conv.Streams(), nil
}

func (o *fakeObjects) Rotate(_ context.Context, conversationID, tokenHash string) (wire.LinkState, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	link, _ := o.get(conversationID).conv.Rotate(tokenHash)
	o.rotations = append(o.rotations, link.Generation)
	return link, nil
}

func (o *fakeObjects) Link(_ context.Context, conversationID string) (wire.LinkState, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.get(conversationID).conv.Link(), nil
}

func (o *fakeObjects) Member(_ context.Context, op string, call wire.MemberCall) (wire.MemberReply, error) {
	raw := wire.MarshalVerbatim(call)
	var sent wire.MemberCall
	if err := json.Unmarshal(raw, &sent); err != nil {
		o.t.Errorf("member call does not survive JSON: %v", err)
	}
	o.mu.Lock()
	o.calls = append(o.calls, memberCall{op, sent})
	c := o.get(sent.ConversationID)
	var reply wire.MemberReply
	if op == "recv" {
		wait := sent
		wait.WaitMS = min(wait.WaitMS, int(o.maxWait/time.Millisecond))
		reply = c.conv.Recv(c.members, wait, func(d time.Duration) bool { return c.waiters.Wait(d, &o.mu) })
	} else {
		reply = o.member(c, op, sent)
	}
	o.mu.Unlock()
	raw = wire.MarshalVerbatim(reply)
	var back wire.MemberReply
	if err := json.Unmarshal(raw, &back); err != nil {
		o.t.Errorf("member reply does not survive JSON: %v", err)
	}
	return back, nil
}

func (o *fakeObjects) Session(_ context.Context, nonce, op string, in wire.SessionState) (wire.SessionState, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.sessions[nonce]
	if st == nil {
		st = &memSession{}
		o.sessions[nonce] = st
	}
	out, ok := durable.SessionOp(st, op, in)
	if !ok {
		return out, fmt.Errorf("no session operation %s", op)
	}
	if op != "get" { // as notifyWatchers in session_js.go
		for _, q := range o.watchers[nonce] {
			q.Frame([]byte(op))
		}
	}
	return out, nil
}

// Watch opens a watch of the session nonce, as session_js.go accepts one.
func (o *fakeObjects) Watch(nonce string) *socketQueue {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := newSocketQueue(func([]byte) {}, func() {})
	if o.watchers == nil {
		o.watchers = map[string][]*socketQueue{}
	}
	o.watchers[nonce] = append(o.watchers[nonce], q)
	return q
}

// tapSocket is a tap as the conversation drives it: what it sends goes to
// the Worker's queue.
type tapSocket struct{ q *socketQueue }

func (s tapSocket) Send(out *durable.Outbound) { s.q.Frame(slices.Clone(out.Text)) }
func (s tapSocket) Close(c wire.Close)         { s.q.Closed(c) }
func (s tapSocket) Save(durable.Attachment)    {}

// Tap opens a member's push leg on its conversation, as members_js.go
// does; messages the Worker sends on it reach the conversation's Receive.
func (o *fakeObjects) Tap(call wire.MemberCall) (*socketQueue, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.get(call.ConversationID)
	o.taps++
	tapID := fmt.Sprintf("%s%06d", durable.TapPrefix, o.taps)
	var q *socketQueue
	q = newSocketQueue(func(msg []byte) {
		o.mu.Lock()
		defer o.mu.Unlock()
		c.conv.Receive(tapID, msg)
	}, func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		c.conv.Untap(tapID)
		q.Closed(wire.Close{Code: 1000})
	})
	if _, refusal := c.conv.Tap(c.members, call, tapSocket{q}, tapID); refusal != nil {
		// As members_js.go refuses: the upgrade succeeds, then closes.
		q.Closed(wire.CloseNotJoined)
	}
	return q, nil
}

// member runs the operation through the conversation, as members_js.go does.
func (o *fakeObjects) member(c *fakeConversation, op string, call wire.MemberCall) wire.MemberReply {
	return c.conv.Member(c.members, op, call)
}

// lastCall returns the last member call of op.
func (o *fakeObjects) lastCall(op string) (wire.MemberCall, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.calls) - 1; i >= 0; i-- {
		if o.calls[i].op == op {
			return o.calls[i].call, true
		}
	}
	return wire.MemberCall{}, false
}

// wsPeer is a WebSocket stream admitted through Service.Admit and attached
// to the conversation object, as worker_js.go and conversation_js.go do.
type wsPeer struct {
	o      *fakeObjects
	convID string
	connID string
	join   wire.Join
	sock   *wsSocket
}

// connectWS admits r through the Service and attaches it; it fails the test
// on a refusal.
func (o *fakeObjects) connectWS(t *testing.T, s *Service, r *http.Request) *wsPeer {
	t.Helper()
	join, refusal := s.Admit(r)
	if refusal != nil {
		t.Fatalf("Admit refused %+v", *refusal)
	}
	peer, closeCode := o.attach(join)
	if closeCode != nil {
		t.Fatalf("conversation refused %+v", *closeCode)
	}
	return peer
}

func (o *fakeObjects) attach(join wire.Join) (*wsPeer, *wire.Close) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.get(join.ConversationID)
	p, refusal := c.conv.Admit(join)
	if refusal != nil {
		return nil, refusal
	}
	sock := &wsSocket{}
	p.Socket = sock
	c.conv.Attach(join.ConversationID, p, join.ResumeAfter)
	return &wsPeer{o: o, convID: join.ConversationID, connID: p.ConnID, join: join, sock: sock}, nil
}

// emit sends a text message from the peer's socket.
func (p *wsPeer) emit(msg string) {
	p.o.mu.Lock()
	defer p.o.mu.Unlock()
	p.o.get(p.convID).conv.Receive(p.connID, []byte(msg))
}

func (p *wsPeer) token(data string) {
	raw, _ := json.Marshal(map[string]string{"type": "token", "data": data})
	p.emit(string(raw))
}

// framesOf decodes the frames of type typ the socket received.
func (p *wsPeer) framesOf(t *testing.T, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, text := range p.sock.frames() {
		var m map[string]any
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			t.Fatalf("frame %q: %v", text, err)
		}
		if m["type"] == typ {
			out = append(out, m)
		}
	}
	return out
}

// expireAll makes every MCP member expire, as the object's alarm does after
// the idle period.
func (o *fakeObjects) expireAll(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.convs {
		c.conv.ExpireMembers(0)
	}
}
