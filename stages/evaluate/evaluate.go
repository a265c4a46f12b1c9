// Package evaluate scores a clustering result against ground truth: how many of the labelled
// faces the pipeline found (detection), and how well it grouped the ones it found (clustering).
// Pure Go, standard library only.
//
// # Matching
//
// Result faces and truth boxes are compared frame by frame (0-based frame numbers in both). In
// each frame every (truth box, result face) pair with IoU ≥ Options.IoU is a candidate; the
// candidates are taken greedily by IoU, highest first (ties: lower truth index, then lower result
// index), each truth box and each result face at most once. This is the one-to-one greedy
// matching of the PASCAL VOC / COCO detection benchmarks. With a threshold of 0.5 or more it is
// also optimal in practice: a box can overlap another by more than half with few boxes at once,
// and faces in a frame rarely overlap each other at all.
//
// IoU treats a box (top, right, bottom, left) as the half-open pixel rectangle
// [left,right)×[top,bottom), so its area is (right−left)·(bottom−top), the same convention as
// messages.Box.Width and Height.
//
// # Which frames count
//
// Only frames the truth file lists are judged; result faces in other frames are counted
// (Report.FacesUnannotated) and otherwise ignored. Detection is reported twice:
//
//   - over all truth frames: recall is how much of the labelled video the pipeline covered. The
//     pipeline keeps only frames showing min..max faces (2–4 by default) and may stop early, so
//     this recall is bounded by what it was asked to look at;
//   - over the accepted frames, the truth frames holding at least one result face (every face
//     of an accepted frame is in results.json, dropped ones included): how well the detector did
//     on the frames the pipeline used.
//
// Precision is matched result faces / result faces in truth frames; it is the same in both rows
// because result faces only occur in accepted frames.
//
// # Clustering scores
//
// Clustering is scored on the matched faces only, each labelled with its truth identity and its
// result cluster. A face dropped by min_csize (cluster −1) counts as a cluster of its own. The
// scores:
//
//   - pairwise precision, recall and F: over the unordered pairs of faces, precision is the share
//     of same-cluster pairs that are the same person, recall the share of same-person pairs put in
//     the same cluster. With no pair to judge (all singletons) the share is taken as 1;
//   - BCubed precision, recall and F (Bagga & Baldwin 1998; Amigó et al. 2009): per face, the
//     share of its cluster that is its person (precision) and the share of its person that is in
//     its cluster (recall), averaged over faces; F is the harmonic mean of the two averages;
//   - NMI: mutual information over the arithmetic mean of the two entropies (scikit-learn's
//     default), 1 when both sides put everything in one group;
//   - ARI: the adjusted Rand index (Hubert & Arabie 1985, scikit-learn's formula), 1 for the
//     degenerate perfect cases.
//
// Every score is 0 when there is nothing to score (no truth box, no result face, no match).
package evaluate

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Box is a face box in pixels, in the original's order: top, right, bottom, left.
type Box [4]int

// Width is right − left.
func (b Box) Width() int { return b[1] - b[3] }

// Height is bottom − top.
func (b Box) Height() int { return b[2] - b[0] }

// UnmarshalJSON takes exactly four integers (encoding/json would quietly zero-fill a short array
// and drop the rest of a long one).
func (b *Box) UnmarshalJSON(data []byte) error {
	var xs []int
	if err := json.Unmarshal(data, &xs); err != nil {
		return err
	}
	if len(xs) != 4 {
		return fmt.Errorf("box has %d numbers, want 4 (top,right,bottom,left)", len(xs))
	}
	copy(b[:], xs)
	return nil
}

func (b Box) valid() error {
	if b.Width() <= 0 || b.Height() <= 0 {
		return fmt.Errorf("empty box %v (top,right,bottom,left)", [4]int(b))
	}
	return nil
}

