package worker

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/ams-dev/ams/wire"
)

// rotateLink is POST /v1/{ns}/conversations/{alias}/rotate (extension): the
// owner gets a new magic link; the old one stops admitting (4001) and the
// streams it admitted are closed 4001 magic_link_rotated.
//
// The conversation's object issues the generation, so concurrent rotations
// (from isolates whose cached records are equally stale) are serialized
// there: each gets its own generation and only the last link admits. KV is
// written after. Should that write fail or be late — or two writes land out
// of order — the object still knows the current link: a token KV does not
// know is checked against the object (currentLink), and a token KV still
// knows is refused by the object at join for its older generation. So
// exactly one link is valid, and the caller gets it.
func (s *Service) rotateLink(w http.ResponseWriter, r *http.Request, p params) {
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
	found, err := s.findConversation(ctx, p.ns, p.alias)
	if err != nil {
		respond(w, err)
		return
	}
	rec := *found // the found record may be the cache's; change a copy
	if rec.OwnerAccountID != acc.AccountID {
		writeError(w, wire.ErrNamespaceMismatch, "only the conversation's owner may rotate its link")
		return
	}
	token := wire.NewPermissiveToken()
	link, err := s.Objects.Rotate(ctx, rec.ConversationID, s.Peppers.PermissiveTokenHash(token))
	if err != nil {
		respond(w, err)
		return
	}
	rec.PermissiveTokenHash, rec.LinkGeneration = link.TokenHash, link.Generation
	kv, lagging := s.writeKV(r)
	if err := putJSON(ctx, kv, conversationKey(rec.ConversationID), rec); err != nil {
		// The object holds the new link; KV catches up on the next rotation.
		fmt.Fprintf(os.Stderr, "ams: rotation of %s: KV write failed, the object serves the link\n", rec.ConversationID)
	}
	if !lagging {
		s.Cache.keepConversation(&rec, s.Now())
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"conversation_id": rec.ConversationID,
		"alias":           rec.Alias,
		"magic_link":      MagicLink(r, rec.Namespace, rec.Alias, token),
		"link_generation": rec.LinkGeneration,
		"rotated_at":      wire.Timestamp(s.Now()),
	})
}

// currentLink checks a link token for a join. A token rec knows is passed
// on (the object refuses it at join if a newer rotation superseded it); one
// rec does not know may be a rotation KV or this isolate's cache has not
// caught up with, so the object, which issued it, is asked. It returns rec
// as of the token's link, or nil for a token that is no link of rec's.
func (s *Service) currentLink(ctx context.Context, rec *ConversationRecord, token string) (*ConversationRecord, error) {
	hash := s.Peppers.PermissiveTokenHash(token)
	if wire.HashesEqual(hash, rec.PermissiveTokenHash) {
		return rec, nil
	}
	link, err := s.Objects.Link(ctx, rec.ConversationID)
	if err != nil || link.TokenHash == "" || !wire.HashesEqual(hash, link.TokenHash) {
		return nil, err
	}
	fresh := *rec
	fresh.PermissiveTokenHash, fresh.LinkGeneration = link.TokenHash, link.Generation
	s.Cache.keepConversation(&fresh, s.Now())
	return &fresh, nil
}
