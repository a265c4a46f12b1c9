package detector

import (
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"sync"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/vision"
)

// RetinaFaceConfig configures the RetinaFace (MobileNet-0.25) ONNX detector: insightface's
// mnet.25 release, its three heads at strides 32, 16 and 8 with two square anchors each (sides
// 512/256, 128/64, 32/16 pixels of the model input). It finds smaller and partly covered faces
// than UltraFace.
type RetinaFaceConfig struct {
	Path string
	// Size is the input's longer side (640 for mnet.25_v2.onnx, 512 for _v1). The image is
	// scaled to fit a Size×Size square, as insightface does, but the input is shaped like the
	// image, unpadded (a 16:9 frame is a 640×360 input, 56% of the square's work). The graph is fully
	// convolutional; the file declares its 640×640 export size, which is freed when it loads.
	Size int
	// Threshold is the face probability a candidate needs; default 0.5.
	Threshold float32
	// NMSIoU: a box overlapping a better one by more than this IoU is dropped; default 0.4,
	// insightface's.
	NMSIoU     float64
	Threads    int
	MinSidePix int // drop boxes smaller than this (pixels, in the image)
	// Device is where the network runs (onnx.Device: cpu, cuda or auto); Logger hears a CUDA
	// fallback.
	Device onnx.Device
	Logger *slog.Logger
}

func (c *RetinaFaceConfig) setDefaults() {
	if c.Size == 0 {
		c.Size = 640
	}
	if c.Threshold == 0 {
		c.Threshold = 0.5
	}
	if c.NMSIoU == 0 {
		c.NMSIoU = 0.4
	}
}

