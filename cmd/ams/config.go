package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
// (when known) and the host of the control plane.
type Identity struct {
	Host       string
	Namespace  string
	Credential string
}

// resolveIdentity picks the credential (AMS_CREDENTIAL wins over the config
// file), the namespace (--namespace, AMS_NAMESPACE, the config's current)
// and the host (--host, the account's host, DefaultHost).
func resolveIdentity(c *Config, hostFlag, nsFlag string, getenv func(string) string) Identity {
	id := Identity{Namespace: nsFlag}
	if id.Namespace == "" {
		id.Namespace = getenv("AMS_NAMESPACE")
	}
	if id.Namespace == "" {
		id.Namespace = c.Current
	}
	acc, saved := c.Accounts[id.Namespace]
	if saved {
		id.Credential, id.Host = acc.Credential, acc.Host
	}
	if cred := getenv("AMS_CREDENTIAL"); cred != "" {
		id.Credential = cred
	}
	if hostFlag != "" {
		id.Host = hostFlag
	}
	if id.Host == "" {
		id.Host = DefaultHost
	}
	id.Host = normalizeHost(id.Host)
	return id
}

// normalizeHost accepts "localhost:8787" as well as a full origin.
func normalizeHost(h string) string {
	h = strings.TrimRight(h, "/")
	if !strings.Contains(h, "://") {
		h = "http://" + h
	}
	return h
}

// loadIdentity is resolveIdentity reading the config file named by g.
func loadIdentity(g globals, nsFlag string, env Env) (Identity, error) {
	path, err := configPath(g.config, env.Getenv)
	if err != nil {
		return Identity{}, err
	}
	c, err := loadConfig(path)
	if err != nil {
		return Identity{}, err
	}
	return resolveIdentity(c, g.host, nsFlag, env.Getenv), nil
}

// requireCredential fails with a message that says how to get one.
func (id Identity) requireCredential() error {
	if id.Credential != "" {
		return nil
	}
	if id.Namespace != "" {
		return usagef("no credential for namespace %q: set AMS_CREDENTIAL, or run `ams account create NAMESPACE`", id.Namespace)
	}
	return usagef("no credential: run `ams account create NAMESPACE` (it saves one) or set AMS_CREDENTIAL")
}
