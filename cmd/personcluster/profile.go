//go:build !lean

package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/personcluster/personcluster/messages"
)

// Clustering profiles of run and ingest.
const (
	// profileTuned (the default) keeps two faces of one frame apart and cuts at the face
	// model's calibrated height unless --sim is given: settings measured to work for both face
	// backends (see the ablation in the README).
	profileTuned = "tuned"
	// profileOriginal is the original's cluster(), scipy-exact: cut at max(d)·(1−sim), no
	// cannot-links.
	profileOriginal = "original"
)

type profileFlags struct {
	profile            string
	cannotLink, tracks bool
}

func addProfileFlags(fs *flag.FlagSet) *profileFlags {
	pf := &profileFlags{}
	fs.StringVar(&pf.profile, "profile", profileTuned, "clustering profile: tuned (cannot-links, tracks, the face model's calibrated cut unless --sim is given) or original (the original's scipy-exact cut at max(d)·(1−sim))")
	// A BoolFunc: a plain bool flag would add "(default true)" to a default that is the profile's.
	fs.BoolFunc("cannot-link", "never put two faces of one frame in one cluster (default: on in the tuned profile, off in the original; =false turns it off)", func(v string) error {
		on, err := strconv.ParseBool(v)
		pf.cannotLink = on
		return err
	})
	fs.BoolFunc("tracks", "cluster tracks, not single faces: a face that stays in place from one sampled frame to the next (and looks alike) is one person, described by the mean of its faces (default: on in the tuned profile, off in the original; =false turns it off)", func(v string) error {
		on, err := strconv.ParseBool(v)
		pf.tracks = on
		return err
	})
	return pf
}

// apply sets the clustering mode of p from the profile and the flags given explicitly.
func (pf *profileFlags) apply(fs *flag.FlagSet, p *messages.Params) error {
	switch pf.profile {
	case profileTuned:
		tuned := messages.TunedParams()
		p.CannotLink, p.Tracks, p.Cut = tuned.CannotLink, tuned.Tracks, tuned.Cut
		if isSet(fs, "sim") {
			p.Cut = messages.CutRelative
		}
	case profileOriginal:
		p.CannotLink, p.Tracks, p.Cut = false, false, ""
	default:
		return fmt.Errorf("--profile %q: want %s or %s", pf.profile, profileTuned, profileOriginal)
	}
	if isSet(fs, "cannot-link") {
		p.CannotLink = pf.cannotLink
	}
	if isSet(fs, "tracks") {
		p.Tracks = pf.tracks
	}
	return nil
}
