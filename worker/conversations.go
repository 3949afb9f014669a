package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"

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
	f, err := s.readFields(r, true)
	if err != nil {
		respond(w, err)
		return
	}
	minted, err := s.mint(r, acc, mintRequest(f))
	if err != nil {
		respond(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, minted)
}

// mintRequest decodes the members of a mint: the body of POST
// /v1/{ns}/conversations and the arguments of ams_create_conversation alike,
// so a member of the wrong type gets its own code on both.
func mintRequest(f fields) createConversationBody {
	return createConversationBody{
		Alias:          f.optionalText("alias"),
		StreamName:     f.optionalText("stream_name"),
		IDKind:         f.present("id_kind"),
		Metadata:       f["metadata"],
		StreamMetadata: f["stream_metadata"],
	}
}

// mint creates a conversation owned by acc in its namespace; the magic link
// names the host r was sent to.
func (s *Service) mint(r *http.Request, acc *Account, body createConversationBody) (*wire.Minted, error) {
	ctx := r.Context()
	// In the hosted reference's order, so a body with several faults gets
	// the code a client of the reference saw.
	if body.Alias != nil && !wire.ValidAlias(*body.Alias) {
		return nil, fail(wire.ErrInvalidAlias, "alias must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	streamName := wire.NewDefaultStreamName()
	if body.StreamName != nil {
		if !wire.ValidStreamName(*body.StreamName) {
			return nil, fail(wire.ErrInvalidStreamName, "stream_name must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
		}
		streamName = *body.StreamName
	}
	if body.IDKind != nil && *body.IDKind != wire.IDKindUUID {
		return nil, fail(wire.ErrUnsupportedIDKind, `id_kind must be "uuid"`)
	}
	// Conversation metadata holds prompts and instructions: it may fill the
	// whole body. Stream metadata rides in every joined frame: it keeps its limit.
	metadata, err := metadataField(body.Metadata, s.Limits.BodyBytes, wire.ErrInvalidMetadata, "metadata")
	if err != nil {
		return nil, err
	}
	streamMetadata, err := metadataField(body.StreamMetadata, s.Limits.MetadataBytes, wire.ErrInvalidStreamMetadata, "stream_metadata")
	if err != nil {
		return nil, err
	}
	ns := acc.Namespace
	token := wire.NewPermissiveToken()
	rec := ConversationRecord{
		ConversationID:      wire.NewConversationID(),
		Namespace:           ns,
		OwnerAccountID:      acc.AccountID,
		IDKind:              wire.IDKindUUID,
		PermissiveTokenHash: s.Peppers.PermissiveTokenHash(token),
		Metadata:            metadata,
		CreatedAt:           wire.Timestamp(s.Now()),
	}
	if err := s.claimAlias(ctx, &rec, body.Alias); err != nil {
		return nil, err
	}
	alias := rec.Alias
	kv, lagging := s.writeKV(r)
	// Both writes in flight at once: a mint costs one KV round trip, not two.
	// Until they land everywhere — or should they fail — lookups fall back
	// to the alias's owner, which holds the record: the mint stands.
	if err := parallel(
		func() error { return putJSON(ctx, kv, conversationKey(rec.ConversationID), rec) },
		func() error { return kv.Put(ctx, aliasKey(ns, alias), rec.ConversationID) },
	); err != nil {
		fmt.Fprintf(os.Stderr, "ams: mint of %s: KV write failed, the namespace object serves it\n", rec.ConversationID)
	}
	if !lagging {
		s.Cache.keepConversation(&rec, s.Now())
	}
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
// a JSON object (else invalid, naming the field) of at most limit bytes
// (else metadata_too_large).
func metadataField(raw json.RawMessage, limit int, invalid wire.Error, field string) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(wire.EmptyObject), nil
	}
	if !wire.IsJSONObject(raw) {
		return nil, fail(invalid, field+" must be a JSON object")
	}
	if len(raw) > limit {
		return nil, fail(wire.ErrMetadataTooLarge, field+" exceeds its limit of "+strconv.Itoa(limit)+" bytes")
	}
	return raw, nil
}

// claimAlias claims the requested alias, or a generated free one, for rec
// and sets rec.Alias. KV is checked first for aliases the hosted reference
// wrote; the namespace's object decides a race.
func (s *Service) claimAlias(ctx context.Context, rec *ConversationRecord, requested *string) error {
	for attempt := 0; attempt < aliasAttempts; attempt++ {
		rec.Alias = wire.NewAlias()
		if requested != nil {
			rec.Alias = *requested
		}
		_, taken, err := s.KV.Get(ctx, aliasKey(rec.Namespace, rec.Alias))
		if err != nil {
			return err
		}
		if !taken {
			if taken, err = s.claimAliasFor(ctx, rec); err != nil {
				return err
			}
			taken = !taken
		}
		if !taken {
			return nil
		}
		if requested != nil {
			return fail(wire.ErrAliasTaken, "alias "+rec.Alias+" is taken in namespace "+rec.Namespace)
		}
	}
	return errors.New("no free alias after retries")
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
	var live []wire.StreamInfo
	if token != "" {
		// KV's record may predate a rotation: the object that issued the
		// link decides, asked alongside the streams.
		var link wire.LinkState
		if err := parallel(
			func() (err error) { link, err = s.Objects.Link(ctx, rec.ConversationID); return err },
			func() (err error) { live, err = s.Objects.Streams(ctx, rec.ConversationID); return err },
		); err != nil {
			respond(w, err)
			return
		}
		if !link.Admits(s.Peppers.PermissiveTokenHash(token), rec.PermissiveTokenHash, rec.LinkGeneration) {
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
		if live, err = s.Objects.Streams(ctx, rec.ConversationID); err != nil {
			respond(w, err)
			return
		}
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