// IoU is the intersection over union of two boxes (0 when either is empty or they are disjoint).
func IoU(a, b Box) float64 {
	area := func(x Box) float64 {
		if x.Width() <= 0 || x.Height() <= 0 {
			return 0
		}
		return float64(x.Width()) * float64(x.Height())
	}
	aa, ab := area(a), area(b)
	if aa == 0 || ab == 0 {
		return 0
	}
	w := float64(min(a[1], b[1])) - float64(max(a[3], b[3]))
	h := float64(min(a[2], b[2])) - float64(max(a[0], b[0]))
	if w <= 0 || h <= 0 {
		return 0
	}
	inter := w * h
	return inter / (aa + ab - inter)
}

// Face is one result face: where it is and which cluster it was put in (−1: dropped because its
// cluster was smaller than min_csize).
type Face struct {
	Frame   int64 `json:"frame"` // 0-based frame number in the video
	Box     Box   `json:"box"`   // top, right, bottom, left
	Cluster int   `json:"cluster"`
}

// Dropped is the cluster of a face whose cluster was smaller than min_csize.
const Dropped = -1

// Options tune Evaluate.
type Options struct {
	// IoU is the overlap a result face needs with a truth box to match it (0: DefaultIoU).
	IoU float64
}

// DefaultIoU is the usual detection threshold.
const DefaultIoU = 0.5

// Detection scores the face finding over a set of frames.
type Detection struct {
	Frames      int     `json:"frames"`
	TruthBoxes  int     `json:"truth_boxes"`
	ResultFaces int     `json:"result_faces"`
	Matched     int     `json:"matched"`
	Recall      float64 `json:"recall"`    // matched / truth boxes
	Precision   float64 `json:"precision"` // matched / result faces
	F           float64 `json:"f"`
	MeanIoU     float64 `json:"mean_iou"` // over the matches
}

// PRF is a precision, recall and their harmonic mean.
type PRF struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F         float64 `json:"f"`
}

// Clustering scores the grouping of the matched faces.
type Clustering struct {
	Faces      int     `json:"faces"`      // matched faces scored
	Dropped    int     `json:"dropped"`    // of them, in no cluster (each scored as its own)
	Clusters   int     `json:"clusters"`   // distinct result clusters among them (dropped not counted)
	Identities int     `json:"identities"` // distinct identities among them
	Pairwise   PRF     `json:"pairwise"`
	BCubed     PRF     `json:"bcubed"`
	NMI        float64 `json:"nmi"`
	ARI        float64 `json:"ari"`
}

// IdentityRow says where one person's faces went.
type IdentityRow struct {
	Identity    string `json:"identity"`
	TruthBoxes  int    `json:"truth_boxes"`  // in all truth frames
	Matched     int    `json:"matched"`      // found by the pipeline
	Dropped     int    `json:"dropped"`      // of them, in no cluster
	Clusters    int    `json:"clusters"`     // distinct clusters they were put in
	MainCluster int    `json:"main_cluster"` // the one holding most of them (−1: none)
	// Share is the fraction of the matched faces in MainCluster.
	Share float64 `json:"share"`
}

// ClusterRow says who is in one result cluster.
type ClusterRow struct {
	Cluster      int    `json:"cluster"`
	Faces        int    `json:"faces"`         // all its result faces
	Matched      int    `json:"matched"`       // of them, matched to a truth box
	MainIdentity string `json:"main_identity"` // the identity of most matched faces ("" if none)
	False        int    `json:"false"`         // of its faces in truth frames, those on no real face
	// Purity is the fraction of the matched faces that are MainIdentity.
	Purity float64 `json:"purity"`
}

