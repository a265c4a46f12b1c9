package hac

import (
	"fmt"
	"math"
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
func nnChain(d []float64, n int, m method) (LinkageMatrix, error) {
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
			found := false
			p := activePos(active, x)
			for _, i32 := range active[:p] {
				if v := d[off[i32]+x]; v < cur {
					cur, y, found = v, int(i32), true
				}
			}
			ox := off[x]
			for _, i32 := range active[p+1:] {
				if v := d[ox+int(i32)]; v < cur {
					cur, y, found = v, int(i32), true
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
		updateDistances(d, off, active, size, lo, hi, cur, nx, ny, m)
	}
	return z, nil
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
func updateDistances(d []float64, off []int, active []int32, size []int, x, y int, dxy float64, nx, ny int, m method) {
	// Split active (which no longer holds x) at x and at y.
	px, _ := slices.BinarySearch(active, int32(x))
	py := activePos(active, y)
	ox, oy := off[x], off[y]
	fx, fy, fxy := float64(nx), float64(ny), float64(nx+ny)
	switch m {
	case methodAverage:
		for _, i32 := range active[:px] {
			o := off[i32]
			d[o+y] = (float64(fx*d[o+x]) + float64(fy*d[o+y])) / fxy
		}
		for _, i32 := range active[px:py] {
			o := off[i32]
			d[o+y] = (float64(fx*d[ox+int(i32)]) + float64(fy*d[o+y])) / fxy
		}
		for _, i32 := range active[py+1:] {
			d[oy+int(i32)] = (float64(fx*d[ox+int(i32)]) + float64(fy*d[oy+int(i32)])) / fxy
		}
	case methodComplete:
		for _, i32 := range active[:px] {
			o := off[i32]
			d[o+y] = maxD(d[o+x], d[o+y])
		}
		for _, i32 := range active[px:py] {
			o := off[i32]
			d[o+y] = maxD(d[ox+int(i32)], d[o+y])
		}
		for _, i32 := range active[py+1:] {
			d[oy+int(i32)] = maxD(d[ox+int(i32)], d[oy+int(i32)])
		}
	case methodWeighted:
		for _, i32 := range active[:px] {
			o := off[i32]
			d[o+y] = 0.5 * (d[o+x] + d[o+y])
		}
		for _, i32 := range active[px:py] {
			o := off[i32]
			d[o+y] = 0.5 * (d[ox+int(i32)] + d[o+y])
		}
		for _, i32 := range active[py+1:] {
			d[oy+int(i32)] = 0.5 * (d[ox+int(i32)] + d[oy+int(i32)])
		}
	default: // every other method goes through the generic formula
		for _, i32 := range active[:px] {
			o := off[i32]
			d[o+y] = lanceWilliams(m, d[o+x], d[o+y], dxy, nx, ny, size[i32])
		}
		for _, i32 := range active[px:py] {
			o := off[i32]
			d[o+y] = lanceWilliams(m, d[ox+int(i32)], d[o+y], dxy, nx, ny, size[i32])
		}
		for _, i32 := range active[py+1:] {
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
