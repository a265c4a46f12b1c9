package evaluate

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

const eps = 1e-12

func near(a, b float64) bool { return math.Abs(a-b) <= eps }

type want struct {
	pw, b3     PRF
	nmi, ari   float64
	clusters   int
	identities int
	dropped    int
}

func checkScores(t *testing.T, name string, labels, clusters []int, w want) {
	t.Helper()
	c, err := ScorePartition(labels, clusters)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	got := []float64{c.Pairwise.Precision, c.Pairwise.Recall, c.Pairwise.F, c.BCubed.Precision, c.BCubed.Recall, c.BCubed.F, c.NMI, c.ARI}
	exp := []float64{w.pw.Precision, w.pw.Recall, w.pw.F, w.b3.Precision, w.b3.Recall, w.b3.F, w.nmi, w.ari}
	names := []string{"pairwise P", "pairwise R", "pairwise F", "BCubed P", "BCubed R", "BCubed F", "NMI", "ARI"}
	for i := range got {
		if !near(got[i], exp[i]) {
			t.Errorf("%s: %s = %.15g, want %.15g", name, names[i], got[i], exp[i])
		}
	}
	if c.Faces != len(labels) || c.Clusters != w.clusters || c.Identities != w.identities || c.Dropped != w.dropped {
		t.Errorf("%s: faces %d clusters %d identities %d dropped %d, want %d %d %d %d",
			name, c.Faces, c.Clusters, c.Identities, c.Dropped, len(labels), w.clusters, w.identities, w.dropped)
	}
}

var one = PRF{1, 1, 1}

func TestScoresPerfect(t *testing.T) {
	checkScores(t, "perfect", []int{0, 0, 1, 1, 2}, []int{5, 5, 7, 7, 9},
		want{pw: one, b3: one, nmi: 1, ari: 1, clusters: 3, identities: 3})
	// Cluster numbers are arbitrary: a permutation is still perfect.
	checkScores(t, "perfect permuted", []int{2, 0, 1, 0, 2, 1}, []int{0, 1, 2, 1, 0, 2},
		want{pw: one, b3: one, nmi: 1, ari: 1, clusters: 3, identities: 3})
	// A single identity in a single cluster.
	checkScores(t, "one and one", []int{4, 4, 4}, []int{0, 0, 0},
		want{pw: one, b3: one, nmi: 1, ari: 1, clusters: 1, identities: 1})
	// Every face its own person, each dropped: dropped faces are singletons, so still perfect.
	checkScores(t, "singleton truth, all dropped", []int{0, 1, 2}, []int{-1, -1, -1},
		want{pw: one, b3: one, nmi: 1, ari: 1, clusters: 0, identities: 3, dropped: 3})
	// One item.
	checkScores(t, "one item", []int{0}, []int{0},
		want{pw: one, b3: one, nmi: 1, ari: 1, clusters: 1, identities: 1})
}

func TestScoresOneCluster(t *testing.T) {
	// Two people, two faces each, all in one cluster.
	// Pairwise: same-person pairs 2, same-cluster pairs 6, both 2: P 1/3, R 1, F 1/2.
	// BCubed: each face's cluster holds 4 faces of which 2 are it: P 1/2, R 1, F 2/3.
	// NMI: the cluster side has no entropy, so MI is 0. ARI: index 2 = expected 2·6/6, so 0.
	checkScores(t, "one cluster", []int{0, 0, 1, 1}, []int{0, 0, 0, 0},
		want{pw: PRF{1.0 / 3, 1, 0.5}, b3: PRF{0.5, 1, 2.0 / 3}, nmi: 0, ari: 0, clusters: 1, identities: 2})
}

func TestScoresAllSingletons(t *testing.T) {
	// The same four faces, each in a cluster of its own (here: all dropped by min_csize).
	// Pairwise: no same-cluster pair, so precision is vacuously 1; recall 0/2; F 0.
	// BCubed: P 1; R per face 1/2; F 2/3.
	// NMI: H(truth) = ln 2, H(clusters) = ln 4, MI = ln 2: ln2 / (1.5 ln2) = 2/3. ARI: 0.
	w := want{pw: PRF{1, 0, 0}, b3: PRF{1, 0.5, 2.0 / 3}, nmi: 2.0 / 3, ari: 0, clusters: 0, identities: 2, dropped: 4}
	checkScores(t, "all dropped", []int{0, 0, 1, 1}, []int{-1, -1, -1, -1}, w)
	w.clusters, w.dropped = 4, 0
	checkScores(t, "all singleton clusters", []int{0, 0, 1, 1}, []int{0, 1, 2, 3}, w)
}

