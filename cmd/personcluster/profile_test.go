//go:build !lean

package main

import (
	"flag"
	"io"
	"testing"

	"github.com/personcluster/personcluster/messages"
)

func TestClusteringProfiles(t *testing.T) {
	cases := []struct {
		args       []string
		cannotLink bool
		cut        messages.CutKind
		sim        float64
		ok         bool
	}{
		{nil, true, messages.CutCalibrated, 0.55, true},
		{[]string{"--sim", "0.3"}, true, messages.CutRelative, 0.3, true},
		{[]string{"--cannot-link=false"}, false, messages.CutCalibrated, 0.55, true},
		{[]string{"--profile", "original"}, false, "", 0.55, true},
		{[]string{"--profile", "original", "--cannot-link"}, true, "", 0.55, true},
		{[]string{"--profile", "fast"}, false, "", 0, false},
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		r := addRequestFlags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		req, err := r.request("video.mp4")
		if (err == nil) != c.ok {
			t.Errorf("%v: err %v, want ok=%v", c.args, err, c.ok)
			continue
		}
		if !c.ok {
			continue
		}
		if p := req.Params; p.CannotLink != c.cannotLink || p.Cut != c.cut || p.Sim != c.sim {
			t.Errorf("%v: cannot-link %v cut %q sim %v, want %v %q %v", c.args, p.CannotLink, p.Cut, p.Sim, c.cannotLink, c.cut, c.sim)
		}
	}
}
