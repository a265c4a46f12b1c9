package reader

import (
	"slices"
	"testing"

	"github.com/personcluster/personcluster/messages"
)

// kept lists the indices among 0..n-1 a file-clock sampler keeps, and the index it stops at
// (n when it reads to the end).
func kept(sp sampler, n int64) ([]int64, int64) {
	var out []int64
	for i := int64(0); i < n; i++ {
		switch sp.decideIndex(i) {
		case keepFrame:
			out = append(out, i)
		case stopHere:
			return out, i
		}
	}
	return out, n
}

func seqRange(from, to, step int64) []int64 {
	var out []int64
	for i := from; i < to; i += step {
		out = append(out, i)
	}
	return out
}

func TestSamplingArithmetic(t *testing.T) {
	cases := []struct {
		name string
		fps  float64
		n    int64
		s    messages.Sampling
		want []int64
		stop int64
	}{
		{"all frames", 25, 50, messages.Sampling{}, seqRange(0, 50, 1), 50},
		{"every 1 is all", 25, 50, messages.Sampling{EveryN: 1}, seqRange(0, 50, 1), 50},
		{"every 5th", 25, 50, messages.Sampling{EveryN: 5}, seqRange(0, 50, 5), 50},
		{"every 7th", 30, 30, messages.Sampling{EveryN: 7}, []int64{0, 7, 14, 21, 28}, 30},
		{"skip 2 s at 25 fps", 25, 100, messages.Sampling{SkipSeconds: 2}, seqRange(50, 100, 1), 100},
		{"stop at 3 s at 25 fps", 25, 100, messages.Sampling{StopSeconds: 3}, seqRange(0, 75, 1), 75},
		{"skip 1 s stop 3 s every 2nd", 25, 100, messages.Sampling{SkipSeconds: 1, StopSeconds: 3, EveryN: 2}, seqRange(26, 75, 2), 75},
		{"10 fps out of 30", 30, 31, messages.Sampling{TargetFPS: 10}, seqRange(0, 31, 3), 31},
		{"1 fps out of 25", 25, 101, messages.Sampling{TargetFPS: 1}, []int64{0, 25, 50, 75, 100}, 101},
		{"1 fps out of 29.97", 29.97, 95, messages.Sampling{TargetFPS: 1}, []int64{0, 30, 60, 90}, 95},
		{"2 fps out of 29.97", 29.97, 61, messages.Sampling{TargetFPS: 2}, []int64{0, 15, 30, 45, 60}, 61},
		{"target above the source rate keeps all", 10, 20, messages.Sampling{TargetFPS: 60}, seqRange(0, 20, 1), 20},
		// Buckets start at the skip time, not at 0.
		{"1 fps from 1.5 s at 10 fps", 10, 50, messages.Sampling{TargetFPS: 1, SkipSeconds: 1.5}, []int64{15, 25, 35, 45}, 50},
		// With every-N, the rate picks among every N-th frame.
		{"every 2nd then 5 fps out of 25", 25, 26, messages.Sampling{EveryN: 2, TargetFPS: 5}, []int64{0, 6, 10, 16, 20}, 26},
		{"stop before anything", 25, 100, messages.Sampling{SkipSeconds: 2, StopSeconds: 1}, nil, 25},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, stop := kept(sampler{s: c.s, fps: c.fps}, c.n)
			if !slices.Equal(got, c.want) || stop != c.stop {
				t.Errorf("kept %v stop %d, want %v stop %d", got, stop, c.want, c.stop)
			}
		})
	}
}

// The stateful path (live sources, unknown frame rate) must agree with the index-only path
// when the times are the same.
func TestSamplingStatefulAgrees(t *testing.T) {
	for _, s := range []messages.Sampling{
		{}, {EveryN: 3}, {TargetFPS: 4}, {TargetFPS: 2, SkipSeconds: 0.7}, {EveryN: 2, TargetFPS: 3, StopSeconds: 5},
	} {
		sp := sampler{s: s, fps: 24}
		want, _ := kept(sp, 200)
		var got []int64
		prev := int64(-1)
		for i := int64(0); i < 200; i++ {
			pts := sp.ptsOf(i)
			v := sp.decide(i, pts, prev)
			if sp.candidate(i, pts) {
				prev = pts
			}
			if v == stopHere {
				break
			}
			if v == keepFrame {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%+v: stateful %v, index-only %v", s, got, want)
		}
	}
}

// Every decision depends on the index alone: a reader resuming at any frame keeps exactly the
// frames the first reader would have kept from there.
func TestSamplingResumable(t *testing.T) {
	sp := sampler{s: messages.Sampling{TargetFPS: 3, SkipSeconds: 0.4, EveryN: 2}, fps: 29.97}
	full, _ := kept(sp, 300)
	for _, at := range []int64{1, 17, 100, 299} {
		var tail []int64
		for i := at; i < 300; i++ {
			if sp.decideIndex(i) == keepFrame {
				tail = append(tail, i)
			}
		}
		k := slices.IndexFunc(full, func(i int64) bool { return i >= at })
		if k < 0 {
			k = len(full)
		}
		if !slices.Equal(tail, full[k:]) {
			t.Errorf("resuming at %d keeps %v, want %v", at, tail, full[k:])
		}
	}
}

func TestPTS(t *testing.T) {
	sp := sampler{fps: 29.97}
	for i, want := range map[int64]int64{0: 0, 1: 33, 2: 67, 30: 1001, 275: 9176} {
		if got := sp.ptsOf(i); got != want {
			t.Errorf("pts of %d = %d, want %d", i, got, want)
		}
	}
	if got := (sampler{}).ptsOf(5); got != -1 {
		t.Errorf("pts with unknown fps = %d", got)
	}
}
