package detector

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"sync"

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

// FaceDetector finds faces in a BGR image. Detections come best first; boxes lie inside the
// image. Implementations: RetinaFace wrapped in Zoom (the default), UltraFace (ONNX),
// dlibface.Detector (dlib HOG, the original's), and the Tiled and Zoom wrappers.
type FaceDetector interface {
	Detect(img gocv.Mat) ([]Detection, error)
	Name() string
	Close() error
}

// UltraFaceConfig configures the UltraFace ONNX detector.
type UltraFaceConfig struct {
	Path   string
	Width  int  // model input width: 320 (RFB-320, fr_detect) or 640 (RFB-640)
	Height int  // 240 or 480
	RGB    bool // fr_detect.onnx wants BGR; the original UltraFace releases want RGB
	// Threshold is the face score (softmax column 1) a candidate needs; default 0.7, as
	// UltraFace's own demos.
	Threshold float32
	// NMSIoU: a box overlapping a better one by more than this IoU is dropped; default 0.3.
	NMSIoU float64
	// CandidateSize: only the best this many candidates enter NMS (UltraFace's hard_nms
	// candidate_size); default 200.
	CandidateSize int
	Threads       int
	MinSidePix    int // drop boxes smaller than this (pixels, in the image)
	// Device is where the network runs (onnx.Device: cpu, cuda or auto); Logger hears a CUDA
	// fallback.
	Device onnx.Device
	Logger *slog.Logger
}

func (c *UltraFaceConfig) setDefaults() {
	if c.Width == 0 && c.Height == 0 {
		c.Width, c.Height = 320, 240
	}
	c.Threshold = cmp.Or(c.Threshold, 0.7)
	c.NMSIoU = cmp.Or(c.NMSIoU, 0.3)
	c.CandidateSize = cmp.Or(c.CandidateSize, 200)
}

// Validate reports configuration errors.
func (c UltraFaceConfig) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("no model file"))
	}
	if c.Width <= 0 || c.Height <= 0 || c.Width > 4096 || c.Height > 4096 {
		errs = append(errs, fmt.Errorf("input size %dx%d outside 1..4096", c.Width, c.Height))
	}
	if !(c.Threshold > 0 && c.Threshold < 1) {
		errs = append(errs, fmt.Errorf("score threshold %v outside (0,1)", c.Threshold))
	}
	if !(c.NMSIoU > 0 && c.NMSIoU <= 1) {
		errs = append(errs, fmt.Errorf("NMS IoU %v outside (0,1]", c.NMSIoU))
	}
	if c.CandidateSize < 0 || c.MinSidePix < 0 || c.Threads < 0 {
		errs = append(errs, errors.New("candidate size, minimum side and threads must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detector: ultraface: %w", err)
	}
	return nil
}

// UltraFace is the UltraFace RFB detector through onnxruntime.
type UltraFace struct {
	cfg   UltraFaceConfig
	sess  *onnx.Session
	name  string
	shape []int64
	blobs sync.Pool // *[]float32 input buffers
}

// NewUltraFace loads the model; its input must be [1,3,Height,Width] and it must have the
// outputs "scores" and "boxes", or it is refused with a message naming the file and the
// expected shape.
func NewUltraFace(cfg UltraFaceConfig) (*UltraFace, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	shape := []int64{1, 3, int64(cfg.Height), int64(cfg.Width)}
	sess, err := onnx.Open(onnx.Spec{Path: cfg.Path, Input: "input", Shape: shape, Outputs: []string{"scores", "boxes"}},
		onnx.Options{Threads: cfg.Threads, Device: cfg.Device, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("detector: UltraFace wants input \"input\" %v (%s, (p−127)/128) and outputs \"scores\" [1,N,2], \"boxes\" [1,N,4]: %w",
			shape, map[bool]string{true: "RGB", false: "BGR"}[cfg.RGB], err)
	}
	return &UltraFace{cfg: cfg, sess: sess, name: fmt.Sprintf("ultraface-%d", cfg.Width), shape: shape}, nil
}

func (u *UltraFace) Name() string { return u.name }

// Device reports where the network runs.
func (u *UltraFace) Device() onnx.Device { return u.sess.Device() }

// Config returns the configuration in use (defaults filled in).
func (u *UltraFace) Config() UltraFaceConfig { return u.cfg }

// Prepare turns an image into the model's input: resized (bilinear) to the input size, in
// the model's channel order, as (p−127)/128.
func (u *UltraFace) Prepare(dst []float32, img gocv.Mat) ([]float32, error) {
	blob, err := vision.AppendBlob(dst[:0], img, vision.BlobOptions{Width: u.cfg.Width, Height: u.cfg.Height,
		Scale: 1.0 / 128, Mean: 127, RGB: u.cfg.RGB, Interp: gocv.InterpolationLinear})
	if err != nil {
		return dst, fmt.Errorf("detector: preparing input: %w", err)
	}
	return blob, nil
}

// Infer runs the model on a prepared input and returns its scores and boxes.
func (u *UltraFace) Infer(blob []float32) (scores, boxes []float32, err error) {
	outs, shapes, err := u.sess.Run(u.shape, blob)
	if err != nil {
		return nil, nil, fmt.Errorf("detector: %w", err)
	}
	scores, boxes = outs[0], outs[1]
	if len(shapes[0]) != 3 || shapes[0][2] != 2 || len(boxes) != len(scores)*2 {
		return nil, nil, fmt.Errorf("detector: %s: unexpected output shapes %v (want scores [1,N,2], boxes [1,N,4])", u.cfg.Path, shapes)
	}
	return scores, boxes, nil
}

// Detect runs the model on img and returns score-ordered, non-overlapping faces.
func (u *UltraFace) Detect(img gocv.Mat) ([]Detection, error) {
	buf, _ := u.blobs.Get().(*[]float32)
	if buf == nil {
		buf = new([]float32)
	}
	defer u.blobs.Put(buf)
	blob, err := u.Prepare(*buf, img)
	*buf = blob
	if err != nil {
		return nil, err
	}
	scores, boxes, err := u.Infer(blob)
	if err != nil {
		return nil, err
	}
	return Decode(scores, boxes, img.Cols(), img.Rows(), u.cfg), nil
}

// Decode turns UltraFace's softmax scores ([N,2], column 1 = face) and corner boxes ([N,4],
// x1,y1,x2,y2 relative to the image) into pixel boxes of a width×height image: candidates
// scoring at least cfg.Threshold, the best cfg.CandidateSize of them, then a standard
// score-ordered hard NMS at cfg.NMSIoU (UltraFace's hard_nms). Coordinates are truncated to
// integers as UltraFace's demos do and trimmed to the image, as face_recognition trims dlib's.
func Decode(scores, boxes []float32, width, height int, cfg UltraFaceConfig) []Detection {
	var cands []candidate
	n := min(len(scores)/2, len(boxes)/4)
	for i := 0; i < n; i++ {
		s := scores[2*i+1]
		if !(s >= cfg.Threshold) { // also drops NaN
			continue
		}
		b := boxes[4*i : 4*i+4]
		if !finite(b[0]) || !finite(b[1]) || !finite(b[2]) || !finite(b[3]) {
			continue
		}
		cands = append(cands, candidate{float64(b[0]) * float64(width), float64(b[1]) * float64(height),
			float64(b[2]) * float64(width), float64(b[3]) * float64(height), s})
	}
	return hardNMS(cands, cfg.CandidateSize, cfg.NMSIoU, 0, width, height, cfg.MinSidePix)
}

// Close frees the session; safe to call twice.
func (u *UltraFace) Close() error { return u.sess.Close() }