// Validate reports configuration errors.
func (c RetinaFaceConfig) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("no model file"))
	}
	if c.Size < 32 || c.Size > 4096 || c.Size%32 != 0 {
		errs = append(errs, fmt.Errorf("input side %d: want a multiple of 32 in 32..4096", c.Size))
	}
	if !(c.Threshold > 0 && c.Threshold < 1) {
		errs = append(errs, fmt.Errorf("score threshold %v outside (0,1)", c.Threshold))
	}
	if !(c.NMSIoU > 0 && c.NMSIoU <= 1) {
		errs = append(errs, fmt.Errorf("NMS IoU %v outside (0,1]", c.NMSIoU))
	}
	if c.MinSidePix < 0 || c.Threads < 0 {
		errs = append(errs, errors.New("minimum side and threads must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("detector: retinaface: %w", err)
	}
	return nil
}

// RetinaFaceProposalScore is the threshold at which RetinaFace proposes faces for Zoom's second
// look: small, blurred and covered faces score from about 0.005 up at a frame's scale (measured
// on cast_hard_public.mp4: 7 proposals a frame, 0.89 of the faces among them).
const RetinaFaceProposalScore = 0.005

// retinaHead is one output level of RetinaFace.
type retinaHead struct {
	stride int
	scales [2]float64 // anchor sides are 16·scale input pixels
}

// retinaHeads lists the levels in the order of the outputs requested from the session.
var retinaHeads = []retinaHead{{32, [2]float64{32, 16}}, {16, [2]float64{8, 4}}, {8, [2]float64{2, 1}}}

func retinaOutputs() []string {
	var names []string
	for _, h := range retinaHeads {
		names = append(names, fmt.Sprintf("face_rpn_cls_prob_reshape_stride%d", h.stride), fmt.Sprintf("face_rpn_bbox_pred_stride%d", h.stride))
	}
	return names
}

// RetinaFace is insightface's RetinaFace-MobileNet0.25 through onnxruntime. It implements
// FaceDetector.
type RetinaFace struct {
	cfg   RetinaFaceConfig
	sess  *onnx.Session
	blobs sync.Pool // *[]float32 input buffers
}

// NewRetinaFace loads the model; its input must be "data" [1,3,H,W] and it must have the
// class and box outputs of the three strides, or it is refused with a message naming the file.
func NewRetinaFace(cfg RetinaFaceConfig) (*RetinaFace, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	spec := onnx.Spec{Path: cfg.Path, Input: "data", Shape: []int64{1, 3, -1, -1}, Outputs: retinaOutputs(), FreeDims: []int{2, 3}, FoldInput: true}
	sess, err := onnx.Open(spec, onnx.Options{Threads: cfg.Threads, Device: cfg.Device, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("detector: RetinaFace wants input \"data\" [1 3 H W] (RGB, 0..255) and outputs face_rpn_{cls_prob_reshape,bbox_pred}_stride{32,16,8}: %w", err)
	}
	return &RetinaFace{cfg: cfg, sess: sess}, nil
}

// inputSize is the input RetinaFace gets for a width×height image: the image scaled to fit
// size×size, at least 32 pixels a side. The sides need not be multiples of the strides: each
// stride's map has ceil(side/stride) cells and the network crops its upsampled maps to the
// finer ones, so a 16:9 frame is a 640×360 input, not 640×384 (6% less work and no black
// band below the frame).
func inputSize(width, height, size int) (scale float64, scaledW, scaledH, inW, inH int) {
	scale = float64(size) / float64(max(width, height))
	scaledW = max(1, min(size, int(math.Round(float64(width)*scale))))
	scaledH = max(1, min(size, int(math.Round(float64(height)*scale))))
	return scale, scaledW, scaledH, max(32, scaledW), max(32, scaledH)
}

// Name says which detector this is.
func (r *RetinaFace) Name() string { return fmt.Sprintf("retinaface-%d", r.cfg.Size) }

// Device reports where the network runs.
func (r *RetinaFace) Device() onnx.Device { return r.sess.Device() }

// Config returns the configuration in use (defaults filled in).
func (r *RetinaFace) Config() RetinaFaceConfig { return r.cfg }

// Detect finds the faces of a BGR image, best first.
func (r *RetinaFace) Detect(img gocv.Mat) ([]Detection, error) {
	if img.Empty() {
		return nil, errors.New("detector: empty image")
	}
	width, height := img.Cols(), img.Rows()
	scale, sw, sh, inW, inH := inputSize(width, height, r.cfg.Size)

	// AppendBlob scales the image to the input; one under 32 pixels a side goes at the top left
	// of a black canvas first.
	src := img
	if sw != inW || sh != inH {
		canvas := gocv.NewMatWithSize(inH, inW, gocv.MatTypeCV8UC3)
		defer canvas.Close()
		canvas.SetTo(gocv.NewScalar(0, 0, 0, 0))
		region := canvas.Region(image.Rect(0, 0, sw, sh))
		gocv.Resize(img, &region, image.Pt(sw, sh), 0, 0, gocv.InterpolationLinear)
		region.Close()
		src = canvas
	}

	buf, _ := r.blobs.Get().(*[]float32)
	if buf == nil {
		buf = new([]float32)
	}
	defer r.blobs.Put(buf)
	blob, err := vision.AppendBlob((*buf)[:0], src, vision.BlobOptions{Width: inW, Height: inH, Scale: 1, RGB: true, Interp: gocv.InterpolationLinear,
		Channel: r.sess.InputAffine().Apply})
	*buf = blob
	if err != nil {
		return nil, fmt.Errorf("detector: preparing input: %w", err)
	}
	outs, _, err := r.sess.Run([]int64{1, 3, int64(inH), int64(inW)}, blob)
	if err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	return DecodeRetina(outs, inW, inH, scale, width, height, r.cfg)
}

// DecodeRetina turns RetinaFace's outputs (per stride 32, 16, 8: class probabilities
// [1,4,H,W] — two background planes, then two face planes — and box deltas [1,8,H,W]) into
// pixel boxes of a width×height image that was scaled by scale into an inW×inH input:
// insightface's anchor decoding, then a score-ordered hard NMS.
func DecodeRetina(outs [][]float32, inW, inH int, scale float64, width, height int, cfg RetinaFaceConfig) ([]Detection, error) {
	if len(outs) != 2*len(retinaHeads) {
		return nil, fmt.Errorf("detector: retinaface: %d outputs, want %d", len(outs), 2*len(retinaHeads))
	}
	var cands []candidate
	for l, h := range retinaHeads {
		fw, fh := (inW+h.stride-1)/h.stride, (inH+h.stride-1)/h.stride
		plane := fw * fh
		cls, deltas := outs[2*l], outs[2*l+1]
		if len(cls) != 4*plane || len(deltas) != 8*plane {
			return nil, fmt.Errorf("detector: retinaface: stride %d outputs hold %d and %d values, want %d and %d", h.stride, len(cls), len(deltas), 4*plane, 8*plane)
		}
		for a, sc := range h.scales {
			side := 16 * sc
			for i := 0; i < plane; i++ {
				s := cls[(2+a)*plane+i]
				if !(s >= cfg.Threshold) {
					continue
				}
				// The anchor is centred on the cell's 16-pixel base box (centre 7.5).
				cx := float64((i%fw)*h.stride) + 7.5
				cy := float64((i/fw)*h.stride) + 7.5
				dx, dy := float64(deltas[(4*a)*plane+i]), float64(deltas[(4*a+1)*plane+i])
				dw, dh := float64(deltas[(4*a+2)*plane+i]), float64(deltas[(4*a+3)*plane+i])
				px, py := cx+dx*side, cy+dy*side
				pw, ph := side*math.Exp(dw), side*math.Exp(dh)
				c := candidate{(px - 0.5*(pw-1)) / scale, (py - 0.5*(ph-1)) / scale, (px + 0.5*(pw-1)) / scale, (py + 0.5*(ph-1)) / scale, s}
				if !finite(c.x1) || !finite(c.y1) || !finite(c.x2) || !finite(c.y2) {
					continue
				}
				cands = append(cands, c)
			}
		}
	}
	return hardNMS(cands, 0, cfg.NMSIoU, 1, width, height, cfg.MinSidePix), nil
}

// Close frees the session; safe to call twice.
func (r *RetinaFace) Close() error { return r.sess.Close() }
