// Package dlibface is the original's face path through dlib (Debian's libdlib-dev): the HOG
// frontal face detector, upsampled as face_recognition.face_locations does, and the 128-d
// ResNet descriptor with 68-landmark alignment of face_recognition.face_encodings
// (model='large', num_jitters=1), computed for given face boxes.
//
// It reads go-face's model folder (the same three file names, see Files) but calls dlib
// through its own small shim (dlibface.cc) rather than through github.com/Kagami/go-face:
// go-face only describes the faces its own detector finds in a JPEG, cannot upsample, returns
// no detection scores and always computes descriptors, so it can neither reproduce
// face_encodings(frame, boxes) nor detect without paying for descriptors. The shim reuses
// dlib's network definition exactly as go-face and dlib's Python bindings do.
//
// All cgo that touches dlib lives in this package. Objects are not safe for concurrent use
// by dlib itself; each wrapper serialises its calls with a mutex. Close frees the native
// objects and is safe to call twice; nothing relies on finalizers.
package dlibface

// #cgo CXXFLAGS: -std=c++14 -O3 -DNDEBUG -Wno-deprecated-declarations
// #cgo LDFLAGS: -ldlib -lcblas -llapack -lblas
// #include <stdlib.h>
// #include "dlibface.h"
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/vision"
)

// Model file names in a go-face model folder. go-face loads a predictor under the 5-point
// name; the original used dlib's 68-point one, which works in its place (and is preferred
// under its own name when both are present).
const (
	ShapePredictor68 = "shape_predictor_68_face_landmarks.dat"
	ShapePredictor5  = "shape_predictor_5_face_landmarks.dat"
	Network          = "dlib_face_recognition_resnet_model_v1.dat"
	CNNDetector      = "mmod_human_face_detector.dat" // go-face's third file; not used here
)

// DescriptorLen is the length of a dlib face descriptor.
const DescriptorLen = 128

// chipSize is the network's input side: 150×150 RGB.
const chipSize = 150

// ErrClosed reports use after Close.
var ErrClosed = errors.New("dlibface: closed")

// ErrModel reports a missing or unusable model file.
var ErrModel = errors.New("dlibface: unusable model")

func takeErr(e *C.char) error {
	if e == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(e))
	return errors.New(C.GoString(e))
}

// packedBGR returns img's pixels as packed 8-bit BGR rows, converting grey or BGRA images and
// copying non-continuous ones. The returned Mat (if any) must be closed after use of the bytes.
func packedBGR(img gocv.Mat) ([]byte, *gocv.Mat, error) {
	if img.Empty() {
		return nil, nil, vision.ErrEmpty
	}
	if img.Type() == gocv.MatTypeCV8UC3 && img.IsContinuous() {
		b, err := img.DataPtrUint8()
		return b, nil, err
	}
	conv := gocv.NewMat()
	switch img.Type() {
	case gocv.MatTypeCV8UC3:
		img.CopyTo(&conv)
	case gocv.MatTypeCV8UC1:
		gocv.CvtColor(img, &conv, gocv.ColorGrayToBGR)
	case gocv.MatTypeCV8UC4:
		gocv.CvtColor(img, &conv, gocv.ColorBGRAToBGR)
	default:
		conv.Close()
		return nil, nil, fmt.Errorf("dlibface: unsupported image type %v (want 8-bit grey, BGR or BGRA)", img.Type())
	}
	b, err := conv.DataPtrUint8()
	if err != nil {
		conv.Close()
		return nil, nil, err
	}
	return b, &conv, nil
}

// handle is a native shim object behind a mutex: dlib's objects are not safe for concurrent
// use, so every call holds it. A nil ptr means closed.
type handle struct {
	mu  sync.Mutex
	ptr unsafe.Pointer
}

// free frees the object with freeFn once; safe to call twice.
func (h *handle) free(freeFn func(unsafe.Pointer)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ptr != nil {
		freeFn(h.ptr)
		h.ptr = nil
	}
	return nil
}

