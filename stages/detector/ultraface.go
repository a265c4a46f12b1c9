package detector

import (
	"fmt"
	"sort"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/vision"
)

// Detection is a face found in an image, in that image's pixels.
type Detection struct {
	Box   messages.Box
	Score float32
}

// FaceDetector finds faces in a BGR image.
type FaceDetector interface {
	Detect(img gocv.Mat) ([]Detection, error)
	Name() string
	Close() error
}

// UltraFaceConfig configures the UltraFace ONNX detector.
type UltraFaceConfig struct {
	Path       string
	Width      int     // model input width: 320 (RFB-320, fr_detect) or 640 (RFB-640)
	Height     int     // 240 or 480
	RGB        bool    // fr_detect.onnx wants BGR; the original UltraFace releases want RGB
	Threshold  float32 // face score threshold
	NMSIoU     float64 // boxes overlapping more than this with a better one are dropped
	Threads    int
	MinSidePix int // drop boxes smaller than this (pixels, in the image)
}

// UltraFace is the UltraFace RFB detector through onnxruntime.
type UltraFace struct {
	cfg  UltraFaceConfig
	sess *onnx.Session
	name string
}

// NewUltraFace loads the model; the input shape is checked against Width×Height.
func NewUltraFace(cfg UltraFaceConfig) (*UltraFace, error) {
	if cfg.Width == 0 {
		cfg.Width, cfg.Height = 320, 240
	}
	if cfg.Threshold == 0 {
		cfg.Threshold = 0.7
	}
	if cfg.NMSIoU == 0 {
		cfg.NMSIoU = 0.3
	}
	sess, err := onnx.Open(onnx.Spec{Path: cfg.Path, Input: "input", Shape: []int64{1, 3, int64(cfg.Height), int64(cfg.Width)},
		Outputs: []string{"scores", "boxes"}}, onnx.Options{Threads: cfg.Threads})
	if err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	return &UltraFace{cfg: cfg, sess: sess, name: fmt.Sprintf("ultraface-%d", cfg.Width)}, nil
}

func (u *UltraFace) Name() string { return u.name }

// Detect runs the model on img and returns score-ordered, non-overlapping faces.
func (u *UltraFace) Detect(img gocv.Mat) ([]Detection, error) {
	blob, err := vision.AppendBlob(nil, img, vision.BlobOptions{Width: u.cfg.Width, Height: u.cfg.Height,
		Scale: 1.0 / 128, Mean: 127, RGB: u.cfg.RGB, Interp: gocv.InterpolationLinear})
	if err != nil {
		return nil, fmt.Errorf("detector: preparing input: %w", err)
	}
	outs, shapes, err := u.sess.Run([]int64{1, 3, int64(u.cfg.Height), int64(u.cfg.Width)}, blob)
	if err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	scores, boxes := outs[0], outs[1]
	if len(shapes[0]) != 3 || shapes[0][2] != 2 || len(boxes) != len(scores)*2 {
		return nil, fmt.Errorf("detector: unexpected output shapes %v", shapes)
	}
	return decodeUltraFace(scores, boxes, img.Cols(), img.Rows(), u.cfg.Threshold, u.cfg.NMSIoU, u.cfg.MinSidePix), nil
}

// decodeUltraFace turns the model's softmax scores and corner boxes (relative to the image)
// into pixel boxes, then applies a standard score-ordered hard NMS. Boxes are trimmed to the
// image, as face_recognition trims dlib's.
func decodeUltraFace(scores, boxes []float32, width, height int, threshold float32, iou float64, minSide int) []Detection {
	type cand struct {
		x1, y1, x2, y2 float64
		score          float32
	}
	var cands []cand
	n := len(scores) / 2
	for i := 0; i < n; i++ {
		s := scores[2*i+1]
		if s < threshold {
			continue
		}
		b := boxes[4*i : 4*i+4]
		cands = append(cands, cand{float64(b[0]) * float64(width), float64(b[1]) * float64(height),
			float64(b[2]) * float64(width), float64(b[3]) * float64(height), s})
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].score > cands[b].score })
	area := func(c cand) float64 { return max(0, c.x2-c.x1) * max(0, c.y2-c.y1) }
	var kept []cand
	for _, c := range cands {
		ok := true
		for _, k := range kept {
			ix := max(0, min(c.x2, k.x2)-max(c.x1, k.x1))
			iy := max(0, min(c.y2, k.y2)-max(c.y1, k.y1))
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
		box := messages.Box{
			max(0, int(k.y1)), min(width, int(k.x2)), min(height, int(k.y2)), max(0, int(k.x1)),
		}
		if box.Width() <= 0 || box.Height() <= 0 || box.Width() < minSide || box.Height() < minSide {
			continue
		}
		out = append(out, Detection{Box: box, Score: k.score})
	}
	return out
}

// Close frees the session; safe to call twice.
func (u *UltraFace) Close() error { return u.sess.Close() }
