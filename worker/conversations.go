package worker

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

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
	ctx := r.Context()
	acc, err := s.authenticate(ctx, bearer(r))
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
	if body.IDKind != nil && *body.IDKind != wire.IDKindUUID {
		writeError(w, wire.ErrUnsupportedIDKind, `id_kind must be "uuid"`)
		return
	}
	metadata, ok := s.metadataField(body.Metadata)
	if !ok {
		writeError(w, wire.ErrInvalidMetadata, "metadata must be a JSON object")
		return
	}
	streamMetadata, ok := s.metadataField(body.StreamMetadata)
	if !ok {
		writeError(w, wire.ErrInvalidStreamMetadata, "stream_metadata must be a JSON object")
		return
	}
	streamName := wire.NewDefaultStreamName()
	if body.StreamName != nil {
		if !wire.ValidStreamName(*body.StreamName) {
			writeError(w, wire.ErrInvalidStreamName, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
			return
		}
		streamName = *body.StreamName
	}
	if body.Alias != nil && !wire.ValidAlias(*body.Alias) {
		writeError(w, wire.ErrInvalidAlias, "alias must match ^[a-z0-9][a-z0-9-]{0,62}$")
		return
	}
	alias, err := s.claimAlias(r, p.ns, body.Alias)
	if err != nil {
		respond(w, err)
		return
	}
	token := wire.NewPermissiveToken()
	rec := ConversationRecord{
		ConversationID:      wire.NewConversationID(),
		Alias:               alias,
		Namespace:           p.ns,
		OwnerAccountID:      acc.AccountID,
		IDKind:              wire.IDKindUUID,
		PermissiveTokenHash: s.Peppers.PermissiveTokenHash(token),
		Metadata:            metadata,
		CreatedAt:           wire.Timestamp(s.Now()),
	}
	if err := putJSON(ctx, s.KV, conversationKey(rec.ConversationID), rec); err != nil {
		respond(w, err)
		return
	}
	if err := s.KV.Put(ctx, aliasKey(p.ns, alias), rec.ConversationID); err != nil {
		respond(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"conversation_id": rec.ConversationID,
		"alias":           alias,
		"magic_link":      MagicLink(r, p.ns, alias, token),
		"stream_id":       s.Peppers.StreamID(rec.ConversationID, acc.AccountID, streamName),
		"stream_name":     streamName,
		"metadata":        metadata,
		"stream_metadata": streamMetadata,
		"created_at":      rec.CreatedAt,
	})
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
	return scheme(r) + "://" + r.Host + "/" + ns + "/conversations/" + alias + "?t=" + url.QueryEscape(token)
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
	rec, err := conversationByAlias(ctx, s.KV, p.ns, p.alias)
	if errors.Is(err, errNotFound) {
		writeError(w, wire.ErrNotFound, "no conversation "+p.alias+" in namespace "+p.ns)
		return
	} else if err != nil {
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
	live, err := s.Streams.Streams(ctx, rec.ConversationID)
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
