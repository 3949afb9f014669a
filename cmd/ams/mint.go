package main

import (
	"context"
	"fmt"

	"github.com/ams-dev/ams/client"
)

const mintUsage = `Usage: ams mint [--alias A] [--stream-name N] [--metadata JSON] [--stream-metadata JSON] [--json]

Mints a conversation owned by the current account and prints its magic link
on stdout, alone on one line, so LINK=$(ams mint) works. The details go to
stderr, or all of it to stdout as JSON with --json. The magic link is the
whole address: anyone holding it can join with their own credential.

Flags:
  --alias A              the conversation's alias (default: generated, e.g. swift-falcon-4821)
  --stream-name N        the owner's stream name (default: generated)
  --metadata JSON        conversation metadata, a JSON object
  --stream-metadata JSON the owner's stream metadata, a JSON object
  --namespace NS         mint in this saved account's namespace (default: the current one)
  --json                 print the whole answer as JSON on stdout
  --host URL, --config F as for every command

Examples:
  LINK=$(ams mint)
  ams mint --alias standup --metadata '{"topic":"daily standup"}'
  ams mint --json | jq -r .magic_link
`

func runMint(ctx context.Context, g globals, args []string, env Env) error {
	fs := newFlagSet("mint", &g)
	var req client.NewConversation
	var metadata, streamMetadata jsonObject
	fs.StringVar(&req.Alias, "alias", "", "")
	fs.StringVar(&req.StreamName, "stream-name", "", "")
	fs.Var(&metadata, "metadata", "")
	fs.Var(&streamMetadata, "stream-metadata", "")
	ns := fs.String("namespace", "", "")
	asJSON := fs.Bool("json", false, "")
	if _, err := parseCommand(fs, mintUsage, args, 0, 0, env); err != nil {
		return err
	}
	req.Metadata, req.StreamMetadata = metadata.raw, streamMetadata.raw
	id, err := loadIdentity(g, *ns, "", env)
	if err != nil {
		return err
	}
	if err := id.requireCredential(); err != nil {
		return err
	}
	if id.Namespace == "" {
		return usagef("no namespace: pass --namespace NS (or set AMS_NAMESPACE) with AMS_CREDENTIAL")
	}
	conv, err := controlClient(id.Host, id.Credential).CreateConversation(ctx, id.Namespace, req)
	if err != nil {
		return wrapNetwork(err, id.Host)
	}
	if *asJSON {
		writeJSON(env.Stdout, conv)
		return nil
	}
	fmt.Fprintln(env.Stdout, conv.MagicLink)
	fmt.Fprintf(env.Stderr, "minted %s/%s (%s); the owner's stream name is %s.\nAnyone with the link joins with their own credential:\n  ams join '%s'\n",
		id.Namespace, conv.Alias, conv.ConversationID, conv.StreamName, conv.MagicLink)
	return nil
}
