package hac

import (
	"bytes"
	"compress/gzip"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

func randPoints(rng *rand.Rand, n, dim int) [][]float64 {
	pts := make([][]float64, n)
	for i := range pts {
		pts[i] = make([]float64, dim)
		for k := range pts[i] {
			pts[i][k] = rng.NormFloat64()
		}
	}
	return pts
}

func TestValidationErrors(t *testing.T) {
	good := [][]float64{{0, 1}, {1, 0}, {2, 2}}
	def := DefaultParams()
	with := func(f func(*Params)) Params { p := def; f(&p); return p }
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name   string
		points [][]float64
		ts     []float64
		p      Params
		want   error
	}{
		{"no points", nil, nil, def, ErrTooFewPoints},
		{"one point", [][]float64{{1, 2}}, nil, def, ErrTooFewPoints},
		{"NaN coordinate", [][]float64{{0, 1}, {nan, 0}}, nil, def, ErrBadInput},
		{"Inf coordinate", [][]float64{{0, 1}, {1, -inf}}, nil, def, ErrBadInput},
		{"ragged", [][]float64{{0, 1}, {1, 0, 2}}, nil, def, ErrBadInput},
		{"no coordinates", [][]float64{{}, {}}, nil, def, ErrBadInput},
		{"zero vector cosine", [][]float64{{0, 1}, {0, 0}}, nil, with(func(p *Params) { p.Metric = "cosine" }), ErrBadInput},
		{"sim < 0", good, nil, with(func(p *Params) { p.Sim = -0.1 }), ErrBadParam},
		{"sim > 1", good, nil, with(func(p *Params) { p.Sim = 1.5 }), ErrBadParam},
		{"sim NaN", good, nil, with(func(p *Params) { p.Sim = nan }), ErrBadParam},
		{"min_csize 0", good, nil, with(func(p *Params) { p.MinCSize = 0 }), ErrBadParam},
		{"unknown method", good, nil, with(func(p *Params) { p.Method = "upgma" }), ErrBadParam},
		{"empty method", good, nil, with(func(p *Params) { p.Method = "" }), ErrBadParam},
		{"unknown metric", good, nil, with(func(p *Params) { p.Metric = "cityblock" }), ErrBadParam},
		{"alpha < 0", good, []float64{0, 1, 2}, with(func(p *Params) { p.Alpha = -0.5 }), ErrBadParam},
		{"alpha > 1", good, []float64{0, 1, 2}, with(func(p *Params) { p.Alpha = 1.01 }), ErrBadParam},
		{"alpha NaN", good, nil, with(func(p *Params) { p.Alpha = nan }), ErrBadParam},
		{"timestamps too short", good, []float64{0, 1}, def, ErrBadInput},
		{"timestamps empty", good, []float64{}, def, ErrBadInput},
		{"timestamp NaN", good, []float64{0, nan, 1}, def, ErrBadInput},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Cluster(c.points, c.ts, c.p)
			checkErr(t, err, c.want)
		})
	}
	if _, err := Cluster([][]float64{{0, 1}, {0, 0}, {1, 1}}, nil, def); err != nil {
		t.Errorf("zero vector with euclidean: %v", err)
	}

	t.Run("condensed", func(t *testing.T) {
		_, err := ClusterCondensed([]float64{1, 2}, 3, nil, def)
		checkErr(t, err, ErrBadInput)
		_, err = ClusterCondensed([]float64{1, -2, 3}, 3, nil, def)
		checkErr(t, err, ErrBadInput)
		_, err = ClusterCondensed([]float64{1, nan, 3}, 3, nil, def)
		checkErr(t, err, ErrBadInput)
		_, err = ClusterCondensed(nil, 1, nil, def)
		checkErr(t, err, ErrTooFewPoints)
		_, err = ClusterCondensed([]float64{1, 2, 3}, 3, []float64{1}, def)
		checkErr(t, err, ErrBadInput)
		_, err = ClusterCondensed([]float64{1, 2, 3}, 3, nil, with(func(p *Params) { p.Method = "x" }))
		checkErr(t, err, ErrBadParam)
		// The metric is not used for condensed input.
		if _, err = ClusterCondensed([]float64{1, 2, 3}, 3, nil, with(func(p *Params) { p.Metric = "" })); err != nil {
			t.Error(err)
		}
	})
	t.Run("linkage", func(t *testing.T) {
		_, err := Linkage([]float64{1, inf, 3}, 3, "average")
		checkErr(t, err, ErrBadInput)
		_, err = Linkage([]float64{1, 2, 3}, 4, "average")
		checkErr(t, err, ErrBadInput)
		_, err = Linkage([]float64{1, 2, 3}, 3, "nope")
		checkErr(t, err, ErrBadParam)
		_, err = Linkage(nil, 0, "single")
		checkErr(t, err, ErrTooFewPoints)
		_, err = Pdist(good, "nope")
		checkErr(t, err, ErrBadParam)
	})
	t.Run("fcluster", func(t *testing.T) {
		bad := []LinkageMatrix{
			nil,
			{{0, 0, 1, 2}},               // same cluster twice
			{{0, 1, 1, 2}, {2, 4, 1, 2}}, // uses cluster 4 before it exists
			{{0, 1, -1, 2}},              // negative height
			{{0, 1, 1, -2}},              // negative count
			{{0.5, 1, 1, 2}},             // non-integral id
			{{-1, 1, 1, 2}},              // negative id
			{{0, 1, 1, 2}, {0, 2, 2, 3}}, // 0 used twice
		}
		for i, z := range bad {
			_, err := Fcluster(z, 1)
			if !errors.Is(err, ErrBadLinkage) {
				t.Errorf("case %d: err %v, want ErrBadLinkage", i, err)
			}
		}
		_, err := Fcluster(LinkageMatrix{{0, 1, 1, 2}}, nan)
		checkErr(t, err, ErrBadParam)
	})
	t.Run("blend", func(t *testing.T) {
		checkErr(t, BlendTimestamps([]float64{1}, []float64{0, 1, 2}, 0.5), ErrBadInput)
		checkErr(t, BlendTimestamps([]float64{1, 1, 1}, []float64{0, 1, 2}, 2), ErrBadParam)
	})
}

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if !strings.HasPrefix(err.Error(), "hac: ") {
		t.Errorf("error %q does not start with \"hac: \"", err)
	}
}