// Report is the outcome of Evaluate.
type Report struct {
	Video            string  `json:"video,omitempty"`
	IoU              float64 `json:"iou"`
	Matching         string  `json:"matching"`
	ResultFaces      int     `json:"result_faces"`      // all faces in the results
	FacesUnannotated int     `json:"faces_unannotated"` // of them, in frames the truth does not list (ignored)
	DroppedFaces     int     `json:"dropped_faces"`     // of them, in no cluster (min_csize)
	ResultClusters   int     `json:"result_clusters"`   // distinct clusters in the results
	// UnclearFaces are result faces in truth frames on a labelled unclear face (a real face
	// too blurred or hidden to name): left out of precision and clustering.
	UnclearFaces int `json:"unclear_faces"`
	// FalseFaces are result faces in truth frames on no labelled or unclear face: hands, hair,
	// logos (NonFaceKinds counts the labelled ones by what they show; "unlabelled" the rest).
	FalseFaces   int            `json:"false_faces"`
	NonFaceKinds map[string]int `json:"non_face_kinds,omitempty"`
	// RealShare is the share of result faces in truth frames that are real faces, named or
	// unclear: (matched + unclear) / result faces.
	RealShare       float64       `json:"real_share"`
	TruthIdentities int           `json:"truth_identities"` // distinct identities in the truth frames
	All             Detection     `json:"detection_all_frames"`
	Accepted        Detection     `json:"detection_accepted_frames"`
	Clustering      Clustering    `json:"clustering"`
	Identities      []IdentityRow `json:"identities"`
	Clusters        []ClusterRow  `json:"clusters"`
}

// MatchingGreedy names the matching Evaluate does.
const MatchingGreedy = "greedy one-to-one by IoU, per frame"

// Evaluate scores faces against truth. It validates both and returns an error starting with
// "evaluate: " when either is malformed.
func Evaluate(truth *Truth, faces []Face, opts Options) (*Report, error) {
	if truth == nil {
		return nil, errors.New("evaluate: no truth")
	}
	thr := opts.IoU
	if thr == 0 {
		thr = DefaultIoU
	}
	if !(thr > 0 && thr <= 1) {
		return nil, fmt.Errorf("evaluate: IoU threshold %v outside (0,1]", opts.IoU)
	}
	if err := truth.Validate(); err != nil {
		return nil, err
	}
	if err := validateFaces(faces); err != nil {
		return nil, err
	}

	rep := &Report{Video: truth.Video, IoU: thr, Matching: MatchingGreedy, ResultFaces: len(faces)}
	byFrame := map[int64][]int{}
	resultClusters := map[int]bool{}
	for i, f := range faces {
		byFrame[f.Frame] = append(byFrame[f.Frame], i)
		if f.Cluster == Dropped {
			rep.DroppedFaces++
		} else {
			resultClusters[f.Cluster] = true
		}
	}
	rep.ResultClusters = len(resultClusters)

	// Match frame by frame; faceIdent[i] is the identity of result face i (−1: unmatched).
	ids := newIndex(truth.Identities)
	faceIdent := make([]int, len(faces))
	for i := range faceIdent {
		faceIdent[i] = -1
	}
	truthBoxes := map[int]int{} // per identity, all frames
	var sumIoU float64
	inTruth := 0
	for _, fr := range truth.Frames {
		rs := byFrame[fr.Frame]
		inTruth += len(rs)
		boxes := make([]Box, len(fr.People))
		for j, p := range fr.People {
			boxes[j] = p.Box
			truthBoxes[ids.id(p.Identity)]++
		}
		rboxes := make([]Box, len(rs))
		for k, i := range rs {
			rboxes[k] = faces[i].Box
		}
		matches := Match(boxes, rboxes, thr)
		rep.All.Frames++
		rep.All.TruthBoxes += len(boxes)
		if len(rs) > 0 {
			rep.Accepted.Frames++
			rep.Accepted.TruthBoxes += len(boxes)
		}
		for _, m := range matches {
			faceIdent[rs[m.Result]] = ids.id(fr.People[m.Truth].Identity)
			sumIoU += m.IoU
		}
		rep.All.Matched += len(matches)
		rep.countOthers(fr, rs, rboxes, faceIdent, thr)
	}
	rep.FacesUnannotated = len(faces) - inTruth
	rep.TruthIdentities = len(truthBoxes)
	rep.Accepted.Matched = rep.All.Matched
	rep.RealShare = ratio(rep.All.Matched+rep.UnclearFaces, inTruth)
	for _, d := range []*Detection{&rep.All, &rep.Accepted} {
		d.ResultFaces = inTruth - rep.UnclearFaces
		d.Recall = ratio(d.Matched, d.TruthBoxes)
		d.Precision = ratio(d.Matched, d.ResultFaces)
		d.F = harmonic(d.Precision, d.Recall)
		if d.Matched > 0 {
			d.MeanIoU = sumIoU / float64(d.Matched)
		}
	}

	// Clustering over the matched faces.
	var labels, clusters []int
	for i, f := range faces {
		if faceIdent[i] >= 0 {
			labels = append(labels, faceIdent[i])
			clusters = append(clusters, f.Cluster)
		}
	}
	c, err := ScorePartition(labels, clusters)
	if err != nil {
		return nil, err
	}
	rep.Clustering = c

	rep.Identities = identityRows(ids, truthBoxes, faces, faceIdent)
	rep.Clusters = clusterRows(ids, faces, faceIdent)
	return rep, nil
}

