package worker

import (
	"sync"
	"time"
)

// Cache keeps records the Worker read from KV in the isolate's memory, since
// the Go program lives as long as the isolate: a connect or a mint then skips
// most KV reads. It never holds what the protocol needs to be exact: account
// records never change once written, and a cached conversation record is at
// most ConversationTTL old — within KV's own propagation window — and is
// replaced in this isolate by a rotation. A nil *Cache caches nothing.
type Cache struct {
	accounts      ttlMap[*Account]
	conversations ttlMap[*ConversationRecord]
}

// Cache bounds.
const (
	AccountTTL      = 5 * time.Minute
	ConversationTTL = 10 * time.Second
	cacheEntries    = 4096
)

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{
		accounts:      ttlMap[*Account]{ttl: AccountTTL},
		conversations: ttlMap[*ConversationRecord]{ttl: ConversationTTL},
	}
}

type ttlEntry[V any] struct {
	value   V
	expires time.Time
}

// ttlMap is a bounded map whose entries expire; when full it starts over,
// which costs only re-reads.
type ttlMap[V any] struct {
	mu    sync.Mutex
	ttl   time.Duration
	items map[string]ttlEntry[V]
}

func (m *ttlMap[V]) get(key string, now time.Time) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.items[key]
	if !ok || now.After(e.expires) {
		var zero V
		return zero, false
	}
	return e.value, true
}

func (m *ttlMap[V]) put(key string, value V, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items == nil || len(m.items) >= cacheEntries {
		m.items = map[string]ttlEntry[V]{}
	}
	m.items[key] = ttlEntry[V]{value: value, expires: now.Add(m.ttl)}
}

func (c *Cache) account(hash string, now time.Time) *Account {
	if c == nil {
		return nil
	}
	acc, _ := c.accounts.get(hash, now)
	return acc
}

func (c *Cache) keepAccount(hash string, acc *Account, now time.Time) {
	if c != nil {
		c.accounts.put(hash, acc, now)
	}
}

func (c *Cache) conversation(ns, alias string, now time.Time) *ConversationRecord {
	if c == nil {
		return nil
	}
	rec, _ := c.conversations.get(aliasKey(ns, alias), now)
	return rec
}

func (c *Cache) keepConversation(rec *ConversationRecord, now time.Time) {
	if c != nil {
		c.conversations.put(aliasKey(rec.Namespace, rec.Alias), rec, now)
	}
}