// aligner is a shim object built on a shape predictor (Encoder, Landmarker): it cuts
// padding-wide chips around parts landmarks.
type aligner struct {
	handle
	parts   int
	padding float64
}

// shimFaces are the arguments every per-face shim call takes: the image's packed BGR pixels
// and size, the boxes as dlib rectangles, the chip's side and padding, and room for the
// landmarks (nil when they are not asked for).
type shimFaces struct {
	pix        *C.uint8_t
	rows, cols C.int
	rects      *C.long
	n          C.int
	chipSize   C.int
	padding    C.double
	shapes     *C.long
}

// call runs one shim call, fn, on the faces at boxes (at least one) of img while holding the
// object, and returns their landmarks when withShapes. fn returns the shim's status (0: done)
// and sets *cerr on failure.
func (a *aligner) call(img gocv.Mat, boxes []messages.Box, withShapes bool,
	fn func(ptr unsafe.Pointer, f shimFaces, cerr **C.char) C.int) ([][][2]int, error) {
	pix, conv, err := packedBGR(img)
	if err != nil {
		return nil, fmt.Errorf("dlibface: %w", err)
	}
	if conv != nil {
		defer conv.Close()
	}
	rects, err := dlibRects(boxes)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ptr == nil {
		return nil, ErrClosed
	}
	f := shimFaces{
		pix: (*C.uint8_t)(unsafe.Pointer(&pix[0])), rows: C.int(img.Rows()), cols: C.int(img.Cols()),
		rects: &rects[0], n: C.int(len(boxes)), chipSize: C.int(chipSize), padding: C.double(a.padding),
	}
	var shapes []C.long
	if withShapes {
		shapes = make([]C.long, 2*a.parts*len(boxes))
		f.shapes = &shapes[0]
	}
	var cerr *C.char
	rc := fn(a.ptr, f, &cerr)
	if err := takeErr(cerr); err != nil || rc != 0 {
		return nil, fmt.Errorf("dlibface: %w", err)
	}
	return landmarks(shapes, len(boxes), a.parts), nil
}

// chipPadding returns the chip's margin around the landmarks: 0 means dlib's 0.25.
func chipPadding(padding float64) (float64, error) {
	if padding == 0 {
		padding = 0.25
	}
	if padding < 0 || padding > 2 {
		return 0, fmt.Errorf("dlibface: chip padding %v outside [0,2]", padding)
	}
	return padding, nil
}

// DetectorConfig configures the HOG detector.
type DetectorConfig struct {
	// Upsample is how many times the image is doubled before detection: face_recognition's
	// number_of_times_to_upsample, 1 in the original (faces down to about 40 px).
	Upsample int
	// Threshold is dlib's adjust_threshold: detections scoring below it are dropped (0 as in
	// the original; negative finds more, less certain faces).
	Threshold float64
}

// Detector is dlib's HOG frontal face detector. It implements detector.FaceDetector.
type Detector struct {
	handle
	cfg DetectorConfig
}

// NewDetector creates the HOG detector (its model is built into dlib).
func NewDetector(cfg DetectorConfig) (*Detector, error) {
	if cfg.Upsample < 0 || cfg.Upsample > 3 {
		return nil, fmt.Errorf("dlibface: upsample %d outside 0..3", cfg.Upsample)
	}
	var cerr *C.char
	ptr := C.dlibface_hog_new(&cerr)
	if err := takeErr(cerr); err != nil || ptr == nil {
		return nil, fmt.Errorf("dlibface: %w", err)
	}
	return &Detector{handle: handle{ptr: ptr}, cfg: cfg}, nil
}

// Name says which detector this is.
func (d *Detector) Name() string { return fmt.Sprintf("dlib-hog-up%d", d.cfg.Upsample) }

