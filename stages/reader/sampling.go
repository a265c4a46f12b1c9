package reader

import (
	"math"

	"github.com/personcluster/personcluster/messages"
)

// verdict is what the sampler says about one frame.
type verdict int

const (
	skipFrame verdict = iota // read past it
	keepFrame                // publish it
	stopHere                 // the stop time is reached: end the source
)

// sampler applies a request's Sampling (the original's -S, -k and -s options). For a file with
// a known frame rate every decision is a function of the frame index alone, so a reader that
// resumes a source makes exactly the decisions the first reader made.
type sampler struct {
	s   messages.Sampling
	fps float64 // source frame rate; 0 when unknown
}

// ptsOf is the presentation time of frame i of a file at a constant fps (-1 for i < 0).
func (sp sampler) ptsOf(i int64) int64 {
	if i < 0 || sp.fps <= 0 {
		return -1
	}
	return int64(math.Round(float64(i) * 1000 / sp.fps))
}

// step is the index distance between candidate frames (every N-th frame).
func (sp sampler) step() int64 {
	if sp.s.EveryN > 1 {
		return int64(sp.s.EveryN)
	}
	return 1
}

// decide judges frame i at pts (ms). prevPts is the time of the previous candidate frame (the
// one step() frames before, which passed every-N), or -1 when there is none.
//
// Rules: a frame at or after StopSeconds stops the source; a frame before SkipSeconds is
// skipped; with EveryN only frames whose index is a multiple of N are candidates; with
// TargetFPS the time from SkipSeconds on is cut into buckets of 1/TargetFPS seconds and the
// first candidate of each bucket is kept.
func (sp sampler) decide(i, pts, prevPts int64) verdict {
	s := sp.s
	if s.StopSeconds > 0 && float64(pts) >= s.StopSeconds*1000 {
		return stopHere
	}
	skipMs := s.SkipSeconds * 1000
	if float64(pts) < skipMs {
		return skipFrame
	}
	if n := sp.step(); n > 1 && i%n != 0 {
		return skipFrame
	}
	if s.TargetFPS > 0 && prevPts >= 0 && float64(prevPts) >= skipMs {
		if sp.bucket(pts) == sp.bucket(prevPts) {
			return skipFrame
		}
	}
	return keepFrame
}

// candidate reports whether frame i at pts passes the skip time and every-N: the frames among
// which TargetFPS picks.
func (sp sampler) candidate(i, pts int64) bool {
	return float64(pts) >= sp.s.SkipSeconds*1000 && i%sp.step() == 0
}

func (sp sampler) bucket(pts int64) int64 {
	return int64(math.Floor((float64(pts)-sp.s.SkipSeconds*1000)*sp.s.TargetFPS/1000 + 1e-9))
}

// decideIndex judges frame i of a file with a known frame rate.
func (sp sampler) decideIndex(i int64) verdict {
	return sp.decide(i, sp.ptsOf(i), sp.ptsOf(i-sp.step()))
}
