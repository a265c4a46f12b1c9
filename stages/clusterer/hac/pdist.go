package hac

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// Metric names accepted by Pdist.
const (
	MetricEuclidean = "euclidean"
	MetricCosine    = "cosine"
)

func checkMetricName(metric string) error {
	switch metric {
	case MetricEuclidean, MetricCosine:
		return nil
	}
	return fmt.Errorf("%w: unknown metric %q (want euclidean or cosine)", ErrBadParam, metric)
}

// CondensedLen is the length of the condensed distance array of n points.
func CondensedLen(n int) int { return n * (n - 1) / 2 }

// CondensedIndex is the position of the pair (i, j), i ≠ j, in SciPy's
// condensed distance array of n points (the row-major upper triangle).
func CondensedIndex(n, i, j int) int {
	if i > j {
		i, j = j, i
	}
	return n*i - i*(i+1)/2 + j - i - 1
}

// maxPoints keeps n(n−1)/2 and the int32 bookkeeping of the linkage in range.
const maxPoints = 1 << 30

func checkCondensed(d []float64, n int) error {
	if n < 2 {
		return fmt.Errorf("%w: need at least 2 observations, got %d", ErrTooFewPoints, n)
	}
	if n > maxPoints || (n > 1<<16 && math.MaxInt == math.MaxInt32) {
		return fmt.Errorf("%w: %d observations is too many", ErrBadInput, n)
	}
	if len(d) != CondensedLen(n) {
		return fmt.Errorf("%w: condensed distances have length %d, want n(n-1)/2 = %d for n = %d",
			ErrBadInput, len(d), CondensedLen(n), n)
	}
	for k, v := range d {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: distance %v at condensed index %d is not finite", ErrBadInput, v, k)
		}
	}
	return nil
}

// Pdist returns SciPy's pdist(points, metric) as a condensed array: entry
// CondensedIndex(n, i, j) holds the distance of points i and j.
// "euclidean" is ‖a−b‖, "cosine" is 1 − a·b/(‖a‖‖b‖).
//
// Both come from the Gram matrix X·Xᵀ, computed by gonum's Dgemm in tiles
// of rows × columns of the upper triangle, by runtime.GOMAXPROCS(0)
// goroutines; each tile is turned into distances while it is in cache and
// written straight into the condensed array, so peak memory is the
// condensed array, one copy of the points and a tile per goroutine.
//
// Precision: ‖a‖²+‖b‖²−2a·b cancels catastrophically when a and b are close
// relative to their norms: its absolute error is ≈ √dim·ε·(‖a‖²+‖b‖²), so the
// relative error of the distance grows as the distance shrinks. Where the
// Gram value is below gramExactRatio·(‖a‖²+‖b‖²) the distance is recomputed
// directly from the differences, summed as SciPy sums them, so it is bit for
// bit SciPy's (duplicates and other exact ties stay exact ties); elsewhere
// the relative error is below ~1e-12, far inside the 1e-9 the SciPy oracle
// allows, and too small to flip any comparison that is not a near-exact tie.
// Cosine is computed like SciPy's (dot over the product of norms, clamped to
// [−1,1]); cosine distances below gramExactRatio, where the Gram rounding
// matters, are recomputed with SciPy's own summation.
func Pdist(points [][]float64, metric string) ([]float64, error) {
	if err := checkMetricName(metric); err != nil {
		return nil, err
	}
	n, dim, err := checkPoints(points, metric)
	if err != nil {
		return nil, err
	}
	x := make([]float64, n*dim)
	for i, p := range points {
		copy(x[i*dim:], p)
	}
	out := make([]float64, CondensedLen(n))
	pdistFlat(x, n, dim, metric == MetricCosine, out)
	return out, nil
}

func checkPoints(points [][]float64, metric string) (n, dim int, err error) {
	n = len(points)
	if n < 2 {
		return 0, 0, fmt.Errorf("%w: need at least 2 points, got %d", ErrTooFewPoints, n)
	}
	if n > maxPoints || (n > 1<<16 && math.MaxInt == math.MaxInt32) {
		return 0, 0, fmt.Errorf("%w: %d points is too many", ErrBadInput, n)
	}
	dim = len(points[0])
	if dim == 0 {
		return 0, 0, fmt.Errorf("%w: points have no coordinates", ErrBadInput)
	}
	for i, p := range points {
		if len(p) != dim {
			return 0, 0, fmt.Errorf("%w: point %d has %d coordinates, point 0 has %d", ErrBadInput, i, len(p), dim)
		}
		zero := true
		for k, v := range p {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, 0, fmt.Errorf("%w: point %d coordinate %d is %v", ErrBadInput, i, k, v)
			}
			if v != 0 {
				zero = false
			}
		}
		if zero && metric == MetricCosine {
			return 0, 0, fmt.Errorf("%w: point %d is the zero vector, its cosine distance is undefined", ErrBadInput, i)
		}
	}
	return n, dim, nil
}

// gramExactRatio: Gram results below this fraction of ‖a‖²+‖b‖² are
// recomputed exactly (see Pdist). At 1e-3 the Gram path keeps a relative
// distance error below ~√dim·ε·1e3 ≈ 3e-12 for dim = 640.
const gramExactRatio = 1e-3