// In faceIdent, beside identities: a result face on a labelled unclear face, and one in a
// truth frame on no real face.
const (
	unclearFace = -2
	falseFace   = -3
)

// countOthers sorts the result faces of one frame that matched no named face: on an unclear
// face (marked unclearFace in faceIdent), on a labelled non-face, or on nothing.
func (rep *Report) countOthers(fr TruthFrame, rs []int, rboxes []Box, faceIdent []int, thr float64) {
	var rest []int // indexes into rs
	for k, i := range rs {
		if faceIdent[i] < 0 {
			rest = append(rest, k)
		}
	}
	if len(rest) == 0 {
		return
	}
	boxes := make([]Box, len(rest))
	for j, k := range rest {
		boxes[j] = rboxes[k]
	}
	onUnclear := map[int]bool{}
	for _, m := range Match(fr.Unclear, boxes, thr) {
		onUnclear[m.Result] = true
		faceIdent[rs[rest[m.Result]]] = unclearFace
		rep.UnclearFaces++
	}
	var left []Box
	for j, b := range boxes {
		if !onUnclear[j] {
			left = append(left, b)
			faceIdent[rs[rest[j]]] = falseFace
		}
	}
	if len(left) == 0 {
		return
	}
	rep.FalseFaces += len(left)
	if rep.NonFaceKinds == nil {
		rep.NonFaceKinds = map[string]int{}
	}
	nf := make([]Box, len(fr.NonFaces))
	for j, n := range fr.NonFaces {
		nf[j] = n.Box
	}
	ms := Match(nf, left, thr)
	for _, m := range ms {
		rep.NonFaceKinds[fr.NonFaces[m.Truth].What]++
	}
	if n := len(left) - len(ms); n > 0 {
		rep.NonFaceKinds["unlabelled"] += n
	}
}

func validateFaces(faces []Face) error {
	for i, f := range faces {
		if f.Frame < 0 {
			return fmt.Errorf("evaluate: result face %d: negative frame %d", i, f.Frame)
		}
		if f.Cluster < Dropped {
			return fmt.Errorf("evaluate: result face %d (frame %d): cluster %d < -1", i, f.Frame, f.Cluster)
		}
		if err := f.Box.valid(); err != nil {
			return fmt.Errorf("evaluate: result face %d (frame %d): %w", i, f.Frame, err)
		}
	}
	return nil
}

// A Pair is one match of Match: a truth box index, a result box index and their IoU.
type Pair struct {
	Truth, Result int
	IoU           float64
}

