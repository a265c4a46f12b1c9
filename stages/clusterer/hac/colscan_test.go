package hac

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestColumnLoopsMatchGo: the column loops the NN-chain runs (assembly on
// amd64) give the Go reference loops' answers bit for bit: the first
// strictly smaller value on ties, NaN never smaller, ±Inf, lengths around
// the prefetch distance, every position of x and y.
func TestColumnLoopsMatchGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 70
	off := offsets(n)
	values := []float64{0, 1, 1, 2, 0.5, math.Inf(1), math.NaN(), 3e-300, 1e300}
	for trial := range 400 {
		d := make([]float64, CondensedLen(n))
		for k := range d {
			if trial%2 == 0 {
				d[k] = values[rng.IntN(len(values))] // full of ties
			} else {
				d[k] = rng.Float64()
			}
		}
		var active []int32
		for i := range n {
			if rng.IntN(4) > 0 {
				active = append(active, int32(i))
			}
		}
		x, y := rng.IntN(n-1), 0
		y = x + 1 + rng.IntN(n-1-x)
		below := func(v int) []int32 { p, _ := slices.BinarySearch(active, int32(v)); return active[:p] }
		cur := []float64{math.Inf(1), 0.7, 1, 0}[trial%4]

		gb, gp := colMinGo(d, off, below(x), x, cur)
		ab, ap := colMin(d, off, below(x), x, cur)
		if gp != ap || math.Float64bits(gb) != math.Float64bits(ab) {
			t.Fatalf("trial %d: colMin = (%v, %d), Go loop (%v, %d)", trial, ab, ap, gb, gp)
		}

		fx, fy := float64(1+rng.IntN(9)), float64(1+rng.IntN(9))
		between := active[len(below(x)):len(below(y))]
		if len(between) > 0 && between[0] == int32(x) {
			between = between[1:]
		}
		for _, c := range []struct {
			name     string
			asm, ref func(d []float64)
		}{
			{"averageCols", func(d []float64) { averageCols(d, off, below(x), x, y, fx, fy, fx+fy) },
				func(d []float64) { averageColsGo(d, off, below(x), x, y, fx, fy, fx+fy) }},
			{"averageRowCol", func(d []float64) { averageRowCol(d, off, between, off[x], y, fx, fy, fx+fy) },
				func(d []float64) { averageRowColGo(d, off, between, off[x], y, fx, fy, fx+fy) }},
		} {
			got, want := slices.Clone(d), slices.Clone(d)
			c.asm(got)
			c.ref(want)
			for k := range got {
				if math.Float64bits(got[k]) != math.Float64bits(want[k]) {
					t.Fatalf("trial %d: %s: d[%d] = %v, Go loop %v", trial, c.name, k, got[k], want[k])
				}
			}
		}
	}
}
