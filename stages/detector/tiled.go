package detector

import (
	"cmp"
	"errors"
	"fmt"
	"image"
	"sort"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
)

// Tiled finds small faces: it runs a detector on the whole image and on each tile of an
// overlapping Cols×Rows grid, so a face covers Cols (Rows) times more of the model's input,
// then merges the boxes with a score-ordered NMS. A box that touches a tile's inner edge is a
// face cut by the tile and is dropped; the overlap shows that face whole in a neighbour tile
// (faces up to Overlap of a tile's side). It costs about 1 + Cols·Rows detector runs a frame.
type Tiled struct {
	inner      FaceDetector
	cols, rows int
	overlap    float64
	nmsIoU     float64
}

// TiledConfig configures Tiled.
type TiledConfig struct {
	Cols, Rows int     // grid (default 2×2)
	Overlap    float64 // tiles overlap by this fraction of their side (default 0.25)
	NMSIoU     float64 // merge threshold (default 0.3)
}

// NewTiled wraps det; the Tiled owns det and closes it.
func NewTiled(det FaceDetector, cfg TiledConfig) (*Tiled, error) {
	if cfg.Cols == 0 && cfg.Rows == 0 {
		cfg.Cols, cfg.Rows = 2, 2
	}
	cfg.Overlap = cmp.Or(cfg.Overlap, 0.25)
	cfg.NMSIoU = cmp.Or(cfg.NMSIoU, 0.3)
	if cfg.Cols < 1 || cfg.Rows < 1 || cfg.Cols > 8 || cfg.Rows > 8 || !(cfg.Overlap > 0 && cfg.Overlap < 0.5) || !(cfg.NMSIoU > 0 && cfg.NMSIoU <= 1) {
		det.Close()
		return nil, fmt.Errorf("detector: tiles %d×%d, overlap %v, NMS IoU %v: want 1..8 tiles a side, overlap in (0,0.5), IoU in (0,1]",
			cfg.Cols, cfg.Rows, cfg.Overlap, cfg.NMSIoU)
	}
	return &Tiled{inner: det, cols: cfg.Cols, rows: cfg.Rows, overlap: cfg.Overlap, nmsIoU: cfg.NMSIoU}, nil
}

// Name says the inner detector and the grid.
func (t *Tiled) Name() string { return fmt.Sprintf("%s-tiled%dx%d", t.inner.Name(), t.cols, t.rows) }

// Close closes the inner detector; safe to call twice.
func (t *Tiled) Close() error { return t.inner.Close() }

// Tiles are the tile rectangles of a width×height image.
func (t *Tiled) Tiles(width, height int) []image.Rectangle {
	span := func(total, n int) (size, step int) {
		// n tiles of size s overlapping by overlap·s cover total: s·(n − (n−1)·overlap) = total.
		s := int(float64(total)/(float64(n)-float64(n-1)*t.overlap) + 0.5)
		if n == 1 {
			return total, 0
		}
		return min(s, total), (total - min(s, total)) / (n - 1)
	}
	w, sx := span(width, t.cols)
	h, sy := span(height, t.rows)
	var out []image.Rectangle
	for r := 0; r < t.rows; r++ {
		for c := 0; c < t.cols; c++ {
			x0, y0 := c*sx, r*sy
			if c == t.cols-1 {
				x0 = width - w
			}
			if r == t.rows-1 {
				y0 = height - h
			}
			out = append(out, image.Rect(x0, y0, x0+w, y0+h))
		}
	}
	return out
}

// Detect runs the inner detector on img and on every tile and merges what they found.
func (t *Tiled) Detect(img gocv.Mat) ([]Detection, error) {
	if img.Empty() {
		return nil, errors.New("detector: empty image")
	}
	all, err := t.inner.Detect(img)
	if err != nil {
		return nil, err
	}
	width, height := img.Cols(), img.Rows()
	if t.cols == 1 && t.rows == 1 {
		return all, nil
	}
	for _, r := range t.Tiles(width, height) {
		region := img.Region(r)
		tile := region.Clone() // continuous pixels for the model's preprocessing
		region.Close()
		dets, err := t.inner.Detect(tile)
		tile.Close()
		if err != nil {
			return nil, err
		}
		for _, d := range dets {
			b := d.Box
			// Cut by an inner tile edge: the face lies across two tiles.
			if (b.Left() <= 1 && r.Min.X > 0) || (b.Top() <= 1 && r.Min.Y > 0) ||
				(b.Right() >= r.Dx()-1 && r.Max.X < width) || (b.Bottom() >= r.Dy()-1 && r.Max.Y < height) {
				continue
			}
			all = append(all, Detection{Box: messages.Box{b[0] + r.Min.Y, b[1] + r.Min.X, b[2] + r.Min.Y, b[3] + r.Min.X}, Score: d.Score})
		}
	}
	return nms(all, t.nmsIoU), nil
}

// nms keeps the best-scoring boxes that overlap no better one by more than iou.
func nms(dets []Detection, iou float64) []Detection {
	sort.SliceStable(dets, func(a, b int) bool { return dets[a].Score > dets[b].Score })
	var kept []Detection
	for _, d := range dets {
		ok := true
		for _, k := range kept {
			if d.Box.IoU(k.Box) > iou {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, d)
		}
	}
	return kept
}
