// Package namespace is the namespace Durable Object: one object per
// namespace owns the claim on the namespace (its account) and on each alias
// minted in it, so two concurrent claims of one name can never both win.
// The same class, under another name (CredentialObject), owns each
// credential's account record, so a credential is known at once everywhere.
//
// Design. Workers KV has no compare-and-set and is eventually consistent, so
// a check-then-put there lets every racer through. The object is the single
// writer for its namespace instead: the Worker asks it to claim before it
// writes the KV records, and the object answers from one SQLite table whose
// primary key is the claim: the first insert wins and the rest see taken,
// however the Go scheduler or workerd interleave the requests.
//
// KV stays the read path, with the key layout and value shapes of the hosted
// reference, so a namespace written by the reference (and never claimed here)
// keeps working: the Worker still checks KV before claiming, and reads KV
// first. Each claim stores the record the Worker then writes to KV, so where
// KV has not caught up yet (another location, another isolate), the Worker
// asks the owner and a fresh mint is joinable and inspectable at once.
//
// A credential's index (credindex: in KV) propagates as slowly as the rest,
// and authentication cannot know the namespace before it knows the account.
// So the account is also stored under the credential's own object, named
// from its peppered hash (never the credential): a credential KV does not
// know yet is resolved there, whichever conversation it joins.
//
// Reads never create tables: a lookup of a namespace nobody claimed leaves
// the object without storage.
//
// This file is the logic, in plain Go and testable natively; namespace_js.go
// adapts it to workerd (the object's fetch, SQLite).
package namespace

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/ams-dev/ams/wire"
)

// Paths of the object, relative to any origin.
const (
	// AccountPath: POST claims the namespace for the account record in the
	// body; GET reads it; DELETE ?account_id= releases a claim whose KV
	// writes failed.
	AccountPath = "/account"
	// AliasPrefix + alias: POST claims the alias for the conversation record
	// in the body; GET reads it.
	AliasPrefix = "/aliases/"
)

// CredentialObject is the object name that owns the account of the
// credential whose peppered hash is hash. A namespace never contains ':', so
// the name cannot be a namespace's.
func CredentialObject(hash string) string { return "credential:" + hash }

// AliasPath is the object path of alias.
func AliasPath(alias string) string { return AliasPrefix + alias }

// Store is the object's storage: records keyed by claim.
type Store interface {
	// Insert stores record under key unless key exists; it reports whether
	// it stored.
	Insert(key string, record []byte) bool
	// Get returns the record of key.
	Get(key string) ([]byte, bool)
	// Delete removes key.
	Delete(key string)
}

const accountKey = "account"

func aliasKey(alias string) string { return "alias:" + alias }

// Serve answers one request to the object: the status and the JSON body.
// A claim answers 201 when it won and 409 when the name was taken; a read
// answers 200 with the record or 404.
func Serve(store Store, method, path, query string, body []byte) (int, []byte) {
	key, ok := route(path)
	if !ok {
		return http.StatusNotFound, nil
	}
	switch method {
	case http.MethodPost:
		var id struct {
			AccountID      string `json:"account_id"`
			ConversationID string `json:"conversation_id"`
		}
		if err := json.Unmarshal(body, &id); err != nil || (key == accountKey && id.AccountID == "") ||
			(key != accountKey && id.ConversationID == "") {
			return http.StatusBadRequest, nil
		}
		if !store.Insert(key, body) {
			return http.StatusConflict, []byte(wire.EmptyObject)
		}
		return http.StatusCreated, []byte(wire.EmptyObject)
	case http.MethodGet:
		record, found := store.Get(key)
		if !found {
			return http.StatusNotFound, nil
		}
		return http.StatusOK, record
	case http.MethodDelete:
		if key != accountKey {
			return http.StatusMethodNotAllowed, nil
		}
		values, _ := url.ParseQuery(query)
		release(store, values.Get("account_id"))
		return http.StatusNoContent, nil
	}
	return http.StatusMethodNotAllowed, nil
}

// release drops the namespace claim if it is still accountID's: a claimer
// whose KV writes failed frees the name, never someone else's claim.
func release(store Store, accountID string) {
	record, found := store.Get(accountKey)
	if !found || accountID == "" {
		return
	}
	var held struct {
		AccountID string `json:"account_id"`
	}
	if json.Unmarshal(record, &held) == nil && held.AccountID == accountID {
		store.Delete(accountKey)
	}
}

func route(path string) (string, bool) {
	if path == AccountPath {
		return accountKey, true
	}
	if alias, ok := strings.CutPrefix(path, AliasPrefix); ok && wire.ValidAlias(alias) {
		return aliasKey(alias), true
	}
	return "", false
}

// MemoryStore is a Store in memory: the native tests' stand-in for the
// object's SQLite table, with the same first-insert-wins rule.
type MemoryStore struct {
	mu      sync.Mutex
	records map[string][]byte
}

func (m *MemoryStore) Insert(key string, record []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, taken := m.records[key]; taken {
		return false
	}
	if m.records == nil {
		m.records = map[string][]byte{}
	}
	m.records[key] = append([]byte(nil), record...)
	return true
}

func (m *MemoryStore) Get(key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	record, found := m.records[key]
	return record, found
}

func (m *MemoryStore) Delete(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, key)
}
