// Package hac is a pure-Go hierarchical agglomerative clustering that
// reproduces SciPy 1.10 (scipy.spatial.distance.pdist,
// scipy.cluster.hierarchy.linkage and fcluster with criterion='distance')
// merge for merge, and the original prototype's cluster() step built on them:
// distances, optional timestamp blend, linkage, a cut at max(d)·(1−sim) and a
// minimum cluster size.
//
// Exactness matters more than usual here: the port must give the same
// partitions as the Python original, so the linkage code follows SciPy's
// order of operations (scan order, strict comparisons, Lance–Williams formulas
// written as SciPy writes them) rather than any textbook variant.
package hac

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Sentinel errors, matched with errors.Is. Every error this package returns
// starts with "hac: " and wraps one of them.
var (
	// ErrTooFewPoints: clustering needs at least two observations.
	ErrTooFewPoints = errors.New("hac: too few points")
	// ErrBadParam: a parameter (method, metric, sim, min_csize, alpha) is invalid.
	ErrBadParam = errors.New("hac: invalid parameter")
	// ErrBadInput: the data (points, timestamps, distances) is invalid.
	ErrBadInput = errors.New("hac: invalid input")
	// ErrBadLinkage: a linkage matrix is not a valid SciPy linkage.
	ErrBadLinkage = errors.New("hac: invalid linkage matrix")
	// ErrNonFinite: the linkage produced NaN or infinite heights, which
	// happens with centroid/median/ward on distances that are not euclidean.
	ErrNonFinite = errors.New("hac: non-finite linkage heights")
)

// Defaults of the original prototype.
const (
	DefaultMethod   = "average"
	DefaultMetric   = "euclidean"
	DefaultSim      = 0.55
	DefaultMinCSize = 3
)

// Params are the original cluster() parameters.
type Params struct {
	// Method is a SciPy linkage method: single, complete, average, weighted,
	// ward, centroid or median.
	Method string
	// Metric is the pdist metric: euclidean or cosine. ClusterCondensed
	// ignores it.
	Metric string
	// Sim in [0,1] sets the cut: t = max(d)·(1−Sim).
	Sim float64
	// MinCSize ≥ 1: flat clusters with fewer members are dropped.
	MinCSize int
	// Alpha in [0,1] weighs the timestamp distance in the blend; used only
	// when timestamps are given.
	Alpha float64
}

// DefaultParams returns the original's defaults.
func DefaultParams() Params {
	return Params{Method: DefaultMethod, Metric: DefaultMetric, Sim: DefaultSim, MinCSize: DefaultMinCSize}
}

// Validate checks the parameters; the metric is checked only if checkMetric.
func (p Params) validate(checkMetric bool) error {
	if _, err := parseMethod(p.Method); err != nil {
		return err
	}
	if checkMetric {
		if err := checkMetricName(p.Metric); err != nil {
			return err
		}
	}
	if !(p.Sim >= 0 && p.Sim <= 1) { // also rejects NaN
		return fmt.Errorf("%w: sim %v outside [0,1]", ErrBadParam, p.Sim)
	}
	if p.MinCSize < 1 {
		return fmt.Errorf("%w: min_csize %d < 1", ErrBadParam, p.MinCSize)
	}
	if !(p.Alpha >= 0 && p.Alpha <= 1) {
		return fmt.Errorf("%w: alpha %v outside [0,1]", ErrBadParam, p.Alpha)
	}
	return nil
}

// Validate reports whether p is usable by Cluster.
func (p Params) Validate() error { return p.validate(true) }

// Result is the outcome of Cluster.
type Result struct {
	// Threshold is the cut height max(d)·(1−sim) over the (possibly
	// blended) distances.
	Threshold float64
	// Clusters are the kept flat clusters as point indices: each sorted,
	// the list sorted lexicographically.
	Clusters [][]int
	// Linkage is SciPy's Z matrix.
	Linkage LinkageMatrix
	// Labels are fcluster's 1-based flat cluster labels of every point,
	// including the points of dropped clusters.
	Labels []int
}

// Cluster runs the original cluster(): pairwise distances of points under
// p.Metric, the timestamp blend if timestamps is non-nil, linkage, the cut
// at max(d)·(1−p.Sim) and the p.MinCSize filter.
func Cluster(points [][]float64, timestamps []float64, p Params) (*Result, error) {
	return ClusterProgress(points, timestamps, p, nil)
}

// ClusterProgress is Cluster that counts its distances and linkage in prog.
func ClusterProgress(points [][]float64, timestamps []float64, p Params, prog *Progress) (*Result, error) {
	if err := p.validate(true); err != nil {
		return nil, err
	}
	if timestamps != nil && len(timestamps) != len(points) {
		return nil, fmt.Errorf("%w: %d timestamps for %d points", ErrBadInput, len(timestamps), len(points))
	}
	d, err := pdist(points, p.Metric, prog)
	if err != nil {
		return nil, err
	}
	// d is ours: let the linkage work in it instead of holding a copy.
	return clusterOwned(d, len(points), timestamps, p, prog)
}

// ClusterCondensed is Cluster on precomputed condensed distances (SciPy's
// layout, see CondensedIndex) of n observations; p.Metric is ignored. d is
// not modified.
func ClusterCondensed(d []float64, n int, timestamps []float64, p Params) (*Result, error) {
	if err := checkCondensedArgs(d, n, timestamps, p); err != nil {
		return nil, err
	}
	own := newCondensed(n)
	copy(own, d)
	return clusterOwned(own, n, timestamps, p, nil)
}