// TestFclusterHandMade: labels checked against SciPy 1.10 by hand.
func TestFclusterHandMade(t *testing.T) {
	pts := [][]float64{{0}, {1}, {3}, {10}}
	d, err := Pdist(pts, "euclidean")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		z      LinkageMatrix
		labels map[float64][]int
	}{
		"single": {LinkageMatrix{{0, 1, 1, 2}, {2, 4, 2, 3}, {3, 5, 7, 4}}, map[float64][]int{
			0: {1, 2, 3, 4}, 1: {1, 1, 2, 3}, 1.5: {1, 1, 2, 3}, 2: {1, 1, 1, 2}, 7: {1, 1, 1, 1}, 100: {1, 1, 1, 1}}},
		"complete": {LinkageMatrix{{0, 1, 1, 2}, {2, 4, 3, 3}, {3, 5, 10, 4}}, map[float64][]int{
			0: {1, 2, 3, 4}, 2.5: {1, 1, 2, 3}, 3: {1, 1, 1, 2}, 7: {1, 1, 1, 2}, 100: {1, 1, 1, 1}}},
		"average": {LinkageMatrix{{0, 1, 1, 2}, {2, 4, 2.5, 3}, {3, 5, 26.0 / 3, 4}}, map[float64][]int{
			2: {1, 1, 2, 3}, 2.5: {1, 1, 1, 2}}},
	}
	for m, w := range want {
		z, err := Linkage(d, 4, m)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(z, w.z) {
			t.Errorf("%s: Z = %v, want %v", m, z, w.z)
		}
		for thr, labels := range w.labels {
			got, err := Fcluster(z, thr)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, labels) {
				t.Errorf("%s t=%v: labels %v, want %v", m, thr, got, labels)
			}
		}
	}
	// Two blobs and an outlier.
	pts = [][]float64{{0, 0}, {0, 1}, {5, 5}, {5, 6}, {5, 7}, {20, 20}}
	res, err := Cluster(pts, nil, Params{Method: "average", Metric: "euclidean", Sim: 1 - 2/maxDist(pts), MinCSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Labels, []int{1, 1, 2, 2, 2, 3}) {
		t.Errorf("labels %v", res.Labels)
	}
	if !reflect.DeepEqual(res.Clusters, [][]int{{0, 1}, {2, 3, 4}, {5}}) {
		t.Errorf("clusters %v", res.Clusters)
	}
	res.Clusters = GroupLabels(res.Labels, 2)
	if !reflect.DeepEqual(res.Clusters, [][]int{{0, 1}, {2, 3, 4}}) {
		t.Errorf("min size 2: %v", res.Clusters)
	}
}

