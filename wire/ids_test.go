package wire

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

var testPeppers = Peppers{Credential: "cred-pepper", Permissive: "perm-pepper"}

// sha256Hex is computed here independently of the package's own helper.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestPeppersComplete(t *testing.T) {
	tests := []struct {
		p    Peppers
		want bool
	}{
		{Peppers{}, false},
		{Peppers{Credential: "c"}, false},
		{Peppers{Permissive: "p"}, false},
		{Peppers{Credential: "c", Permissive: "p"}, true},
	}
	for _, tt := range tests {
		if got := tt.p.Complete(); got != tt.want {
			t.Errorf("%+v.Complete() = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestCredentialAndPermissiveTokenHash(t *testing.T) {
	for _, v := range []string{"", "ams_sk_abc", "t0k3n-_", "a:b", "é"} {
		if got, want := testPeppers.CredentialHash(v), sha256Hex("cred-pepper:"+v); got != want {
			t.Errorf("CredentialHash(%q) = %s, want %s", v, got, want)
		}
		if got, want := testPeppers.PermissiveTokenHash(v), sha256Hex("perm-pepper:"+v); got != want {
			t.Errorf("PermissiveTokenHash(%q) = %s, want %s", v, got, want)
		}
	}
	other := Peppers{Credential: "other", Permissive: "other2"}
	if testPeppers.CredentialHash("x") == other.CredentialHash("x") {
		t.Error("CredentialHash does not depend on the credential pepper")
	}
	if testPeppers.PermissiveTokenHash("x") == other.PermissiveTokenHash("x") {
		t.Error("PermissiveTokenHash does not depend on the permissive pepper")
	}
	if testPeppers.CredentialHash("x") == testPeppers.PermissiveTokenHash("x") {
		t.Error("credential and permissive hashes use the same pepper")
	}
}

func TestStreamID(t *testing.T) {
	tests := []struct{ conv, acc, name string }{
		{"conv_01HZY0000000000000000000AA", "acc_01HZY0000000000000000000BB", "agent-a"},
		{"conv_01HZY0000000000000000000AA", "acc_01HZY0000000000000000000BB", "agent-b"},
		{"conv_01HZY0000000000000000000AA", "acc_01HZY0000000000000000000CC", "agent-a"},
		{"conv_01HZY0000000000000000000DD", "acc_01HZY0000000000000000000BB", "agent-a"},
		{"", "", ""},
	}
	shape := regexp.MustCompile(`^str_[0-9a-f]{26}$`)
	seen := map[string]bool{}
	for _, tt := range tests {
		got := testPeppers.StreamID(tt.conv, tt.acc, tt.name)
		want := "str_" + sha256Hex("perm-pepper" + ":" + "stream|" + tt.conv + "|" + tt.acc + "|" + tt.name)[:26]
		if got != want {
			t.Errorf("StreamID(%q, %q, %q) = %s, want %s", tt.conv, tt.acc, tt.name, got, want)
		}
		if !shape.MatchString(got) {
			t.Errorf("StreamID = %q, want str_ + 26 lowercase hex", got)
		}
		if again := testPeppers.StreamID(tt.conv, tt.acc, tt.name); again != got {
			t.Errorf("StreamID is not deterministic: %s then %s", got, again)
		}
		if seen[got] {
			t.Errorf("StreamID %s repeats for distinct inputs", got)
		}
		seen[got] = true
	}
	if a, b := testPeppers.StreamID("c", "a", "n"), (Peppers{Credential: "cred-pepper", Permissive: "x"}).StreamID("c", "a", "n"); a == b {
		t.Error("StreamID does not depend on the permissive pepper")
	}
	if a, b := testPeppers.StreamID("c", "a", "n"), (Peppers{Credential: "x", Permissive: "perm-pepper"}).StreamID("c", "a", "n"); a != b {
		t.Error("StreamID depends on the credential pepper")
	}
}

func TestAnonAccountID(t *testing.T) {
	shape := regexp.MustCompile(`^acc_anon_[0-9a-f]{26}$`)
	for _, tok := range []string{"", "abc", NewPermissiveToken()} {
		got := testPeppers.AnonAccountID(tok)
		want := "acc_anon_" + sha256Hex("perm-pepper:anon-account|" + tok)[:26]
		if got != want {
			t.Errorf("AnonAccountID(%q) = %s, want %s", tok, got, want)
		}
		if !shape.MatchString(got) {
			t.Errorf("AnonAccountID(%q) = %s, want acc_anon_ + 26 hex", tok, got)
		}
	}
	if testPeppers.AnonAccountID("a") == testPeppers.AnonAccountID("b") {
		t.Error("AnonAccountID does not depend on the token")
	}
}

func TestHashesEqual(t *testing.T) {
	h := sha256Hex("x")
	tests := []struct {
		a, b string
		want bool
	}{
		{h, h, true},
		{"", "", true},
		{h, sha256Hex("y"), false},
		{h, h[:63], false},
		{h, h + "0", false},
		{h, "", false},
		{h, strings.ToUpper(h), false},
	}
	for _, tt := range tests {
		if got := HashesEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("HashesEqual(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// checkRandom draws n values from gen, checks each with check and that all differ.
func checkRandom(t *testing.T, name string, n int, gen func() string, check func(string) error) {
	t.Helper()
	seen := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		v := gen()
		if err := check(v); err != nil {
			t.Fatalf("%s() = %q: %v", name, v, err)
		}
		if seen[v] {
			t.Fatalf("%s() repeated %q within %d draws", name, v, i+1)
		}
		seen[v] = true
	}
}

type checkError string

func (e checkError) Error() string { return string(e) }

// base64urlBytes checks s is unpadded base64url of exactly n bytes.
func base64urlBytes(s string, n int) error {
	if strings.ContainsAny(s, "=+/") {
		return checkError("not unpadded base64url")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) != n {
		return checkError("wrong decoded length")
	}
	return nil
}

func TestNewCredential(t *testing.T) {
	checkRandom(t, "NewCredential", 2000, NewCredential, func(v string) error {
		if !strings.HasPrefix(v, "ams_sk_") {
			return checkError("missing ams_sk_ prefix")
		}
		if len(v) != len("ams_sk_")+43 {
			return checkError("want ams_sk_ + 43 characters")
		}
		return base64urlBytes(strings.TrimPrefix(v, "ams_sk_"), 32)
	})
}

func TestNewPermissiveToken(t *testing.T) {
	checkRandom(t, "NewPermissiveToken", 2000, NewPermissiveToken, func(v string) error {
		if len(v) != 43 {
			return checkError("want 43 characters")
		}
		return base64urlBytes(v, 32)
	})
}

func TestNewDefaultStreamName(t *testing.T) {
	checkRandom(t, "NewDefaultStreamName", 2000, NewDefaultStreamName, func(v string) error {
		if !strings.HasPrefix(v, "stream-") || len(v) != len("stream-")+8 {
			return checkError("want stream- + 8 characters")
		}
		if !ValidStreamName(v) {
			return checkError("not a valid stream name")
		}
		return base64urlBytes(strings.TrimPrefix(v, "stream-"), 6)
	})
}

func TestNewAccountAndConversationID(t *testing.T) {
	ulidOf := func(prefix string) func(string) error {
		return func(v string) error {
			if !strings.HasPrefix(v, prefix) {
				return checkError("missing " + prefix + " prefix")
			}
			rest := strings.TrimPrefix(v, prefix)
			if len(rest) != 26 {
				return checkError("want a 26-character ULID")
			}
			id, err := ulid.ParseStrict(rest)
			if err != nil {
				return err
			}
			if d := time.Since(ulid.Time(id.Time())); d < -time.Minute || d > time.Minute {
				return checkError("ULID time is not now")
			}
			return nil
		}
	}
	checkRandom(t, "NewAccountID", 2000, NewAccountID, ulidOf("acc_"))
	checkRandom(t, "NewConversationID", 2000, NewConversationID, ulidOf("conv_"))
}

var wireTimestamp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func TestTimestamp(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2024, 1, 2, 3, 4, 5, 6_000_000, time.UTC), "2024-01-02T03:04:05.006Z"},
		{time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), "2024-01-02T03:04:05.000Z"},
		{time.Date(2024, 1, 2, 3, 4, 5, 999_999_999, time.UTC), "2024-01-02T03:04:05.999Z"},
		{time.Date(2024, 1, 2, 3, 4, 5, 120_000_000, time.UTC), "2024-01-02T03:04:05.120Z"},
		{time.Date(2024, 1, 2, 8, 34, 5, 7_000_000, time.FixedZone("IST", 5*3600+1800)), "2024-01-02T03:04:05.007Z"},
		{time.Date(2023, 12, 31, 22, 0, 0, 1_000_000, time.FixedZone("X", -3*3600)), "2024-01-01T01:00:00.001Z"},
	}
	for _, tt := range tests {
		got := Timestamp(tt.in)
		if got != tt.want {
			t.Errorf("Timestamp(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if !wireTimestamp.MatchString(got) {
			t.Errorf("Timestamp(%v) = %q, not RFC 3339 UTC with ms", tt.in, got)
		}
	}
	now := time.Now()
	got := Timestamp(now)
	parsed, err := time.Parse(time.RFC3339Nano, got)
	if err != nil {
		t.Fatalf("Timestamp(now) = %q does not parse as RFC 3339: %v", got, err)
	}
	if !parsed.Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("Timestamp(now) = %q, want %v to the millisecond", got, now)
	}
}
