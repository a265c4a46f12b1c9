package hac

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// meanSpreadSerial is meanOf and spreadOf as single loops, their reference.
func meanSpreadSerial(points [][]float64, dim int) (mean, spread []float64) {
	n := float64(len(points))
	mean = make([]float64, dim)
	for _, p := range points {
		for k, v := range p {
			mean[k] += v / n
		}
	}
	spread = make([]float64, dim)
	for _, p := range points {
		for k, v := range p {
			spread[k] = math.Max(spread[k], math.Abs(v-mean[k]))
		}
	}
	return mean, spread
}

// sameFloat: a and b have the same bits, or both are NaN (which NaN an
// addition returns depends on which operand the compiler puts first).
func sameFloat(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || math.IsNaN(a) && math.IsNaN(b)
}

// The mean, the spread and the Gram copy with its norms, computed on several
// cores in blocks of rows and of coordinates, are the serial loops' bit for bit:
// across block edges, with huge, infinite and NaN coordinates.
func TestCentreAndFillMatchSerial(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 2, prepRows - 1, prepRows, prepRows + 1, 3*prepRows + 7} {
		for _, dim := range []int{1, meanCols - 1, meanCols, meanCols + 1, 200} {
			for _, kind := range []string{"normal", "grid", "huge", "special"} {
				points := make([][]float64, n)
				for i := range points {
					points[i] = make([]float64, dim)
					for k := range points[i] {
						v := rng.NormFloat64()
						switch kind {
						case "grid":
							v = float64(rng.IntN(5))
						case "huge":
							v *= 1e300
						case "special":
							if rng.IntN(50) == 0 {
								v = []float64{math.Inf(1), math.Inf(-1), math.NaN()}[rng.IntN(3)]
							}
						}
						points[i][k] = v
					}
				}
				for _, metric := range []string{MetricEuclidean, MetricCosine} {
					var centre []float64
					if metric == MetricEuclidean {
						mean, spread := meanSpreadSerial(points, dim)
						gotMean := meanOf(points, dim)
						gotSpread := spreadOf(points, gotMean)
						for k := range mean {
							if !sameFloat(gotMean[k], mean[k]) || !sameFloat(gotSpread[k], spread[k]) {
								t.Fatalf("n=%d dim=%d %s: mean, spread[%d] = %v, %v; serially %v, %v", n, dim, kind, k, gotMean[k], gotSpread[k], mean[k], spread[k])
							}
						}
						centre = centreOf(points, dim)
					}
					g := &gram{points: points, n: n, dim: dim, cosine: metric == MetricCosine}
					g.fill(centre)
					for i, p := range points {
						s := 0.0
						for k, v := range p {
							x := v
							if centre != nil {
								x = v - centre[k]
							}
							if !sameFloat(g.x[i*dim+k], x) {
								t.Fatalf("n=%d dim=%d %s %s: x[%d][%d] = %v, want %v", n, dim, kind, metric, i, k, g.x[i*dim+k], x)
							}
							s += float64(x * x)
						}
						if !sameFloat(g.sq[i], s) {
							t.Fatalf("n=%d dim=%d %s %s: sq[%d] = %v, want %v", n, dim, kind, metric, i, g.sq[i], s)
						}
						if g.cosine && !sameFloat(g.norm[i], math.Sqrt(dot2(p, p))) {
							t.Fatalf("n=%d dim=%d %s: norm[%d] differs", n, dim, kind, i)
						}
					}
				}
			}
		}
	}
}
