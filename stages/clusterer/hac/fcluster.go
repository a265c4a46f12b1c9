package hac

import (
	"fmt"
	"math"
)

// Fcluster is scipy.cluster.hierarchy.fcluster(z, t, criterion='distance'):
// flat clusters in which every cophenetic distance is at most t, numbered
// 1, 2, … in SciPy's order (a depth-first walk from the root, left child
// first). A cluster qualifies when the largest merge height in its subtree
// is ≤ t, which also handles the non-monotone centroid and median trees as
// SciPy does. z is checked like SciPy's is_valid_linkage.
func Fcluster(z LinkageMatrix, t float64) ([]int, error) {
	if err := ValidateLinkage(z); err != nil {
		return nil, err
	}
	if math.IsNaN(t) {
		return nil, fmt.Errorf("%w: threshold is NaN", ErrBadParam)
	}
	return clusterMonocrit(z, maxDists(z), t), nil
}

// ValidateLinkage checks what SciPy's is_valid_linkage checks: n−1 rows,
// integral non-negative ids, no cluster used before it is formed or used
// twice, no negative heights or counts.
func ValidateLinkage(z LinkageMatrix) error {
	if len(z) == 0 {
		return fmt.Errorf("%w: empty linkage (needs at least 2 observations)", ErrBadLinkage)
	}
	n := len(z) + 1
	used := make([]bool, 2*n-1)
	for i, r := range z {
		for c := 0; c < 2; c++ {
			v := r[c]
			if v != math.Trunc(v) || v < 0 || math.IsNaN(v) {
				return fmt.Errorf("%w: row %d has cluster id %v", ErrBadLinkage, i, v)
			}
			if v >= float64(n+i) {
				return fmt.Errorf("%w: row %d uses cluster %v before it is formed", ErrBadLinkage, i, v)
			}
			if used[int(v)] {
				return fmt.Errorf("%w: cluster %v is used more than once", ErrBadLinkage, v)
			}
			used[int(v)] = true
		}
		if r[2] < 0 || math.IsNaN(r[2]) {
			return fmt.Errorf("%w: row %d has height %v", ErrBadLinkage, i, r[2])
		}
		if r[3] < 0 || math.IsNaN(r[3]) {
			return fmt.Errorf("%w: row %d has count %v", ErrBadLinkage, i, r[3])
		}
	}
	return nil
}

// maxDists is the largest merge height in each merge's subtree (SciPy's
// get_max_dist_for_each_cluster). Children precede parents in z, so one
// pass in row order gives the same values as SciPy's tree walk.
func maxDists(z LinkageMatrix) []float64 {
	n := len(z) + 1
	md := make([]float64, len(z))
	for i, r := range z {
		m := r[2]
		for c := 0; c < 2; c++ {
			if ch := int(r[c]); ch >= n {
				if v := md[ch-n]; v > m {
					m = v
				}
			}
		}
		md[i] = m
	}
	return md
}

// clusterMonocrit is SciPy's cluster_monocrit: a depth-first walk from the
// root that opens a new flat cluster at the first node (or leaf) whose
// criterion is ≤ cutoff, numbering clusters in visiting order.
func clusterMonocrit(z LinkageMatrix, mc []float64, cutoff float64) []int {
	n := len(z) + 1
	labels := make([]int, n)
	visited := make([]bool, 2*n-1)
	stack := make([]int, 0, n)
	stack = append(stack, 2*n-2)
	nCluster, leader := 0, -1
	for len(stack) > 0 {
		root := stack[len(stack)-1] - n
		lc, rc := int(z[root][0]), int(z[root][1])
		if leader == -1 && mc[root] <= cutoff {
			leader = root
			nCluster++
		}
		if lc >= n && !visited[lc] {
			visited[lc] = true
			stack = append(stack, lc)
			continue
		}
		if rc >= n && !visited[rc] {
			visited[rc] = true
			stack = append(stack, rc)
			continue
		}
		if lc < n {
			if leader == -1 {
				nCluster++
			}
			labels[lc] = nCluster
		}
		if rc < n {
			if leader == -1 {
				nCluster++
			}
			labels[rc] = nCluster
		}
		if leader == root {
			leader = -1
		}
		stack = stack[:len(stack)-1]
	}
	return labels
}

// Cophenetic returns the condensed cophenetic distances of z: for each pair
// of observations the height of the merge that first joins them.
func Cophenetic(z LinkageMatrix) ([]float64, error) {
	if err := ValidateLinkage(z); err != nil {
		return nil, err
	}
	n := len(z) + 1
	out := make([]float64, CondensedLen(n))
	members := make([][]int, 2*n-1)
	for i := range n {
		members[i] = []int{i}
	}
	for i, r := range z {
		a, b := members[int(r[0])], members[int(r[1])]
		for _, p := range a {
			for _, q := range b {
				out[CondensedIndex(n, p, q)] = r[2]
			}
		}
		members[n+i] = append(append(make([]int, 0, len(a)+len(b)), a...), b...)
		members[int(r[0])], members[int(r[1])] = nil, nil
	}
	return out, nil
}