// ClusterCondensedInPlace is ClusterCondensed that uses d as the linkage's
// working matrix, so it needs no second n(n−1)/2 array; d's contents are
// undefined afterwards.
func ClusterCondensedInPlace(d []float64, n int, timestamps []float64, p Params) (*Result, error) {
	if err := checkCondensedArgs(d, n, timestamps, p); err != nil {
		return nil, err
	}
	return clusterOwned(d, n, timestamps, p, nil)
}

func checkCondensedArgs(d []float64, n int, timestamps []float64, p Params) error {
	if err := p.validate(false); err != nil {
		return err
	}
	if err := checkCondensed(d, n); err != nil {
		return err
	}
	for k, v := range d {
		if v < 0 {
			return fmt.Errorf("%w: negative distance %v at condensed index %d", ErrBadInput, v, k)
		}
	}
	if timestamps != nil && len(timestamps) != n {
		return fmt.Errorf("%w: %d timestamps for %d points", ErrBadInput, len(timestamps), n)
	}
	return nil
}

// clusterOwned runs blend, cut, linkage and filter on d, which it may
// overwrite. Parameters and d are already validated.
func clusterOwned(d []float64, n int, timestamps []float64, p Params, prog *Progress) (*Result, error) {
	if timestamps != nil {
		if err := BlendTimestamps(d, timestamps, p.Alpha); err != nil {
			return nil, err
		}
	}
	// The threshold comes from d before the linkage reuses d's storage.
	return cutOwned(d, n, Threshold(d, p.Sim), p, prog)
}

// cutOwned runs the linkage on d, which it may overwrite, cuts at t and filters.
func cutOwned(d []float64, n int, t float64, p Params, prog *Progress) (*Result, error) {
	z, err := linkageInPlace(d, n, p.Method, prog)
	if err != nil {
		return nil, err
	}
	labels, err := Fcluster(z, t)
	if err != nil {
		return nil, err
	}
	return &Result{Threshold: t, Clusters: GroupLabels(labels, p.MinCSize), Linkage: z, Labels: labels}, nil
}

// Threshold is the original's cut height max(d)·(1−sim) (0 for empty d).
func Threshold(d []float64, sim float64) float64 {
	return maxOf(d) * (1 - sim)
}

// maxOf is the largest of d, on all cores, with the serial loop's answer
// (m = d[0], then m = v wherever v > m): NaNs after d[0] are passed over,
// and a NaN d[0] is the answer.
func maxOf(d []float64) float64 {
	if len(d) == 0 {
		return 0
	}
	if math.IsNaN(d[0]) {
		return d[0]
	}
	maxes := make([]float64, numBlocks(len(d)))
	onBlocks(len(d), passBlock, func(b, lo, hi int) {
		m := math.Inf(-1)
		for _, v := range d[lo:hi] {
			if v > m {
				m = v
			}
		}
		maxes[b] = m
	})
	m := d[0]
	for _, v := range maxes {
		if v > m {
			m = v
		}
	}
	return m
}

// BlendTimestamps replaces d, the condensed distances of len(timestamps)
// points, in place by (1−α)·d/max(d) + α·dt/max(dt) with dt = |t_i − t_j|,
// as the original does (NumPy's order of operations). dt is computed on the
// fly, never stored. Where the original would divide 0 by 0 (all distances
// or all timestamps equal) the term is taken as 0 instead of NaN.
func BlendTimestamps(d []float64, timestamps []float64, alpha float64) error {
	n := len(timestamps)
	if err := checkCondensed(d, n); err != nil {
		return err
	}
	if !(alpha >= 0 && alpha <= 1) {
		return fmt.Errorf("%w: alpha %v outside [0,1]", ErrBadParam, alpha)
	}
	for i, t := range timestamps {
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return fmt.Errorf("%w: timestamp %d is %v", ErrBadInput, i, t)
		}
	}
	maxD := maxOf(d)
	// max |t_i − t_j| is max(t) − min(t); computed like pdist (sqrt of the
	// square) so it equals the largest pairwise value bit for bit.
	lo, hi := slices.Min(timestamps), slices.Max(timestamps)
	maxT := math.Sqrt(float64((hi - lo) * (hi - lo)))
	a, b := 1-alpha, alpha
	k := 0
	for i := 0; i < n-1; i++ {
		ti := timestamps[i]
		row := d[k : k+n-i-1]
		k += n - i - 1
		for jj := range row {
			diff := ti - timestamps[i+1+jj]
			var u, v float64
			if maxD != 0 {
				u = float64(a*row[jj]) / maxD
			}
			if maxT != 0 {
				v = float64(b*math.Sqrt(float64(diff*diff))) / maxT
			}
			row[jj] = u + v
		}
	}
	return nil
}

// GroupLabels turns flat cluster labels into the original's output: the
// clusters with at least minSize members as sorted index lists, the list
// sorted lexicographically.
func GroupLabels(labels []int, minSize int) [][]int {
	groups := map[int][]int{}
	for i, l := range labels {
		groups[l] = append(groups[l], i)
	}
	out := [][]int{}
	for _, g := range groups {
		if len(g) >= minSize {
			out = append(out, g) // ascending: built in index order
		}
	}
	slices.SortFunc(out, slices.Compare)
	return out
}
