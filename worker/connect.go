package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/ams-dev/ams/wire"
)

// ConnectPattern is the stream-plane endpoint: the magic link plus /connect.
const ConnectPattern = "/{ns}/conversations/{alias}/connect"

// IsUpgrade reports whether r asks for a WebSocket.
func IsUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// IsConnect reports whether r is a WebSocket upgrade on the connect endpoint.
func IsConnect(r *http.Request) bool {
	_, ok := match(ConnectPattern, r.URL.Path)
	return ok && r.Method == http.MethodGet && IsUpgrade(r)
}

// connectWithoutUpgrade answers a plain GET of the connect endpoint.
func (s *Service) connectWithoutUpgrade(w http.ResponseWriter, _ *http.Request, _ params) {
	writeError(w, wire.ErrUpgradeRequired, "connect with a WebSocket upgrade")
}

// Admit authenticates a connect request, in the order of PROTOCOL §3's
// refusal table up to the checks that need the live conversation. A refusal
// is the close the socket gets right after the upgrade.
func (s *Service) Admit(r *http.Request) (wire.Join, *wire.Close) {
	join, refusal, err := s.admit(r.Context(), r)
	if err != nil {
		return wire.Join{}, &wire.CloseInternalError
	}
	return join, refusal
}

func (s *Service) admit(ctx context.Context, r *http.Request) (wire.Join, *wire.Close, error) {
	var join wire.Join
	if !s.Peppers.Complete() {
		return join, nil, errors.New("peppers missing")
	}
	p, _ := match(ConnectPattern, r.URL.Path)
	query := r.URL.Query() // once: a join reads up to nine parameters
	token := query.Get("t")
	if token == "" {
		return join, &wire.CloseInvalidMagicLink, nil
	}
	if !wire.ValidNamespace(p.ns) || !wire.ValidAlias(p.alias) {
		return join, &wire.CloseConversationNotFound, nil
	}
	rec, err := s.lookupConversation(ctx, p.ns, p.alias)
	if errors.Is(err, errNotFound) {
		return join, &wire.CloseConversationNotFound, nil
	} else if err != nil {
		return join, nil, err
	}
	if rec, err = s.currentLink(ctx, rec, token); err != nil {
		return join, nil, err
	} else if rec == nil {
		return join, &wire.CloseInvalidMagicLink, nil
	}
	credential := bearer(r)
	offered, _ := wire.ParseSubprotocols(r.Header.Get("Sec-WebSocket-Protocol"))
	if credential == "" {
		credential = offered
	}
	acc, err := s.authenticate(ctx, credential)
	var ae *apiError
	if errors.As(err, &ae) {
		return join, &wire.CloseInvalidCredential, nil
	} else if err != nil {
		return join, nil, err
	}
	name := streamParam(r, query, wire.HeaderStreamName)
	if name == "" {
		name = wire.NewDefaultStreamName()
	} else if !wire.ValidStreamName(name) {
		return join, &wire.CloseInvalidStreamNameHeader, nil
	}
	metadata, ok := wire.DecodeMetadataHeader(streamParam(r, query, wire.HeaderStreamMetadata), s.Limits.MetadataBytes)
	if !ok {
		return join, &wire.CloseInvalidStreamMetadata, nil
	}
	subscribe, ok := wire.ParseSubscribeStreams(streamParam(r, query, wire.HeaderSubscribeStreams), s.Limits.SubscribeStreams)
	if !ok {
		return join, &wire.CloseInvalidSubscribeStreams, nil
	}
	resumeAfter, ok := wire.ParseResumeAfter(streamParam(r, query, wire.HeaderResumeAfter))
	if !ok {
		return join, &wire.CloseInvalidResumeAfter, nil
	}
	identity, _, ok := wire.ParsePeerIdentity(json.RawMessage(streamParam(r, query, wire.HeaderPeerIdentity)))
	if !ok {
		return join, &wire.CloseInvalidPeerIdentity, nil
	}
	return wire.Join{
		ConversationID:   rec.ConversationID,
		AccountID:        acc.AccountID,
		StreamID:         s.Peppers.StreamID(rec.ConversationID, acc.AccountID, name),
		StreamName:       name,
		Metadata:         metadata,
		SelfSubscribe:    wire.ParseSelfSubscribe(streamParam(r, query, wire.HeaderSelfSubscribe)),
		ResumeAfter:      resumeAfter,
		SubscribeStreams: subscribe,
		Receipts:         wire.ParseSelfSubscribe(streamParam(r, query, wire.HeaderReceipts)),
		Acks:             wire.ParseSelfSubscribe(streamParam(r, query, wire.HeaderAcks)),
		LinkGeneration:   rec.LinkGeneration,
		Subprotocol:      Subprotocol(r),
		PeerIdentity:     identity,
	}, nil, nil
}

// streamParam reads a stream-plane header, or its query-parameter form for
// browsers, which cannot set WebSocket headers.
func streamParam(r *http.Request, query url.Values, header string) string {
	if v := r.Header.Get(header); v != "" {
		return v
	}
	return query.Get(wire.QueryForms[header])
}

// Subprotocol is the subprotocol the 101 must select: "ams.v1" when the
// client offered it (a browser join), else none.
func Subprotocol(r *http.Request) string {
	if _, v1 := wire.ParseSubprotocols(r.Header.Get("Sec-WebSocket-Protocol")); v1 {
		return wire.SubprotocolV1
	}
	return ""
}
