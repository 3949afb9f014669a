package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func TestHeaderNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{HeaderStreamName, "X-AMS-Stream-Name"},
		{HeaderStreamMetadata, "X-AMS-Stream-Metadata"},
		{HeaderSelfSubscribe, "X-AMS-Self-Subscribe"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("header %q, want %q", tt.got, tt.want)
		}
	}
}

func TestJoinJSONRoundTrip(t *testing.T) {
	join := Join{
		ConversationID: "conv_01HZY0000000000000000000AA",
		AccountID:      "acc_01HZY0000000000000000000BB",
		StreamID:       "str_0123456789abcdef0123456789",
		StreamName:     "agent-a",
		Metadata:       json.RawMessage(`{"role":"planner","emoji":"😀"}`),
		SelfSubscribe:  true,
	}
	raw, err := json.Marshal(join)
	if err != nil {
		t.Fatal(err)
	}
	keys := objectKeys(t, raw)
	want := []string{"conversation_id", "account_id", "stream_id", "stream_name", "metadata", "self_subscribe"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("Join keys %v, want %v", keys, want)
	}
	var back Join
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Metadata, join.Metadata) {
		t.Errorf("metadata %s, want %s", back.Metadata, join.Metadata)
	}
	back.Metadata, join.Metadata = nil, nil
	if !reflect.DeepEqual(back, join) {
		t.Errorf("round trip %+v, want %+v", back, join)
	}
}
