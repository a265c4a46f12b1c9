package hac

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// The vector roots are the Go loop's bit for bit, on ordinary rows, on rows
// with a lane that needs the exact path (equal points, near-equal points,
// NaN, norms out of range) and on lengths that leave a tail.
func TestEuclidRowVectorMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, dim = 64, 8
	g := &gram{n: n, dim: dim, points: make([][]float64, n), sq: make([]float64, n)}
	for i := range g.points {
		g.points[i] = make([]float64, dim)
		for k := range g.points[i] {
			g.points[i][k] = r.NormFloat64()
		}
		g.sq[i] = sqDist(g.points[i], make([]float64, dim))
	}
	gram := func(i, j int) float64 { return dot2(g.points[i], g.points[j]) }
	for _, tc := range []struct {
		name string
		edit func(gv []float64, j0 int)
	}{
		{"ordinary", func([]float64, int) {}},
		{"a near-duplicate", func(gv []float64, j0 int) { gv[3] = (g.sq[0] + g.sq[j0+3]) / 2 * (1 - 1e-9) }},
		{"NaN", func(gv []float64, _ int) { gv[2] = math.NaN() }},
		{"a huge Gram value", func(gv []float64, _ int) { gv[len(gv)-1] = 1e300 }},
	} {
		for _, length := range []int{4, 13, 40, 63} {
			j0 := 1
			gv := make([]float64, length)
			for k := range gv {
				gv[k] = gram(0, j0+k)
			}
			tc.edit(gv, j0)
			want, got := make([]float64, length), make([]float64, length)
			g.euclidRowGo(want, gv, 0, j0)
			g.euclidRow(got, gv, 0, j0)
			for k := range want {
				if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
					t.Errorf("%s, %d values: [%d] = %v, want %v", tc.name, length, k, got[k], want[k])
				}
			}
		}
	}
	// An ordinary row takes the vector path where there is one.
	gv0 := []float64{gram(0, 1), gram(0, 2), gram(0, 3), gram(0, 4)}
	if ok := euclidRowVector(make([]float64, 4), gv0, g.sq[1:5], g.sq[0]); ok != (runtime.GOARCH == "amd64" && hasAVX2) {
		t.Errorf("euclidRowVector on an ordinary row: %v", ok)
	}
	// Out of range and zero sums of squared norms.
	g.sq[3], g.sq[4] = 0, 1e260
	gv := []float64{gram(0, 1), gram(0, 2), 0, 1, gram(0, 5), gram(0, 6), gram(0, 7), gram(0, 8)}
	want, got := make([]float64, len(gv)), make([]float64, len(gv))
	g.euclidRowGo(want, gv, 0, 1)
	g.euclidRow(got, gv, 0, 1)
	for k := range want {
		if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
			t.Errorf("norms out of range: [%d] = %v, want %v", k, got[k], want[k])
		}
	}
}

func BenchmarkEuclidRow(b *testing.B) {
	const n = 5000
	g := &gram{sq: make([]float64, n+1)}
	gv := make([]float64, n)
	for k := range gv {
		g.sq[k] = 10 + float64(k%7)
		gv[k] = float64(k % 5)
	}
	g.sq[n] = 10
	dst := make([]float64, n)
	b.Run("vector", func(b *testing.B) {
		for b.Loop() {
			g.euclidRow(dst, gv, n, 0)
		}
	})
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			g.euclidRowGo(dst, gv, n, 0)
		}
	})
}
