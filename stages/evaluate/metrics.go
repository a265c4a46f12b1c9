package evaluate

import (
	"fmt"
	"math"
)

// ScorePartition scores a clustering of n items against their true labels: labels[i] is item
// i's identity, clusters[i] its cluster, Dropped (−1) for an item in no cluster, which counts as
// a cluster of its own. Other negative clusters are an error. It fills every field of Clustering
// (Faces is n). See the package comment for the definitions.
func ScorePartition(labels, clusters []int) (Clustering, error) {
	if len(labels) != len(clusters) {
		return Clustering{}, fmt.Errorf("evaluate: %d labels but %d clusters", len(labels), len(clusters))
	}
	var c Clustering
	pred := make([]int, len(clusters))
	single := -2
	for i, k := range clusters {
		switch {
		case k == Dropped:
			pred[i] = single
			single--
			c.Dropped++
		case k < 0:
			return Clustering{}, fmt.Errorf("evaluate: item %d: cluster %d < -1", i, k)
		default:
			pred[i] = k
		}
	}
	c.Faces = len(labels)
	c.Pairwise, c.BCubed, c.NMI, c.ARI = scores(labels, pred)
	c.Identities = countDistinct(labels, func(int) bool { return true })
	c.Clusters = countDistinct(pred, func(k int) bool { return k >= 0 })
	return c, nil
}

// contingency counts items per (label, cluster) cell, per label (row) and per cluster (col).
// Rows, columns and cells are numbered in order of first appearance, so sums over them always
// run in the same order and give the same bits.
type contingency struct {
	n        int
	row, col []int
	cells    []cell
}

type cell struct{ row, col, n int }

func newContingency(labels, clusters []int) *contingency {
	t := &contingency{n: len(labels)}
	rowOf, colOf, cellOf := map[int]int{}, map[int]int{}, map[[2]int]int{}
	number := func(of map[int]int, counts *[]int, k int) int {
		i, ok := of[k]
		if !ok {
			i = len(*counts)
			of[k] = i
			*counts = append(*counts, 0)
		}
		(*counts)[i]++
		return i
	}
	for i := range labels {
		r, c := number(rowOf, &t.row, labels[i]), number(colOf, &t.col, clusters[i])
		k, ok := cellOf[[2]int{r, c}]
		if !ok {
			k = len(t.cells)
			cellOf[[2]int{r, c}] = k
			t.cells = append(t.cells, cell{row: r, col: c})
		}
		t.cells[k].n++
	}
	return t
}

// pairs is n choose 2.
func pairs(n int) float64 { return float64(n) * float64(n-1) / 2 }

// scores computes every clustering score from labels and clusters (already made distinct for
// dropped items). All zero when there are no items.
func scores(labels, clusters []int) (pw, b3 PRF, nmi, ari float64) {
	if len(labels) == 0 {
		return
	}
	t := newContingency(labels, clusters)
	n := float64(t.n)

	// Pairwise and the sums ARI needs.
	var same, sameRow, sameCol float64
	for _, c := range t.cells {
		same += pairs(c.n)
	}
	for _, v := range t.row {
		sameRow += pairs(v)
	}
	for _, v := range t.col {
		sameCol += pairs(v)
	}
	pw.Precision = fraction(same, sameCol)
	pw.Recall = fraction(same, sameRow)
	pw.F = harmonic(pw.Precision, pw.Recall)

	// BCubed: every item in cell (i,j) has precision n_ij/|col j| and recall n_ij/|row i|.
	var p, r float64
	for _, c := range t.cells {
		v := float64(c.n)
		p += v * v / float64(t.col[c.col])
		r += v * v / float64(t.row[c.row])
	}
	b3.Precision = clamp01(p / n)
	b3.Recall = clamp01(r / n)
	b3.F = harmonic(b3.Precision, b3.Recall)

	// NMI with the arithmetic mean of the entropies.
	var mi, hr, hc float64
	for _, c := range t.cells {
		nij := float64(c.n)
		mi += nij / n * math.Log(n*nij/(float64(t.row[c.row])*float64(t.col[c.col])))
	}
	for _, v := range t.row {
		q := float64(v) / n
		hr -= q * math.Log(q)
	}
	for _, v := range t.col {
		q := float64(v) / n
		hc -= q * math.Log(q)
	}
	if hr == 0 && hc == 0 {
		nmi = 1 // one group on both sides
	} else {
		nmi = clamp01(mi / ((hr + hc) / 2))
	}

	// ARI (Hubert & Arabie).
	total := pairs(t.n)
	expected := 0.0
	if total > 0 {
		expected = sameRow * sameCol / total
	}
	maxIndex := (sameRow + sameCol) / 2
	if maxIndex == expected {
		ari = 1 // both all-singletons or both one group: identical partitions
	} else {
		ari = (same - expected) / (maxIndex - expected)
	}
	return
}

// fraction is a/b for the pair counts: 1 when b is 0 (no pair to judge, so nothing judged wrong).
func fraction(a, b float64) float64 {
	if b == 0 {
		return 1
	}
	return clamp01(a / b)
}
