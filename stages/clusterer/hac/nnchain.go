package hac

import (
	"fmt"
	"math"
	"runtime"
	"slices"
)

// nnChain is SciPy's nn_chain: the nearest-neighbour chain algorithm on the
// condensed matrix d (overwritten), for the reducible methods complete,
// average, weighted and ward. Rows hold the merged representatives and the
// height, in merge order (unsorted, unlabelled).
//
// Differences from a literal port are only in bookkeeping, never in the
// order of comparisons: the active clusters are kept as an ascending list,
// so a scan visits exactly the clusters SciPy visits, in the same order,
// and the condensed index arithmetic is hoisted out of the loops.
func nnChain(d []float64, n int, m method, prog *Progress) (LinkageMatrix, error) {
	z := make(LinkageMatrix, n-1)
	off := offsets(n)
	size := make([]int, n)
	active := make([]int32, n)
	for i := range n {
		size[i] = 1
		active[i] = int32(i)
	}
	chain := make([]int, 0, n)
	y := 0
	var two *pair // scans and updates on two cores while many clusters are active
	var bounds []int
	var best []nearestResult
	if runtime.GOMAXPROCS(0) >= 2 && n >= parallelMin {
		two = newPair()
		bounds = make([]int, 0, maxPassChunks+1)
		best = make([]nearestResult, maxPassChunks)
		defer func() {
			if two != nil {
				two.close()
			}
		}()
	}
	for k := range n - 1 {
		if len(chain) == 0 {
			chain = append(chain, int(active[0]))
		}
		var x int
		var cur float64
		for {
			x = chain[len(chain)-1]
			// Prefer the previous element of the chain on ties: it avoids
			// cycles (SciPy's rule, strict comparisons below).
			if len(chain) > 1 {
				y = chain[len(chain)-2]
				cur = d[condIdx(off, x, y)]
			} else {
				cur = math.Inf(1)
			}
			p := activePos(active, x)
			var found bool
			if two != nil && (len(active) < parallelMin || two.stalled()) {
				two.close()
				two = nil
			}
			if two == nil {
				cur, y, found = nearest(d, off, active, x, p, 0, len(active), cur, y)
			} else {
				// The chunks' answers combined in order, each standing
				// unless a later one is strictly nearer: the scan's order.
				bounds := chunkBounds(bounds[:0], p, len(active))
				two.run(len(bounds)-1, func(c int) {
					r := &best[c]
					r.d, r.i, r.found = nearest(d, off, active, x, p, bounds[c], bounds[c+1], cur, y)
				})
				found = false
				for _, r := range best[:len(bounds)-1] {
					if r.found && (!found || r.d < cur) {
						cur, y, found = r.d, r.i, true
					}
				}
			}
			if len(chain) > 1 && y == chain[len(chain)-2] {
				break
			}
			if !found || len(chain) == n {
				// Only NaN/Inf distances (from ward on non-euclidean input)
				// get here; SciPy would loop or read garbage.
				return nil, fmt.Errorf("%w: nearest-neighbour chain found no finite neighbour at merge %d", ErrNonFinite, k)
			}
			chain = append(chain, y)
		}
		chain = chain[:len(chain)-2]
		lo, hi := x, y
		if lo > hi { // fastcluster's convention, kept by SciPy
			lo, hi = hi, lo
		}
		nx, ny := size[lo], size[hi]
		z[k] = [4]float64{float64(lo), float64(hi), cur, float64(nx + ny)}
		size[lo] = 0
		size[hi] = nx + ny
		p := activePos(active, lo)
		active = slices.Delete(active, p, p+1)
		if two == nil {
			updateDistances(d, off, active, size, lo, hi, cur, nx, ny, m, 0, len(active))
		} else {
			bounds := chunkBounds(bounds[:0], activePos(active, hi), len(active))
			two.run(len(bounds)-1, func(c int) {
				updateDistances(d, off, active, size, lo, hi, cur, nx, ny, m, bounds[c], bounds[c+1])
			})
		}
		prog.add(int64(n - k))
	}
	return z, nil
}

// parallelMin: below this many active clusters a scan or an update is too
// short to share (a variable for the tests).
var parallelMin = 2048

type nearestResult struct {
	d     float64
	i     int
	found bool
}

// nearest scans the active clusters at positions [lo, hi) of active (p is
// x's own position, skipped) for the nearest to x, in order, keeping the
// first strictly below cur: SciPy's scan, over a piece of the list.
func nearest(d []float64, off []int, active []int32, x, p, lo, hi int, cur float64, y int) (float64, int, bool) {
	found := false
	col := active[lo:max(lo, min(p, hi))]
	if v, k := colMin(d, off, col, x, cur); k >= 0 {
		cur, y, found = v, int(col[k]), true
	}
	ox := off[x]
	for _, i32 := range active[max(p+1, lo):max(p+1, lo, hi)] {
		if v := d[ox+int(i32)]; v < cur {
			cur, y, found = v, int(i32), true
		}
	}
	return cur, y, found
}

// colCost: reading down a column of the condensed matrix (one cache line
// per element) costs about this many times reading along a row.
const colCost = 4

// A scan or update is cut into chunks of about chunkCost row elements'
// work, at most maxPassChunks: small enough that the caller seldom waits
// for the helper's last chunk, big enough that taking one costs little.
const (
	chunkCost     = 4096
	maxPassChunks = 64
)

