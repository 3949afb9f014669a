package main

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
)

// globals are the flags every command accepts, before or after its name.
type globals struct {
	config string // --config, empty: AMS_CONFIG or the default path
	host   string // --host, empty: the config's host or DefaultHost
	// insecureHTTP allows plain http to a host other than loopback.
	insecureHTTP bool
}

// errHelp is returned when --help was asked for and printed.
var errHelp = errors.New("help printed")

func parseGlobals(args []string, env Env) (globals, []string, error) {
	var g globals
	fs := newFlagSet("ams", &g)
	rest, err := parseInterspersed(fs, args, true)
	if err == flag.ErrHelp {
		return g, []string{"--help"}, nil
	}
	if err != nil {
		return g, nil, usagef("%v (see ams --help)", err)
	}
	return g, rest, nil
}

// newFlagSet is a silent flag set carrying the global flags, whose values
// start from g so `ams --host X join` and `ams join --host X` agree.
func newFlagSet(name string, g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&g.config, "config", g.config, "config file")
	fs.StringVar(&g.host, "host", g.host, "broker URL")
	fs.BoolVar(&g.insecureHTTP, "insecure-http", g.insecureHTTP, "allow plain http off loopback")
	return fs
}

// parseInterspersed parses flags wherever they appear among the positional
// arguments (the standard library stops at the first positional). With
// stopAtFirst it returns at the first positional, for the global flags that
// precede a command name. "--" ends the flags; "-" is a positional.
func parseInterspersed(fs *flag.FlagSet, args []string, stopAtFirst bool) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// fs.Parse consumed a "--" if it met one: everything after it is positional.
		if consumedDashDash(args, rest) || stopAtFirst {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func consumedDashDash(args, rest []string) bool {
	i := len(args) - len(rest) - 1
	return i >= 0 && args[i] == "--"
}

// parseCommand parses a command's flags and checks its positional count.
func parseCommand(fs *flag.FlagSet, usage string, args []string, lo, hi int, env Env) ([]string, error) {
	positional, err := parseInterspersed(fs, args, false)
	if err == flag.ErrHelp {
		io.WriteString(env.Stdout, commandHelp(usage))
		return nil, errHelp
	}
	if err != nil {
		return nil, usagef("%v (see ams %s --help)", err, fs.Name())
	}
	if len(positional) < lo || len(positional) > hi {
		return nil, usagef("%s (see ams %s --help)", argCountProblem(len(positional), lo), fs.Name())
	}
	return positional, nil
}

// commandHelp is a command's usage followed by the exit codes.
func commandHelp(usage string) string {
	return usage + "\nExit codes:\n" + exitCodeTable()
}

func argCountProblem(n, lo int) string {
	switch {
	case n < lo && lo == 1:
		return "missing argument"
	case n < lo:
		return "missing arguments"
	default:
		return "too many arguments"
	}
}

// jsonObject is a flag holding a JSON object (metadata). Empty means unset.
type jsonObject struct{ raw json.RawMessage }

func (j *jsonObject) String() string { return string(j.raw) }

func (j *jsonObject) Set(s string) error {
	raw, err := parseJSONObject(s)
	if err != nil {
		return err
	}
	j.raw = raw
	return nil
}

// parseJSONObject accepts only a JSON object, as metadata must be.
func parseJSONObject(s string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &obj); err != nil || obj == nil {
		return nil, errors.New(`must be a JSON object, e.g. '{"role":"planner"}'`)
	}
	return json.RawMessage(s), nil
}

// nameList is a flag holding comma-separated stream names.
type nameList []string

func (n *nameList) String() string { return strings.Join(*n, ",") }

func (n *nameList) Set(s string) error {
	*n = nil
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name != "" {
			*n = append(*n, name)
		}
	}
	return nil
}
