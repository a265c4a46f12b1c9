package clusterer

import (
	"sort"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer/hac"
)

// Tracking: a face that stays in place from one sampled frame to the next is one person seen
// twice. Clustering whole tracks, each described by the mean of its faces, instead of single
// faces removes most of a descriptor's frame-to-frame noise (blur, a hand over the face for a
// frame), which is what makes average linkage join two people whose single faces lie close.
// Measured on the labelled videos (go run ./stages/evaluate/ablation): cast_hard F 0.914 → 0.97,
// cast and the real Hamilton clip stay at 1.0.
const (
	// trackMaxSeqGap is how many sampled frames later a track may continue: 2 bridges one
	// frame that was not accepted (too many faces) or lost the face.
	trackMaxSeqGap = 2
	// trackMinIoU is how much two boxes of a track overlap at least.
	trackMinIoU = 0.5
)

// trackFaceCutScales scale, per face model, the face part of the calibrated cut for track
// means: the mean of a track lies nearer to the person's other tracks, and to other people,
// than its single faces do. For dlib's ResNet 0.43 against 0.45 (with clothing, 0.453): the
// middle of the range where cast_hard is at its best, 0.44–0.465 (F 0.972; 0.92 or more from
// 0.42 to 0.475), where cast and the Hamilton clip stay at 1.0. The clothing part keeps its
// spread. A model without a scale clusters single faces: MobileFaceNet's tracks measured worse
// (cast_hard F 0.78 → 0.76).
var trackFaceCutScales = map[string]float64{
	"dlib-resnet-128": 0.95,
}

// Tracks groups faces into tracks: faces of successive sampled frames (at most trackMaxSeqGap
// apart) whose boxes overlap by trackMinIoU and whose unit face vectors lie within linkCut of
// each other, matched greedily by overlap, one face per frame and track. A face matched to
// nothing is a track of its own. f.Frame holds each face's sampled frame (seq) and f.Box its
// box; tracks come out sorted by their first face, each ascending. Without boxes every face is
// its own track.
func Tracks(f Faces, linkCut float64) [][]int {
	n := len(f.Face)
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(x int) int {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	if len(f.Box) == n && len(f.Frame) == n && linkCut > 0 {
		byFrame := map[int64][]int{}
		for i, fr := range f.Frame {
			byFrame[fr] = append(byFrame[fr], i)
		}
		frames := make([]int64, 0, len(byFrame))
		for fr := range byFrame {
			frames = append(frames, fr)
		}
		sort.Slice(frames, func(a, b int) bool { return frames[a] < frames[b] })
		unit := make([][]float64, n)
		for i, v := range f.Face {
			unit[i] = Fingerprint(v, nil, 1, 0)
		}
		// framesOf[root] are the frames a track holds: two tracks join only where they share
		// none, so a track never holds two faces of one frame.
		framesOf := make([]map[int64]bool, n)
		for i, fr := range f.Frame {
			framesOf[i] = map[int64]bool{fr: true}
		}
		join := func(a, b int) {
			ra, rb := find(a), find(b)
			if ra == rb {
				return
			}
			if len(framesOf[ra]) < len(framesOf[rb]) {
				ra, rb = rb, ra
			}
			for fr := range framesOf[rb] {
				if framesOf[ra][fr] {
					return
				}
			}
			for fr := range framesOf[rb] {
				framesOf[ra][fr] = true
			}
			parent[rb], framesOf[rb] = ra, nil
		}
		type pair struct {
			iou  float64
			a, b int
		}
		for k, fa := range frames {
			for _, fb := range frames[k+1:] {
				if fb-fa > trackMaxSeqGap {
					break
				}
				// Greedy by overlap, one to one between the two frames; a face may continue
				// both into the next frame and the one after, which bridges a face the
				// descriptor got wrong once.
				var pairs []pair
				for _, a := range byFrame[fa] {
					for _, b := range byFrame[fb] {
						if o := iou(f.Box[a], f.Box[b]); o >= trackMinIoU && hac.Euclidean(unit[a], unit[b]) <= linkCut {
							pairs = append(pairs, pair{o, a, b})
						}
					}
				}
				sort.SliceStable(pairs, func(x, y int) bool { return pairs[x].iou > pairs[y].iou })
				usedA, usedB := map[int]bool{}, map[int]bool{}
				for _, p := range pairs {
					if usedA[p.a] || usedB[p.b] {
						continue
					}
					usedA[p.a], usedB[p.b] = true, true
					join(p.a, p.b)
				}
			}
		}
	}
	groups := map[int][]int{}
	for i := 0; i < n; i++ {
		r := find(i)
		groups[r] = append(groups[r], i)
	}
	out := make([][]int, 0, len(groups))
	for _, g := range groups {
		out = append(out, g) // ascending: i runs upwards
	}
	sort.Slice(out, func(a, b int) bool { return out[a][0] < out[b][0] })
	return out
}

// trackMeans describes each track by the mean of its faces' unit face vectors and the mean
// of their unit clothing vectors, and gives each the set of frames it holds (cannot-links).
func trackMeans(f Faces, tracks [][]int) (means Faces, frames [][]int64) {
	mean := func(vs [][]float32, idx []int) []float32 {
		if len(vs) == 0 {
			return nil
		}
		sum := make([]float64, len(vs[idx[0]]))
		for _, i := range idx {
			for k, x := range Fingerprint(vs[i], nil, 1, 0) {
				sum[k] += x
			}
		}
		out := make([]float32, len(sum))
		for k, x := range sum {
			out[k] = float32(x / float64(len(idx)))
		}
		return out
	}
	for _, t := range tracks {
		means.Face = append(means.Face, mean(f.Face, t))
		means.Cloth = append(means.Cloth, mean(f.Cloth, t))
		fr := make([]int64, len(t))
		for k, i := range t {
			fr[k] = f.Frame[i]
		}
		frames = append(frames, fr)
	}
	return means, frames
}

func iou(a, b messages.Box) float64 {
	top, bottom := max(a.Top(), b.Top()), min(a.Bottom(), b.Bottom())
	left, right := max(a.Left(), b.Left()), min(a.Right(), b.Right())
	if bottom <= top || right <= left {
		return 0
	}
	inter := float64((bottom - top) * (right - left))
	area := func(x messages.Box) float64 { return float64((x.Bottom() - x.Top()) * (x.Right() - x.Left())) }
	return inter / (area(a) + area(b) - inter)
}