// Match pairs truth and result boxes of one frame one-to-one, greedily by IoU (highest first;
// ties by truth then result index), keeping pairs with IoU ≥ threshold. The pairs come sorted by
// truth index.
func Match(truth, result []Box, threshold float64) []Pair {
	var cand []Pair
	for t, tb := range truth {
		for r, rb := range result {
			if v := IoU(tb, rb); v >= threshold && v > 0 {
				cand = append(cand, Pair{t, r, v})
			}
		}
	}
	slices.SortFunc(cand, func(a, b Pair) int {
		if c := cmp.Compare(b.IoU, a.IoU); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Truth, b.Truth); c != 0 {
			return c
		}
		return cmp.Compare(a.Result, b.Result)
	})
	usedT := make([]bool, len(truth))
	usedR := make([]bool, len(result))
	var out []Pair
	for _, p := range cand {
		if usedT[p.Truth] || usedR[p.Result] {
			continue
		}
		usedT[p.Truth], usedR[p.Result] = true, true
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Pair) int { return cmp.Compare(a.Truth, b.Truth) })
	return out
}

// index numbers identity names: the truth's list first, in its order, then any others.
type index struct {
	names []string
	of    map[string]int
}

func newIndex(names []string) *index {
	x := &index{of: map[string]int{}}
	for _, n := range names {
		x.id(n)
	}
	return x
}

func (x *index) id(name string) int {
	if i, ok := x.of[name]; ok {
		return i
	}
	x.of[name] = len(x.names)
	x.names = append(x.names, name)
	return len(x.names) - 1
}

func identityRows(ids *index, truthBoxes map[int]int, faces []Face, faceIdent []int) []IdentityRow {
	rows := make([]IdentityRow, len(ids.names))
	per := make([]map[int]int, len(ids.names)) // identity → cluster → faces
	for i, name := range ids.names {
		rows[i] = IdentityRow{Identity: name, TruthBoxes: truthBoxes[i], MainCluster: Dropped}
		per[i] = map[int]int{}
	}
	for i, id := range faceIdent {
		if id < 0 {
			continue
		}
		rows[id].Matched++
		if faces[i].Cluster == Dropped {
			rows[id].Dropped++
			continue
		}
		per[id][faces[i].Cluster]++
	}
	var out []IdentityRow
	for i := range rows {
		r := &rows[i]
		if r.TruthBoxes == 0 && r.Matched == 0 {
			continue // listed in identities but never seen
		}
		r.Clusters = len(per[i])
		best := 0
		for c, n := range per[i] {
			if n > best || (n == best && c < r.MainCluster) {
				best, r.MainCluster = n, c
			}
		}
		r.Share = ratio(best, r.Matched)
		out = append(out, *r)
	}
	return out
}

func clusterRows(ids *index, faces []Face, faceIdent []int) []ClusterRow {
	rows := map[int]*ClusterRow{}
	per := map[int]map[int]int{} // cluster → identity → faces
	for i, f := range faces {
		if f.Cluster == Dropped {
			continue
		}
		r := rows[f.Cluster]
		if r == nil {
			r = &ClusterRow{Cluster: f.Cluster}
			rows[f.Cluster] = r
			per[f.Cluster] = map[int]int{}
		}
		r.Faces++
		switch id := faceIdent[i]; {
		case id >= 0:
			r.Matched++
			per[f.Cluster][id]++
		case id == falseFace:
			r.False++
		}
	}
	out := make([]ClusterRow, 0, len(rows))
	for c, r := range rows {
		best, bestID := 0, -1
		for id, n := range per[c] {
			if n > best || (n == best && id < bestID) {
				best, bestID = n, id
			}
		}
		if bestID >= 0 {
			r.MainIdentity = ids.names[bestID]
		}
		r.Purity = ratio(best, r.Matched)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b ClusterRow) int { return cmp.Compare(a.Cluster, b.Cluster) })
	return out
}

func countDistinct(xs []int, keep func(int) bool) int {
	seen := map[int]bool{}
	for _, x := range xs {
		if keep(x) {
			seen[x] = true
		}
	}
	return len(seen)
}

// ratio is a/b, 0 when b is 0.
func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func harmonic(p, r float64) float64 {
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}

// clamp01 removes rounding excursions outside [0,1].
func clamp01(x float64) float64 {
	return math.Min(1, math.Max(0, x))
}
