package detector

import (
	"cmp"
	"fmt"
	"image"
	"slices"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/vision"
)

// Reasons the face-quality gate gives for a detection it keeps out of clustering.
const (
	// RejectPartOfPerson: a detection much smaller than a face it lies beside, above or below
	// (within that person's head and body): a hand holding a microphone, an ear in curly hair,
	// a fist at the chin. Detectors find these next to real faces in real footage.
	RejectPartOfPerson = "part_of_person"
	// RejectBlurred: a face too blurred to describe (GateConfig.MinSharpness).
	RejectBlurred = "blurred"
)

// RejectReasons lists the gate's reasons.
var RejectReasons = []string{RejectPartOfPerson, RejectBlurred}

// GateConfig configures the face-quality gate that sits between detection and encoding. Its
// defaults were chosen on the hand-labelled Hamilton clip together with the labelled cast
// videos and dlib's annotated photos (go run ./stages/evaluate/gatestudy): the part-of-person
// rule refuses 24 of the 31 non-faces the default detector keeps on the real clip and 3 of
// its 602 real faces (blurred audience faces right beside a close-up), and nothing on the cast
// videos or the photos; the sharpness rule refuses the dim, out-of-focus audience faces
// (DefaultMinSharpness).
type GateConfig struct {
	Off bool // no gate: every detection goes on
	// PartRatio: a detection no taller than this share of a kept face can be part of that
	// person (default 0.6).
	PartRatio float64
	// HeadSide and Above bound the head region of a kept face, in its width beside it and its
	// height above it (defaults 0.5, 0.5): ears, hair, a hand at the chin.
	HeadSide, Above float64
	// BodySide and Below bound the body region under a kept face, in its width to each side
	// and its height below it (defaults 1.5, 3): hands, a microphone, a tie.
	BodySide, Below float64
	// MinSharpness refuses faces whose Laplacian (on the face scaled to 64×64 grey) has a
	// standard deviation below it: too blurred to describe (0: DefaultMinSharpness; negative:
	// keep every blurred face).
	MinSharpness float64
}

// DefaultMinSharpness: the dim, out-of-focus audience faces of the Hamilton clip measure
// 1.2–2.7 and are described so alike that they merge with each other and with clear faces
// (BCubed F 0.85 with them, 1.0 without; more real faces then reach clustering, 294 against
// 280, because frames they crowded past four faces become usable); the sharpest described
// faces measure 3–40, the blurred faces of cast_hard 3.5 at least and dlib's annotated
// photos 10.5 at least.
const DefaultMinSharpness = 2.7

func (c *GateConfig) setDefaults() {
	c.PartRatio = cmp.Or(c.PartRatio, 0.6)
	c.HeadSide = cmp.Or(c.HeadSide, 0.5)
	c.Above = cmp.Or(c.Above, 0.5)
	c.BodySide = cmp.Or(c.BodySide, 1.5)
	c.Below = cmp.Or(c.Below, 3)
	c.MinSharpness = cmp.Or(c.MinSharpness, DefaultMinSharpness)
}

// Validate reports a gate that cannot work.
func (c GateConfig) Validate() error {
	if c.PartRatio < 0 || c.PartRatio >= 1 || c.HeadSide < 0 || c.HeadSide > 4 || c.Above < 0 || c.Above > 4 ||
		c.BodySide < 0 || c.BodySide > 8 || c.Below < 0 || c.Below > 8 || c.MinSharpness > 1000 {
		return fmt.Errorf("detector: gate part ratio %v (want [0,1)), head side %v and above %v (want [0,4]), body side %v and below %v (want [0,8]), min sharpness %v (want at most 1000)",
			c.PartRatio, c.HeadSide, c.Above, c.BodySide, c.Below, c.MinSharpness)
	}
	return nil
}

// Rejection is a detection the gate refused, with why.
type Rejection struct {
	Detection
	Reason string
}

// Gate decides which detections of a frame are faces to describe.
type Gate struct{ cfg GateConfig }

// NewGate returns the gate, defaults applied.
func NewGate(cfg GateConfig) (*Gate, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Gate{cfg: cfg}, nil
}

// Judge splits a frame's detections into the faces that go on (in their order) and those it
// refuses. Larger faces are judged first, so only a kept face can absorb a smaller detection.
func (g *Gate) Judge(img gocv.Mat, dets []Detection) (kept []Detection, rejected []Rejection) {
	if g == nil || g.cfg.Off || len(dets) == 0 {
		return dets, nil
	}
	order := make([]int, len(dets))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return dets[b].Box.Height() - dets[a].Box.Height() })
	reason := make([]string, len(dets))
	var anchors []messages.Box
	for _, i := range order {
		b := dets[i].Box
		switch {
		case g.partOf(b, anchors):
			reason[i] = RejectPartOfPerson
		case g.cfg.MinSharpness > 0 && Sharpness(img, b) < g.cfg.MinSharpness:
			reason[i] = RejectBlurred
		default:
			anchors = append(anchors, b)
		}
	}
	for i, d := range dets {
		if reason[i] == "" {
			kept = append(kept, d)
		} else {
			rejected = append(rejected, Rejection{d, reason[i]})
		}
	}
	return kept, rejected
}

// partOf reports whether b, much smaller than one of the kept faces, lies in that person's
// head region (beside or above the face) or body region (below it).
func (g *Gate) partOf(b messages.Box, kept []messages.Box) bool {
	cy, cx := float64(b.Top()+b.Bottom())/2, float64(b.Left()+b.Right())/2
	for _, k := range kept {
		h, w := float64(k.Height()), float64(k.Width())
		if float64(b.Height()) > g.cfg.PartRatio*h {
			continue
		}
		top, bottom, left, right := float64(k.Top()), float64(k.Bottom()), float64(k.Left()), float64(k.Right())
		if cx >= left-g.cfg.HeadSide*w && cx <= right+g.cfg.HeadSide*w && cy >= top-g.cfg.Above*h && cy <= bottom {
			return true
		}
		if cx >= left-g.cfg.BodySide*w && cx <= right+g.cfg.BodySide*w && cy >= bottom && cy <= bottom+g.cfg.Below*h {
			return true
		}
	}
	return false
}

// Sharpness is the standard deviation of the Laplacian of the face at b, scaled to 64×64
// grey: about 1–2 for the blurred faces of a dim audience, 3–40 for faces one can describe.
func Sharpness(img gocv.Mat, b messages.Box) float64 {
	face, err := vision.Crop(img, vision.Region{Y1: b.Top(), Y2: b.Bottom(), X1: b.Left(), X2: b.Right()})
	if err != nil {
		return 0
	}
	defer face.Close()
	grey, small, lap, mean, std := gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	defer func() {
		for _, m := range []*gocv.Mat{&grey, &small, &lap, &mean, &std} {
			m.Close()
		}
	}()
	switch face.Channels() {
	case 1:
		face.CopyTo(&grey)
	case 4:
		gocv.CvtColor(face, &grey, gocv.ColorBGRAToGray)
	default:
		gocv.CvtColor(face, &grey, gocv.ColorBGRToGray)
	}
	gocv.Resize(grey, &small, image.Pt(64, 64), 0, 0, gocv.InterpolationArea)
	gocv.Laplacian(small, &lap, gocv.MatTypeCV32F, 1, 1, 0, gocv.BorderDefault)
	gocv.MeanStdDev(lap, &mean, &std)
	return std.GetDoubleAt(0, 0)
}
