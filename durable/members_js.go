package durable

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall/js"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// sqlMemberStore keeps MCP members in the object's SQLite storage.
type sqlMemberStore struct {
	sql js.Value
}

func newSQLMemberStore(storage js.Value) *sqlMemberStore {
	s := &sqlMemberStore{sql: storage.Get("sql")}
	s.sql.Call("exec", "CREATE TABLE IF NOT EXISTS members (conn_id TEXT PRIMARY KEY, record TEXT NOT NULL)")
	return s
}

func (s *sqlMemberStore) Put(r MemberRecord) {
	raw := wire.MarshalVerbatim(r)
	s.sql.Call("exec", "INSERT OR REPLACE INTO members (conn_id, record) VALUES (?, ?)", r.ConnID, string(raw))
}

func (s *sqlMemberStore) Delete(connID string) {
	s.sql.Call("exec", "DELETE FROM members WHERE conn_id = ?", connID)
}

func (s *sqlMemberStore) List() []MemberRecord {
	rows := s.sql.Call("exec", "SELECT record FROM members ORDER BY conn_id").Call("toArray")
	var records []MemberRecord
	for i := 0; i < rows.Length(); i++ {
		var r MemberRecord
		if json.Unmarshal([]byte(rows.Index(i).Get("record").String()), &r) == nil {
			records = append(records, r)
		}
	}
	return records
}

// memberFetch serves the Worker's member operations. A recv with nothing to
// read waits, up to wait_ms, for the next event of the conversation.
func (o *object) memberFetch(op string, req js.Value) js.Value {
	return bridge.NewPromise(func() (result js.Value) {
		defer func() {
			if r := recover(); r != nil {
				o.unsettled = true // the next event rebuilds what the panic cut short
				result = memberError(wire.ErrInternal.Status, wire.ErrInternal.Code, "unexpected failure")
			}
		}()
		text, err := bridge.Await(req.Call("text"))
		if err != nil {
			return memberError(http.StatusBadRequest, wire.ErrInvalidJSON.Code, "unreadable call")
		}
		var call wire.MemberCall
		if err := json.Unmarshal([]byte(text.String()), &call); err != nil {
			return memberError(http.StatusBadRequest, wire.ErrInvalidJSON.Code, "malformed call")
		}
		var reply wire.MemberReply
		if op == "recv" {
			reply = o.conv.Recv(o.members, call, func(d time.Duration) bool { return o.waiters.Wait(d, nil) })
		} else {
			reply = o.conv.Member(o.members, op, call)
		}
		o.scheduleExpiry()
		status := http.StatusOK
		if reply.Error != "" {
			status = http.StatusConflict
		}
		body := wire.MarshalVerbatim(reply)
		return bridge.NewResponse(status, http.Header{"Content-Type": {"application/json"}}, body)
	})
}

func memberError(status int, code, message string) js.Value {
	body, _ := json.Marshal(wire.MemberReply{Error: code, Message: message})
	return bridge.NewResponse(status, http.Header{"Content-Type": {"application/json"}}, body)
}

// wake releases every waiting recv.
func (o *object) wake() { o.waiters.Wake() }

// scheduleExpiry removes idle members and sets the object's alarm for the
// next member to expire.
func (o *object) scheduleExpiry() {
	next := o.conv.ExpireMembers(o.memberIdle)
	if !next.IsZero() {
		o.state.Get("storage").Call("setAlarm", float64(next.UnixMilli()))
	}
}

func conversationAlarm(o *object, _ []js.Value) any {
	o.scheduleExpiry()
	return nil
}

func memberOp(path string) (string, bool) {
	return strings.CutPrefix(path, wire.MemberPath)
}

// tap accepts an MCP member's push leg (tap.go): a hibernatable socket
// tagged with its own connection id, which the Worker holds behind an SSE
// answer. The member call comes in wire.MemberHeader; a refusal is an
// upgrade closed 4404 not_joined.
func (o *object) tap(req js.Value) js.Value {
	var call wire.MemberCall
	if json.Unmarshal([]byte(req.Get("headers").Call("get", wire.MemberHeader).String()), &call) != nil {
		return bridge.RefuseUpgrade(wire.CloseNotJoined.Code, wire.CloseNotJoined.Reason, nil)
	}
	client, server := bridge.WebSocketPair()
	tapID := TapPrefix + ulid.Make().String()
	s := newSocket(server, o, tapID, false)
	a, refusal := o.conv.Tap(o.members, call, s, tapID)
	if refusal != nil {
		delete(o.slots, s.slot)
		return bridge.RefuseUpgrade(wire.CloseNotJoined.Code, wire.CloseNotJoined.Reason, nil)
	}
	o.state.Call("acceptWebSocket", server, []any{tapID})
	encoded, _ := a.Encode()
	server.Call("serializeAttachment", string(encoded))
	return bridge.UpgradeResponse(client, nil)
}
