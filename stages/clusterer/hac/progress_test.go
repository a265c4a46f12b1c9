package hac

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// Each step counts its work up to its total: the distances one per pair,
// the linkage (NN-chain, MST and generic alike) its merges weighted by the
// clusters they look at, the reading every byte of the file.
func TestProgressCountsEachStep(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	n := 700
	points := make([][]float64, n)
	for i := range points {
		points[i] = []float64{rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64()}
	}
	var prog Progress
	if _, err := pdist(points, MetricEuclidean, &prog); err != nil {
		t.Fatal(err)
	}
	if s := prog.Snapshot(); s.Step != StepDistances || s.Done != int64(CondensedLen(n)) || s.Total != s.Done {
		t.Errorf("after the distances: %+v, want %d of %d", s, CondensedLen(n), CondensedLen(n))
	}
	for _, method := range []string{"average", "single", "centroid"} {
		var prog Progress
		p := DefaultParams()
		p.Method = method
		r, err := ClusterProgress(points, nil, p, &prog)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Cluster(points, nil, p)
		if len(r.Linkage) != len(want.Linkage) || r.Threshold != want.Threshold {
			t.Fatalf("%s: counting progress changed the result", method)
		}
		if s := prog.Snapshot(); s.Step != StepLinkage || s.Done != linkageWork(n) || s.Total != s.Done {
			t.Errorf("%s: after the linkage %+v, want %d of %d", method, s, linkageWork(n), linkageWork(n))
		}
	}

	dir := t.TempDir()
	small := filepath.Join(dir, "small.json")
	if err := os.WriteFile(small, []byte(`{"points": [[0, 1], [1, 1], [5, 5]], "sim": 0.5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	paths := []string{small}
	if !testing.Short() {
		paths = append(paths, writeBigCase(t, "big.json", 1000, 1000, "", false))
	}
	for _, path := range paths {
		var prog Progress
		if _, err := ReadCaseFileProgress(path, &prog); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(path)
		if s := prog.Snapshot(); s.Step != StepReading || s.Done != fi.Size() || s.Total != fi.Size() {
			t.Errorf("%s: after reading %+v, want %d of %d bytes", filepath.Base(path), s, fi.Size(), fi.Size())
		}
	}
}
