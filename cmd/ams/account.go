package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ams-dev/ams/client"
)

const accountUsage = `Usage: ams account create NAMESPACE [--json] [--no-save] [--host URL]

Registers NAMESPACE on the broker and prints the new account. Its credential
(ams_sk_...) is shown this once: the broker keeps only a hash of it. ams
saves it, with the host, to the config file (mode 0600) and makes this
account the current one, so mint, join, tail and send use it.

Flags:
  --json      print the account as JSON
  --no-save   do not write the config file (keep the credential yourself)
  --host URL  the broker (default: the config's host, else http://localhost:8787)
  --config F  the config file (default AMS_CONFIG, else $XDG_CONFIG_HOME/ams/config.json)

Examples:
  ams account create demo-9421
  ams account create demo-9421 --host https://ams.example.dev
  ams account create ci-bot --no-save --json | jq -r .credential
`

func runAccount(ctx context.Context, g globals, args []string, env Env) error {
	fs := newFlagSet("account", &g)
	asJSON := fs.Bool("json", false, "")
	noSave := fs.Bool("no-save", false, "")
	pos, err := parseCommand(fs, accountUsage, args, 2, 2, env)
	if err != nil {
		return err
	}
	if pos[0] != "create" {
		return usagef("unknown account command %q: only `ams account create NAMESPACE` exists", pos[0])
	}
	ns := pos[1]
	path, err := configPath(g.config, env.Getenv)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	host := resolveIdentity(cfg, g.host, "", "", env.Getenv).Host
	if err := checkTransport(g, host); err != nil {
		return err
	}
	acc, err := controlClient(host, "").CreateAccount(ctx, ns)
	if err != nil {
		return wrapNetwork(err, host)
	}
	if !*noSave {
		if cfg.Accounts == nil {
			cfg.Accounts = map[string]ConfigAccount{}
		}
		cfg.Accounts[acc.Namespace] = ConfigAccount{Host: host, AccountID: acc.AccountID, Credential: acc.Credential, CreatedAt: acc.CreatedAt}
		cfg.Current = acc.Namespace
		if err := saveConfig(path, cfg); err != nil {
			// The account exists now; print it anyway so the credential is not lost.
			printAccount(env, acc, *asJSON)
			return fmt.Errorf("the account was created but the config could not be saved: %v; keep the credential printed above", err)
		}
	}
	printAccount(env, acc, *asJSON)
	if *noSave {
		fmt.Fprintln(env.Stderr, "The credential is shown once and was not saved: keep it (export AMS_CREDENTIAL=...).")
	} else {
		fmt.Fprintf(env.Stderr, "The credential is shown once; saved to %s (mode 0600) as the current account.\n", path)
	}
	return nil
}

func printAccount(env Env, acc *client.Account, asJSON bool) {
	if asJSON {
		writeJSON(env.Stdout, acc)
		return
	}
	fmt.Fprintf(env.Stdout, "account_id  %s\nnamespace   %s\ncreated_at  %s\ncredential  %s\n",
		acc.AccountID, acc.Namespace, acc.CreatedAt, acc.Credential)
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) {
	raw, _ := json.MarshalIndent(v, "", "  ")
	w.Write(append(raw, '\n'))
}
