package main

import (
	"reflect"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		positional []string
		name       string
		raw        bool
	}{
		{[]string{"LINK"}, []string{"LINK"}, "", false},
		{[]string{"LINK", "--name", "a", "--raw"}, []string{"LINK"}, "a", true},
		{[]string{"--raw", "LINK", "-name=b"}, []string{"LINK"}, "b", true},
		{[]string{"LINK", "-", "--name", "c"}, []string{"LINK", "-"}, "c", false},
		{[]string{"LINK", "--", "--name"}, []string{"LINK", "--name"}, "", false},
	} {
		var g globals
		fs := newFlagSet("join", &g)
		name := fs.String("name", "", "")
		raw := fs.Bool("raw", false, "")
		got, err := parseInterspersed(fs, tc.args, false)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !reflect.DeepEqual(got, tc.positional) || *name != tc.name || *raw != tc.raw {
			t.Errorf("%v: positional %q name %q raw %v", tc.args, got, *name, *raw)
		}
	}
}

func TestGlobalFlagsBeforeAndAfterTheCommand(t *testing.T) {
	g, rest, err := parseGlobals([]string{"--host", "h1", "--config", "c1", "mint", "--alias", "x"}, Env{})
	if err != nil {
		t.Fatal(err)
	}
	if g.host != "h1" || g.config != "c1" || !reflect.DeepEqual(rest, []string{"mint", "--alias", "x"}) {
		t.Fatalf("globals %+v, rest %q", g, rest)
	}
	fs := newFlagSet("mint", &g)
	fs.String("alias", "", "")
	if _, err := parseInterspersed(fs, []string{"--host", "h2"}, false); err != nil {
		t.Fatal(err)
	}
	if g.host != "h2" || g.config != "c1" {
		t.Fatalf("a command's --host should override the global one and keep --config: %+v", g)
	}
}

func TestJSONObjectFlag(t *testing.T) {
	var j jsonObject
	for _, bad := range []string{"", "[]", "1", `"s"`, "null", "{", `{"a":1} x`} {
		if j.Set(bad) == nil {
			t.Errorf("%q accepted as a JSON object", bad)
		}
	}
	if err := j.Set(`{"role": "planner"}`); err != nil || string(j.raw) != `{"role": "planner"}` {
		t.Fatalf("object rejected or re-encoded: %v %s", err, j.raw)
	}
}

func TestNameList(t *testing.T) {
	var n nameList
	n.Set("a, b,,c ")
	if !reflect.DeepEqual([]string(n), []string{"a", "b", "c"}) {
		t.Fatalf("%q", n)
	}
}
