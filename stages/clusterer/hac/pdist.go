package hac

import (
	"fmt"
	"math"
	"runtime"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/personcluster/personcluster/stages/internal/parallel"
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
	if k := firstNonFinite(d); k >= 0 {
		return fmt.Errorf("%w: distance %v at condensed index %d is not finite", ErrBadInput, d[k], k)
	}
	return nil
}

// firstNonFinite is the index of d's first NaN or ±Inf, or -1, on all cores.
func firstNonFinite(d []float64) int {
	first := make([]int, numBlocks(len(d)))
	onBlocks(len(d), passBlock, func(b, lo, hi int) {
		first[b] = -1
		for k, v := range d[lo:hi] {
			if v-v != 0 { // NaN or ±Inf; one compare per value
				first[b] = lo + k
				return
			}
		}
	})
	for _, k := range first {
		if k >= 0 {
			return k
		}
	}
	return -1
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
// relative error of the distance grows as the distance shrinks. For
// euclidean the points are first centred on their mean (distances do not
// change, norms shrink: data far from the origin keeps the fast path; see
// centreOf), and where the Gram value is below gramExactRatio·(‖a‖²+‖b‖²)
// of the centred points the distance is recomputed from the original
// coordinates, summed as SciPy sums them, so it is bit for bit SciPy's
// (duplicates and other exact ties stay exact ties). Elsewhere the relative error is below ~1e-12, far inside
// the 1e-9 the SciPy oracle allows, and too small to flip any comparison
// that is not a near-exact tie. Cosine is computed like SciPy's (dot over
// the product of norms, clamped to [−1,1]); cosine distances below
// gramExactRatio, where the Gram rounding matters, are recomputed with
// SciPy's own summation.
func Pdist(points [][]float64, metric string) ([]float64, error) {
	return pdist(points, metric, nil)
}

// pdist is Pdist counting the distances it has computed in prog.
func pdist(points [][]float64, metric string, prog *Progress) ([]float64, error) {
	if err := checkMetricName(metric); err != nil {
		return nil, err
	}
	n, dim, err := checkPoints(points, metric)
	if err != nil {
		return nil, err
	}
	prog.begin(stepDistances, int64(CondensedLen(n)))
	g := &gram{points: points, n: n, dim: dim, cosine: metric == MetricCosine, prog: prog}
	var centre []float64
	if !g.cosine {
		centre = centreOf(points, dim)
	}
	g.fill(centre)
	out := newCondensed(n)
	g.run(out)
	if rep := duplicateOf(points); rep != nil {
		tieDuplicates(out, n, rep)
	}
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

// gram computes distances through the Gram matrix of x: the points,
// centred for euclidean.
type gram struct {
	points [][]float64 // the original points, for the exact path
	x      []float64   // n×dim row-major copy the Gram matrix is taken of
	n, dim int
	cosine bool
	sq     []float64 // ‖x_i‖²
	norm   []float64 // cosine: ‖p_i‖ as SciPy computes it
	prog   *Progress // counts the distances done (nil: not counted)
}

// rowsDone counts the distances of rows [r0, r1) as done.
func (g *gram) rowsDone(r0, r1 int) {
	g.prog.add(int64(r1-r0)*int64(g.n-1) - int64(r0+r1-1)*int64(r1-r0)/2)
}

// centreOf is the per-coordinate mean rounded to a power of two no larger
// than the coordinate's spread. Any centre leaves distances unchanged; this
// one shrinks the norms like the mean does while keeping the subtraction
// exact for data on a coarse grid (integer coordinates stay integers, so
// their Gram values and ties stay exact) and for data far from the origin
// (Sterbenz). Otherwise each centred coordinate is off by ≤ ε/2 of itself,
// the same order as the Gram path's own error.
func centreOf(points [][]float64, dim int) []float64 {
	mean := meanOf(points, dim)
	spread := spreadOf(points, mean)
	for k := range mean {
		switch {
		case spread[k] == 0:
			mean[k] = points[0][k] // all equal: centre exactly on them
		case math.IsInf(spread[k], 0) || math.IsNaN(mean[k]):
			mean[k] = 0 // overflowing data takes the exact path anyway
		default:
			_, e := math.Frexp(spread[k])
			q := math.Ldexp(1, e-1) // power of two ≤ spread
			mean[k] = math.Round(mean[k]/q) * q
		}
	}
	return mean
}

// prepRows: the rows per work item of the passes over the points (spreadOf,
// fill), which run on every core; meanCols: the coordinates per work item
// of the mean.
const (
	prepRows = 256
	meanCols = 64
)

// meanOf is the points' mean per coordinate, each coordinate summed over
// the points in order (a block of coordinates per work item, on all cores:
// the serial loop's sums, bit for bit).
func meanOf(points [][]float64, dim int) []float64 {
	n := float64(len(points))
	mean := make([]float64, dim)
	parallel.Each((dim+meanCols-1)/meanCols, runtime.GOMAXPROCS(0), func() func(int) {
		return func(b int) {
			k0, k1 := b*meanCols, min(dim, (b+1)*meanCols)
			m := mean[k0:k1]
			for _, p := range points {
				for k, v := range p[k0:k1] {
					m[k] += v / n // divided first: no overflow for huge coordinates
				}
			}
		}
	})
	return mean
}

// spreadOf is max |p[k] − mean[k]| over the points, per coordinate: each
// block of rows on its own, then the blocks' maxima (a maximum, NaN
// included, does not depend on the order it is taken in).
func spreadOf(points [][]float64, mean []float64) []float64 {
	dim := len(mean)
	blocks := make([]float64, (len(points)+prepRows-1)/prepRows*dim)
	onBlocks(len(points), prepRows, func(b, lo, hi int) {
		s := blocks[b*dim:][:dim]
		for _, p := range points[lo:hi] {
			for k, v := range p {
				s[k] = math.Max(s[k], math.Abs(v-mean[k]))
			}
		}
	})
	spread := make([]float64, dim)
	for b := 0; b < len(blocks); b += dim {
		for k, v := range blocks[b : b+dim] {
			spread[k] = math.Max(spread[k], v)
		}
	}
	return spread
}

// fill sets g.x to the points less centre (nil: the points themselves),
// row-major, and the norms (g.sq, and for cosine g.norm), on all cores.
func (g *gram) fill(centre []float64) {
	n, dim := g.n, g.dim
	g.x = make([]float64, n*dim)
	g.sq = make([]float64, n)
	if g.cosine {
		g.norm = make([]float64, n)
	}
	onBlocks(n, prepRows, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			p, row := g.points[i], g.x[i*dim:(i+1)*dim]
			if centre == nil {
				copy(row, p)
			} else {
				for k, v := range p {
					row[k] = v - centre[k]
				}
			}
			s := 0.0
			for _, v := range row {
				s += float64(v * v)
			}
			g.sq[i] = s
			if g.cosine {
				g.norm[i] = math.Sqrt(dot2(p, p))
			}
		}
	})
}