// Outside [gramMinNorm, gramMaxNorm] (squared norms, or norm products for
// cosine) the Gram terms overflow or lose bits to subnormals; such pairs
// take the exact path, which behaves like SciPy there too.
const (
	gramMinNorm = 1e-250
	gramMaxNorm = 1e250
)

// Tile shape: gonum's Dgemm stays serial (fewer than 4 blocks of 64×64) and
// a tile's rows of B stay in L2 while it is used.
const (
	tileRows = 64
	tileCols = 192
)

// pdistFlat fills out with the distances of the n×dim row-major points x.
func pdistFlat(x []float64, n, dim int, cosine bool, out []float64) {
	// sq[i] = ‖x_i‖², summed in order like a plain loop.
	sq := make([]float64, n)
	for i := range n {
		s := 0.0
		for _, v := range x[i*dim : (i+1)*dim] {
			s += float64(v * v)
		}
		sq[i] = s
	}
	var norm []float64
	if cosine {
		norm = make([]float64, n)
		for i := range norm {
			xi := x[i*dim : (i+1)*dim]
			norm[i] = math.Sqrt(dot2(xi, xi))
		}
	}
	// Work items are row blocks; later blocks have shorter rows, so a shared
	// counter balances them better than a static split.
	nBlocks := (n - 1 + tileRows - 1) / tileRows
	workers := min(runtime.GOMAXPROCS(0), nBlocks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tile := make([]float64, tileRows*tileCols)
			impl := blas64.Implementation()
			for {
				b := int(next.Add(1) - 1)
				if b >= nBlocks {
					return
				}
				r0 := b * tileRows
				r1 := min(r0+tileRows, n-1)
				// Columns from r0+1: the tile covers the upper triangle of
				// this row block (its own lower part is computed and ignored).
				for c0 := r0 + 1; c0 < n; c0 += tileCols {
					c1 := min(c0+tileCols, n)
					m, w := r1-r0, c1-c0
					impl.Dgemm(blas.NoTrans, blas.Trans, m, w, dim, 1,
						x[r0*dim:r1*dim], dim, x[c0*dim:c1*dim], dim, 0, tile, w)
					for i := r0; i < r1; i++ {
						j0 := max(c0, i+1)
						if j0 >= c1 {
							continue
						}
						g := tile[(i-r0)*w+(j0-c0) : (i-r0)*w+w]
						dst := out[CondensedIndex(n, i, j0):][:len(g)]
						if cosine {
							cosineRow(dst, g, norm[i], norm[j0:c1], x, i, j0, dim)
						} else {
							euclidRow(dst, g, sq[i], sq[j0:c1], x, i, j0, dim)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}

// euclidRow turns Gram values g[k] = x_i·x_{j0+k} into distances.
func euclidRow(dst, g []float64, sqi float64, sqj []float64, x []float64, i, j0, dim int) {
	sqj = sqj[:len(g)]
	dst = dst[:len(g)]
	for k, gv := range g {
		s := sqi + sqj[k]
		d2 := s - 2*gv
		// !(≥) also sends NaN (overflowed norms) to the exact path; so do
		// norms beyond the range where the Gram arithmetic is trustworthy.
		if !(d2 >= gramExactRatio*s) || s > gramMaxNorm || s < gramMinNorm {
			dst[k] = math.Sqrt(sqDist(x[i*dim:(i+1)*dim], x[(j0+k)*dim:(j0+k+1)*dim]))
			continue
		}
		dst[k] = math.Sqrt(d2)
	}
}

// cosineRow turns Gram values into SciPy's cosine distances, recomputing
// the small ones (nearly parallel vectors) with SciPy's own summation.
func cosineRow(dst, g []float64, ni float64, nj []float64, x []float64, i, j0, dim int) {
	nj = nj[:len(g)]
	dst = dst[:len(g)]
	for k, gv := range g {
		nn := float64(ni * nj[k])
		c := gv / nn
		if !(1-c >= gramExactRatio) || nn > gramMaxNorm || nn < gramMinNorm {
			c = dot2(x[i*dim:(i+1)*dim], x[(j0+k)*dim:(j0+k+1)*dim]) / nn
		}
		if math.Abs(c) > 1 {
			c = math.Copysign(1, c)
		}
		dst[k] = 1 - c
	}
}

// sqDist is Σ(a_k − b_k)² summed in order: bit for bit SciPy 1.10's
// euclidean pdist, for the pairs the Gram path would get wrong.
func sqDist(a, b []float64) float64 {
	b = b[:len(a)]
	s := 0.0
	for k, av := range a {
		d := av - b[k]
		s += float64(d * d)
	}
	return s
}

// dot2 is a·b the way SciPy 1.10's cosine pdist sums it (measured: even
// and odd terms in two sums, added, then the odd last term), so that
// recomputed cosine distances match SciPy bit for bit.
func dot2(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1 float64
	k := 0
	for ; k+2 <= len(a); k += 2 {
		s0 += float64(a[k] * b[k])
		s1 += float64(a[k+1] * b[k+1])
	}
	s := s0 + s1
	for ; k < len(a); k++ {
		s += float64(a[k] * b[k])
	}
	return s
}
