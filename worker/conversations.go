package worker

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/ams-dev/ams/wire"
)

type createConversationBody struct {
	Alias          *string         `json:"alias"`
	StreamName     *string         `json:"stream_name"`
	IDKind         *string         `json:"id_kind"`
	Metadata       json.RawMessage `json:"metadata"`
	StreamMetadata json.RawMessage `json:"stream_metadata"`
}

// aliasAttempts bounds the retries of a generated alias on collision.
const aliasAttempts = 8

// createConversation is POST /v1/{ns}/conversations.
func (s *Service) createConversation(w http.ResponseWriter, r *http.Request, p params) {
	acc, err := s.authenticate(r.Context(), bearer(r))
	if err != nil {
		respond(w, err)
		return
	}
	if acc.Namespace != p.ns {
		writeError(w, wire.ErrNamespaceMismatch, "the credential's account does not own namespace "+p.ns)
		return
	}
	var body createConversationBody
	if err := s.readObject(r, true, &body); err != nil {
		respond(w, err)
		return
	}
	minted, err := s.mint(r, acc, body)
	if err != nil {
		respond(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, minted)
}

// mint creates a conversation owned by acc in its namespace; the magic link
// names the host r was sent to.
func (s *Service) mint(r *http.Request, acc *Account, body createConversationBody) (*wire.Minted, error) {
	ctx := r.Context()
	if body.IDKind != nil && *body.IDKind != wire.IDKindUUID {
		return nil, fail(wire.ErrUnsupportedIDKind, `id_kind must be "uuid"`)
	}
	metadata, ok := s.metadataField(body.Metadata)
	if !ok {
		return nil, fail(wire.ErrInvalidMetadata, "metadata must be a JSON object")
	}
	streamMetadata, ok := s.metadataField(body.StreamMetadata)
	if !ok {
		return nil, fail(wire.ErrInvalidStreamMetadata, "stream_metadata must be a JSON object")
	}
	streamName := wire.NewDefaultStreamName()
	if body.StreamName != nil {
		if !wire.ValidStreamName(*body.StreamName) {
			return nil, fail(wire.ErrInvalidStreamName, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
		}
		streamName = *body.StreamName
	}
	if body.Alias != nil && !wire.ValidAlias(*body.Alias) {
		return nil, fail(wire.ErrInvalidAlias, "alias must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	ns := acc.Namespace
	alias, err := s.claimAlias(r, ns, body.Alias)
	if err != nil {
		return nil, err
	}
	token := wire.NewPermissiveToken()
	rec := ConversationRecord{
		ConversationID:      wire.NewConversationID(),
		Alias:               alias,
		Namespace:           ns,
		OwnerAccountID:      acc.AccountID,
		IDKind:              wire.IDKindUUID,
		PermissiveTokenHash: s.Peppers.PermissiveTokenHash(token),
		Metadata:            metadata,
		CreatedAt:           wire.Timestamp(s.Now()),
	}
	// Both writes in flight at once: a mint costs one KV round trip, not two.
	// Should only the alias write land, lookups of it answer not_found, as
	// for an alias that was never minted.
	if err := parallel(
		func() error { return putJSON(ctx, s.KV, conversationKey(rec.ConversationID), rec) },
		func() error { return s.KV.Put(ctx, aliasKey(ns, alias), rec.ConversationID) },
	); err != nil {
		return nil, err
	}
	s.Cache.keepConversation(&rec, s.Now())
	return &wire.Minted{
		ConversationID: rec.ConversationID,
		Alias:          alias,
		MagicLink:      MagicLink(r, ns, alias, token),
		StreamID:       s.Peppers.StreamID(rec.ConversationID, acc.AccountID, streamName),
		StreamName:     streamName,
		Metadata:       metadata,
		StreamMetadata: streamMetadata,
		CreatedAt:      rec.CreatedAt,
	}, nil
}

// metadataField accepts an absent or null field as {} and otherwise demands
// a JSON object within the metadata limit.
func (s *Service) metadataField(raw json.RawMessage) (json.RawMessage, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(wire.EmptyObject), true
	}
	if len(raw) > s.Limits.MetadataBytes || !wire.IsJSONObject(raw) {
		return nil, false
	}
	return raw, true
}

// claimAlias checks a requested alias or generates a free one.
func (s *Service) claimAlias(r *http.Request, ns string, requested *string) (string, error) {
	ctx := r.Context()
	for attempt := 0; attempt < aliasAttempts; attempt++ {
		alias := wire.NewAlias()
		if requested != nil {
			alias = *requested
		}
		_, taken, err := s.KV.Get(ctx, aliasKey(ns, alias))
		if err != nil {
			return "", err
		}
		if !taken {
			return alias, nil
		}
		if requested != nil {
			return "", fail(wire.ErrAliasTaken, "alias "+alias+" is taken in namespace "+ns)
		}
	}
	return "", errors.New("no free alias after retries")
}

// MagicLink addresses a conversation on the host the client called, so one
// deployment serves every hostname routed to it.
func MagicLink(r *http.Request, ns, alias, token string) string {
	return wire.MagicLink{Origin: scheme(r) + "://" + r.Host, Namespace: ns, Alias: alias, Token: token}.String()
}

func scheme(r *http.Request) string {
	if r.URL.Scheme != "" {
		return r.URL.Scheme
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// getConversation is GET /v1/{ns}/conversations/{alias}, authorised by the
// link token t or by the owner's bearer.
func (s *Service) getConversation(w http.ResponseWriter, r *http.Request, p params) {
	ctx := r.Context()
	token := r.URL.Query().Get("t")
	credential := bearer(r)
	if token == "" && credential == "" {
		writeError(w, wire.ErrMissingToken, "pass the magic link's t, or the owner's bearer")
		return
	}
	rec, err := s.findConversation(ctx, p.ns, p.alias)
	if err != nil {
		respond(w, err)
		return
	}
	if token != "" {
		if !wire.HashesEqual(s.Peppers.PermissiveTokenHash(token), rec.PermissiveTokenHash) {
			writeError(w, wire.ErrInvalidToken, "the link token is not valid for this conversation")
			return
		}
	} else {
		acc, err := s.authenticate(ctx, credential)
		if err != nil {
			respond(w, err)
			return
		}
		if acc.AccountID != rec.OwnerAccountID {
			writeError(w, wire.ErrInvalidToken, "only the owner's bearer may inspect without the link token")
			return
		}
	}
	live, err := s.Objects.Streams(ctx, rec.ConversationID)
	if err != nil {
		respond(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"conversation_id": rec.ConversationID,
		"namespace":       rec.Namespace,
		"alias":           rec.Alias,
		"id_kind":         rec.IDKind,
		"metadata":        rec.Metadata,
		"created_at":      rec.CreatedAt,
		"streams":         live,
	})
}
