package namespace

import (
	"net/http"
	"net/url"
	"syscall/js"

	"github.com/ams-dev/ams/bridge"
)

// Register exports the namespace object's fetch to build/entry.mjs, which
// calls namespaceFetch(self, request).
func Register() {
	bridge.ExportAsync("namespaceFetch", namespaceFetch, func([]js.Value) js.Value {
		return bridge.NewResponse(http.StatusInternalServerError, nil, nil)
	})
}

func namespaceFetch(args []js.Value) (js.Value, error) {
	storage, req := args[0].Get("ctx").Get("storage"), args[1]
	u, err := url.Parse(req.Get("url").String())
	if err != nil {
		return bridge.NewResponse(http.StatusBadRequest, nil, nil), nil
	}
	method := req.Get("method").String()
	var body []byte
	if method == http.MethodPost {
		text, err := bridge.Await(req.Call("text"))
		if err != nil {
			return js.Value{}, err
		}
		body = []byte(text.String())
	}
	status, reply := Serve(sqlStore{sql: storage.Get("sql")}, method, u.Path, u.RawQuery, body)
	return bridge.NewResponse(status, http.Header{"Content-Type": {"application/json"}}, reply), nil
}

// sqlStore is the Store in the object's SQLite storage. Each call is one
// synchronous statement, so the primary key alone decides a race.
type sqlStore struct{ sql js.Value }

const createClaims = "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, record TEXT NOT NULL)"

func (s sqlStore) Insert(key string, record []byte) bool {
	s.sql.Call("exec", createClaims)
	// RETURNING yields the row only when this statement inserted it.
	return s.sql.Call("exec", "INSERT INTO claims (key, record) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING key",
		key, string(record)).Call("toArray").Length() == 1
}

func (s sqlStore) Get(key string) ([]byte, bool) {
	if !s.hasTable() {
		return nil, false
	}
	rows := s.sql.Call("exec", "SELECT record FROM claims WHERE key = ?", key).Call("toArray")
	if rows.Length() == 0 {
		return nil, false
	}
	return []byte(rows.Index(0).Get("record").String()), true
}

func (s sqlStore) Delete(key string) {
	if s.hasTable() {
		s.sql.Call("exec", "DELETE FROM claims WHERE key = ?", key)
	}
}

// hasTable reports whether anything was ever claimed here, so a read of an
// unclaimed namespace creates no storage.
func (s sqlStore) hasTable() bool {
	return s.sql.Call("exec", "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'claims'").Call("toArray").Length() > 0
}
