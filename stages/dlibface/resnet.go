package dlibface

// #include <stdlib.h>
// #include "dlibface.h"
import "C"

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/onnx"
)

// ResNetONNXFile is dlib's face ResNet as ONNX in a models folder's face/ directory.
const ResNetONNXFile = "dlib_resnet_v1.onnx"

// Landmarker is dlib's shape predictor alone: the 68 landmarks of a face and its aligned
// 150×150 chip, cut exactly as compute_face_descriptor cuts it.
type Landmarker struct {
	aligner
}

// NewLandmarker loads a shape predictor (68-point, or 5-point). padding is the chip's margin
// around the landmarks (0: dlib's 0.25).
func NewLandmarker(shapePredictor string, padding float64) (*Landmarker, error) {
	padding, err := chipPadding(padding)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(shapePredictor); err != nil {
		return nil, fmt.Errorf("%w: %s: %v (want dlib's 68-point shape predictor, %s from Debian's libdlib-data; run `make deps`)",
			ErrModel, shapePredictor, err, ShapePredictor68)
	}
	csp := C.CString(shapePredictor)
	defer C.free(unsafe.Pointer(csp))
	var cerr *C.char
	var parts C.int
	ptr := C.dlibface_landmarker_new(csp, &parts, &cerr)
	if err := takeErr(cerr); err != nil || ptr == nil {
		return nil, fmt.Errorf("%w: %v (want dlib's shape predictor, %s)", ErrModel, err, ShapePredictor68)
	}
	if parts != 68 && parts != 5 {
		C.dlibface_landmarker_free(ptr)
		return nil, fmt.Errorf("%w: %s has %d landmarks, want 68 (or 5)", ErrModel, shapePredictor, int(parts))
	}
	return &Landmarker{aligner{handle: handle{ptr: ptr}, parts: int(parts), padding: padding}}, nil
}

// Parts is the number of landmarks (68 or 5).
func (l *Landmarker) Parts() int { return l.parts }

// Chips returns the aligned chip of each face box (top, right, bottom, left) of img as packed
// RGB bytes, chipSize×chipSize×3 each, one after the other, and the landmarks when asked.
func (l *Landmarker) Chips(img gocv.Mat, boxes []messages.Box, withShapes bool) ([]byte, [][][2]int, error) {
	if len(boxes) == 0 {
		return nil, nil, nil
	}
	chips := make([]byte, len(boxes)*chipSize*chipSize*3)
	shapes, err := l.call(img, boxes, withShapes, func(ptr unsafe.Pointer, f shimFaces, cerr **C.char) C.int {
		return C.dlibface_chips(ptr, f.pix, f.rows, f.cols, f.rects, f.n, f.chipSize, f.padding, (*C.uint8_t)(unsafe.Pointer(&chips[0])), f.shapes, cerr)
	})
	if err != nil {
		return nil, nil, err
	}
	return chips, shapes, nil
}

// landmarksDiffer counts the boxes of img whose landmarks differ from those of dlib's own
// shape predictor, loaded from shapePredictor (for tests: the shim lays the trees out its own
// way).
func (l *Landmarker) landmarksDiffer(shapePredictor string, img gocv.Mat, boxes []messages.Box) (int, error) {
	csp := C.CString(shapePredictor)
	defer C.free(unsafe.Pointer(csp))
	differ := 0
	_, err := l.call(img, boxes, false, func(ptr unsafe.Pointer, f shimFaces, cerr **C.char) C.int {
		n := C.dlibface_landmarks_differ(ptr, csp, f.pix, f.rows, f.cols, f.rects, f.n, cerr)
		if n < 0 {
			return -1
		}
		differ = int(n)
		return 0
	})
	return differ, err
}

// Close frees the shape predictor; safe to call twice.
func (l *Landmarker) Close() error {
	return l.free(func(p unsafe.Pointer) { C.dlibface_landmarker_free(p) })
}

// ResNetConfig configures ResNetONNX.
type ResNetConfig struct {
	ShapePredictor string // dlib's 68-point shape predictor (.dat)
	Model          string // dlib_resnet_v1.onnx: input "input" [N,3,150,150] RGB 0..255, output "embedding" [N,128]
	Threads        int    // onnxruntime intra-op threads
	Device         onnx.Device
	Logger         *slog.Logger
	// MaxBatch bounds the faces per inference (default 16: dlib's own batch; larger batches
	// gain little on CPU and cost memory).
	MaxBatch int
	Padding  float64 // chip margin (0: dlib's 0.25)
}

func (c *ResNetConfig) setDefaults() {
	if c.MaxBatch == 0 {
		c.MaxBatch = 16
	}
}

