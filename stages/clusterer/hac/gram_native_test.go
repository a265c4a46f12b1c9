package hac

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestNativeAndGoBLASAgree: the native BLAS path (when linked in) and
// gonum's Go path give the same distances to 1e-12 and the same merges,
// over several panels and for both metrics.
func TestNativeAndGoBLASAgree(t *testing.T) {
	t.Logf("BLAS: %s", BLAS())
	if activeNativeBLAS() == nil {
		t.Skip("no native BLAS linked in (noblas tag or no cgo)")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	n, dim := 2*panelRows+37, 33
	pts := randPoints(rng, n, dim)
	pts[9] = slices.Clone(pts[400]) // exact duplicate across panels
	for _, metric := range []string{MetricEuclidean, MetricCosine} {
		native, err := Pdist(pts, metric)
		if err != nil {
			t.Fatal(err)
		}
		was := UseNativeBLAS(false)
		pure, err := Pdist(pts, metric)
		UseNativeBLAS(was)
		if err != nil {
			t.Fatal(err)
		}
		for k := range native {
			if d := math.Abs(native[k] - pure[k]); d > 1e-12*math.Max(pure[k], 1) {
				t.Fatalf("%s: condensed %d: native %v, go %v", metric, k, native[k], pure[k])
			}
		}
		if native[CondensedIndex(n, 9, 400)] != 0 {
			t.Errorf("%s: duplicate at distance %v", metric, native[CondensedIndex(n, 9, 400)])
		}
		zn, err := Linkage(native, n, "average")
		if err != nil {
			t.Fatal(err)
		}
		zp, err := Linkage(pure, n, "average")
		if err != nil {
			t.Fatal(err)
		}
		for i := range zn {
			if zn[i][0] != zp[i][0] || zn[i][1] != zp[i][1] || zn[i][3] != zp[i][3] {
				t.Fatalf("%s: merge %d differs: native %v, go %v", metric, i, zn[i], zp[i])
			}
		}
	}
}
