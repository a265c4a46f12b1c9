package clusterer

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer/hac"
)

// Scheme decides how the faces of one result are grouped.
type Scheme struct {
	Method   string // scipy linkage method
	Metric   string // euclidean or cosine; only the exact scheme uses it
	MinCSize int
	// FaceWeight and ClothWeight scale the two parts of a face's description; 0 leaves one out.
	FaceWeight, ClothWeight float64
	// Sim cuts the tree at max(d)·(1−Sim), d the combined distances (without cannot-links).
	Sim float64
	// Cut, when above 0, is the absolute cut height instead (CalibratedCut); not with Exact.
	Cut float64
	// Exact runs the original's cluster() on the concatenated fingerprints [face/‖face‖,
	// cloth/‖cloth‖], scipy-exact; the options below are then ignored.
	Exact bool
	// ScaleParts divides each part's distances by their largest before the parts are combined,
	// so clothing counts as much as the face at equal weights. Without it the face part,
	// whose distances spread about four times wider, decides nearly alone.
	ScaleParts bool
	// CannotLink keeps two faces of one frame out of one cluster: they are two people. It holds
	// for average, complete and weighted linkage; single linkage can still chain around it.
	CannotLink bool
	// TrackLink, when above 0, clusters tracks instead of single faces (Tracks): faces that stay
	// in place from one sampled frame to the next and whose unit face vectors lie within
	// TrackLink of each other are one person, described by their mean. Needs Faces.Box.
	TrackLink float64
}

// calibratedCuts are absolute cut heights per face model for fingerprints [w_f·face/‖face‖,
// w_c·cloth/‖cloth‖] at w_f = 1, w_c = 0, chosen on the labelled videos with average linkage
// and cannot-links (go run ./stages/evaluate/ablation): BCubed F stays at its best over a range
// of about ±0.05 (dlib) and ±0.1 (ONNX) around them.
var calibratedCuts = map[string]float64{
	"fr_feature-512":  1.2,  // MobileFaceNet (ONNX): same person ≲ 0.9, different ≳ 1.4
	"dlib-resnet-128": 0.45, // dlib's ResNet: same person ≲ 0.35, different ≳ 0.55
}

// clothSpreads are, per clothing model, how far apart one person's normalised clothing vectors
// lie: the 90th percentile of same-person distances on the labelled videos (0.15 and 0.17 on
// cast_public and cast_hard for MobileNet; different people's median 0.22–0.24).
var clothSpreads = map[string]float64{
	"mobilenet_v1-512": 0.15,
}

// CalibratedCut is the calibrated absolute cut of fingerprints of a face and a clothing model
// at the given part weights. Squared distances add across the parts, so the cut is
// √((w_f·face cut)² + (w_c·clothing spread)²): the clothing part widens it by what one person's
// outfit varies, and faces then need clothing that agrees to join (a clothing model without a
// measured spread adds nothing). ok is false for an unknown face model or a face weight of 0.
func CalibratedCut(faceModel, clothModel string, faceWeight, clothWeight float64) (cut float64, ok bool) {
	c, ok := calibratedCuts[faceModel]
	if !ok || faceWeight <= 0 {
		return 0, false
	}
	return math.Hypot(c*faceWeight, clothSpreads[clothModel]*clothWeight), true
}

// SchemeFor is the scheme a run's parameters ask for. The original's settings (no cannot-link,
// relative cut) give the scipy-exact scheme. calibrated is false where p asks for a calibrated
// cut that faceModel lacks (or the face part is left out); the cut is then relative.
func SchemeFor(p messages.Params, metric, faceModel, clothModel string) (s Scheme, calibrated bool) {
	s = Scheme{Method: p.Method, Metric: metric, MinCSize: p.MinCSize, FaceWeight: p.FaceWeight, ClothWeight: p.ClothWeight,
		Sim: p.Sim, CannotLink: p.CannotLink}
	trackScale, trackable := trackFaceCutScales[faceModel]
	if p.Tracks && trackable && p.FaceWeight > 0 {
		s.TrackLink = calibratedCuts[faceModel]
	}
	if p.Cut == messages.CutCalibrated {
		faceWeight := p.FaceWeight
		if s.TrackLink > 0 {
			faceWeight *= trackScale
		}
		s.Cut, calibrated = CalibratedCut(faceModel, clothModel, faceWeight, p.ClothWeight)
	}
	s.Exact = !s.CannotLink && s.Cut == 0 && s.TrackLink == 0
	return s, calibrated
}

