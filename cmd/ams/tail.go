package main

import "context"

const tailUsage = `Usage: ams tail LINK [--name N] [--raw] [--resume] [--subscribe a,b]

Watches the conversation of LINK without writing to it: an observer stream
that only reads. Peers' tokens print on stdout as "name: data", events on
stderr, like ams join; with --raw every wire frame prints as one JSON line
on stdout (joined, stream_joined, token, stream_metadata, stream_left).
Ctrl-C leaves.

Flags:
  --name N          the observer stream's name (default: generated)
  --raw             print every wire frame as one JSON line on stdout
  --resume          survive dropped connections and continue from the last seq
                    seen by the previous ` + "`ams tail --resume`" + ` of this link
  --subscribe a,b   watch only these streams
  --namespace NS    act as this saved account (default: the current one)
  --link-file F     read LINK from the first line of F ("-": stdin) instead
                    of argv; AMS_LINK works too
  --config F        the config file

Examples:
  ams tail "$LINK"
  ams tail "$LINK" --raw | jq -c 'select(.type == "token")'
  ams tail "$LINK" --subscribe planner,critic --resume
`

func runTail(ctx context.Context, g globals, args []string, env Env) error {
	return runStream(ctx, g, args, env, "tail", tailUsage)
}
