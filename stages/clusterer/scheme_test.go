package clusterer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer/hac"
)

// blobs makes k people of m faces each, the faces of person p near centre p, and puts face i of
// every person in frame i (so each frame shows k different people).
func blobs(k, m, dim int, spread float64, seed uint64) Faces {
	r := rand.New(rand.NewPCG(seed, 1))
	var f Faces
	for p := 0; p < k; p++ {
		centre := make([]float64, dim)
		for j := range centre {
			centre[j] = r.NormFloat64()
		}
		cloth := make([]float64, dim)
		for j := range cloth {
			cloth[j] = r.NormFloat64()
		}
		for i := 0; i < m; i++ {
			fv, cv := make([]float32, dim), make([]float32, dim)
			for j := range fv {
				fv[j] = float32(centre[j] + spread*r.NormFloat64())
				cv[j] = float32(cloth[j] + spread*r.NormFloat64())
			}
			f.Face, f.Cloth, f.Frame = append(f.Face, fv), append(f.Cloth, cv), append(f.Frame, int64(i))
		}
	}
	return f
}

func TestClusterFacesExactIsTheOriginal(t *testing.T) {
	f := blobs(4, 6, 16, 0.3, 1)
	s := Scheme{Method: "average", Metric: "euclidean", MinCSize: 3, FaceWeight: 1, ClothWeight: 1, Sim: 0.55, Exact: true}
	kept, _, th, err := ClusterFaces(f, s)
	if err != nil {
		t.Fatal(err)
	}
	points := make([][]float64, len(f.Face))
	for i := range points {
		points[i] = Fingerprint(f.Face[i], f.Cloth[i], 1, 1)
	}
	want, err := hac.Cluster(points, nil, hac.Params{Method: "average", Metric: "euclidean", Sim: 0.55, MinCSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if th != want.Threshold || !slices.EqualFunc(kept, want.Clusters, slices.Equal) {
		t.Errorf("got %v (t %v), want %v (t %v)", kept, th, want.Clusters, want.Threshold)
	}
	// The combined-distance path gives the same partition when it adds nothing.
	s.Exact = false
	kept2, _, th2, err := ClusterFaces(f, s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(kept, kept2, slices.Equal) || th2-th > 1e-9 || th-th2 > 1e-9 {
		t.Errorf("combined path: %v (t %v), exact %v (t %v)", kept2, th2, kept, th)
	}
}

func TestCannotLinkSplitsFacesOfOneFrame(t *testing.T) {
	// Two people who look nearly alike, always seen together, and a third far away.
	f := blobs(3, 5, 8, 0.05, 2)
	for i := 0; i < 5; i++ {
		for j := range f.Face[5+i] {
			f.Face[5+i][j] = f.Face[i][j] + 0.01
			f.Cloth[5+i][j] = f.Cloth[i][j] + 0.01
		}
	}
	base := Scheme{Method: "average", MinCSize: 1, FaceWeight: 1, ClothWeight: 1, Sim: 0.5}
	kept, _, _, err := ClusterFaces(f, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 {
		t.Fatalf("without cannot-links the look-alikes should merge: %v", kept)
	}
	base.CannotLink = true
	kept, _, _, err = ClusterFaces(f, base)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range kept {
		seen := map[int64]bool{}
		for _, i := range c {
			if seen[f.Frame[i]] {
				t.Fatalf("cluster %v holds two faces of frame %d", c, f.Frame[i])
			}
			seen[f.Frame[i]] = true
		}
	}
	if len(kept) != 3 {
		t.Errorf("want the three people apart, got %v", kept)
	}
}

func TestScaleAndWeights(t *testing.T) {
	f := blobs(3, 4, 8, 0.2, 3)
	// Clothing alone and face alone both find the three people here.
	for _, s := range []Scheme{
		{Method: "average", MinCSize: 1, FaceWeight: 0, ClothWeight: 1, Sim: 0.5},
		{Method: "average", MinCSize: 1, FaceWeight: 1, ClothWeight: 0, Sim: 0.5},
		{Method: "average", MinCSize: 1, FaceWeight: 1, ClothWeight: 1, Sim: 0.5, ScaleParts: true, CannotLink: true},
	} {
		kept, _, _, err := ClusterFaces(f, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(kept) != 3 {
			t.Errorf("%+v: %v", s, kept)
		}
	}
	if _, _, _, err := ClusterFaces(f, Scheme{Method: "average", MinCSize: 1, Sim: 0.5}); err == nil {
		t.Error("both weights 0 accepted")
	}
	if _, _, _, err := ClusterFaces(Faces{Face: f.Face, Cloth: f.Cloth[:2]}, Scheme{Method: "average", MinCSize: 1, FaceWeight: 1}); err == nil {
		t.Error("ragged input accepted")
	}
}

func TestSchemeFor(t *testing.T) {
	p := messages.DefaultParams()
	if s, _ := SchemeFor(p, "euclidean", "fr_feature-512", "mobilenet_v1-512"); !s.Exact || s.Cut != 0 {
		t.Errorf("the original's params must give the exact scheme: %+v", s)
	}
	p.Cut, p.CannotLink = messages.CutCalibrated, true
	s, ok := SchemeFor(p, "euclidean", "fr_feature-512", "some-cloth-model")
	if !ok || s.Exact || s.Cut != 1.2 || !s.CannotLink {
		t.Errorf("calibrated ONNX, clothing without a measured spread: %+v %v", s, ok)
	}
	// Squared distances add across the parts: the clothing's spread widens the cut.
	if s, _ := SchemeFor(p, "euclidean", "dlib-resnet-128", "mobilenet_v1-512"); math.Abs(s.Cut-math.Sqrt(0.45*0.45+0.15*0.15)) > 1e-12 {
		t.Errorf("calibrated dlib with MobileNet clothing: cut %v", s.Cut)
	}
	p.FaceWeight, p.ClothWeight = 2, 0
	if s, _ := SchemeFor(p, "euclidean", "dlib-resnet-128", "mobilenet_v1-512"); s.Cut != 0.9 {
		t.Errorf("calibrated cut scales with the face weight: %+v", s)
	}
	p.FaceWeight, p.ClothWeight = 1, 2
	if s, _ := SchemeFor(p, "euclidean", "fr_feature-512", "mobilenet_v1-512"); math.Abs(s.Cut-math.Hypot(1.2, 0.3)) > 1e-12 {
		t.Errorf("calibrated cut grows with the clothing weight: %+v", s)
	}
	p.CannotLink = false
	if s, ok := SchemeFor(p, "euclidean", "some-model", "mobilenet_v1-512"); ok || s.Cut != 0 || !s.Exact {
		t.Errorf("unknown model falls back to the relative cut: %+v %v", s, ok)
	}
	p.FaceWeight, p.CannotLink = 0, true
	if _, ok := SchemeFor(p, "euclidean", "fr_feature-512", "mobilenet_v1-512"); ok {
		t.Error("no face part, yet a calibrated cut")
	}
}

// TestTypical: the typical face of a cluster is the one nearest its mean, not an outlier that
// joined it (a hand the detector took for a face, say).
func TestTypical(t *testing.T) {
	unit := func(x, y float32) []float32 { return []float32{x, y, 0} }
	f := Faces{
		Face:  [][]float32{unit(1, 1.5), unit(1, 0.1), unit(1, 0), unit(1, -0.1), unit(1, -0.05)},
		Cloth: [][]float32{unit(1, 0), unit(1, 0), unit(1, 0), unit(1, 0), unit(1, 0)},
	}
	s := Scheme{FaceWeight: 1, ClothWeight: 1}
	if got := Typical(f, []int{0, 1, 2, 3, 4}, s); got != 2 {
		t.Errorf("Typical = %d, want 2 (the face at the middle)", got)
	}
	if got := Typical(f, []int{0, 1}, s); got != 0 {
		t.Errorf("Typical of two = %d, want 0", got)
	}
}