// Faces are the inputs of one clustering, one entry per face.
type Faces struct {
	Face, Cloth [][]float32
	Frame       []int64        // the sampled frame (seq) of each face: cannot-links and tracks
	Box         []messages.Box // each face's box (tracks); may be nil
}

// ErrScheme wraps invalid scheme settings and inputs.
var ErrScheme = errors.New("clusterer: invalid clustering input")

// ClusterFaces groups faces under s: the clusters kept (face indices, each ascending) and the
// faces dropped by MinCSize, with the cut height used.
func ClusterFaces(f Faces, s Scheme) (kept [][]int, dropped []int, threshold float64, err error) {
	n := len(f.Face)
	if len(f.Cloth) != n || (s.CannotLink && len(f.Frame) != n) {
		return nil, nil, 0, fmt.Errorf("%w: %d face, %d clothing vectors and %d frames", ErrScheme, n, len(f.Cloth), len(f.Frame))
	}
	switch n {
	case 0:
		return nil, nil, 0, nil
	case 1:
		if s.MinCSize <= 1 {
			return [][]int{{0}}, nil, 0, nil
		}
		return nil, []int{0}, 0, nil
	}
	p := hac.Params{Method: s.Method, Metric: s.Metric, Sim: s.Sim, MinCSize: s.MinCSize}
	var r *hac.Result
	if s.Exact {
		points := make([][]float64, n)
		for i := range points {
			points[i] = Fingerprint(f.Face[i], f.Cloth[i], s.FaceWeight, s.ClothWeight)
		}
		r, err = hac.Cluster(points, nil, p)
	} else {
		r, err = clusterCombined(f, s, p)
	}
	if err != nil {
		return nil, nil, 0, err
	}
	in := make([]bool, n)
	for _, c := range r.Clusters {
		for _, i := range c {
			in[i] = true
		}
	}
	for i, ok := range in {
		if !ok {
			dropped = append(dropped, i)
		}
	}
	return r.Clusters, dropped, r.Threshold, nil
}

func clusterCombined(f Faces, s Scheme, p hac.Params) (*hac.Result, error) {
	p.Metric = hac.MetricEuclidean // the parts' distances are euclidean, whatever s.Metric says
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if s.ClothWeight == 0 && s.FaceWeight == 0 {
		return nil, fmt.Errorf("%w: both part weights are 0", ErrScheme)
	}
	if s.TrackLink > 0 {
		return clusterTracks(f, s, p)
	}
	frames := make([][]int64, len(f.Frame))
	for i, fr := range f.Frame {
		frames[i] = []int64{fr}
	}
	return clusterPoints(f, frames, s, p)
}

// clusterTracks clusters the means of f's tracks and gives each face its track's cluster;
// p.MinCSize counts faces.
func clusterTracks(f Faces, s Scheme, p hac.Params) (*hac.Result, error) {
	tracks := Tracks(f, s.TrackLink)
	means, frames := trackMeans(f, tracks)
	perTrack := p
	perTrack.MinCSize = 1
	r, err := clusterPoints(means, frames, s, perTrack)
	if err != nil {
		return nil, err
	}
	labels := make([]int, len(f.Face))
	for k, t := range tracks {
		for _, i := range t {
			labels[i] = r.Labels[k]
		}
	}
	return &hac.Result{Threshold: r.Threshold, Clusters: hac.GroupLabels(labels, p.MinCSize), Labels: labels}, nil
}

