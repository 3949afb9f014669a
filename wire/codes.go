// Package wire is the AMS v1 contract in Go: close codes, HTTP error codes,
// limits, identifiers, validation and frame encoding. The Worker, the Durable
// Object, the Go client and the tests all speak it, so every name, status and
// code below is declared exactly once.
package wire

// Close is a WebSocket close code with its exact reason text (PROTOCOL §3).
type Close struct {
	Code   int
	Reason string
}

// Close codes and reasons of PROTOCOL §3 and §5. Refusals are checked in the
// order of the refusal table; see worker.Admit and durable.Conversation.Admit.
var (
	CloseInvalidMagicLink        = Close{4001, "invalid_magic_link"}
	CloseStreamDisplaced         = Close{4001, "stream_displaced"}
	CloseMagicLinkRotated        = Close{4001, "magic_link_rotated"}
	CloseInvalidCredential       = Close{4002, "invalid_credential"}
	CloseConcurrencyLimit        = Close{4003, "concurrency_limit"}
	CloseConversationFull        = Close{4003, "conversation_full"}
	CloseStreamNameOwnerConflict = Close{4004, "stream_name_owner_conflict"}
	CloseConversationNotFound    = Close{4005, "conversation_not_found"}
	CloseInvalidStreamNameHeader = Close{4400, "invalid_stream_name_header"}
	CloseInvalidStreamMetadata   = Close{4400, "invalid_stream_metadata_header"}
	CloseInvalidSubscribeStreams = Close{4400, "invalid_subscribe_streams_header"}
	CloseInvalidResumeAfter      = Close{4400, "invalid_resume_after_header"}
	// CloseInvalidPeerIdentity refuses a malformed X-AMS-Peer-Identity (extension).
	CloseInvalidPeerIdentity    = Close{4400, "invalid_peer_identity_header"}
	CloseMalformedFrame         = Close{4400, "malformed_frame"}
	CloseUnknownFrameType       = Close{4400, "unknown_frame_type"}
	CloseTokenTooLarge          = Close{4400, "token_too_large"}
	CloseMetadataTooLarge       = Close{4400, "metadata_too_large"}
	CloseSubscriberBackpressure = Close{4290, "subscriber_backpressure"}
	CloseInternalError          = Close{4500, "internal_error"}
	// CloseNotJoined closes an MCP member's push leg when the member left or
	// expired (extension; the Worker reports it as notifications/ams/closed).
	CloseNotJoined = Close{4404, "not_joined"}
	CloseNormal    = Close{1000, ""}
)

// Error is a control-plane error: an HTTP status and the exact `error` code of
// PROTOCOL §2. Handlers answer {"error": Code, "message": ...}.
type Error struct {
	Status int
	Code   string
}

// Control-plane errors of PROTOCOL §2 (and §5 where marked).
var (
	ErrInvalidJSON           = Error{400, "invalid_json"}
	ErrBodyTooLarge          = Error{413, "body_too_large"}
	ErrNotFound              = Error{404, "not_found"}
	ErrMethodNotAllowed      = Error{405, "method_not_allowed"}
	ErrInvalidNamespace      = Error{400, "invalid_namespace"}
	ErrNamespaceTaken        = Error{409, "namespace_taken"}
	ErrMissingCredential     = Error{401, "missing_credential"}
	ErrInvalidCredential     = Error{401, "invalid_credential"}
	ErrNamespaceMismatch     = Error{403, "namespace_mismatch"}
	ErrInvalidAlias          = Error{400, "invalid_alias"}
	ErrInvalidStreamName     = Error{400, "invalid_stream_name"}
	ErrInvalidMetadata       = Error{400, "invalid_metadata"}
	ErrInvalidStreamMetadata = Error{400, "invalid_stream_metadata"}
	ErrMetadataTooLarge      = Error{400, "metadata_too_large"}
	ErrUnsupportedIDKind     = Error{400, "unsupported_id_kind"}
	ErrAliasTaken            = Error{409, "alias_taken"}
	ErrMissingToken          = Error{400, "missing_token"}
	ErrInvalidToken          = Error{403, "invalid_token"}
	ErrUpgradeRequired       = Error{426, "upgrade_required"}
	ErrServerMisconfigured   = Error{500, "server_misconfigured"}
	ErrInternal              = Error{500, "internal_error"}
	// ErrNotJoined answers an MCP tool call for a stream the caller has not joined (extension).
	ErrNotJoined = Error{404, "not_joined"}
	// ErrSessionNotFound answers an MCP request whose Mcp-Session-Id this
	// service did not issue or that was ended (the MCP transport's 404).
	ErrSessionNotFound = Error{404, "session_not_found"}
	// ErrMissingSessionID answers a DELETE without the Mcp-Session-Id to end.
	ErrMissingSessionID = Error{400, "missing_session_id"}
	// ErrInvalidArguments answers an MCP tool call whose arguments do not
	// match the tool's schema.
	ErrInvalidArguments = Error{400, "invalid_arguments"}
)
