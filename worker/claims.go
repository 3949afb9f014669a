package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/ams-dev/ams/namespace"
	"github.com/ams-dev/ams/wire"
)

// Namespaces reaches the namespace objects (package namespace), the strongly
// consistent owners of every namespace and alias claim.
type Namespaces interface {
	// Call sends one request to the object of ns (path may carry a query)
	// and returns its status and body.
	Call(ctx context.Context, ns, method, path string, body []byte) (int, []byte, error)
}

// claim asks the owner of ns to claim path for record: true when this call
// won, false when the name was already taken.
func (s *Service) claim(ctx context.Context, ns, path string, record any) (bool, error) {
	status, _, err := s.Namespaces.Call(ctx, ns, http.MethodPost, path, wire.MarshalVerbatim(record))
	switch {
	case err != nil:
		return false, err
	case status == http.StatusCreated:
		return true, nil
	case status == http.StatusConflict:
		return false, nil
	}
	return false, fmt.Errorf("namespace object answered %d to a claim", status)
}

// owned reads the record the owner of ns holds for path; errNotFound when
// it holds none.
func (s *Service) owned(ctx context.Context, ns, path string, into any) error {
	status, body, err := s.Namespaces.Call(ctx, ns, http.MethodGet, path, nil)
	switch {
	case err != nil:
		return err
	case status == http.StatusNotFound:
		return errNotFound
	case status != http.StatusOK:
		return fmt.Errorf("namespace object answered %d to a read", status)
	}
	return json.Unmarshal(body, into)
}

// claimNamespace claims acc's namespace for it.
func (s *Service) claimNamespace(ctx context.Context, acc *Account) (bool, error) {
	return s.claim(ctx, acc.Namespace, namespace.AccountPath, acc)
}

// releaseNamespace frees acc's claims after its KV records failed to land,
// so the name is not blocked by an account whose credential nobody holds.
func (s *Service) releaseNamespace(ctx context.Context, acc *Account) {
	query := "?account_id=" + url.QueryEscape(acc.AccountID)
	for _, object := range []string{acc.Namespace, namespace.CredentialObject(acc.CredentialHash)} {
		_, _, _ = s.Namespaces.Call(ctx, object, http.MethodDelete, namespace.AccountPath+query, nil)
	}
}

// keepCredential stores acc under its credential's object before the
// credential is returned, so the credential authenticates at once wherever
// KV has not caught up (credentialAccount).
func (s *Service) keepCredential(ctx context.Context, acc *Account) error {
	stored, err := s.claim(ctx, namespace.CredentialObject(acc.CredentialHash), namespace.AccountPath, acc)
	if err == nil && !stored {
		err = errors.New("the credential's object already holds an account")
	}
	return err
}

// credentialAccount is the account the object of the credential hashed to
// hash holds: the lookup of last resort, for a credential whose KV index or
// account record has not propagated yet.
func (s *Service) credentialAccount(ctx context.Context, hash string, into *Account) error {
	return s.owned(ctx, namespace.CredentialObject(hash), namespace.AccountPath, into)
}

// claimAliasFor claims rec's alias in its namespace for rec.
func (s *Service) claimAliasFor(ctx context.Context, rec *ConversationRecord) (bool, error) {
	return s.claim(ctx, rec.Namespace, namespace.AliasPath(rec.Alias), rec)
}

// ownedConversation is the owner's record of ns/alias: the lookup of last
// resort, for a mint KV has not propagated yet.
func (s *Service) ownedConversation(ctx context.Context, ns, alias string) (*ConversationRecord, error) {
	var rec ConversationRecord
	if err := s.owned(ctx, ns, namespace.AliasPath(alias), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// writeKV is the KV a request's writes go to, and whether fault injection
// holds them back (wire.FaultKVLagHeader): a held-back write also stays out
// of the isolate's cache, as in another isolate.
func (s *Service) writeKV(r *http.Request) (KV, bool) {
	if s.FaultInjection && r.Header.Get(wire.FaultKVLagHeader) != "" {
		return unpropagatedKV{s.KV}, true
	}
	return s.KV, false
}

// unpropagatedKV is KV as another location sees it right after a write:
// the writes have not arrived. Fault injection uses it to prove that a mint
// is served by its owner before KV catches up.
type unpropagatedKV struct{ KV }

func (unpropagatedKV) Put(context.Context, string, string) error { return nil }
