package hac_test

import (
	"fmt"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
)

// Two groups of three points and one stray point: the cut at max(d)·(1−sim) keeps the groups,
// and the minimum cluster size drops the stray one.
func ExampleCluster() {
	points := [][]float64{{0, 0}, {0, 1}, {1, 0}, {10, 10}, {10, 11}, {11, 10}, {30, 0}}
	p := hac.DefaultParams() // average linkage, euclidean, sim 0.55, clusters of 3 or more
	res, err := hac.Cluster(points, nil, p)
	if err != nil {
		panic(err)
	}
	fmt.Printf("cut at %.2f: %v\n", res.Threshold, res.Clusters)
	// Output: cut at 13.51: [[0 1 2] [3 4 5]]
}

// Linkage gives SciPy's Z matrix: each row merges two clusters at a height.
func ExampleLinkage() {
	// Condensed distances of 3 points on a line at 0, 1 and 5: d(0,1), d(0,2), d(1,2).
	z, err := hac.Linkage([]float64{1, 5, 4}, 3, "single")
	if err != nil {
		panic(err)
	}
	for _, row := range z {
		fmt.Println(row)
	}
	// Output:
	// [0 1 1 2]
	// [2 3 4 3]
}
