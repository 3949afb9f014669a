package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ams-dev/ams/wire"
)

// KV is the subset of Workers KV the control plane uses, and its read path.
// Workers KV is eventually consistent and has no compare-and-set: a key
// written in one location may be invisible elsewhere for up to a minute. So
// KV decides no claim: the namespace objects (claims.go) do, and a lookup
// that misses in KV asks the owner before it answers not_found.
type KV interface {
	// Get returns the value of key and whether it exists.
	Get(ctx context.Context, key string) (string, bool, error)
	Put(ctx context.Context, key, value string) error
	Delete(ctx context.Context, key string) error
}

// Account is the stored record of account:{id}.
type Account struct {
	AccountID      string `json:"account_id"`
	Namespace      string `json:"namespace"`
	CredentialHash string `json:"credential_hash"`
	CreatedAt      string `json:"created_at"`
}

// ConversationRecord is the stored record of conversation:{id}.
type ConversationRecord struct {
	ConversationID      string          `json:"conversation_id"`
	Alias               string          `json:"alias"`
	Namespace           string          `json:"namespace"`
	OwnerAccountID      string          `json:"owner_account_id"`
	IDKind              string          `json:"id_kind"`
	PermissiveTokenHash string          `json:"permissive_token_hash"`
	Metadata            json.RawMessage `json:"metadata"`
	CreatedAt           string          `json:"created_at"`
	// LinkGeneration counts rotations of the magic link (extension).
	LinkGeneration int64 `json:"link_generation,omitempty"`
}

func accountKey(id string) string           { return "account:" + id }
func namespaceKey(ns string) string         { return "namespace:" + ns }
func credentialIndexKey(hash string) string { return "credindex:" + hash }
func aliasKey(ns, alias string) string      { return "alias:" + ns + ":" + alias }
func conversationKey(id string) string      { return "conversation:" + id }

var errNotFound = errors.New("not found")

func getJSON(ctx context.Context, kv KV, key string, into any) error {
	raw, found, err := kv.Get(ctx, key)
	if err != nil {
		return err
	}
	if !found {
		return errNotFound
	}
	return json.Unmarshal([]byte(raw), into)
}

func putJSON(ctx context.Context, kv KV, key string, value any) error {
	// Records hold client JSON (metadata, prompts): stored as sent, no HTML escaping.
	return kv.Put(ctx, key, string(wire.MarshalVerbatim(value)))
}

// conversationByAlias resolves alias:{ns}:{alias} and its record.
func conversationByAlias(ctx context.Context, kv KV, ns, alias string) (*ConversationRecord, error) {
	id, found, err := kv.Get(ctx, aliasKey(ns, alias))
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errNotFound
	}
	var rec ConversationRecord
	if err := getJSON(ctx, kv, conversationKey(id), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// findConversation is conversationByAlias for handlers: an unknown or
// malformed alias is the protocol's 404 not_found.
func (s *Service) findConversation(ctx context.Context, ns, alias string) (*ConversationRecord, error) {
	notFound := fail(wire.ErrNotFound, "no conversation "+alias+" in namespace "+ns)
	if !wire.ValidNamespace(ns) || !wire.ValidAlias(alias) {
		return nil, notFound
	}
	rec, err := s.lookupConversation(ctx, ns, alias)
	if errors.Is(err, errNotFound) {
		return nil, notFound
	}
	return rec, err
}

// lookupConversation is conversationByAlias through the isolate's cache, and
// the alias's owner where KV has not caught up with a mint.
func (s *Service) lookupConversation(ctx context.Context, ns, alias string) (*ConversationRecord, error) {
	if rec := s.Cache.conversation(ns, alias, s.Now()); rec != nil {
		return rec, nil
	}
	rec, err := conversationByAlias(ctx, s.KV, ns, alias)
	if errors.Is(err, errNotFound) {
		rec, err = s.ownedConversation(ctx, ns, alias)
	}
	if err == nil {
		s.Cache.keepConversation(rec, s.Now())
	}
	return rec, err
}

// parallel runs the steps concurrently and returns the first error. A step
// that panics fails with an error: a goroutine has no caller to recover
// it, and its panic would end the program for every request of the isolate.
func parallel(steps ...func() error) error {
	errs := make(chan error, len(steps))
	for _, step := range steps {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					errs <- fmt.Errorf("panic in a parallel step: %v", r)
				}
			}()
			errs <- step()
		}()
	}
	var first error
	for range steps {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
