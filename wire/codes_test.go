package wire

import "testing"

// TestCloseCodes pins every close code and reason to PROTOCOL §3 and §5.
func TestCloseCodes(t *testing.T) {
	tests := []struct {
		got    Close
		code   int
		reason string
	}{
		{CloseInvalidMagicLink, 4001, "invalid_magic_link"},
		{CloseStreamDisplaced, 4001, "stream_displaced"},
		{CloseMagicLinkRotated, 4001, "magic_link_rotated"},
		{CloseInvalidCredential, 4002, "invalid_credential"},
		{CloseConcurrencyLimit, 4003, "concurrency_limit"},
		{CloseConversationFull, 4003, "conversation_full"},
		{CloseStreamNameOwnerConflict, 4004, "stream_name_owner_conflict"},
		{CloseConversationNotFound, 4005, "conversation_not_found"},
		{CloseInvalidStreamNameHeader, 4400, "invalid_stream_name_header"},
		{CloseInvalidStreamMetadata, 4400, "invalid_stream_metadata_header"},
		{CloseInvalidSubscribeStreams, 4400, "invalid_subscribe_streams_header"},
		{CloseInvalidResumeAfter, 4400, "invalid_resume_after_header"},
		{CloseMetadataTooLarge, 4400, "metadata_too_large"},
		{CloseNormal, 1000, ""},
		{CloseMalformedFrame, 4400, "malformed_frame"},
		{CloseUnknownFrameType, 4400, "unknown_frame_type"},
		{CloseTokenTooLarge, 4400, "token_too_large"},
		{CloseSubscriberBackpressure, 4290, "subscriber_backpressure"},
		{CloseInternalError, 4500, "internal_error"},
		{CloseNotJoined, 4404, "not_joined"},
		{CloseInvalidPeerIdentity, 4400, "invalid_peer_identity_header"},
	}
	for _, tt := range tests {
		if tt.got.Code != tt.code || tt.got.Reason != tt.reason {
			t.Errorf("close %+v, want {%d %s}", tt.got, tt.code, tt.reason)
		}
		// Close reasons must fit a WebSocket close frame (123 bytes).
		if len(tt.got.Reason) > 123 {
			t.Errorf("close reason %q is too long", tt.got.Reason)
		}
	}
}

// TestErrorCodes pins every control-plane error to PROTOCOL §2.
func TestErrorCodes(t *testing.T) {
	tests := []struct {
		got    Error
		status int
		code   string
	}{
		{ErrInvalidJSON, 400, "invalid_json"},
		{ErrSessionNotFound, 404, "session_not_found"},
		{ErrMissingSessionID, 400, "missing_session_id"},
		{ErrInvalidArguments, 400, "invalid_arguments"},
		{ErrBodyTooLarge, 413, "body_too_large"},
		{ErrNotFound, 404, "not_found"},
		{ErrMethodNotAllowed, 405, "method_not_allowed"},
		{ErrInvalidNamespace, 400, "invalid_namespace"},
		{ErrNamespaceTaken, 409, "namespace_taken"},
		{ErrMissingCredential, 401, "missing_credential"},
		{ErrInvalidCredential, 401, "invalid_credential"},
		{ErrNamespaceMismatch, 403, "namespace_mismatch"},
		{ErrInvalidAlias, 400, "invalid_alias"},
		{ErrInvalidStreamName, 400, "invalid_stream_name"},
		{ErrInvalidMetadata, 400, "invalid_metadata"},
		{ErrInvalidStreamMetadata, 400, "invalid_stream_metadata"},
		{ErrMetadataTooLarge, 400, "metadata_too_large"},
		{ErrUnsupportedIDKind, 400, "unsupported_id_kind"},
		{ErrAliasTaken, 409, "alias_taken"},
		{ErrMissingToken, 400, "missing_token"},
		{ErrInvalidToken, 403, "invalid_token"},
		{ErrUpgradeRequired, 426, "upgrade_required"},
		{ErrServerMisconfigured, 500, "server_misconfigured"},
		{ErrInternal, 500, "internal_error"},
	}
	for _, tt := range tests {
		if tt.got.Status != tt.status || tt.got.Code != tt.code {
			t.Errorf("error %+v, want {%d %s}", tt.got, tt.status, tt.code)
		}
	}
}
