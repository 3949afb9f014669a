package worker

import (
	"net/http"

	"github.com/ams-dev/ams/wire"
)

// createAccount is POST /v1/accounts. The credential is returned here once
// and stored only as its peppered hash.
func (s *Service) createAccount(w http.ResponseWriter, r *http.Request, _ params) {
	body, err := s.readFields(r, false)
	if err != nil {
		respond(w, err)
		return
	}
	ns := body.text("namespace")
	if !wire.ValidNamespace(ns) {
		writeError(w, wire.ErrInvalidNamespace, "namespace must match ^[a-z0-9][a-z0-9-]{0,62}$")
		return
	}
	ctx := r.Context()
	if _, taken, err := s.KV.Get(ctx, namespaceKey(ns)); err != nil {
		respond(w, err)
		return
	} else if taken {
		writeError(w, wire.ErrNamespaceTaken, "namespace "+ns+" is taken")
		return
	}
	credential := wire.NewCredential()
	acc := Account{
		AccountID:      wire.NewAccountID(),
		Namespace:      ns,
		CredentialHash: s.Peppers.CredentialHash(credential),
		CreatedAt:      wire.Timestamp(s.Now()),
	}
	// The KV check above only refuses early (and covers namespaces the hosted
	// reference wrote); the namespace's object decides a race.
	if claimed, err := s.claimNamespace(ctx, &acc); err != nil {
		respond(w, err)
		return
	} else if !claimed {
		writeError(w, wire.ErrNamespaceTaken, "namespace "+ns+" is taken")
		return
	}
	// The KV namespace key goes last: should a write fail, the claims are
	// released and no half-created account blocks the name. The credential's
	// object is written beside KV, so the credential works at once anywhere.
	kv, _ := s.writeKV(r)
	err = parallel(
		func() error { return putJSON(ctx, kv, accountKey(acc.AccountID), acc) },
		func() error { return kv.Put(ctx, credentialIndexKey(acc.CredentialHash), acc.AccountID) },
		func() error { return s.keepCredential(ctx, &acc) },
	)
	if err == nil {
		err = kv.Put(ctx, namespaceKey(acc.Namespace), acc.AccountID)
	}
	if err != nil {
		s.releaseNamespace(ctx, &acc)
		respond(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{
		"account_id": acc.AccountID,
		"namespace":  acc.Namespace,
		"credential": credential,
		"created_at": acc.CreatedAt,
	})
}
