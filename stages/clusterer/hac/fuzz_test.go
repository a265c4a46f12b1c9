package hac

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// fuzzInput decodes bytes into a Cluster call: a header of shape and
// parameter bytes, then coordinates as small integers (to make ties), raw
// float64 bits (to reach NaN, Inf, huge and tiny values) or both.
func fuzzInput(data []byte) (points [][]float64, ts []float64, p Params) {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	n := int(next() % 24)
	dim := int(next() % 6)
	ragged := next()%16 == 0
	methods := append(slices.Clone(Methods), "bogus")
	p.Method = methods[int(next())%len(methods)]
	p.Metric = []string{"euclidean", "cosine", "bogus"}[int(next())%3]
	p.Sim = float64(int(next())-8) / 200 // a little outside [0,1] too
	p.MinCSize = int(next()%5) - 1
	p.Alpha = float64(int(next())-8) / 200
	useTS := next()%2 == 1
	raw := next()%4 == 0
	coord := func() float64 {
		if raw && len(data) >= 8 {
			v := math.Float64frombits(binary.LittleEndian.Uint64(data))
			data = data[8:]
			return v
		}
		return float64(int8(next())) / 4
	}
	for i := range n {
		d := dim
		if ragged && i == n-1 {
			d++
		}
		pt := make([]float64, d)
		for k := range pt {
			pt[k] = coord()
		}
		points = append(points, pt)
	}
	if useTS {
		for range n {
			ts = append(ts, float64(next()%8))
		}
	}
	return points, ts, p
}

func FuzzCluster(f *testing.F) {
	f.Add([]byte{6, 2, 1, 2, 0, 118, 3, 64, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{10, 3, 1, 4, 0, 100, 2, 60, 1, 0, 9, 9, 9, 9, 9, 9, 1, 1, 1, 0, 0, 0, 5, 5, 5, 200, 1})
	f.Add([]byte{8, 2, 1, 5, 1, 50, 1, 8, 0, 0, 1, 0, 0, 1, 1, 1, 255, 255, 3, 0, 0, 3})
	f.Add([]byte{5, 1, 1, 3, 0, 8, 1, 8, 1, 4, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f, 1, 2})
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		points, ts, p := fuzzInput(data)
		checkPdistExact(t, points)
		res, err := Cluster(points, ts, p)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "hac: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			for _, s := range []error{ErrTooFewPoints, ErrBadParam, ErrBadInput, ErrNonFinite} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error matches no sentinel: %v", err)
		}
		n := len(points)
		if len(res.Linkage) != n-1 || len(res.Labels) != n {
			t.Fatalf("sizes: %d merges, %d labels for %d points", len(res.Linkage), len(res.Labels), n)
		}
		if err := ValidateLinkage(res.Linkage); err != nil {
			t.Fatal(err)
		}
		seen := make([]bool, n)
		for k, c := range res.Clusters {
			if len(c) < p.MinCSize || !slices.IsSorted(c) {
				t.Fatalf("cluster %v", c)
			}
			if k > 0 && slices.Compare(res.Clusters[k-1], c) >= 0 {
				t.Fatal("clusters not sorted")
			}
			for _, i := range c {
				if seen[i] {
					t.Fatalf("point %d in two clusters", i)
				}
				seen[i] = true
			}
		}
	})
}

func FuzzDecodeCase(f *testing.F) {
	f.Add([]byte(`{"points": [[0,0],[0,1],[5,5],[5,6],[5,7]]}`))
	f.Add([]byte(`{"points": [[0],[1],[9]], "method": "ward", "metric": "cosine", "sim": 0, "min_csize": 1, "timestamps": [1,2,3], "alpha": 0.5}`))
	f.Add([]byte(`{"points": [[1e308,-1e308],[0,0]], "method": "centroid"}`))
	f.Add([]byte(`{"points": [[0],[1]], "expected": {"threshold": 1, "linkage": [[0,1,1,2]], "clusters": [[0,1]]}}`))
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCase(bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "hac: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if len(c.Points) > 200 {
			return
		}
		if res, err := c.Run(); err == nil {
			var buf bytes.Buffer
			if err := WriteOutput(&buf, res); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// checkPdistExact: the Gram-based Pdist stays within 1e-9 relative of the
// direct formula SciPy uses, whatever the magnitudes.
func checkPdistExact(t *testing.T, points [][]float64) {
	d, err := Pdist(points, "euclidean")
	if err != nil {
		return
	}
	n := len(points)
	for i := range n {
		for j := i + 1; j < n; j++ {
			want := math.Sqrt(sqDist(points[i], points[j]))
			got := d[CondensedIndex(n, i, j)]
			if got == want || (math.IsNaN(got) && math.IsNaN(want)) {
				continue
			}
			if !(math.Abs(got-want) <= 1e-9*want) {
				t.Fatalf("pdist(%v, %v) = %v, direct %v", points[i], points[j], got, want)
			}
		}
	}
}
