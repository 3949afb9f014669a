package durable

import "github.com/ams-dev/ams/wire"

// An MCP session object (class McpSession, one per Mcp-Session-Id) holds the
// one thing a session has: the handle of the member its ams_join made, so
// that the session's later calls need no handle and any isolate serves
// them. Nothing else lives there: the member, its reader and read position
// are the conversation object's. A session that was ended (DELETE) stays
// ended. The Worker reaches the object only with a session id it
// authenticated (wire.Peppers.OpenSessionID), so a made-up id creates none.
// A session's storage is dropped wire.MCPSessionRetention after it was last
// bound or ended (an alarm), so abandoned sessions do not accumulate.
// Push legs watch the object through hibernatable sockets (SessionPath +
// "watch"): on every bind and end it sends each of them a message, so a leg
// follows its session's binding at once without polling.

// SessionState is what a session object stores.
type SessionState = wire.SessionState

// SessionStore persists a session's state.
type SessionStore interface {
	Load() SessionState
	Save(SessionState)
}

// SessionOp runs op and returns the state after it: bind records a handle
// (an ended session keeps none), end ends the session and returns the
// handle it held, for the Worker to make its member leave.
func SessionOp(store SessionStore, op string, in SessionState) (SessionState, bool) {
	st := store.Load()
	switch op {
	case "get":
		return st, true
	case "bind":
		if !st.Ended {
			st.Handle = in.Handle
			store.Save(st)
		}
		return st, true
	case "end":
		held := st.Handle
		store.Save(SessionState{Ended: true})
		return SessionState{Handle: held, Ended: true}, true
	}
	return st, false
}
