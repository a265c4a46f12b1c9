package hac

import (
	"fmt"
	"math"
	"slices"
)

// LinkageMatrix is SciPy's Z: row i merges clusters Z[i][0] < Z[i][1] at
// height Z[i][2] into cluster n+i of Z[i][3] observations; ids < n are the
// observations themselves.
type LinkageMatrix [][4]float64

type method int

// Method codes follow SciPy's _LINKAGE_METHODS.
const (
	methodSingle method = iota
	methodComplete
	methodAverage
	methodCentroid
	methodMedian
	methodWard
	methodWeighted
)

// methodNames names each method at its SciPy code: the one list of linkage methods.
var methodNames = [...]string{methodSingle: "single", methodComplete: "complete", methodAverage: "average",
	methodCentroid: "centroid", methodMedian: "median", methodWard: "ward", methodWeighted: "weighted"}

// Methods lists the supported linkage methods, in SciPy's order (a copy of the list hac uses).
var Methods = slices.Clone(methodNames[:])

// IsMethod reports whether name is a supported linkage method.
func IsMethod(name string) bool { return slices.Contains(methodNames[:], name) }

func parseMethod(name string) (method, error) {
	if i := slices.Index(methodNames[:], name); i >= 0 {
		return method(i), nil
	}
	return 0, fmt.Errorf("%w: unknown linkage method %q (want one of %v)", ErrBadParam, name, Methods)
}

// Linkage is scipy.cluster.hierarchy.linkage(condensed, method) for the
// condensed distances of n observations: the same merges, in the same
// order, with the same cluster ids. condensed is not modified.
//
// As in SciPy: single uses the MST algorithm; complete, average, weighted
// and ward the nearest-neighbour chain; centroid and median the generic
// algorithm of Müllner. Ward, centroid and median apply their
// Lance–Williams updates to the given distances as euclidean distances
// (SciPy's formulas, square roots included); on non-euclidean input they
// can produce NaN, reported as ErrNonFinite.
func Linkage(condensed []float64, n int, method string) (LinkageMatrix, error) {
	m, err := parseMethod(method)
	if err != nil {
		return nil, err
	}
	if err := checkCondensed(condensed, n); err != nil {
		return nil, err
	}
	if m == methodSingle { // reads condensed only
		return finishLinkage(mstSingle(condensed, n, nil), n)
	}
	return linkageOwned(slices.Clone(condensed), n, m, nil)
}

// LinkageInPlace is Linkage that uses condensed as its working matrix
// instead of a copy (halving peak memory); condensed's contents are
// undefined afterwards.
func LinkageInPlace(condensed []float64, n int, method string) (LinkageMatrix, error) {
	return linkageInPlace(condensed, n, method, nil)
}

// linkageInPlace is LinkageInPlace counting its merges in prog.
func linkageInPlace(condensed []float64, n int, method string, prog *Progress) (LinkageMatrix, error) {
	m, err := parseMethod(method)
	if err != nil {
		return nil, err
	}
	if err := checkCondensed(condensed, n); err != nil {
		return nil, err
	}
	prog.begin(stepLinkage, linkageWork(n))
	if m == methodSingle {
		return finishLinkage(mstSingle(condensed, n, prog), n)
	}
	return linkageOwned(condensed, n, m, prog)
}

func linkageOwned(d []float64, n int, m method, prog *Progress) (LinkageMatrix, error) {
	switch m {
	case methodComplete, methodAverage, methodWeighted, methodWard:
		z, err := nnChain(d, n, m, prog)
		if err != nil {
			return nil, err
		}
		return finishLinkage(z, n)
	default:
		z, err := genericLinkage(d, n, m, prog)
		if err != nil {
			return nil, err
		}
		if err := checkHeights(z); err != nil {
			return nil, err
		}
		return z, nil
	}
}

// finishLinkage orders the merges of an MST or NN-chain run by height, as
// SciPy does (a stable merge sort), then relabels them.
func finishLinkage(z LinkageMatrix, n int) (LinkageMatrix, error) {
	if err := checkHeights(z); err != nil {
		return nil, err
	}
	slices.SortStableFunc(z, func(a, b [4]float64) int {
		switch {
		case a[2] < b[2]:
			return -1
		case a[2] > b[2]:
			return 1
		}
		return 0
	})
	label(z, n)
	return z, nil
}

func checkHeights(z LinkageMatrix) error {
	for i, r := range z {
		if math.IsNaN(r[2]) || math.IsInf(r[2], 0) {
			return fmt.Errorf("%w: merge %d has height %v (centroid, median and ward need euclidean distances)",
				ErrNonFinite, i, r[2])
		}
	}
	return nil
}

// label rewrites the rows of a height-sorted merge list, whose entries name
// observations (representatives), into cluster ids n+i, smaller id first,
// and fills the counts: SciPy's union-find relabelling.
func label(z LinkageMatrix, n int) {
	parent := make([]int32, 2*n-1)
	size := make([]int32, 2*n-1)
	for i := range parent {
		parent[i] = int32(i)
		size[i] = 1
	}
	find := func(x int32) int32 {
		root := x
		for parent[root] != root {
			root = parent[root]
		}
		for parent[x] != root { // path compression
			x, parent[x] = parent[x], root
		}
		return root
	}
	next := int32(n)
	for i := range z {
		x, y := find(int32(z[i][0])), find(int32(z[i][1]))
		if x > y {
			x, y = y, x
		}
		parent[x], parent[y] = next, next
		size[next] = size[x] + size[y]
		z[i][0], z[i][1], z[i][3] = float64(x), float64(y), float64(size[next])
		next++
	}
}

// offsets returns off with off[i]+j = CondensedIndex(n, i, j) for i < j.
func offsets(n int) []int {
	off := make([]int, n)
	for i := range off {
		off[i] = n*i - i*(i+1)/2 - i - 1
	}
	return off
}

// mstSingle is SciPy's mst_single_linkage (Prim's algorithm from point 0);
// rows hold the two observations and the height, unsorted.
func mstSingle(d []float64, n int, prog *Progress) LinkageMatrix {
	z := make(LinkageMatrix, n-1)
	off := offsets(n)
	dist := make([]float64, n) // distance of each point to the tree
	for i := range dist {
		dist[i] = math.Inf(1)
	}
	// rest: points not yet in the tree, ascending, as SciPy's scan order.
	rest := make([]int32, 0, n-1)
	for i := 1; i < n; i++ {
		rest = append(rest, int32(i))
	}
	x := 0
	for k := range n - 1 {
		cur := math.Inf(1)
		y, yPos := -1, -1
		ox := off[x]
		for p, i32 := range rest {
			i := int(i32)
			var v float64
			if i < x {
				v = d[off[i]+x]
			} else {
				v = d[ox+i]
			}
			if dist[i] > v {
				dist[i] = v
			}
			if dist[i] < cur {
				cur, y, yPos = dist[i], i, p
			}
		}
		// Distances are finite, so some point is always found.
		z[k] = [4]float64{float64(x), float64(y), cur, 0}
		rest = slices.Delete(rest, yPos, yPos+1)
		x = y
		prog.add(int64(n - k))
	}
	return z
}