// chunkBounds appends to b the bounds of chunks of about equal work over m
// active positions, which read column elements before position p and row
// elements after it: chunk c is [b[c], b[c+1]).
func chunkBounds(b []int, p, m int) []int {
	total := colCost*p + (m - p)
	k := min(max(1, total/chunkCost), maxPassChunks)
	for c := range k + 1 {
		w := total * c / k
		if w <= colCost*p {
			b = append(b, w/colCost)
		} else {
			b = append(b, p+(w-colCost*p))
		}
	}
	b[k] = m
	return b
}

// condIdx is CondensedIndex with precomputed row offsets.
func condIdx(off []int, i, j int) int {
	if i < j {
		return off[i] + j
	}
	return off[j] + i
}

// activePos is the position of x in the ascending active list.
func activePos(active []int32, x int) int {
	p, _ := slices.BinarySearch(active, int32(x))
	return p
}

// updateDistances replaces, for every active cluster i ≠ y, D(i, y) by the
// Lance–Williams distance of i to the merge of x and y (x < y, x already
// removed from active and size). The three index ranges i < x, x < i < y and
// i > y read D(i,x) and D(i,y) from columns or rows of the condensed matrix.
func updateDistances(d []float64, off []int, active []int32, size []int, x, y int, dxy float64, nx, ny int, m method, lo, hi int) {
	// Split active (which no longer holds x) at x and at y, and keep the
	// positions [lo, hi): the three ranges below are active[:px],
	// active[px:py] and active[py+1:] cut to them.
	px, _ := slices.BinarySearch(active, int32(x))
	py := activePos(active, y)
	a0, a1 := active[lo:max(lo, min(px, hi))], active[max(px, lo):max(px, lo, min(py, hi))]
	a2 := active[max(py+1, lo):max(py+1, lo, hi)]
	ox, oy := off[x], off[y]
	fx, fy, fxy := float64(nx), float64(ny), float64(nx+ny)
	switch m {
	case methodAverage:
		averageCols(d, off, a0, x, y, fx, fy, fxy)
		averageRowCol(d, off, a1, ox, y, fx, fy, fxy)
		for _, i32 := range a2 {
			d[oy+int(i32)] = (float64(fx*d[ox+int(i32)]) + float64(fy*d[oy+int(i32)])) / fxy
		}
	case methodComplete:
		for _, i32 := range a0 {
			o := off[i32]
			d[o+y] = maxD(d[o+x], d[o+y])
		}
		for _, i32 := range a1 {
			o := off[i32]
			d[o+y] = maxD(d[ox+int(i32)], d[o+y])
		}
		for _, i32 := range a2 {
			d[oy+int(i32)] = maxD(d[ox+int(i32)], d[oy+int(i32)])
		}
	case methodWeighted:
		for _, i32 := range a0 {
			o := off[i32]
			d[o+y] = 0.5 * (d[o+x] + d[o+y])
		}
		for _, i32 := range a1 {
			o := off[i32]
			d[o+y] = 0.5 * (d[ox+int(i32)] + d[o+y])
		}
		for _, i32 := range a2 {
			d[oy+int(i32)] = 0.5 * (d[ox+int(i32)] + d[oy+int(i32)])
		}
	default: // every other method goes through the generic formula
		for _, i32 := range a0 {
			o := off[i32]
			d[o+y] = lanceWilliams(m, d[o+x], d[o+y], dxy, nx, ny, size[i32])
		}
		for _, i32 := range a1 {
			o := off[i32]
			d[o+y] = lanceWilliams(m, d[ox+int(i32)], d[o+y], dxy, nx, ny, size[i32])
		}
		for _, i32 := range a2 {
			d[oy+int(i32)] = lanceWilliams(m, d[ox+int(i32)], d[oy+int(i32)], dxy, nx, ny, size[i32])
		}
	}
}

// lanceWilliams is SciPy's _hierarchy_distance_update.pxi: the distance of
// cluster i to the merge of x and y, evaluated in C's order (integer sums
// and products first, then left to right). The float64() conversions stop
// the compiler from fusing multiply-adds, which SciPy's build does not do.
func lanceWilliams(m method, dxi, dyi, dxy float64, sx, sy, si int) float64 {
	switch m {
	case methodSingle:
		if dyi < dxi {
			return dyi
		}
		return dxi
	case methodComplete:
		return maxD(dxi, dyi)
	case methodAverage:
		return (float64(float64(sx)*dxi) + float64(float64(sy)*dyi)) / float64(sx+sy)
	case methodCentroid:
		fx, fy, fxy := float64(sx), float64(sy), float64(sx+sy)
		a := float64(float64(fx*dxi) * dxi)
		b := float64(float64(fy*dyi) * dyi)
		c := float64(float64(float64(float64(sx*sy)*dxy)*dxy) / fxy)
		return math.Sqrt(float64((a+b)-c) / fxy)
	case methodMedian:
		a := float64(0.5 * float64(float64(dxi*dxi)+float64(dyi*dyi)))
		b := float64(float64(0.25*dxy) * dxy)
		return math.Sqrt(a - b)
	case methodWard:
		t := 1.0 / float64(sx+sy+si)
		a := float64(float64(float64(float64(si+sx)*t)*dxi) * dxi)
		b := float64(float64(float64(float64(si+sy)*t)*dyi) * dyi)
		c := float64(float64(float64(float64(si)*t)*dxy) * dxy)
		return math.Sqrt((a + b) - c)
	case methodWeighted:
		return 0.5 * (dxi + dyi)
	}
	panic("hac: unreachable linkage method")
}

// maxD is Cython's max(a, b) for doubles.
func maxD(a, b float64) float64 {
	if b > a {
		return b
	}
	return a
}