// Detect finds the faces of a BGR (or grey) image, best first. Boxes are face_recognition's
// (top, right, bottom, left) of dlib's inclusive corners, trimmed to the image as
// face_recognition trims them; scores are dlib's detection confidences.
func (d *Detector) Detect(img gocv.Mat) ([]detector.Detection, error) {
	pix, conv, err := packedBGR(img)
	if err != nil {
		return nil, fmt.Errorf("dlibface: %w", err)
	}
	if conv != nil {
		defer conv.Close()
	}
	rows, cols := img.Rows(), img.Cols()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ptr == nil {
		return nil, ErrClosed
	}
	capacity := 64
	for {
		rects := make([]C.long, 4*capacity)
		scores := make([]C.double, capacity)
		var cerr *C.char
		n := int(C.dlibface_hog_detect(d.ptr, (*C.uint8_t)(unsafe.Pointer(&pix[0])), C.int(rows), C.int(cols),
			C.int(d.cfg.Upsample), C.double(d.cfg.Threshold), &rects[0], &scores[0], C.int(capacity), &cerr))
		if err := takeErr(cerr); err != nil || n < 0 {
			return nil, fmt.Errorf("dlibface: %w", err)
		}
		if n > capacity {
			capacity = n
			continue
		}
		out := make([]detector.Detection, 0, n)
		for i := 0; i < n; i++ {
			left, top, right, bottom := int(rects[4*i]), int(rects[4*i+1]), int(rects[4*i+2]), int(rects[4*i+3])
			box := messages.Box{max(top, 0), min(right, cols), min(bottom, rows), max(left, 0)}
			if box.Width() <= 0 || box.Height() <= 0 {
				continue
			}
			out = append(out, detector.Detection{Box: box, Score: float32(scores[i])})
		}
		return out, nil
	}
}

// Close frees the detector; safe to call twice.
func (d *Detector) Close() error {
	return d.free(func(p unsafe.Pointer) { C.dlibface_hog_free(p) })
}

// EncoderConfig says where the models are.
type EncoderConfig struct {
	// Dir is a go-face model folder. ShapePredictor and Network, when set, override the
	// files found there.
	Dir            string
	ShapePredictor string
	Network        string
	// Padding around the landmarks in the 150×150 chip: 0.25 as dlib's compute_face_descriptor.
	Padding float64
}

// Paths returns the shape predictor and network files the config names: in Dir, the 68-point
// predictor under its own name if present, else under go-face's 5-point name.
func (c EncoderConfig) Paths() (shapePredictor, network string) {
	shapePredictor, network = c.ShapePredictor, c.Network
	if shapePredictor == "" {
		shapePredictor = filepath.Join(c.Dir, ShapePredictor5)
		if p := filepath.Join(c.Dir, ShapePredictor68); fileExists(p) {
			shapePredictor = p
		}
	}
	if network == "" {
		network = filepath.Join(c.Dir, Network)
	}
	return shapePredictor, network
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Encoder computes dlib's 128-d face descriptors. It implements encoder.FaceEncoder and
// encoder.BatchEncoder.
type Encoder struct {
	aligner
}

// NewEncoder loads the shape predictor and the face network. A missing or wrong file fails
// with a message naming it and what it must be.
func NewEncoder(cfg EncoderConfig) (*Encoder, error) {
	padding, err := chipPadding(cfg.Padding)
	if err != nil {
		return nil, err
	}
	sp, net := cfg.Paths()
	for _, f := range []struct{ path, want string }{
		{sp, "dlib's 68-point (or 5-point) shape predictor, e.g. " + ShapePredictor68 + " from Debian's libdlib-data"},
		{net, "dlib's face ResNet (" + Network + ": 150×150×3 RGB chip in, 128-d descriptor out)"},
	} {
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("%w: %s: %v (want %s; run `make deps`)", ErrModel, f.path, err, f.want)
		}
	}
	csp, cnet := C.CString(sp), C.CString(net)
	defer C.free(unsafe.Pointer(csp))
	defer C.free(unsafe.Pointer(cnet))
	var cerr *C.char
	var parts C.int
	ptr := C.dlibface_encoder_new(csp, cnet, &parts, &cerr)
	if err := takeErr(cerr); err != nil || ptr == nil {
		return nil, fmt.Errorf("%w: %v (want %s with 68 or 5 parts, and %s: dlib's face ResNet-29, 150×150×3 RGB chip in, 128-d descriptor out)",
			ErrModel, err, ShapePredictor68, Network)
	}
	if parts != 68 && parts != 5 {
		C.dlibface_encoder_free(ptr)
		return nil, fmt.Errorf("%w: %s has %d landmarks, want 68 (or 5)", ErrModel, sp, int(parts))
	}
	return &Encoder{aligner{handle: handle{ptr: ptr}, parts: int(parts), padding: padding}}, nil
}

