package detector

import (
	"math"
	"sort"

	"github.com/personcluster/personcluster/messages"
)

// candidate is a decoded box in image pixels (float corners) with its score.
type candidate struct {
	x1, y1, x2, y2 float64
	score          float32
}

// hardNMS orders candidates by score, keeps the best limit of them (0: all), drops every one
// overlapping a kept better one by more than iou, and returns the kept boxes truncated to
// integers and trimmed to a width×height image, leaving out those narrower or lower than
// minSide. edge is added to each side's length: 0 for continuous corners (UltraFace's
// hard_nms), 1 for inclusive pixel corners (insightface's).
func hardNMS(cands []candidate, limit int, iou, edge float64, width, height, minSide int) []Detection {
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].score > cands[b].score })
	if limit > 0 && len(cands) > limit {
		cands = cands[:limit]
	}
	area := func(c candidate) float64 { return max(0, c.x2-c.x1+edge) * max(0, c.y2-c.y1+edge) }
	var kept []candidate
	for _, c := range cands {
		ok := true
		for _, k := range kept {
			ix := max(0, min(c.x2, k.x2)-max(c.x1, k.x1)+edge)
			iy := max(0, min(c.y2, k.y2)-max(c.y1, k.y1)+edge)
			inter := ix * iy
			if union := area(c) + area(k) - inter; union > 0 && inter/union > iou {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, c)
		}
	}
	out := make([]Detection, 0, len(kept))
	for _, k := range kept {
		box := messages.Box{max(0, int(k.y1)), min(width, int(k.x2)), min(height, int(k.y2)), max(0, int(k.x1))}
		if box.Width() <= 0 || box.Height() <= 0 || box.Width() < minSide || box.Height() < minSide {
			continue
		}
		out = append(out, Detection{Box: box, Score: k.score})
	}
	return out
}

// finite tells whether v is neither NaN nor infinite.
func finite[T float32 | float64](v T) bool {
	return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
}
