package hac

import (
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/personcluster/personcluster/stages/clusterer/hac/internal/synth"
)

// benchN is 1000, or HAC_BENCH_N for larger runs (e.g. HAC_BENCH_N=10000).
func benchN(b *testing.B) int {
	if s := os.Getenv("HAC_BENCH_N"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			b.Fatalf("HAC_BENCH_N=%q", s)
		}
		return n
	}
	return 1000
}

func BenchmarkPdist(b *testing.B) {
	n := benchN(b)
	pts := synth.Fingerprints(n, 1)
	b.SetBytes(int64(CondensedLen(n) * 8))
	for b.Loop() {
		if _, err := Pdist(pts, "euclidean"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLinkage(b *testing.B) {
	n := benchN(b)
	d, err := Pdist(synth.Fingerprints(n, 1), "euclidean")
	if err != nil {
		b.Fatal(err)
	}
	work := newCondensed(n) // huge pages, as Pdist gives them
	for _, m := range Methods {
		b.Run(m, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				copy(work, d)
				b.StartTimer()
				if _, err := LinkageInPlace(work, n, m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCluster(b *testing.B) {
	n := benchN(b)
	pts := synth.Fingerprints(n, 1)
	for b.Loop() {
		if _, err := Cluster(pts, nil, DefaultParams()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFcluster(b *testing.B) {
	n := benchN(b)
	d, _ := Pdist(synth.Fingerprints(n, 1), "euclidean")
	t := Threshold(d, DefaultSim)
	z, _ := LinkageInPlace(slices.Clone(d), n, "average")
	for b.Loop() {
		if _, err := Fcluster(z, t); err != nil {
			b.Fatal(err)
		}
	}
}
