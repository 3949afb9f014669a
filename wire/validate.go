package wire

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// ValidAlias reports whether s matches ^[a-z0-9][a-z0-9-]{0,62}$.
func ValidAlias(s string) bool {
	return validName(s, func(c byte) bool { return isLower(c) || isDigit(c) }, func(c byte) bool { return c == '-' })
}

// ReservedNamespaces are first path segments of the broker's own routes; a
// namespace of that name would make /{ns}/conversations/... ambiguous.
var ReservedNamespaces = []string{"v1", "mcp", "healthz", "x", "api", "assets", "static"}

// ValidNamespace reports whether s matches ^[a-z0-9][a-z0-9-]{0,62}$ and is
// not reserved.
func ValidNamespace(s string) bool {
	return ValidAlias(s) && !slices.Contains(ReservedNamespaces, s)
}

// ValidStreamName reports whether s matches ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$.
func ValidStreamName(s string) bool {
	return validName(s, func(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) },
		func(c byte) bool { return c == '.' || c == '_' || c == '-' })
}

func validName(s string, first func(byte) bool, extra func(byte) bool) bool {
	if len(s) == 0 || len(s) > 63 || !first(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !first(s[i]) && !extra(s[i]) {
			return false
		}
	}
	return true
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// IsJSONObject reports whether raw is one valid JSON object, nested no
// deeper than MaxJSONDepth.
func IsJSONObject(raw []byte) bool {
	return utf8.Valid(raw) && ShallowJSON(raw, MaxJSONDepth) && gjson.ValidBytes(raw) && gjson.ParseBytes(raw).IsObject()
}

// EmptyObject is the metadata of a stream or conversation that set none.
var EmptyObject = []byte("{}")

// DecodeMetadataHeader decodes X-AMS-Stream-Metadata: standard base64 of a
// UTF-8 JSON object. An absent header is the empty object.
func DecodeMetadataHeader(header string, limit int) ([]byte, bool) {
	if header == "" {
		return EmptyObject, true
	}
	if base64.StdEncoding.DecodedLen(len(header)) > limit+3 {
		return nil, false
	}
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil {
		// Browsers and shells often drop the padding; accept it unpadded too.
		raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(header, "="))
	}
	if err != nil || len(raw) > limit || !IsJSONObject(raw) {
		return nil, false
	}
	return raw, true
}

// ParseSelfSubscribe reads a boolean header such as X-AMS-Self-Subscribe:
// "true" or "1" opt in.
func ParseSelfSubscribe(v string) bool {
	v = strings.TrimSpace(strings.ToLower(v))
	return v == "true" || v == "1"
}

var aliasAdjectives = []string{
	"amber", "brisk", "calm", "clever", "cosmic", "crisp", "daring", "eager", "fabled", "fierce",
	"gentle", "golden", "hidden", "humble", "icy", "jolly", "keen", "lively", "lucky", "mellow",
	"misty", "nimble", "noble", "polar", "proud", "quick", "quiet", "rapid", "rustic", "silent",
	"silver", "sleek", "solar", "steady", "stormy", "sunny", "swift", "tidal", "vivid", "wild",
}

var aliasNouns = []string{
	"anchor", "badger", "beacon", "canyon", "cedar", "comet", "coral", "delta", "ember", "falcon",
	"fjord", "forge", "glacier", "harbor", "heron", "lantern", "lynx", "maple", "meadow", "nebula",
	"orbit", "otter", "pebble", "pulse", "quartz", "raven", "reef", "ridge", "river", "sparrow",
	"spruce", "summit", "thistle", "thunder", "tundra", "valley", "willow", "wolf", "zenith", "zephyr",
}

// NewAlias returns a readable default alias: {adjective}-{noun}-{1000..9999}.
func NewAlias() string {
	return fmt.Sprintf("%s-%s-%d", pick(aliasAdjectives), pick(aliasNouns), 1000+randInt(9000))
}

func pick(words []string) string { return words[randInt(len(words))] }

func randInt(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}