// Validate reports a config that cannot work.
func (c ResNetConfig) Validate() error {
	if c.ShapePredictor == "" || c.Model == "" {
		return fmt.Errorf("dlibface: the ResNet encoder needs a shape predictor and a model (got %q, %q)", c.ShapePredictor, c.Model)
	}
	if c.MaxBatch < 1 || c.MaxBatch > 256 {
		return fmt.Errorf("dlibface: max batch %d outside 1..256", c.MaxBatch)
	}
	return nil
}

// ResNetONNX is dlib's descriptor (68 landmarks, dlib's chip, the 128-d ResNet-29) with the
// network run by onnxruntime instead of dlib's own CPU code: the same descriptor within 1e-6,
// about 8× faster on one core, batched across the faces of several frames and able to run on
// CUDA. It implements encoder.FaceEncoder and encoder.BatchEncoder.
type ResNetONNX struct {
	lm    *Landmarker
	sess  *onnx.Session
	batch int
	once  sync.Once
	lut   [3][256]float32 // a chip's RGB bytes to the network's input, its normalisation included
}

// NewResNetONNX loads the shape predictor and the network, checking the network's shape.
func NewResNetONNX(cfg ResNetConfig) (*ResNetONNX, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lm, err := NewLandmarker(cfg.ShapePredictor, cfg.Padding)
	if err != nil {
		return nil, err
	}
	sess, err := onnx.Open(onnx.Spec{Path: cfg.Model, Input: "input", Shape: []int64{-1, 3, chipSize, chipSize}, Outputs: []string{"embedding"}, FoldInput: true},
		onnx.Options{Threads: cfg.Threads, Device: cfg.Device, Logger: cfg.Logger})
	if err != nil {
		lm.Close()
		return nil, fmt.Errorf("dlibface: %s wants input \"input\" [N,3,150,150] (RGB 0..255 of dlib's chip) and output \"embedding\" [N,128]: %w", ResNetONNXFile, err)
	}
	e := &ResNetONNX{lm: lm, sess: sess, batch: cfg.MaxBatch}
	for c := range e.lut {
		for v := range e.lut[c] {
			e.lut[c][v] = sess.InputAffine().Apply(c, float32(v))
		}
	}
	return e, nil
}

// Name says which descriptor this is: dlib's, whatever runs its network.
func (e *ResNetONNX) Name() string { return "dlib-resnet-128" }

// Device reports where the network runs.
func (e *ResNetONNX) Device() onnx.Device { return e.sess.Device() }

// Encode returns the descriptor of the face at box in crop.
func (e *ResNetONNX) Encode(crop gocv.Mat, box messages.Box) ([]float32, error) {
	out, err := e.EncodeBatch([]encoder.Face{{Crop: crop, Box: box}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// EncodeBatch cuts every face's chip, then runs the network on up to MaxBatch chips at a time.
func (e *ResNetONNX) EncodeBatch(faces []encoder.Face) ([][]float32, error) {
	if len(faces) == 0 {
		return nil, nil
	}
	const per = 3 * chipSize * chipSize
	const plane = chipSize * chipSize
	blob := make([]float32, len(faces)*per)
	for i, f := range faces {
		chip, _, err := e.lm.Chips(f.Crop, []messages.Box{f.Box}, false)
		if err != nil {
			return nil, fmt.Errorf("face %d: %w", i, err)
		}
		dst := blob[i*per : (i+1)*per]
		// Packed RGB rows to planar RGB, with dlib's means and scale taken out of the graph.
		for p := 0; p < plane; p++ {
			dst[p] = e.lut[0][chip[3*p]]
			dst[plane+p] = e.lut[1][chip[3*p+1]]
			dst[2*plane+p] = e.lut[2][chip[3*p+2]]
		}
	}
	out, err := encoder.RunChunks(e.sess, []int64{3, chipSize, chipSize}, e.batch, blob, len(faces), DescriptorLen)
	if err != nil {
		return nil, fmt.Errorf("dlibface: %w", err)
	}
	return out, nil
}

// BareRun runs the network alone on n chips of zeros, at most batch per inference: the bare
// inference the encoder stage wraps, for benchmarks.
func (e *ResNetONNX) BareRun(n, batch int) error {
	blob := make([]float32, n*3*chipSize*chipSize)
	_, err := encoder.RunChunks(e.sess, []int64{3, chipSize, chipSize}, max(1, min(batch, e.batch)), blob, n, DescriptorLen)
	return err
}

// Close frees the shape predictor and the session; safe to call twice.
func (e *ResNetONNX) Close() error {
	var err error
	e.once.Do(func() {
		err = e.lm.Close()
		if cerr := e.sess.Close(); err == nil {
			err = cerr
		}
	})
	return err
}
