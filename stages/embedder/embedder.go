// Package embedder is the clothing embedder stage: faces.<source> → clothvec.<source>. It runs
// an ImageNet CNN on every clothing crop, batching the crops of several messages into one
// inference so a GPU sees full batches; inputs are acked only after their outputs are stored.
//
// The model is any ONNX image model described by a Manifest (models/manifests/*.json): input
// name, size, layout, channel order, normalisation, output name, and whether the output is a
// feature map to average-pool. The default is the shared MobileNet v1 backbone (512-d).
package embedder

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
)

// StageName names the stage in message ids, dead-letter subjects and metrics.
const StageName = messages.StageEmbedder

// Sentinel errors, matched with errors.Is.
var (
	// ErrOutputShape: the model's output does not have the shape the manifest promises. Found
	// at start by a probe inference (OpenModel refuses the model); at run time it dead-letters.
	ErrOutputShape = errors.New("embedder: unexpected model output shape")
	// ErrCrop: a clothing crop that cannot be used (undecodable, empty, zero area).
	ErrCrop = errors.New("embedder: unusable clothing crop")
	// ErrClosed: the stage or model was closed.
	ErrClosed = errors.New("embedder: closed")
)

// Layouts and channel orders a manifest may name.
const (
	NCHW = "NCHW"
	NHWC = "NHWC"
	RGB  = "RGB"
	BGR  = "BGR"
)

// Manifest describes an ONNX image model. Each crop is resized to Size×Size (bicubic), its
// channels put in Channels order, and every value computed as
//
//	value[c] = (pixel[c]·Scale − Mean[c]) / Std[c]     (pixel in 0..255; Mean, Std in model channel order)
//
// then laid out as Layout. The model's Output is either a vector per image ([N,D], or
// [N,D,1,1]/[N,1,1,D]), or with Pool a feature map averaged over its spatial axes
// (OutputLayout says where the channels are; it defaults to Layout).
type Manifest struct {
	Name     string     `json:"name"`
	File     string     `json:"file"` // absolute, or relative to the models folder (then to the manifest's folder)
	Input    string     `json:"input"`
	Output   string     `json:"output"`
	Size     int        `json:"size"`
	Layout   string     `json:"layout"`   // NCHW (default) or NHWC
	Channels string     `json:"channels"` // RGB (default) or BGR
	Scale    float64    `json:"scale"`    // multiplies the 0..255 pixel; 0 means 1/255
	Mean     [3]float64 `json:"mean"`
	Std      [3]float64 `json:"std"` // all zero means 1
	Dim      int        `json:"dim"` // vector length; 0 accepts what the model gives
	// Pool says the output is a feature map [N,C,H,W] (or [N,H,W,C]) to average over H and W.
	Pool         bool   `json:"pool"`
	OutputLayout string `json:"output_layout,omitempty"` // layout of a pooled map; default Layout

	dir string // the manifest file's folder, a fallback for a relative File
}

// MobileNetV1 is the default model: the shared Keras MobileNet v1 backbone cut after
// conv_pw_11_relu and pooled inside the model (output "embedding", [N,512]); input RGB scaled
// as x/127.5−1 (Keras "tf" preprocessing), NCHW.
var MobileNetV1 = Manifest{Name: "mobilenet_v1-512", File: "cloth/mobilenet_v1_backbone.onnx", Input: "input", Output: "embedding",
	Size: 224, Layout: NCHW, Channels: RGB, Scale: 1 / 127.5, Mean: [3]float64{1, 1, 1}, Std: [3]float64{1, 1, 1}, Dim: 512}

// LoadManifest reads a JSON manifest. Unknown fields are refused (a typo must not silently
// change the preprocessing).
func LoadManifest(path string) (Manifest, error) {
	var m Manifest
	data, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("embedder: reading manifest: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("embedder: manifest %s: %w", path, err)
	}
	if m.Name == "" {
		m.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if abs, err := filepath.Abs(filepath.Dir(path)); err == nil {
		m.dir = abs
	} else {
		m.dir = filepath.Dir(path)
	}
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("%w (in %s)", err, path)
	}
	return m, nil
}

// normalized fills the defaults: NCHW, RGB, scale 1/255, std 1, output layout = layout.
func (m Manifest) normalized() Manifest {
	m.Layout = strings.ToUpper(m.Layout)
	if m.Layout == "" {
		m.Layout = NCHW
	}
	m.Channels = strings.ToUpper(m.Channels)
	if m.Channels == "" {
		m.Channels = RGB
	}
	if m.Scale == 0 {
		m.Scale = 1.0 / 255
	}
	if m.Std == [3]float64{} {
		m.Std = [3]float64{1, 1, 1}
	}
	m.OutputLayout = strings.ToUpper(m.OutputLayout)
	if m.OutputLayout == "" {
		m.OutputLayout = m.Layout
	}
	return m
}