// clusterPoints clusters points described by a face and a clothing vector each; frames[i] are
// the frames point i was seen in (cannot-links).
func clusterPoints(f Faces, frames [][]int64, s Scheme, p hac.Params) (*hac.Result, error) {
	n := len(f.Face)
	if n == 1 {
		return &hac.Result{Clusters: hac.GroupLabels([]int{1}, p.MinCSize), Labels: []int{1}}, nil
	}
	d := make([]float64, hac.CondensedLen(n))
	for _, part := range []struct {
		vs [][]float32
		w  float64
	}{{f.Face, s.FaceWeight}, {f.Cloth, s.ClothWeight}} {
		if part.w == 0 {
			continue
		}
		pd, err := PartDistances(part.vs)
		if err != nil {
			return nil, err
		}
		scale := part.w
		if s.ScaleParts {
			if m := hac.MaxDistance(pd); m > 0 {
				scale /= m
			}
		}
		for k, v := range pd {
			v *= scale
			d[k] += v * v
		}
	}
	for k, v := range d {
		d[k] = math.Sqrt(v)
	}
	maxD := hac.MaxDistance(d)
	t := maxD * (1 - s.Sim)
	if s.Cut > 0 {
		t = s.Cut
	}
	if s.CannotLink {
		cannotLinkSets(d, frames, maxD)
	}
	return hac.ClusterAtInPlace(d, n, t, p)
}

// Typical is the position in group (face indices of one cluster) of the face whose fingerprint
// lies nearest the mean of the nearer half of the group's fingerprints (under s's part
// weights): a trimmed mean, so that a few outliers do not pull it their way.
func Typical(f Faces, group []int, s Scheme) int {
	if len(group) < 3 {
		return 0 // with two, both are equally near
	}
	points := make([][]float64, len(group))
	for k, i := range group {
		points[k] = Fingerprint(f.Face[i], f.Cloth[i], s.FaceWeight, s.ClothWeight)
	}
	meanOf := func(idx []int) []float64 {
		mean := make([]float64, len(points[0]))
		for _, k := range idx {
			for j, x := range points[k] {
				mean[j] += x / float64(len(idx))
			}
		}
		return mean
	}
	all := make([]int, len(points))
	for k := range all {
		all[k] = k
	}
	mean := meanOf(all)
	dist := make([]float64, len(points))
	for k, p := range points {
		dist[k] = hac.Euclidean(p, mean)
	}
	sort.SliceStable(all, func(a, b int) bool { return dist[all[a]] < dist[all[b]] })
	mean = meanOf(all[:(len(all)+1)/2])
	best, bestD := 0, math.Inf(1)
	for k, p := range points {
		if d := hac.Euclidean(p, mean); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// PartDistances are the condensed euclidean distances of the unit-normalised vectors of one
// part (zero vectors stay zero).
func PartDistances(vs [][]float32) ([]float64, error) {
	points := make([][]float64, len(vs))
	for i, v := range vs {
		points[i] = Fingerprint(v, nil, 1, 0) // the unit vector, as in a fingerprint
	}
	d, err := hac.Pdist(points, hac.MetricEuclidean)
	if err != nil {
		return nil, fmt.Errorf("clusterer: %w", err)
	}
	return d, nil
}

// cannotLinkFactor puts two faces of one frame this many times the largest real distance
// apart: far enough that an average over up to 10⁹ pairs still stays above any cut.
const cannotLinkFactor = 1e12

// cannotLinkSets sets the condensed distance of every two points seen in one frame (frames[i]
// are the frames of point i) far above maxD, so average, complete and weighted linkage never
// join clusters holding such a pair below the cut.
func cannotLinkSets(d []float64, frames [][]int64, maxD float64) {
	far := (maxD + 1) * cannotLinkFactor
	byFrame := map[int64][]int{}
	for i, frs := range frames {
		for _, fr := range frs {
			byFrame[fr] = append(byFrame[fr], i)
		}
	}
	n := len(frames)
	for _, idx := range byFrame {
		for a := 0; a < len(idx); a++ {
			for b := a + 1; b < len(idx); b++ {
				if idx[a] != idx[b] {
					d[hac.CondensedIndex(n, idx[a], idx[b])] = far
				}
			}
		}
	}
}
