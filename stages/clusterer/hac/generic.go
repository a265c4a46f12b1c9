package hac

import (
	"fmt"
	"math"
)

// genericLinkage is SciPy's fast_linkage, Müllner's generic algorithm, used
// for centroid and median (whose merge heights need not increase). d is
// overwritten. Rows come out final: in merge order, labelled, counted.
//
// The priority queue reproduces SciPy's binary heap operation for operation,
// because which of two equal candidates it returns first decides ties.
func genericLinkage(d []float64, n int, m method, prog *Progress) (LinkageMatrix, error) {
	z := make(LinkageMatrix, n-1)
	off := offsets(n)
	size := make([]int, n)
	clusterID := make([]int, n)
	for i := range n {
		size[i] = 1
		clusterID[i] = i
	}
	// neighbor[x]: candidate nearest neighbour of x among higher indices;
	// minDist[x] a lower bound of the distance to it.
	neighbor := make([]int, n-1)
	minDist := make([]float64, n-1)
	for x := range n - 1 {
		y, v := findMinDist(d, off, size, n, x)
		if y < 0 {
			return nil, errNoNeighbour(0)
		}
		neighbor[x], minDist[x] = y, v
	}
	h := newHeap(minDist)

	for k := range n - 1 {
		var x, y int
		var dist float64
		// A bounded loop as in SciPy (n−k tries), not "while true".
		for range n - k {
			x, dist = h.getMin()
			y = neighbor[x]
			if dist == d[condIdx(off, x, y)] {
				break
			}
			y, dist = findMinDist(d, off, size, n, x)
			if y < 0 {
				return nil, errNoNeighbour(k)
			}
			neighbor[x], minDist[x] = y, dist
			h.changeValue(x, dist)
		}
		h.removeMin()

		idX, idY := clusterID[x], clusterID[y]
		nx, ny := size[x], size[y]
		if idX > idY {
			idX, idY = idY, idX
		}
		z[k] = [4]float64{float64(idX), float64(idY), dist, float64(nx + ny)}
		prog.add(int64(n - k))
		size[x] = 0
		size[y] = nx + ny
		clusterID[y] = n + k

		for i := range n {
			ni := size[i]
			if ni == 0 || i == y {
				continue
			}
			iy := condIdx(off, i, y)
			d[iy] = lanceWilliams(m, d[condIdx(off, i, x)], d[iy], dist, nx, ny, ni)
		}
		// Neighbour candidates of x pass to y (a guess; checked when popped).
		for i := range x {
			if size[i] > 0 && neighbor[i] == x {
				neighbor[i] = y
			}
		}
		// Lower the bounds that the new cluster undercuts.
		for i := range y {
			if size[i] == 0 {
				continue
			}
			if v := d[off[i]+y]; v < minDist[i] {
				neighbor[i], minDist[i] = y, v
				h.changeValue(i, v)
			}
		}
		if y < n-1 {
			if i, v := findMinDist(d, off, size, n, y); i >= 0 {
				neighbor[y], minDist[y] = i, v
				h.changeValue(y, v)
			}
		}
	}
	return z, nil
}

func errNoNeighbour(k int) error {
	return fmt.Errorf("%w: no finite nearest neighbour at merge %d", ErrNonFinite, k)
}

// findMinDist is the first active cluster above x at the smallest distance
// (−1 if none is below +Inf).
func findMinDist(d []float64, off []int, size []int, n, x int) (int, float64) {
	cur := math.Inf(1)
	y := -1
	ox := off[x]
	for i := x + 1; i < n; i++ {
		if size[i] == 0 {
			continue
		}
		if v := d[ox+i]; v < cur {
			cur, y = v, i
		}
	}
	return y, cur
}

// heap is SciPy's _structures.pxi Heap: a binary min-heap of values keyed
// 0..len−1 with change-value, replicated exactly (sift order, strict
// comparisons) so ties resolve as in SciPy.
type heap struct {
	indexByKey []int
	keyByIndex []int
	values     []float64
	size       int
}

func newHeap(values []float64) *heap {
	h := &heap{
		indexByKey: make([]int, len(values)),
		keyByIndex: make([]int, len(values)),
		values:     append([]float64(nil), values...),
		size:       len(values),
	}
	for i := range values {
		h.indexByKey[i] = i
		h.keyByIndex[i] = i
	}
	for i := h.size/2 - 1; i >= 0; i-- {
		h.siftDown(i)
	}
	return h
}

func (h *heap) getMin() (int, float64) { return h.keyByIndex[0], h.values[0] }

func (h *heap) removeMin() {
	h.swap(0, h.size-1)
	h.size--
	h.siftDown(0)
}

func (h *heap) changeValue(key int, value float64) {
	index := h.indexByKey[key]
	old := h.values[index]
	h.values[index] = value
	if value < old {
		h.siftUp(index)
	} else {
		h.siftDown(index)
	}
}

func (h *heap) siftUp(index int) {
	parent := (index - 1) >> 1
	for index > 0 && h.values[parent] > h.values[index] {
		h.swap(index, parent)
		index = parent
		parent = (index - 1) >> 1
	}
}

func (h *heap) siftDown(index int) {
	child := 2*index + 1
	for child < h.size {
		if child+1 < h.size && h.values[child+1] < h.values[child] {
			child++
		}
		if h.values[index] > h.values[child] {
			h.swap(index, child)
			index = child
			child = 2*index + 1
		} else {
			break
		}
	}
}

func (h *heap) swap(i, j int) {
	h.values[i], h.values[j] = h.values[j], h.values[i]
	ki, kj := h.keyByIndex[i], h.keyByIndex[j]
	h.keyByIndex[i], h.keyByIndex[j] = kj, ki
	h.indexByKey[ki] = j
	h.indexByKey[kj] = i
}
