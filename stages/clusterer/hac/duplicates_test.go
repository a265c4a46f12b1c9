package hac

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDuplicatesAreExactTies: a point's duplicates are at exactly its
// distances from every other point, on the native BLAS and the Go path,
// for both metrics — SciPy's ties, whatever tile of the DGEMM each copy
// falls in (OpenBLAS's AVX-512 kernels round edge rows of a tile
// differently; this failed on them before tieDuplicates).
func TestDuplicatesAreExactTies(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n, dim = 2*panelRows + 53, 5
	base := randPoints(rng, n/3, dim)
	pts := make([][]float64, n)
	for i := range pts {
		pts[i] = slices.Clone(base[rng.IntN(len(base))])
	}
	rep := duplicateOf(pts)
	if rep == nil {
		t.Fatal("duplicateOf found no duplicates")
	}
	for _, native := range []bool{true, false} {
		was := UseNativeBLAS(native)
		for _, metric := range []string{MetricEuclidean, MetricCosine} {
			d, err := Pdist(pts, metric)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				for j := range n {
					if i == j || rep[i] == rep[j] {
						continue
					}
					got, want := d[CondensedIndex(n, i, j)], d[CondensedIndex(n, int(rep[i]), int(rep[j]))]
					if math.Float64bits(got) != math.Float64bits(want) {
						t.Fatalf("native=%v %s: d(%d,%d) = %v, but its first copies (%d,%d) are at %v",
							native, metric, i, j, got, rep[i], rep[j], want)
					}
				}
			}
		}
		UseNativeBLAS(was)
	}
}

func TestDuplicateOf(t *testing.T) {
	negZero := math.Copysign(0, -1)
	for _, tc := range []struct {
		name   string
		points [][]float64
		want   []int32
	}{
		{"all differ", [][]float64{{1, 2}, {2, 1}, {1, 3}}, nil},
		{"one pair", [][]float64{{1, 2}, {2, 1}, {1, 2}}, []int32{0, 1, 0}},
		{"three copies", [][]float64{{7}, {7}, {8}, {7}}, []int32{0, 0, 2, 0}},
		{"-0 is another point bit for bit", [][]float64{{0, 1}, {negZero, 1}}, nil},
	} {
		if got := duplicateOf(tc.points); !slices.Equal(got, tc.want) {
			t.Errorf("%s: duplicateOf = %v, want %v", tc.name, got, tc.want)
		}
	}
}
