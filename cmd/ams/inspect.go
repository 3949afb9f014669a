package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ams-dev/ams/client"
)

const inspectUsage = `Usage: ams inspect LINK [--json]

Prints the conversation of LINK and its live streams (read from the
conversation's Durable Object). Needs only the link, no credential.

Flags:
  --json          print the broker's answer as JSON
  --link-file F   read LINK from the first line of F ("-": stdin) instead
                  of argv; AMS_LINK works too

Examples:
  ams inspect "$LINK"
  ams inspect "$LINK" --json | jq -r '.streams[].stream_name'
`

func runInspect(ctx context.Context, g globals, args []string, env Env) error {
	fs := newFlagSet("inspect", &g)
	asJSON := fs.Bool("json", false, "")
	var lf linkFlags
	lf.register(fs)
	pos, err := parseCommand(fs, inspectUsage, args, 0, 1, env)
	if err != nil {
		return err
	}
	link, _, err := lf.resolve(pos, 1, false, env)
	if err != nil {
		return err
	}
	if err := checkTransport(g, link.Origin); err != nil {
		return err
	}
	info, err := controlClient(link.Origin, "").Inspect(ctx, link.String())
	if err != nil {
		return wrapNetwork(err, link.Origin)
	}
	if *asJSON {
		writeJSON(env.Stdout, info)
		return nil
	}
	printConversation(env.Stdout, info)
	return nil
}

// printConversation renders inspect's answer for a person.
func printConversation(w io.Writer, info *client.ConversationInfo) {
	fmt.Fprintf(w, "conversation  %s\n", info.ConversationID)
	fmt.Fprintf(w, "address       %s/%s\n", info.Namespace, info.Alias)
	fmt.Fprintf(w, "created_at    %s\n", info.CreatedAt)
	if m := metadataSuffix(info.Metadata); m != "" {
		fmt.Fprintf(w, "metadata     %s\n", m)
	}
	if len(info.Streams) == 0 {
		fmt.Fprintln(w, "streams       none live")
		return
	}
	fmt.Fprintf(w, "streams       %d live\n", len(info.Streams))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tSTREAM ID\tOWNER\tMETADATA")
	for _, s := range info.Streams {
		m := compactJSON(s.Metadata)
		if m == "" || m == "null" {
			m = "{}"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", s.StreamName, s.StreamID, s.OwnerAccountID, m)
	}
	tw.Flush()
}
