//go:build !lean

package main

import (
	"bytes"
	"flag"
	"reflect"
	"strings"
	"testing"
)

// Flags may stand after the positional arguments, as in `run VIDEO --json`; "--" ends them.
func TestParseTakesFlagsAnywhere(t *testing.T) {
	for _, c := range []struct {
		name       string
		args       []string
		json       bool
		every      int
		positional []string
	}{
		{"flags first", []string{"--json", "--every", "3", "video.mp4"}, true, 3, []string{"video.mp4"}},
		{"flags after the argument", []string{"video.mp4", "--json"}, true, 1, []string{"video.mp4"}},
		{"flags around the argument", []string{"--every", "2", "video.mp4", "--json"}, true, 2, []string{"video.mp4"}},
		{"two arguments", []string{"a", "--json", "b"}, true, 1, []string{"a", "b"}},
		{"double dash ends the flags", []string{"--every", "2", "--", "-odd-name.mp4", "--json"}, false, 2, []string{"-odd-name.mp4", "--json"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			jsonOut := fs.Bool("json", false, "")
			every := fs.Int("every", 1, "")
			if err := parse(fs, c.args); err != nil {
				t.Fatal(err)
			}
			if *jsonOut != c.json || *every != c.every || !reflect.DeepEqual(fs.Args(), c.positional) {
				t.Errorf("json %v every %d args %q; want %v %d %q", *jsonOut, *every, fs.Args(), c.json, c.every, c.positional)
			}
		})
	}
}

// -h states each default once: a flag whose usage explains its default must not get the flag
// package's "(default true)" as well.
func TestHelpStatesEachDefaultOnce(t *testing.T) {
	for _, c := range []struct {
		name  string
		flags func(fs *flag.FlagSet)
	}{
		{"run", func(fs *flag.FlagSet) { modelFlags(fs); addRequestFlags(fs); maxSourceFacesFlag(fs) }},
		{"stage", func(fs *flag.FlagSet) {
			clientFlags(fs, "x")
			topologyFlags(fs)
			ensureFlag(fs)
			tuningFlags(fs, "x")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
			c.flags(fs)
			var help bytes.Buffer
			fs.SetOutput(&help)
			fs.PrintDefaults()
			for _, block := range strings.Split(help.String(), "\n  -") {
				if strings.Count(block, "(default") > 1 {
					t.Errorf("-h states a default twice:\n  -%s", block)
				}
			}
		})
	}
}
