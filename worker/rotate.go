package worker

import (
	"net/http"

	"github.com/ams-dev/ams/wire"
)

// rotateLink is POST /v1/{ns}/conversations/{alias}/rotate (extension): the
// owner gets a new magic link; the old one stops admitting (4001) and the
// streams it admitted are closed 4001 magic_link_rotated. KV is eventually
// consistent, so another location may accept the old link for up to a minute;
// the conversation object refuses any join older than the newest generation
// it has seen, so no such join lasts past the rotation notice.
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
	rec.PermissiveTokenHash = s.Peppers.PermissiveTokenHash(token)
	rec.LinkGeneration++
	if err := putJSON(ctx, s.KV, conversationKey(rec.ConversationID), rec); err != nil {
		respond(w, err)
		return
	}
	s.Cache.keepConversation(&rec, s.Now())
	if err := s.Objects.Rotate(ctx, rec.ConversationID, rec.LinkGeneration); err != nil {
		respond(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"conversation_id": rec.ConversationID,
		"alias":           rec.Alias,
		"magic_link":      MagicLink(r, rec.Namespace, rec.Alias, token),
		"link_generation": rec.LinkGeneration,
		"rotated_at":      wire.Timestamp(s.Now()),
	})
}
