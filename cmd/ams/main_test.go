package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runWith runs ams in-process with the given environment variables.
func runWith(t *testing.T, vars map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	env := Env{
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errw,
		Getenv: func(k string) string { return vars[k] },
	}
	code := run(context.Background(), args, env)
	return code, out.String(), errw.String()
}

func TestHelpForEveryCommand(t *testing.T) {
	code, out, _ := runWith(t, nil, "", "--help")
	if code != ExitOK || !strings.Contains(out, "Exit codes:") {
		t.Fatalf("ams --help: code %d, output:\n%s", code, out)
	}
	for _, c := range commands {
		if !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("ams --help does not list %s", c.name)
		}
		for _, args := range [][]string{{c.name, "--help"}, {"help", c.name}, {c.name, "-h"}} {
			code, out, errw := runWith(t, nil, "", args...)
			if code != ExitOK || errw != "" {
				t.Errorf("ams %v: code %d, stderr %q", args, code, errw)
			}
			if !strings.Contains(out, "Usage: ams "+c.name) || !strings.Contains(out, "Examples:") || !strings.Contains(out, "Exit codes:") {
				t.Errorf("ams %v: help lacks usage, examples or exit codes:\n%s", args, out)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nope"},
		{"join"},
		{"join", "a", "b"},
		{"join", "not-a-link"},
		{"join", "http://h/ns/conversations/a"},
		{"send", "http://h/ns/conversations/a?t=x"},
		{"send", "http://h/ns/conversations/a?t=x", "text", "--lines"},
		{"mint", "--metadata", "[1]"},
		{"mint", "--bogus"},
		{"account", "delete", "ns"},
		{"inspect", "http://h/ns/conversations/a?t=x", "--json=maybe"},
	} {
		code, out, errw := runWith(t, nil, "", args...)
		if code != ExitUsage {
			t.Errorf("ams %v: code %d, want %d (stderr %q)", args, code, ExitUsage, errw)
		}
		if out != "" && len(args) > 0 {
			t.Errorf("ams %v printed on stdout: %q", args, out)
		}
		if !strings.HasPrefix(errw, "ams") {
			t.Errorf("ams %v: no message on stderr", args)
		}
	}
}

func TestMissingCredentialIsAUsageError(t *testing.T) {
	vars := map[string]string{"AMS_CONFIG": t.TempDir() + "/config.json"}
	code, _, errw := runWith(t, vars, "", "send", "http://127.0.0.1:1/ns/conversations/a?t=x", "hi")
	if code != ExitUsage || !strings.Contains(errw, "ams account create") {
		t.Fatalf("code %d, stderr %q", code, errw)
	}
}
