package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

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
	raw, err := json.Marshal(record)
	if err != nil {
		return false, err
	}
	status, _, err := s.Namespaces.Call(ctx, ns, http.MethodPost, path, raw)
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

// releaseNamespace frees acc's claim after its KV records failed to land,
// so the name is not blocked by an account whose credential nobody holds.
func (s *Service) releaseNamespace(ctx context.Context, acc *Account) {
	_, _, _ = s.Namespaces.Call(ctx, acc.Namespace, http.MethodDelete,
		namespace.AccountPath+"?account_id="+url.QueryEscape(acc.AccountID), nil)
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

// ownedAccount is the owner's account record of ns, for a credential whose
// KV index has not propagated yet.
func (s *Service) ownedAccount(ctx context.Context, ns string) (*Account, error) {
	var acc Account
	if err := s.owned(ctx, ns, namespace.AccountPath, &acc); err != nil {
		return nil, err
	}
	return &acc, nil
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

// authenticateIn is authenticate for a request about namespace ns: a
// credential KV does not know yet (its account was just created elsewhere)
// is checked against the account ns's owner holds, so a new account can
// mint, rotate, inspect and join its own conversations at once.
func (s *Service) authenticateIn(ctx context.Context, credential, ns string) (*Account, error) {
	acc, err := s.authenticate(ctx, credential)
	var ae *apiError
	if !errors.As(err, &ae) || ae.code != wire.ErrInvalidCredential || !wire.ValidNamespace(ns) ||
		!strings.HasPrefix(credential, wire.CredentialPrefix) {
		return acc, err
	}
	owner, ownerErr := s.ownedAccount(ctx, ns)
	if ownerErr != nil {
		if errors.Is(ownerErr, errNotFound) {
			return nil, err
		}
		return nil, ownerErr
	}
	hash := s.Peppers.CredentialHash(credential)
	if !wire.HashesEqual(owner.CredentialHash, hash) {
		return nil, err
	}
	s.Cache.keepAccount(hash, owner, s.Now())
	return owner, nil
}