// Name says which descriptor this is.
func (e *Encoder) Name() string { return "dlib-resnet-128" }

// Parts is the number of landmarks of the shape predictor (68 or 5).
func (e *Encoder) Parts() int { return e.parts }

// Encode returns the descriptor of the face at box (top, right, bottom, left, face_recognition's
// order) in img.
func (e *Encoder) Encode(img gocv.Mat, box messages.Box) ([]float32, error) {
	out, _, err := e.encode(img, []messages.Box{box}, false)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// Landmarks returns the face's descriptor and its landmarks (in img pixels).
func (e *Encoder) Landmarks(img gocv.Mat, box messages.Box) ([]float32, [][2]int, error) {
	out, shapes, err := e.encode(img, []messages.Box{box}, true)
	if err != nil {
		return nil, nil, err
	}
	return out[0], shapes[0], nil
}

// EncodeAll describes several faces of one image in one call (the network runs them as a batch).
func (e *Encoder) EncodeAll(img gocv.Mat, boxes []messages.Box) ([][]float32, error) {
	out, _, err := e.encode(img, boxes, false)
	return out, err
}

func (e *Encoder) encode(img gocv.Mat, boxes []messages.Box, withShapes bool) ([][]float32, [][][2]int, error) {
	if len(boxes) == 0 {
		return nil, nil, nil
	}
	desc := make([]C.float, DescriptorLen*len(boxes))
	shapes, err := e.call(img, boxes, withShapes, func(ptr unsafe.Pointer, f shimFaces, cerr **C.char) C.int {
		return C.dlibface_encode(ptr, f.pix, f.rows, f.cols, f.rects, f.n, f.chipSize, f.padding, &desc[0], f.shapes, cerr)
	})
	if err != nil {
		return nil, nil, err
	}
	out := make([][]float32, len(boxes))
	for i := range out {
		v := make([]float32, DescriptorLen)
		for k := range v {
			v[k] = float32(desc[i*DescriptorLen+k])
		}
		out[i] = v
	}
	return out, shapes, nil
}

// dlibRects turns boxes into the shim's rectangles, face_recognition's _css_to_rect:
// dlib.rectangle(left, top, right, bottom).
func dlibRects(boxes []messages.Box) ([]C.long, error) {
	rects := make([]C.long, 4*len(boxes))
	for i, b := range boxes {
		if b.Width() <= 0 || b.Height() <= 0 {
			return nil, fmt.Errorf("dlibface: empty face box %v", b)
		}
		rects[4*i], rects[4*i+1], rects[4*i+2], rects[4*i+3] = C.long(b.Left()), C.long(b.Top()), C.long(b.Right()), C.long(b.Bottom())
	}
	return rects, nil
}

// landmarks reads the shim's n×parts landmark coordinates (nil: none were asked for).
func landmarks(shapes []C.long, n, parts int) [][][2]int {
	if shapes == nil {
		return nil
	}
	pts := make([][][2]int, n)
	for i := range pts {
		pts[i] = make([][2]int, parts)
		for j := range pts[i] {
			pts[i][j] = [2]int{int(shapes[(i*parts+j)*2]), int(shapes[(i*parts+j)*2+1])}
		}
	}
	return pts
}

// Close frees the models; safe to call twice.
func (e *Encoder) Close() error {
	return e.free(func(p unsafe.Pointer) { C.dlibface_encoder_free(p) })
}

// EncodeBatch describes faces of several crops (the encoder stage's batches).
func (e *Encoder) EncodeBatch(faces []encoder.Face) ([][]float32, error) {
	out := make([][]float32, len(faces))
	for i, f := range faces {
		v, err := e.Encode(f.Crop, f.Box)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}
