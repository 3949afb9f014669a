package worker

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ams-dev/ams/wire"
)

// TestInspectListingBounded: an inspect reply listing a full conversation
// (1000 streams, metadata at its limit, full of characters an HTML escaper
// writes as six) stays within wire.Limits.StreamListBytes plus the
// conversation's own fields, and carries the metadata as it was sent.
func TestInspectListingBounded(t *testing.T) {
	limits := wire.DefaultLimits
	fill := strings.Repeat("<>&", (limits.MetadataBytes-12)/3)
	metadata := json.RawMessage(`{"x":"` + fill + `"}`)
	streams := make([]wire.StreamInfo, limits.ConnectionsPerConversation)
	for i := range streams {
		streams[i] = wire.StreamInfo{ID: fmt.Sprintf("str_%026d", i), Name: fmt.Sprintf("stream-%03d", i),
			Owner: fmt.Sprintf("acc_%026d", i/10), Metadata: metadata}
	}
	w := httptest.NewRecorder()
	writeJSON(w, 200, map[string]any{"conversation_id": "conv_x", "metadata": json.RawMessage(`{}`), "streams": streams})
	body := w.Body.String()
	if n := len(body); n > limits.StreamListBytes()+limits.BodyBytes {
		t.Fatalf("a 1000-stream inspect reply is %d bytes, over the bound %d", n, limits.StreamListBytes()+limits.BodyBytes)
	}
	if !strings.Contains(body, fill) {
		t.Fatal("the reply does not carry the metadata verbatim")
	}
}