func TestScoresKnownExamples(t *testing.T) {
	// BCubed by hand. Faces (identity, cluster): (A,1) (A,1) (A,2) (B,2) (B,2) (C,2).
	// Precision per face: 2/2, 2/2, 1/4, 2/4, 2/4, 1/4 → sum 3.5, mean 7/12.
	// Recall per face:    2/3, 2/3, 1/3, 2/2, 2/2, 1/1 → sum 14/3, mean 7/9.
	// F = 2·(7/12)(7/9)/(7/12+7/9) = 2/3.
	// Pairwise: both 2 ((A,A) in 1, (B,B) in 2); same cluster 1+6 = 7; same person 3+1 = 4.
	// NMI: n=6, rows 3,2,1, cols 2,4; cells 2,1,2,1.
	//   MI = 2/6 ln(6·2/6) + 1/6 ln(6/12) + 2/6 ln(12/8) + 1/6 ln(6/4)
	//   H(rows) = −(1/2 ln 1/2 + 1/3 ln 1/3 + 1/6 ln 1/6), H(cols) = −(1/3 ln 1/3 + 2/3 ln 2/3).
	// ARI: index 2, expected 4·7/15, max 11/2.
	mi := 2.0/6*math.Log(2) + 1.0/6*math.Log(0.5) + 2.0/6*math.Log(1.5) + 1.0/6*math.Log(1.5)
	hr := -(0.5*math.Log(0.5) + 1.0/3*math.Log(1.0/3) + 1.0/6*math.Log(1.0/6))
	hc := -(1.0/3*math.Log(1.0/3) + 2.0/3*math.Log(2.0/3))
	exp := 28.0 / 15
	checkScores(t, "BCubed by hand", []int{0, 0, 0, 1, 1, 2}, []int{1, 1, 2, 2, 2, 2},
		want{pw: PRF{2.0 / 7, 0.5, 2 * (2.0 / 7) * 0.5 / (2.0/7 + 0.5)}, b3: PRF{7.0 / 12, 7.0 / 9, 2.0 / 3},
			nmi: mi / ((hr + hc) / 2), ari: (2 - exp) / (5.5 - exp), clusters: 2, identities: 3})

	// scikit-learn's values: normalized_mutual_info_score([0,0,1,1],[0,0,1,2]) = 0.8,
	// adjusted_rand_score(...) = 4/7 = 0.5714285714285715.
	// BCubed: P 1; R (1+1+1/2+1/2)/4 = 3/4.
	checkScores(t, "sklearn example", []int{0, 0, 1, 1}, []int{0, 0, 1, 2},
		want{pw: PRF{1, 0.5, 2.0 / 3}, b3: PRF{1, 0.75, 6.0 / 7}, nmi: 0.8, ari: 4.0 / 7, clusters: 3, identities: 2})
}

func TestScoresEmptyAndErrors(t *testing.T) {
	c, err := ScorePartition(nil, nil)
	if err != nil || c != (Clustering{}) {
		t.Errorf("empty: %+v, %v; want zero scores", c, err)
	}
	for _, tc := range []struct {
		labels, clusters []int
		msg              string
	}{
		{[]int{0}, nil, "1 labels but 0 clusters"},
		{[]int{0, 1}, []int{0, -2}, "item 1: cluster -2"},
	} {
		_, err := ScorePartition(tc.labels, tc.clusters)
		if err == nil || !strings.HasPrefix(err.Error(), "evaluate: ") || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ScorePartition(%v, %v) = %v, want an error with %q", tc.labels, tc.clusters, err, tc.msg)
		}
	}
}

// bruteForce scores by the definitions, face by face and pair by pair.
func bruteForce(labels, clusters []int) (pw, b3 PRF) {
	n := len(labels)
	var same, sameL, sameC float64
	for i := 0; i < n; i++ {
		var inC, inL, both float64
		for j := 0; j < n; j++ {
			sl, sc := labels[i] == labels[j], clusters[i] == clusters[j]
			if sc {
				inC++
			}
			if sl {
				inL++
			}
			if sl && sc {
				both++
			}
			if j > i {
				if sl && sc {
					same++
				}
				if sl {
					sameL++
				}
				if sc {
					sameC++
				}
			}
		}
		b3.Precision += both / inC / float64(n)
		b3.Recall += both / inL / float64(n)
	}
	pw.Precision, pw.Recall = fraction(same, sameC), fraction(same, sameL)
	pw.F, b3.F = harmonic(pw.Precision, pw.Recall), harmonic(b3.Precision, b3.Recall)
	return
}

func TestScoresAgainstDefinitions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		n := 1 + rng.IntN(40)
		k, m := 1+rng.IntN(6), 1+rng.IntN(8)
		labels, clusters := make([]int, n), make([]int, n)
		for i := range labels {
			labels[i], clusters[i] = rng.IntN(k), rng.IntN(m)
		}
		c, err := ScorePartition(labels, clusters)
		if err != nil {
			t.Fatal(err)
		}
		pw, b3 := bruteForce(labels, clusters)
		for _, p := range [][2]float64{{c.Pairwise.Precision, pw.Precision}, {c.Pairwise.Recall, pw.Recall}, {c.Pairwise.F, pw.F},
			{c.BCubed.Precision, b3.Precision}, {c.BCubed.Recall, b3.Recall}, {c.BCubed.F, b3.F}} {
			if math.Abs(p[0]-p[1]) > 1e-9 {
				t.Fatalf("labels %v clusters %v: %+v, definitions give pairwise %+v BCubed %+v", labels, clusters, c, pw, b3)
			}
		}
		// NMI and ARI are symmetric; swapping truth and clusters swaps precision and recall.
		s, _ := ScorePartition(clusters, labels)
		if !near(s.NMI, c.NMI) || math.Abs(s.ARI-c.ARI) > 1e-9 || !near(s.BCubed.Precision, c.BCubed.Recall) || !near(s.Pairwise.Recall, c.Pairwise.Precision) {
			t.Fatalf("not symmetric: %+v vs %+v", c, s)
		}
		if c.NMI < 0 || c.NMI > 1 || c.ARI > 1+1e-12 || c.ARI < -1 {
			t.Fatalf("out of range: %+v", c)
		}
	}
}
