package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ams-dev/ams/client"
)

// DefaultHost is the broker `make dev` serves.
const DefaultHost = "http://localhost:8787"

// Config is the file `ams account create` writes: the accounts this user
// created and which one commands use. It holds secrets, so it is 0600.
type Config struct {
	// Current is the namespace of the account commands use by default.
	Current  string                   `json:"current,omitempty"`
	Accounts map[string]ConfigAccount `json:"accounts,omitempty"`
}

// ConfigAccount is one saved account, keyed by its namespace.
type ConfigAccount struct {
	Host       string `json:"host"`
	AccountID  string `json:"account_id"`
	Credential string `json:"credential"`
	CreatedAt  string `json:"created_at,omitempty"`
}

// configPath resolves where the config lives: --config, AMS_CONFIG,
// $XDG_CONFIG_HOME/ams/config.json, then ~/.config/ams/config.json.
func configPath(flagValue string, getenv func(string) string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p := getenv("AMS_CONFIG"); p != "" {
		return p, nil
	}
	return userFile(getenv, "XDG_CONFIG_HOME", ".config", "config.json")
}

// userFile is $XDG_var/ams/name, or ~/fallback/ams/name.
func userFile(getenv func(string) string, xdgVar, fallback, name string) (string, error) {
	if dir := getenv(xdgVar); dir != "" {
		return filepath.Join(dir, "ams", name), nil
	}
	home := getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", usagef("cannot find a home directory for the ams %s: set %s or HOME", name, xdgVar)
		}
	}
	return filepath.Join(home, fallback, "ams", name), nil
}

// loadConfig reads path; a missing file is an empty config.
func loadConfig(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, usagef("cannot read config %s: %v", path, err)
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, usagef("config %s is not valid JSON: %v", path, err)
	}
	return &c, nil
}

// saveConfig writes c to path atomically, readable by its owner only.
func saveConfig(path string, c *Config) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writePrivateFile(path, append(raw, '\n'))
}

// writePrivateFile replaces path with data (mode 0600, directory 0700)
// through a rename, so a reader never sees half a file.
func writePrivateFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Identity is what a command acts as: a credential, the namespace it owns
// (when known) and the origin it talks to.
type Identity struct {
	Host       string
	Namespace  string
	Credential string
	// withheld says why a saved credential was not chosen: it is bound to
	// another origin than Host.
	withheld string
}

// resolveIdentity picks the origin (the link's for join, tail and send;
// else --host, the account's host, DefaultHost), the namespace
// (--namespace, AMS_NAMESPACE, the config's current) and the credential.
// A saved credential is bound to the origin it was created on (scheme,
// host and port) and goes nowhere else: when the chosen account is bound
// elsewhere, another saved account of the target origin is used if the
// namespace was not asked for, else none. AMS_CREDENTIAL is passed
// explicitly and goes to whatever origin the command talks to, or, when
// AMS_CREDENTIAL_HOST is set, to that origin only.
func resolveIdentity(c *Config, hostFlag, nsFlag, linkOrigin string, getenv func(string) string) Identity {
	id := Identity{Namespace: nsFlag}
	if id.Namespace == "" {
		id.Namespace = getenv("AMS_NAMESPACE")
	}
	askedNamespace := id.Namespace != ""
	if id.Namespace == "" {
		id.Namespace = c.Current
	}
	acc, saved := c.Accounts[id.Namespace]
	switch {
	case linkOrigin != "":
		id.Host = linkOrigin
	case hostFlag != "":
		id.Host = hostFlag
	case saved:
		id.Host = acc.Host
	default:
		id.Host = DefaultHost
	}
	id.Host = normalizeHost(id.Host)
	envBound := ""
	if cred := getenv("AMS_CREDENTIAL"); cred != "" {
		bound := getenv("AMS_CREDENTIAL_HOST")
		if bound == "" || client.SameOrigin(normalizeHost(bound), id.Host) {
			id.Credential = cred
			return id
		}
		envBound = fmt.Sprintf("AMS_CREDENTIAL is bound to %s (AMS_CREDENTIAL_HOST), so it is not sent to %s", normalizeHost(bound), id.Host)
	}
	if saved && client.SameOrigin(acc.Host, id.Host) {
		id.Credential = acc.Credential
		return id
	}
	if !askedNamespace {
		names := make([]string, 0, len(c.Accounts))
		for ns := range c.Accounts {
			names = append(names, ns)
		}
		sort.Strings(names)
		for _, ns := range names {
			if client.SameOrigin(c.Accounts[ns].Host, id.Host) {
				id.Namespace, id.Credential = ns, c.Accounts[ns].Credential
				return id
			}
		}
	}
	switch {
	case envBound != "":
		id.withheld = envBound
	case saved:
		id.withheld = fmt.Sprintf("the saved account %q is bound to %s, so its credential is not sent to %s", id.Namespace, normalizeHost(acc.Host), id.Host)
	}
	return id
}

// normalizeHost accepts "localhost:8787" as well as a full origin, and
// spells it canonically (client.Origin) when it is one.
func normalizeHost(h string) string {
	h = strings.TrimRight(h, "/")
	if !strings.Contains(h, "://") {
		h = "http://" + h
	}
	if o, err := client.Origin(h); err == nil {
		return o
	}
	return h
}

// loadIdentity is resolveIdentity reading the config file named by g, and
// refusing plain http to anything but loopback unless --insecure-http.
func loadIdentity(g globals, nsFlag, linkOrigin string, env Env) (Identity, error) {
	path, err := configPath(g.config, env.Getenv)
	if err != nil {
		return Identity{}, err
	}
	c, err := loadConfig(path)
	if err != nil {
		return Identity{}, err
	}
	id := resolveIdentity(c, g.host, nsFlag, linkOrigin, env.Getenv)
	return id, checkTransport(g, id.Host)
}

// checkTransport refuses plain http off this machine: the bearer and the
// link's t would cross the network in clear.
func checkTransport(g globals, origin string) error {
	if err := client.CheckTransport(origin, g.insecureHTTP); err != nil {
		return usagef("refusing plain http to %s: the credential and the link's t would travel unencrypted (use https, or pass --insecure-http if you mean it)", origin)
	}
	return nil
}

// requireCredential fails with a message that says how to get one.
func (id Identity) requireCredential() error {
	if id.Credential != "" {
		return nil
	}
	if id.withheld != "" {
		return usagef("%s: set AMS_CREDENTIAL to a credential of that host, or create an account there (`ams account create NAMESPACE --host %s`)", id.withheld, id.Host)
	}
	if id.Namespace != "" {
		return usagef("no credential for namespace %q: set AMS_CREDENTIAL, or run `ams account create NAMESPACE`", id.Namespace)
	}
	return usagef("no credential for %s: run `ams account create NAMESPACE --host %s` (it saves one) or set AMS_CREDENTIAL", id.Host, id.Host)
}
