package detector

import (
	"cmp"
	"errors"
	"fmt"
	"image"
	"sort"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/onnx"
)

// Zoom gives a detector's doubtful finds a second look at a larger scale. The inner detector,
// run with a low threshold, proposes boxes; proposals scoring at least Accept are kept as they
// are, and each other one is cut out with Context times its side around it, enlarged, and
// searched again: it is kept, with the box and score of that second look, only when a face
// scoring at least Confirm lies on it there. Small, blurred and partly covered faces score low
// at the frame's scale and high when enlarged, while the low-scoring patterns that are not
// faces stay low, so this finds small faces at a fraction of the cost of tiling the frame.
// The crops of up to Cells×Cells proposals share one inference as a mosaic.
type Zoom struct {
	inner FaceDetector
	cfg   ZoomConfig
}

// ZoomConfig configures Zoom.
type ZoomConfig struct {
	Accept  float32 // proposals scoring at least this need no second look (default 0.5)
	Confirm float32 // a second look scoring at least this confirms a proposal (default 0.5)
	Context float64 // the crop's side as a multiple of the proposal's (default 2.5)
	Cells   int     // the mosaic holds Cells×Cells crops (default 2)
	// CellSide is a mosaic cell's side in pixels (default 320: the 2×2 mosaic is RetinaFace's
	// 640×640 input at scale 1).
	CellSide int
	// MaxLooks bounds the second looks per image, best proposals first (default 8: two
	// inferences; crowds of small faces would otherwise cost a dozen).
	MaxLooks int
	// MinSide: a second look does not confirm a face narrower or lower than this many pixels of
	// the image (default 24). Smaller ones are too small to describe, and most of what a second
	// look finds at that size in real photos is background clutter.
	MinSide int
}

func (c *ZoomConfig) setDefaults() {
	c.Accept = cmp.Or(c.Accept, 0.5)
	c.Confirm = cmp.Or(c.Confirm, 0.5)
	c.Context = cmp.Or(c.Context, 2.5)
	c.Cells = cmp.Or(c.Cells, 2)
	c.CellSide = cmp.Or(c.CellSide, 320)
	c.MaxLooks = cmp.Or(c.MaxLooks, 8)
	c.MinSide = cmp.Or(c.MinSide, 24)
}

// NewZoom wraps det, which should run with a low score threshold (it proposes); the Zoom owns
// det and closes it.
func NewZoom(det FaceDetector, cfg ZoomConfig) (*Zoom, error) {
	cfg.setDefaults()
	if !(cfg.Accept > 0 && cfg.Accept <= 1) || !(cfg.Confirm > 0 && cfg.Confirm < 1) || !(cfg.Context >= 1 && cfg.Context <= 16) ||
		cfg.Cells < 1 || cfg.Cells > 8 || cfg.CellSide < 32 || cfg.CellSide > 2048 || cfg.MaxLooks < 0 || cfg.MinSide < 0 {
		det.Close()
		return nil, fmt.Errorf("detector: zoom: accept %v, confirm %v, context %v, %d×%d cells of %d px, %d looks, min side %d: want accept in (0,1], confirm in (0,1), context 1..16, 1..8 cells of 32..2048 px, looks and min side ≥ 0",
			cfg.Accept, cfg.Confirm, cfg.Context, cfg.Cells, cfg.Cells, cfg.CellSide, cfg.MaxLooks, cfg.MinSide)
	}
	return &Zoom{inner: det, cfg: cfg}, nil
}

// Name says the inner detector and that it looks twice.
func (z *Zoom) Name() string { return z.inner.Name() + "-zoom" }

// Device reports where the inner detector's network runs ("" for one that is not onnxruntime's).
func (z *Zoom) Device() onnx.Device {
	if d, ok := z.inner.(interface{ Device() onnx.Device }); ok {
		return d.Device()
	}
	return ""
}

// Close closes the inner detector; safe to call twice.
func (z *Zoom) Close() error { return z.inner.Close() }

// look is one proposal's crop in a mosaic.
type look struct {
	proposal Detection
	crop     image.Rectangle // in the image; may extend past its edges (filled black)
	cell     image.Rectangle // in the mosaic
	best     Detection       // the second look's best face on the proposal, in the image
}