func maxDist(pts [][]float64) float64 {
	d, _ := Pdist(pts, "euclidean")
	return maxOf(d)
}

// TestSingleIsMST: single linkage heights are the minimum spanning tree's
// edge weights, and its flat clusters the components of the graph of
// edges ≤ t (Kruskal with union-find as the independent reference).
func TestSingleIsMST(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 20 {
		n := 2 + rng.IntN(60)
		pts := randPoints(rng, n, 1+rng.IntN(4))
		d, _ := Pdist(pts, "euclidean")
		z, err := Linkage(d, n, "single")
		if err != nil {
			t.Fatal(err)
		}
		type edge struct {
			w    float64
			i, j int
		}
		var edges []edge
		for i := range n {
			for j := i + 1; j < n; j++ {
				edges = append(edges, edge{d[CondensedIndex(n, i, j)], i, j})
			}
		}
		sort.Slice(edges, func(a, b int) bool { return edges[a].w < edges[b].w })
		parent := make([]int, n)
		for i := range parent {
			parent[i] = i
		}
		var find func(int) int
		find = func(x int) int {
			if parent[x] != x {
				parent[x] = find(parent[x])
			}
			return parent[x]
		}
		var mst []float64
		for _, e := range edges {
			if a, b := find(e.i), find(e.j); a != b {
				parent[a] = b
				mst = append(mst, e.w)
			}
		}
		for k, r := range z {
			if r[2] != mst[k] {
				t.Fatalf("trial %d: merge %d height %v, MST edge %v", trial, k, r[2], mst[k])
			}
		}
		thr := mst[rng.IntN(len(mst))]
		labels, _ := Fcluster(z, thr)
		for i := range parent {
			parent[i] = i
		}
		for _, e := range edges {
			if e.w <= thr {
				parent[find(e.i)] = find(e.j)
			}
		}
		for i := range n {
			for j := i + 1; j < n; j++ {
				if (labels[i] == labels[j]) != (find(i) == find(j)) {
					t.Fatalf("trial %d: points %d,%d: fcluster and components disagree", trial, i, j)
				}
			}
		}
	}
}

// naiveLinkage is the textbook O(n³) algorithm with SciPy's update formulas
// (SciPy's own reference implementation, _hierarchy.linkage): an
// independent check of the NN-chain and generic algorithms on tie-free data.
func naiveLinkage(d []float64, n int, m method) LinkageMatrix {
	D := slices.Clone(d)
	z := make(LinkageMatrix, n-1)
	id := make([]int, n)
	for i := range id {
		id[i] = i
	}
	for k := range n - 1 {
		cur, x, y := math.Inf(1), 0, 0
		for i := range n - 1 {
			if id[i] == -1 {
				continue
			}
			for j := i + 1; j < n; j++ {
				if id[j] == -1 {
					continue
				}
				if v := D[CondensedIndex(n, i, j)]; v < cur {
					cur, x, y = v, i, j
				}
			}
		}
		nx, ny := 1, 1
		if id[x] >= n {
			nx = int(z[id[x]-n][3])
		}
		if id[y] >= n {
			ny = int(z[id[y]-n][3])
		}
		z[k] = [4]float64{float64(min(id[x], id[y])), float64(max(id[x], id[y])), cur, float64(nx + ny)}
		id[x], id[y] = -1, n+k
		for i := range n {
			if id[i] == -1 || i == y {
				continue
			}
			ni := 1
			if id[i] >= n {
				ni = int(z[id[i]-n][3])
			}
			D[CondensedIndex(n, i, y)] = lanceWilliams(m, D[CondensedIndex(n, i, x)], D[CondensedIndex(n, i, y)], cur, nx, ny, ni)
		}
	}
	return z
}

func TestLinkageMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 40 {
		n := 2 + rng.IntN(50)
		pts := randPoints(rng, n, 1+rng.IntN(5))
		d, _ := Pdist(pts, "euclidean")
		for _, name := range Methods {
			m, _ := parseMethod(name)
			z, err := Linkage(d, n, name)
			if err != nil {
				t.Fatal(err)
			}
			want := naiveLinkage(d, n, m)
			if m != methodCentroid && m != methodMedian {
				// The naive algorithm merges in height order only for the
				// monotone methods; sort like SciPy does for NN-chain.
				want, _ = finishLinkage(want, n)
			}
			if msg := compareZ(z, want); msg != "" {
				t.Fatalf("trial %d %s n=%d: %s", trial, name, n, msg)
			}
			if z[n-2][3] != float64(n) {
				t.Fatalf("root count %v, want %d", z[n-2][3], n)
			}
		}
	}
}

// TestLinkageProperties: monotone heights, ultrametric cophenetic
// distances bounded as the method implies, input untouched.
func TestLinkageProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 10 {
		n := 2 + rng.IntN(80)
		pts := randPoints(rng, n, 3)
		d, _ := Pdist(pts, "euclidean")
		orig := slices.Clone(d)
		for _, name := range Methods {
			z, err := Linkage(d, n, name)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d, orig) {
				t.Fatalf("%s modified its input", name)
			}
			if name != "centroid" && name != "median" {
				for k := 1; k < len(z); k++ {
					if z[k][2] < z[k-1][2] {
						t.Fatalf("%s: heights not monotone at %d", name, k)
					}
				}
			}
			coph, err := Cophenetic(z)
			if err != nil {
				t.Fatal(err)
			}
			for k := range d {
				switch name {
				case "single":
					if coph[k] > d[k] {
						t.Fatalf("single: cophenetic %v > distance %v", coph[k], d[k])
					}
				case "complete":
					if coph[k] < d[k] {
						t.Fatalf("complete: cophenetic %v < distance %v", coph[k], d[k])
					}
				}
			}
			// Fcluster at a merge height: same label iff cophenetic ≤ t
			// (for monotone trees).
			if name != "centroid" && name != "median" {
				thr := z[rng.IntN(len(z))][2]
				labels, _ := Fcluster(z, thr)
				for i := range n {
					for j := i + 1; j < n; j++ {
						if (labels[i] == labels[j]) != (coph[CondensedIndex(n, i, j)] <= thr) {
							t.Fatalf("%s: labels disagree with cophenetic distances", name)
						}
					}
				}
			}
		}
		// In place gives the same answer.
		for _, name := range Methods {
			a, _ := Linkage(d, n, name)
			b, _ := LinkageInPlace(slices.Clone(d), n, name)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%s: in-place result differs", name)
			}
		}
	}
}

// TestPdist: against direct formulas, across tile boundaries, and exact
// for near-duplicate points where the Gram trick alone would not be.
func TestPdist(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	n, dim := 300, 17 // > tileRows + tileCols: several tiles per row block
	pts := randPoints(rng, n, dim)
	for i := 0; i < 20; i++ { // near-duplicates
		j := rng.IntN(n)
		p := slices.Clone(pts[j])
		p[0] += 1e-9
		pts[rng.IntN(n)] = p
	}
	pts[5] = slices.Clone(pts[6]) // exact duplicate
	for _, metric := range []string{"euclidean", "cosine"} {
		d, err := Pdist(pts, metric)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			for j := i + 1; j < n; j++ {
				var want float64
				if metric == "euclidean" {
					want = math.Sqrt(sqDist(pts[i], pts[j]))
				} else {
					c := dot2(pts[i], pts[j]) / (math.Sqrt(dot2(pts[i], pts[i])) * math.Sqrt(dot2(pts[j], pts[j])))
					want = 1 - math.Max(-1, math.Min(1, c))
				}
				got := d[CondensedIndex(n, i, j)]
				tol := 1e-11 * math.Max(want, 1e-300)
				if metric == "cosine" {
					tol = 1e-14 // absolute: SciPy's own cancellation near 0
				}
				if math.Abs(got-want) > tol {
					t.Fatalf("%s (%d,%d): %v, want %v", metric, i, j, got, want)
				}
			}
		}
		if d[CondensedIndex(n, 5, 6)] != 0 {
			t.Errorf("%s: duplicate points at distance %v", metric, d[CondensedIndex(n, 5, 6)])
		}
	}
}