// Validate checks the manifest.
func (m Manifest) Validate() error {
	n := m.normalized()
	var errs []error
	if m.File == "" || m.Input == "" || m.Output == "" {
		errs = append(errs, errors.New("file, input and output are required"))
	}
	if m.Size < 16 || m.Size > 1024 {
		errs = append(errs, fmt.Errorf("size %d outside 16..1024", m.Size))
	}
	if n.Layout != NCHW && n.Layout != NHWC {
		errs = append(errs, fmt.Errorf("layout %q unsupported (NCHW or NHWC)", m.Layout))
	}
	if n.OutputLayout != NCHW && n.OutputLayout != NHWC {
		errs = append(errs, fmt.Errorf("output_layout %q unsupported (NCHW or NHWC)", m.OutputLayout))
	}
	if n.Channels != RGB && n.Channels != BGR {
		errs = append(errs, fmt.Errorf("channels %q unsupported (RGB or BGR)", m.Channels))
	}
	if n.Scale < 0 {
		errs = append(errs, fmt.Errorf("scale %v must be positive", m.Scale))
	}
	for _, s := range n.Std {
		if s <= 0 {
			errs = append(errs, fmt.Errorf("std %v must be positive (or all omitted)", m.Std))
			break
		}
	}
	if m.Dim < 0 {
		errs = append(errs, fmt.Errorf("dim %d is negative", m.Dim))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("embedder: manifest %s: %w", m.Name, err)
	}
	return nil
}

// resolve finds the model file: absolute as is; relative under modelsDir, then beside the
// manifest. The error names every path tried.
func (m Manifest) resolve(modelsDir string) (string, error) {
	var tried []string
	if filepath.IsAbs(m.File) {
		tried = []string{m.File}
	} else {
		if modelsDir != "" {
			tried = append(tried, filepath.Join(modelsDir, m.File))
		}
		if m.dir != "" {
			tried = append(tried, filepath.Join(m.dir, m.File))
		}
		if len(tried) == 0 {
			tried = []string{m.File}
		}
	}
	for _, p := range tried {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("embedder: model %s: file %s not found (looked for %s); run `make deps`, or `make models-internet` for the ResNets",
		m.Name, m.File, strings.Join(tried, ", "))
}

// pixelLUT maps each 0..255 value of each model channel to its normalised value; computed in
// float64 so x/127.5−1 and the other normalisations are exact to float32 rounding.
func (m Manifest) pixelLUT() [3][256]float32 {
	var lut [3][256]float32
	for c := 0; c < 3; c++ {
		for p := 0; p < 256; p++ {
			lut[c][p] = float32((float64(p)*m.Scale - m.Mean[c]) / m.Std[c])
		}
	}
	return lut
}

// imageLen is the number of float32 values of one preprocessed image.
func (m Manifest) imageLen() int { return 3 * m.Size * m.Size }

// inputShape is the model input's shape for a batch of n (n = -1: any).
func (m Manifest) inputShape(n int64) []int64 {
	s := int64(m.Size)
	if m.Layout == NHWC {
		return []int64{n, s, s, 3}
	}
	return []int64{n, 3, s, s}
}

// Preprocess writes one crop (8-bit BGR, BGRA or grey, as OpenCV decodes) into dst, which must
// hold exactly imageLen values: bicubic resize to Size×Size, channel order, normalisation,
// layout. OpenCV's INTER_CUBIC (a = −0.75, no antialiasing when shrinking) stands in for the
// original's PIL/Keras bicubic (a = −0.5, antialiased); the two differ by a few grey levels on
// strongly shrunk crops, which does not change which outfits are nearest.
func preprocess(dst []float32, crop gocv.Mat, m *Manifest, lut *[3][256]float32) error {
	if crop.Empty() || crop.Rows() <= 0 || crop.Cols() <= 0 {
		return fmt.Errorf("%w: zero-area image", ErrCrop)
	}
	if len(dst) != m.imageLen() {
		return fmt.Errorf("embedder: preprocess: %d values for a %d-value image", len(dst), m.imageLen())
	}
	src := crop
	switch {
	case crop.Type() == gocv.MatTypeCV8UC3:
	case crop.Type() == gocv.MatTypeCV8UC1 || crop.Type() == gocv.MatTypeCV8UC4:
		bgr := gocv.NewMat()
		defer bgr.Close()
		code := gocv.ColorGrayToBGR
		if crop.Channels() == 4 {
			code = gocv.ColorBGRAToBGR
		}
		gocv.CvtColor(crop, &bgr, code)
		src = bgr
	default:
		return fmt.Errorf("%w: unsupported image type %v (8-bit grey, BGR or BGRA)", ErrCrop, crop.Type())
	}
	resized := gocv.NewMat()
	defer resized.Close()
	gocv.Resize(src, &resized, imagePoint(m.Size), 0, 0, gocv.InterpolationCubic)
	if !resized.IsContinuous() {
		return errors.New("embedder: resized image is not continuous")
	}
	px, err := resized.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("embedder: reading resized image: %w", err)
	}
	plane := m.Size * m.Size
	if len(px) != 3*plane {
		return fmt.Errorf("embedder: resized image has %d bytes, want %d", len(px), 3*plane)
	}
	// OpenCV pixels are B,G,R: model channel c reads byte order[c].
	order := [3]int{2, 1, 0} // RGB
	if m.Channels == BGR {
		order = [3]int{0, 1, 2}
	}
	l0, l1, l2 := &lut[0], &lut[1], &lut[2]
	o0, o1, o2 := order[0], order[1], order[2]
	if m.Layout == NHWC {
		dst = dst[:3*plane]
		for i := 0; i < plane; i++ {
			p := px[3*i : 3*i+3 : 3*i+3]
			d := dst[3*i : 3*i+3 : 3*i+3]
			d[0], d[1], d[2] = l0[p[o0]], l1[p[o1]], l2[p[o2]]
		}
		return nil
	}
	c0, c1, c2 := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	for i := 0; i < plane; i++ {
		p := px[3*i : 3*i+3 : 3*i+3]
		c0[i], c1[i], c2[i] = l0[p[o0]], l1[p[o1]], l2[p[o2]]
	}
	return nil
}