// run fills out, the condensed distances: through the native BLAS when one
// is registered (runNative), else by gonum's Go Dgemm in small tiles, one
// goroutine per core.
func (g *gram) run(out []float64) {
	if impl := activeNativeBLAS(); impl != nil {
		g.runNative(out, impl)
		return
	}
	n, dim, x := g.n, g.dim, g.x
	// Work items are row blocks; later blocks have shorter rows, so a shared
	// counter balances them better than a static split.
	nBlocks := (n - 1 + tileRows - 1) / tileRows
	impl := blas64.Implementation()
	onWorkers(nBlocks, tileRows*tileCols, func(b int, tile []float64) {
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
				gv := tile[(i-r0)*w+(j0-c0) : (i-r0)*w+w]
				dst := out[CondensedIndex(n, i, j0):][:len(gv)]
				if g.cosine {
					g.cosineRow(dst, gv, i, j0)
				} else {
					g.euclidRow(dst, gv, i, j0)
				}
			}
		}
		g.rowsDone(r0, r1)
	})
}

// passBlock: the values per block of a read of the whole condensed matrix
// (maxOf, firstNonFinite): at n = 10,000 such a read is 400 MB.
const passBlock = 1 << 20

// numBlocks is how many blocks of passBlock values cover n.
func numBlocks(n int) int { return (n + passBlock - 1) / passBlock }

// onBlocks calls body(b, lo, hi) for each block [lo, hi) of size items
// covering 0..n-1, on all cores.
func onBlocks(n, size int, body func(b, lo, hi int)) {
	onWorkers((n+size-1)/size, 0, func(b int, _ []float64) {
		body(b, b*size, min(n, (b+1)*size))
	})
}

// onWorkers calls body for blocks 0..blocks-1 on up to GOMAXPROCS goroutines, each with its
// own scratch buffer of scratchLen values. The goroutines take blocks in order from a shared
// counter: later blocks (shorter rows of the upper triangle) are smaller, so this balances
// better than a static split.
func onWorkers(blocks, scratchLen int, body func(block int, scratch []float64)) {
	parallel.Each(blocks, runtime.GOMAXPROCS(0), func() func(int) {
		scratch := make([]float64, scratchLen)
		return func(b int) { body(b, scratch) }
	})
}

// euclidRow turns Gram values gv[k] = x_i·x_{j0+k} into distances: four at
// a time where the CPU has AVX2 (the same operations, so the same bits; the
// row again in Go if any of them needs the exact path), the rest in Go.
func (g *gram) euclidRow(dst, gv []float64, i, j0 int) {
	if n := len(gv) &^ 3; n > 0 && euclidRowVector(dst[:n], gv[:n], g.sq[j0:j0+n], g.sq[i]) {
		g.euclidRowGo(dst[n:], gv[n:], i, j0+n)
		return
	}
	g.euclidRowGo(dst, gv, i, j0)
}

// euclidRowGo is euclidRow's loop in Go, the reference.
func (g *gram) euclidRowGo(dst, gv []float64, i, j0 int) {
	sqi, sqj := g.sq[i], g.sq[j0:j0+len(gv)]
	dst = dst[:len(gv)]
	for k, v := range gv {
		s := sqi + sqj[k]
		d2 := s - 2*v
		if s == 0 { // both centred points are exactly 0: the points are equal
			dst[k] = 0
			continue
		}
		// !(≥) also sends NaN (overflowed norms) to the exact path; so do
		// norms beyond the range where the Gram arithmetic is trustworthy.
		if !(d2 >= gramExactRatio*s) || s > gramMaxNorm || s < gramMinNorm {
			dst[k] = math.Sqrt(sqDist(g.points[i], g.points[j0+k]))
			continue
		}
		dst[k] = math.Sqrt(d2)
	}
}

// cosineRow turns Gram values into SciPy's cosine distances, recomputing
// the small ones (nearly parallel vectors) with SciPy's own summation.
func (g *gram) cosineRow(dst, gv []float64, i, j0 int) {
	ni, nj := g.norm[i], g.norm[j0:j0+len(gv)]
	dst = dst[:len(gv)]
	for k, v := range gv {
		nn := float64(ni * nj[k])
		c := v / nn
		if !(1-c >= gramExactRatio) || nn > gramMaxNorm || nn < gramMinNorm {
			c = dot2(g.points[i], g.points[j0+k]) / nn
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

// Euclidean is the euclidean distance of two points of equal length.
func Euclidean(a, b []float64) float64 { return math.Sqrt(sqDist(a, b)) }