// TestPdistOffset: data far from the origin (where the raw Gram trick
// would cancel for every pair) stays exact through the centring, and
// integer data keeps exact distances (ties).
func TestPdistOffset(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	n, dim := 200, 9
	pts := randPoints(rng, n, dim)
	grid := make([][]float64, n)
	for i, p := range pts {
		grid[i] = make([]float64, dim)
		for k := range p {
			grid[i][k] = float64(rng.IntN(5)) + 1000
			p[k] = 1e6 + p[k]*1e-2
		}
	}
	for _, set := range [][][]float64{pts, grid} {
		d, err := Pdist(set, "euclidean")
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			for j := i + 1; j < n; j++ {
				want := math.Sqrt(sqDist(set[i], set[j]))
				if got := d[CondensedIndex(n, i, j)]; math.Abs(got-want) > 1e-11*want {
					t.Fatalf("(%d,%d): %v, want %v", i, j, got, want)
				}
			}
		}
	}
	d, _ := Pdist(grid, "euclidean")
	for k, v := range d {
		if w := math.Sqrt(math.Round(v * v)); v != w {
			t.Fatalf("grid distance %v at %d, want exactly %v", v, k, w)
		}
	}
}

func TestClusterCondensedMatchesCluster(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	pts := randPoints(rng, 70, 4)
	ts := make([]float64, 70)
	for i := range ts {
		ts[i] = float64(rng.IntN(20))
	}
	p := Params{Method: "ward", Metric: "euclidean", Sim: 0.6, MinCSize: 2, Alpha: 0.25}
	a, err := Cluster(pts, ts, p)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := Pdist(pts, "euclidean")
	orig := slices.Clone(d)
	b, err := ClusterCondensed(d, 70, ts, p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d, orig) {
		t.Error("ClusterCondensed modified d")
	}
	c, err := ClusterCondensedInPlace(d, 70, ts, p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(a, c) {
		t.Error("Cluster, ClusterCondensed and ClusterCondensedInPlace differ")
	}
}

func TestDegenerateInputs(t *testing.T) {
	// All points equal: every distance 0, one cluster at threshold 0.
	pts := [][]float64{{1, 1}, {1, 1}, {1, 1}, {1, 1}}
	for _, m := range Methods {
		res, err := Cluster(pts, nil, Params{Method: m, Metric: "euclidean", Sim: 0.55, MinCSize: 3})
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if res.Threshold != 0 || !reflect.DeepEqual(res.Clusters, [][]int{{0, 1, 2, 3}}) {
			t.Errorf("%s: %+v", m, res)
		}
	}
	// Equal timestamps: the time term is 0 (the original would divide by 0).
	res, err := Cluster([][]float64{{0}, {1}, {5}}, []float64{3, 3, 3}, Params{Method: "average", Metric: "euclidean", Sim: 0.5, MinCSize: 1, Alpha: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Threshold != 0.5*0.5 {
		t.Errorf("threshold %v", res.Threshold)
	}
	// Two points.
	res, err = Cluster([][]float64{{0}, {2}}, nil, Params{Method: "median", Metric: "euclidean", Sim: 0, MinCSize: 1})
	if err != nil || !reflect.DeepEqual(res.Clusters, [][]int{{0, 1}}) || res.Threshold != 2 {
		t.Errorf("two points: %+v %v", res, err)
	}
	// No cluster survives min_csize: an empty list, not nil, in the output.
	res, err = Cluster([][]float64{{0}, {10}}, nil, Params{Method: "single", Metric: "euclidean", Sim: 0.5, MinCSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteOutput(&buf, res); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != `{"threshold":5,"clusters":[]}`+"\n" {
		t.Errorf("output %q", got)
	}
}

func TestBlendTimestamps(t *testing.T) {
	d := []float64{2, 4, 1}
	ts := []float64{0, 10, 5}
	if err := BlendTimestamps(d, ts, 0.25); err != nil {
		t.Fatal(err)
	}
	// dt = |0−10|, |0−5|, |10−5| = 10, 5, 5; max d 4, max dt 10.
	want := []float64{0.75*2/4 + 0.25*10/10, 0.75*4/4 + 0.25*5/10, 0.75*1/4 + 0.25*5/10}
	for k := range d {
		if math.Abs(d[k]-want[k]) > 1e-15 {
			t.Errorf("blend[%d] = %v, want %v", k, d[k], want[k])
		}
	}
}

func TestDecodeCase(t *testing.T) {
	src := `{"points": [[0,0],[0,1],[5,5],[5,6],[5,7]]}`
	c, err := DecodeCase(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Method != "average" || c.Metric != "euclidean" || c.Sim != 0.55 || c.MinCSize != 3 || c.Timestamps != nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"points": [[0],[1],[9]], "method": "single", "metric": "cosine", "sim": 0, "min_csize": 1, "timestamps": [1,2,3], "alpha": 0.5}`))
	zw.Close()
	c, err = DecodeCase(&gz)
	if err != nil {
		t.Fatal(err)
	}
	if c.Method != "single" || c.Metric != "cosine" || c.Sim != 0 || c.MinCSize != 1 || c.Alpha != 0.5 || len(c.Timestamps) != 3 {
		t.Errorf("fields: %+v", c)
	}
	for _, bad := range []string{
		``, `{`, `[]`, `{"points": [[0]]} {}`, `{"points": []}`, `{"points": [[0],[1]], "sim": 2}`,
		`{"points": [[0],[1]], "method": "x"}`, `{"points": [[0],[1]], "min_csize": 1.5}`,
		"\x1f\x8bnot gzip",
	} {
		if _, err := DecodeCase(strings.NewReader(bad)); err == nil || !strings.HasPrefix(err.Error(), "hac: ") {
			t.Errorf("DecodeCase(%q) = %v, want a hac error", bad, err)
		}
	}
	if _, err := ReadCaseFile("does/not/exist.json"); err == nil {
		t.Error("missing file: no error")
	}
}

// TestNNChainTwoCores: the NN-chain on two cores (parallelMin lowered so
// every scan and update is shared) gives the one-core linkage bit for bit,
// on integer grids full of exact ties where only the scan's order decides.
func TestNNChainTwoCores(t *testing.T) {
	defer func(was int) { parallelMin = was }(parallelMin)
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 30 {
		n := 2 + rng.IntN(300)
		pts := make([][]float64, n)
		for i := range pts {
			pts[i] = []float64{float64(rng.IntN(6)), float64(rng.IntN(6))}
		}
		d, _ := Pdist(pts, "euclidean")
		for _, name := range []string{"complete", "average", "weighted", "ward"} {
			parallelMin = math.MaxInt
			want, err := Linkage(d, n, name)
			if err != nil {
				t.Fatal(err)
			}
			parallelMin = 2
			got, err := Linkage(d, n, name)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("trial %d %s n=%d: row %d on two cores %v, on one %v", trial, name, n, i, got[i], want[i])
				}
			}
		}
	}
}

// TestWholeMatrixPasses: maxOf and firstNonFinite, which split d into blocks
// read on all cores, give the serial loops' answers, across block edges too.
func TestWholeMatrixPasses(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	big := make([]float64, 2*passBlock+5)
	for i := range big {
		big[i] = float64(i % 1000)
	}
	serialMax := func(d []float64) float64 {
		m := d[0]
		for _, v := range d[1:] {
			if v > m {
				m = v
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		set  map[int]float64
	}{
		{"plain", nil},
		{"max in the last block", map[int]float64{2*passBlock + 3: 5000}},
		{"NaN first", map[int]float64{0: nan}},
		{"NaN later, Inf after it", map[int]float64{passBlock + 1: nan, 2 * passBlock: inf}},
		{"-Inf at a block edge", map[int]float64{passBlock: math.Inf(-1)}},
	} {
		d := slices.Clone(big)
		firstBad := -1
		for k, v := range tc.set {
			d[k] = v
			if (math.IsNaN(v) || math.IsInf(v, 0)) && (firstBad < 0 || k < firstBad) {
				firstBad = k
			}
		}
		if got, want := maxOf(d), serialMax(d); got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("%s: maxOf %v, serial loop %v", tc.name, got, want)
		}
		if got := firstNonFinite(d); got != firstBad {
			t.Errorf("%s: firstNonFinite %d, want %d", tc.name, got, firstBad)
		}
	}
}
