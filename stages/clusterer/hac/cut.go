package hac

import (
	"fmt"
	"math"
)

// ClusterAtInPlace clusters precomputed condensed distances of n observations
// with p.Method, cuts the tree at the given height t (fcluster's 'distance'
// criterion) instead of the original's max(d)·(1−sim), and drops clusters
// smaller than p.MinCSize. p.Sim, p.Metric and p.Alpha are ignored. d is the
// linkage's working matrix: its contents are undefined afterwards.
func ClusterAtInPlace(d []float64, n int, t float64, p Params) (*Result, error) {
	p.Sim, p.Alpha = 0, 0
	if err := checkCondensedArgs(d, n, nil, p); err != nil {
		return nil, err
	}
	if math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
		return nil, fmt.Errorf("%w: cut height %v is not a finite, non-negative number", ErrBadParam, t)
	}
	return cutOwned(d, n, t, p, nil)
}

// MaxDistance is the largest value of condensed distances (0 for none): the
// max(d) of the original's cut.
func MaxDistance(d []float64) float64 { return maxOf(d) }
