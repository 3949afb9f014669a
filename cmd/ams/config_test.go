package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigPath(t *testing.T) {
	for _, tc := range []struct {
		flag string
		vars map[string]string
		want string
	}{
		{"/f.json", map[string]string{"AMS_CONFIG": "/e.json", "XDG_CONFIG_HOME": "/x"}, "/f.json"},
		{"", map[string]string{"AMS_CONFIG": "/e.json", "XDG_CONFIG_HOME": "/x"}, "/e.json"},
		{"", map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/ams/config.json"},
		{"", map[string]string{"HOME": "/h"}, "/h/.config/ams/config.json"},
	} {
		got, err := configPath(tc.flag, envOf(tc.vars))
		if err != nil || got != tc.want {
			t.Errorf("configPath(%q, %v) = %q, %v; want %q", tc.flag, tc.vars, got, err, tc.want)
		}
	}
}

func TestStatePath(t *testing.T) {
	got, _ := statePath(envOf(map[string]string{"HOME": "/h"}))
	if got != "/h/.local/state/ams/resume.json" {
		t.Fatal(got)
	}
	got, _ = statePath(envOf(map[string]string{"HOME": "/h", "XDG_STATE_HOME": "/s"}))
	if got != "/s/ams/resume.json" {
		t.Fatal(got)
	}
}

func TestSaveConfigIsPrivateAndRoundTrips(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "config.json")
	c := &Config{Current: "demo", Accounts: map[string]ConfigAccount{"demo": {Host: "http://h", AccountID: "acc_1", Credential: "ams_sk_x"}}}
	if err := saveConfig(path, c); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, want 0600", info.Mode().Perm())
	}
	back, err := loadConfig(path)
	if err != nil || back.Accounts["demo"].Credential != "ams_sk_x" || back.Current != "demo" {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	missing, err := loadConfig(filepath.Join(t.TempDir(), "none.json"))
	if err != nil || len(missing.Accounts) != 0 {
		t.Fatalf("a missing config should be empty: %+v %v", missing, err)
	}
}

func TestResolveIdentity(t *testing.T) {
	c := &Config{Current: "demo", Accounts: map[string]ConfigAccount{
		"demo":  {Host: "http://saved:1", Credential: "ams_sk_file"},
		"other": {Host: "https://other", Credential: "ams_sk_other"},
	}}
	id := resolveIdentity(c, "", "", "", envOf(nil))
	if id.Credential != "ams_sk_file" || id.Host != "http://saved:1" || id.Namespace != "demo" {
		t.Fatalf("from file: %+v", id)
	}
	id = resolveIdentity(c, "", "", "", envOf(map[string]string{"AMS_CREDENTIAL": "ams_sk_env"}))
	if id.Credential != "ams_sk_env" || id.Host != "http://saved:1" {
		t.Fatalf("env must win over the file: %+v", id)
	}
	id = resolveIdentity(c, "OTHER:443/", "other", "", envOf(nil))
	if id.Host != "http://other:443" || id.Credential != "" || id.requireCredential() == nil {
		t.Fatalf("an account bound to https://other must not go to http://other:443: %+v", id)
	}
	id = resolveIdentity(c, "https://OTHER:443/", "other", "", envOf(nil))
	if id.Credential != "ams_sk_other" || id.Host != "https://other" || id.Namespace != "other" {
		t.Fatalf("--namespace and --host naming the account's origin: %+v", id)
	}
	id = resolveIdentity(&Config{}, "", "", "", envOf(map[string]string{"AMS_NAMESPACE": "n"}))
	if id.Host != DefaultHost || id.Namespace != "n" || id.requireCredential() == nil {
		t.Fatalf("empty config: %+v", id)
	}
}

// TestCredentialIsBoundToItsOrigin: a link (or --host) elsewhere than the
// saved account's origin gets no bearer, and the refusal says why.
func TestCredentialIsBoundToItsOrigin(t *testing.T) {
	c := &Config{Current: "demo", Accounts: map[string]ConfigAccount{
		"demo": {Host: "http://127.0.0.1:8787", Credential: "ams_sk_local"},
		"prod": {Host: "https://ams.example.dev", Credential: "ams_sk_prod"},
	}}
	for _, tc := range []struct {
		link, ns, cred, why string
	}{
		{"http://127.0.0.1:8787", "", "ams_sk_local", ""},
		{"http://127.0.0.1:8788", "", "", `"demo" is bound to http://127.0.0.1:8787`},
		{"http://localhost:8787", "", "", "bound to"},
		{"https://127.0.0.1:8787", "", "", "bound to"},
		{"https://evil.example", "", "", "not sent to https://evil.example"},
		// Another saved account of the link's origin is used...
		{"https://ams.example.dev:443", "", "ams_sk_prod", ""},
		// ...unless a namespace was asked for.
		{"https://ams.example.dev", "demo", "", "bound to"},
	} {
		id := resolveIdentity(c, "", tc.ns, normalizeHost(tc.link), envOf(nil))
		if id.Credential != tc.cred {
			t.Errorf("link on %s: credential %q, want %q", tc.link, id.Credential, tc.cred)
		}
		err := id.requireCredential()
		if tc.why != "" && (err == nil || !strings.Contains(err.Error(), tc.why)) {
			t.Errorf("link on %s: refusal %v, want %q", tc.link, err, tc.why)
		}
	}
	id := resolveIdentity(c, "", "", "https://evil.example", envOf(map[string]string{"AMS_CREDENTIAL": "ams_sk_explicit"}))
	if id.Credential != "ams_sk_explicit" {
		t.Fatalf("AMS_CREDENTIAL is explicit and goes where the command goes: %+v", id)
	}
	bound := map[string]string{"AMS_CREDENTIAL": "ams_sk_explicit", "AMS_CREDENTIAL_HOST": "https://ams.example.dev"}
	id = resolveIdentity(c, "", "", "https://evil.example", envOf(bound))
	if err := id.requireCredential(); id.Credential != "" || err == nil || !strings.Contains(err.Error(), "AMS_CREDENTIAL is bound to https://ams.example.dev") {
		t.Fatalf("AMS_CREDENTIAL_HOST must bind AMS_CREDENTIAL: %+v %v", id, err)
	}
	if id = resolveIdentity(c, "", "", "https://ams.example.dev:443", envOf(bound)); id.Credential != "ams_sk_explicit" {
		t.Fatalf("AMS_CREDENTIAL on its bound host: %+v", id)
	}
}

func TestRecordPositionKeepsOtherEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resume.json")
	a, _ := parseLink("http://h/ns/conversations/a?t=tok-secret")
	rotated, _ := parseLink("http://h/ns/conversations/a?t=two")
	b, _ := parseLink("http://h/ns/conversations/b?t=x")
	if err := recordPosition(path, a, "join", "alice", 7); err != nil {
		t.Fatal(err)
	}
	if err := recordPosition(path, b, "tail", "bob", 3); err != nil {
		t.Fatal(err)
	}
	st, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seqs[seqKey(rotated, "alice")] != 7 || st.Names[nameKey(rotated, "join")] != "alice" {
		t.Fatalf("a rotated link should find its position: %+v", st)
	}
	if st.Seqs[seqKey(b, "bob")] != 3 || st.Names[nameKey(b, "join")] != "" {
		t.Fatalf("entries mixed up: %+v", st)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "tok-secret") {
		t.Fatalf("the state file must not hold the link's token: %s", raw)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Fatalf("state mode %v", info.Mode().Perm())
	}
}
