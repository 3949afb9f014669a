package wire

import (
	"reflect"
	"testing"
)

func TestDefaultLimits(t *testing.T) {
	// PROTOCOL §5: 64 KiB per token, 10 streams per account, 1000
	// connections per conversation, 64 KiB control-plane body.
	if DefaultLimits.TokenBytes != 65536 {
		t.Errorf("TokenBytes = %d, want 65536", DefaultLimits.TokenBytes)
	}
	if DefaultLimits.BodyBytes != 65536 {
		t.Errorf("BodyBytes = %d, want 65536", DefaultLimits.BodyBytes)
	}
	if DefaultLimits.StreamsPerAccount != 10 {
		t.Errorf("StreamsPerAccount = %d, want 10", DefaultLimits.StreamsPerAccount)
	}
	if DefaultLimits.ConnectionsPerConversation != 1000 {
		t.Errorf("ConnectionsPerConversation = %d, want 1000", DefaultLimits.ConnectionsPerConversation)
	}
	if DefaultLimits.MetadataBytes <= 0 {
		t.Errorf("MetadataBytes = %d, want positive", DefaultLimits.MetadataBytes)
	}
}

func TestLimitVarsCoverEveryField(t *testing.T) {
	fields := map[*int]string{}
	var l Limits
	for name, field := range LimitVars {
		p := field(&l)
		if other, dup := fields[p]; dup {
			t.Errorf("%s and %s override the same field", name, other)
		}
		fields[p] = name
	}
	if n := reflect.TypeOf(Limits{}).NumField(); len(fields) != n {
		t.Errorf("LimitVars overrides %d fields, Limits has %d", len(fields), n)
	}
}

func TestLimitsFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Limits
	}{
		{"no overrides", nil, DefaultLimits},
		{
			"every override",
			map[string]string{
				"AMS_LIMIT_TOKEN_BYTES":                  "100",
				"AMS_LIMIT_BODY_BYTES":                   "200",
				"AMS_LIMIT_METADATA_BYTES":               "300",
				"AMS_LIMIT_STREAMS_PER_ACCOUNT":          "4",
				"AMS_LIMIT_CONNECTIONS_PER_CONVERSATION": "5",
			},
			Limits{TokenBytes: 100, BodyBytes: 200, MetadataBytes: 300, StreamsPerAccount: 4, ConnectionsPerConversation: 5},
		},
		{
			"one override",
			map[string]string{"AMS_LIMIT_STREAMS_PER_ACCOUNT": "2"},
			func() Limits { l := DefaultLimits; l.StreamsPerAccount = 2; return l }(),
		},
		{
			"invalid values ignored",
			map[string]string{
				"AMS_LIMIT_TOKEN_BYTES":                  "abc",
				"AMS_LIMIT_BODY_BYTES":                   "0",
				"AMS_LIMIT_METADATA_BYTES":               "-5",
				"AMS_LIMIT_STREAMS_PER_ACCOUNT":          "1.5",
				"AMS_LIMIT_CONNECTIONS_PER_CONVERSATION": "",
			},
			DefaultLimits,
		},
		{
			"valid next to invalid",
			map[string]string{"AMS_LIMIT_TOKEN_BYTES": "1", "AMS_LIMIT_BODY_BYTES": "lots"},
			func() Limits { l := DefaultLimits; l.TokenBytes = 1; return l }(),
		},
		{
			"unrelated variables ignored",
			map[string]string{"AMS_LIMIT_TOKENS": "1", "TOKEN_BYTES": "1"},
			DefaultLimits,
		},
	}
	before := DefaultLimits
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LimitsFromEnv(func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("LimitsFromEnv = %+v, want %+v", got, tt.want)
			}
		})
	}
	if DefaultLimits != before {
		t.Errorf("LimitsFromEnv changed DefaultLimits to %+v", DefaultLimits)
	}
}
