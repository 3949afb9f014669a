package durable

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"syscall/js"
	"time"

	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/wire"
)

// sqlSessionStore keeps a session's state in its object's SQLite storage.
type sqlSessionStore struct{ sql sqlStorage }

func (s sqlSessionStore) Load() SessionState {
	var st SessionState
	rows := s.sql.Exec("SELECT state FROM session WHERE id = 1").Call("toArray")
	if rows.Length() > 0 {
		_ = json.Unmarshal([]byte(rows.Index(0).Get("state").String()), &st)
	}
	return st
}

func (s sqlSessionStore) Save(st SessionState) {
	raw, _ := json.Marshal(st)
	s.sql.Exec("INSERT OR REPLACE INTO session (id, state) VALUES (1, ?)", string(raw))
}

// RegisterSession exports the McpSession object's handlers to build/entry.mjs.
func RegisterSession() {
	bridge.Export("sessionFetch", sessionFetch, func([]js.Value) any {
		return bridge.NewResponse(http.StatusInternalServerError, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"error":"internal_error","message":"unexpected failure"}`))
	})
	bridge.Export("sessionAlarm", sessionAlarm, func([]js.Value) any { return nil })
}

// sessionAlarm takes (self): the session was not bound or ended for
// wire.MCPSessionRetention, so its storage is dropped — but for the mark of
// an ended session, so its id never works again.
func sessionAlarm(args []js.Value) any {
	storage := args[0].Get("ctx").Get("storage")
	ended := SessionState{}
	if hasSessionTable(newSQLStorage(storage)) {
		ended = sqlSessionStore{newSQLStorage(storage)}.Load()
	}
	storage.Call("deleteAll")
	if ended.Ended {
		sql := newSQLStorage(storage)
		sql.Exec("CREATE TABLE IF NOT EXISTS session (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
		sqlSessionStore{sql}.Save(SessionState{Ended: true})
	}
	return nil
}

func hasSessionTable(sql sqlStorage) bool {
	return bridge.Try(func() { sql.Exec("SELECT 1 FROM session LIMIT 1") }) == nil
}

// notifyWatchers tells every push leg watching the session that it was
// bound or ended; each reads the binding again (a signal, not the state).
func notifyWatchers(ctx js.Value, op string) {
	sockets := ctx.Call("getWebSockets")
	for i := 0; i < sockets.Length(); i++ {
		ws := sockets.Index(i)
		_ = bridge.Try(func() { ws.Call("send", op) })
	}
}

// sessionFetch takes (self, request): one operation, its state in and out
// as JSON. The request body was read by entry.mjs.
func sessionFetch(args []js.Value) any {
	self, req, body := args[0], args[1], args[2]
	u, err := url.Parse(req.Get("url").String())
	op, ok := strings.CutPrefix(u.Path, wire.SessionPath)
	if err != nil || !ok {
		return bridge.NewResponse(http.StatusNotFound, nil, nil)
	}
	if op == "watch" {
		// A push leg's watch (wire.SessionPath): hibernatable, so an idle
		// session object is evicted with its legs still open.
		client, server := bridge.WebSocketPair()
		self.Get("ctx").Call("acceptWebSocket", server)
		return bridge.UpgradeResponse(client, nil)
	}
	sql := newSQLStorage(self.Get("ctx").Get("storage"))
	if op == "get" && !hasSessionTable(sql) {
		// Never bound: answer without writing, so reading a session that
		// never joins leaves no storage behind.
		raw, _ := json.Marshal(SessionState{})
		return bridge.NewResponse(http.StatusOK, http.Header{"Content-Type": {"application/json"}}, raw)
	}
	sql.Exec("CREATE TABLE IF NOT EXISTS session (id INTEGER PRIMARY KEY, state TEXT NOT NULL)")
	var in SessionState
	if body.Type() == js.TypeString && body.String() != "" {
		if json.Unmarshal([]byte(body.String()), &in) != nil {
			return bridge.NewResponse(http.StatusBadRequest, nil, nil)
		}
	}
	out, ok := SessionOp(sqlSessionStore{sql}, op, in)
	if !ok {
		return bridge.NewResponse(http.StatusNotFound, nil, nil)
	}
	if op != "get" {
		deadline := time.Now().Add(wire.MCPSessionRetention)
		self.Get("ctx").Get("storage").Call("setAlarm", float64(deadline.UnixMilli()))
		notifyWatchers(self.Get("ctx"), op)
	}
	raw, _ := json.Marshal(out)
	return bridge.NewResponse(http.StatusOK, http.Header{"Content-Type": {"application/json"}}, raw)
}