// Detect finds the faces of img, best first.
func (z *Zoom) Detect(img gocv.Mat) ([]Detection, error) {
	if img.Empty() {
		return nil, errors.New("detector: empty image")
	}
	proposals, err := z.inner.Detect(img)
	if err != nil {
		return nil, err
	}
	var out, doubtful []Detection
	for _, p := range proposals {
		if p.Score >= z.cfg.Accept {
			out = append(out, p)
		}
	}
	// A second look keeps faces of MinSide or more, and finds them about the proposal's size:
	// proposals much smaller are not worth a look, nor those lying largely on a face already
	// kept (parts and echoes of it: on the cast video most doubtful proposals are such).
	minLook := z.cfg.MinSide * 3 / 4
	for _, p := range proposals {
		if p.Score < z.cfg.Accept && max(p.Box.Width(), p.Box.Height()) >= minLook && !onKeptFace(p.Box, out) {
			doubtful = append(doubtful, p)
		}
	}
	sort.SliceStable(doubtful, func(a, b int) bool { return doubtful[a].Score > doubtful[b].Score })
	if len(doubtful) > z.cfg.MaxLooks {
		doubtful = doubtful[:z.cfg.MaxLooks]
	}
	per := z.cfg.Cells * z.cfg.Cells
	for start := 0; start < len(doubtful); start += per {
		looks, err := z.second(img, doubtful[start:min(start+per, len(doubtful))])
		if err != nil {
			return nil, err
		}
		for _, l := range looks {
			if l.best.Score >= z.cfg.Confirm && l.best.Box.Width() >= z.cfg.MinSide && l.best.Box.Height() >= z.cfg.MinSide {
				out = append(out, l.best)
			}
		}
	}
	return nms(out, 0.3), nil
}

// onKeptFace tells whether more than 30% of b lies on one of the kept faces.
func onKeptFace(b messages.Box, kept []Detection) bool {
	r := image.Rect(b.Left(), b.Top(), b.Right(), b.Bottom())
	area := r.Dx() * r.Dy()
	for _, k := range kept {
		in := r.Intersect(image.Rect(k.Box.Left(), k.Box.Top(), k.Box.Right(), k.Box.Bottom()))
		if !in.Empty() && 10*in.Dx()*in.Dy() > 3*area {
			return true
		}
	}
	return false
}

// second looks at up to Cells² proposals in one mosaic, as many rows of cells as they fill
// (a detector whose input is shaped like its image then does only that work).
func (z *Zoom) second(img gocv.Mat, proposals []Detection) ([]look, error) {
	rows := (len(proposals) + z.cfg.Cells - 1) / z.cfg.Cells
	mosaic := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), rows*z.cfg.CellSide, z.cfg.Cells*z.cfg.CellSide, gocv.MatTypeCV8UC3)
	defer mosaic.Close()
	bounds := image.Rect(0, 0, img.Cols(), img.Rows())
	looks := make([]look, len(proposals))
	for i, p := range proposals {
		b := p.Box
		half := int(z.cfg.Context*float64(max(b.Width(), b.Height()))/2 + 0.5)
		cx, cy := (b.Left()+b.Right())/2, (b.Top()+b.Bottom())/2
		crop := image.Rect(cx-half, cy-half, cx+half, cy+half)
		inside := crop.Intersect(bounds)
		if inside.Empty() {
			continue
		}
		x0, y0 := (i%z.cfg.Cells)*z.cfg.CellSide, (i/z.cfg.Cells)*z.cfg.CellSide
		looks[i] = look{proposal: p, crop: crop, cell: image.Rect(x0, y0, x0+z.cfg.CellSide, y0+z.cfg.CellSide)}
		// The part of the crop inside the image goes where it lies in the enlarged crop.
		scale := float64(z.cfg.CellSide) / float64(crop.Dx())
		dst := image.Rect(x0+int(float64(inside.Min.X-crop.Min.X)*scale), y0+int(float64(inside.Min.Y-crop.Min.Y)*scale),
			x0+int(float64(inside.Max.X-crop.Min.X)*scale), y0+int(float64(inside.Max.Y-crop.Min.Y)*scale)).Intersect(looks[i].cell)
		if dst.Empty() {
			continue
		}
		src := img.Region(inside)
		cell := mosaic.Region(dst)
		gocv.Resize(src, &cell, dst.Size(), 0, 0, gocv.InterpolationLinear)
		cell.Close()
		src.Close()
	}
	found, err := z.inner.Detect(mosaic)
	if err != nil {
		return nil, err
	}
	for _, d := range found {
		c := image.Pt((d.Box.Left()+d.Box.Right())/2, (d.Box.Top()+d.Box.Bottom())/2)
		for i := range looks {
			l := &looks[i]
			if !c.In(l.cell) || d.Score <= l.best.Score {
				continue
			}
			scale := float64(l.crop.Dx()) / float64(z.cfg.CellSide)
			at := func(v, cellMin, cropMin int) int { return cropMin + int(float64(v-cellMin)*scale+0.5) }
			box := messages.Box{
				max(0, at(d.Box.Top(), l.cell.Min.Y, l.crop.Min.Y)), min(bounds.Max.X, at(d.Box.Right(), l.cell.Min.X, l.crop.Min.X)),
				min(bounds.Max.Y, at(d.Box.Bottom(), l.cell.Min.Y, l.crop.Min.Y)), max(0, at(d.Box.Left(), l.cell.Min.X, l.crop.Min.X)),
			}
			if box.Width() > 0 && box.Height() > 0 && box.IoU(l.proposal.Box) >= 0.3 {
				l.best = Detection{Box: box, Score: d.Score}
			}
		}
	}
	return looks, nil
}
