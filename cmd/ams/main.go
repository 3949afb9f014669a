// Command ams is the shell client of AMS: it creates an account, mints
// conversations, joins them (stdin lines become tokens, peers' tokens print
// as lines), tails them, streams a command's output into them and inspects
// them. Everything it does goes through the client package; this command
// adds only argument parsing, a config file, a resume state file, and
// messages a person can act on.
//
// Each command lives in its own file (account.go, mint.go, join.go, tail.go,
// send.go, inspect.go); run is the whole program with its world passed in,
// so tests drive it without a process.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Env is everything the program touches outside itself.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// command is one `ams` subcommand.
type command struct {
	name    string
	summary string
	usage   string
	run     func(ctx context.Context, g globals, args []string, env Env) error
}

var commands = []command{
	{"account", "create an account (namespace) and save its credential", accountUsage, runAccount},
	{"mint", "mint a conversation and print its magic link", mintUsage, runMint},
	{"join", "join a conversation: stdin lines become tokens, peers' tokens print", joinUsage, runJoin},
	{"tail", "watch a conversation without writing to it", tailUsage, runTail},
	{"send", "send one token, or stream stdin as tokens", sendUsage, runSend},
	{"inspect", "show a conversation and its live streams", inspectUsage, runInspect},
}

const mainUsage = `ams — the shell client of AMS, real-time pub-sub for agents.

Usage:
  ams [--config FILE] [--host URL] [--insecure-http] COMMAND [flags] [args]
  ams help COMMAND

Commands:
%s
Credentials come from AMS_CREDENTIAL, or else from the config file
(--config, AMS_CONFIG, default $XDG_CONFIG_HOME/ams/config.json or
~/.config/ams/config.json), where ` + "`ams account create`" + ` saves them.
A saved credential is bound to the host it was created on and is sent
nowhere else (AMS_CREDENTIAL goes where the command goes, or only to
AMS_CREDENTIAL_HOST when that is set). --host (default: the config's host, else
http://localhost:8787) is the broker for account and mint; join, tail,
send and inspect take the host from the magic link. Plain http is refused
off this machine unless --insecure-http. A magic link may also come from
--link-file FILE or AMS_LINK instead of argv, where other users can see it.

Exit codes:
%s
Example (a 60-second tour is in docs/CLI.md):
  ams account create demo-9421
  LINK=$(ams mint)
  ams join "$LINK" --name me
  some-llm | ams send "$LINK" -
`

func usageText() string {
	var list string
	for _, c := range commands {
		list += fmt.Sprintf("  %-8s %s\n", c.name, c.summary)
	}
	return fmt.Sprintf(mainUsage, list, exitCodeTable())
}

func findCommand(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// run executes one invocation and returns its exit code. Everything it
// prints passes the terminal escaping (terminalWriter).
func run(ctx context.Context, args []string, env Env) int {
	env.Stdout, env.Stderr = terminalWriter{env.Stdout}, terminalWriter{env.Stderr}
	g, rest, err := parseGlobals(args, env)
	if err != nil {
		return report(env, err)
	}
	if len(rest) == 0 {
		fmt.Fprint(env.Stderr, usageText())
		return ExitUsage
	}
	name, rest := rest[0], rest[1:]
	switch name {
	case "-h", "-help", "--help":
		fmt.Fprint(env.Stdout, usageText())
		return ExitOK
	case "help":
		if len(rest) == 0 {
			fmt.Fprint(env.Stdout, usageText())
			return ExitOK
		}
		if c := findCommand(rest[0]); c != nil {
			fmt.Fprint(env.Stdout, commandHelp(c.usage))
			return ExitOK
		}
		return report(env, usagef("unknown command %q (see ams --help)", rest[0]))
	}
	c := findCommand(name)
	if c == nil {
		return report(env, usagef("unknown command %q (see ams --help)", name))
	}
	return report(env, c.run(ctx, g, rest, env))
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
}
