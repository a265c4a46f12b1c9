package embedder

import (
	"errors"
	"fmt"
	"image"

	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/stages/onnx"
)

// Model is a loaded clothing model. Its methods are safe for concurrent use; Close is not
// concurrent with them.
type Model struct {
	man        Manifest
	lut        [3][256]float32
	sess       *onnx.Session
	fixedBatch int // the model's batch dimension when it is not dynamic (often 1), else 0
	dim        int // vector length, learnt from the probe
}

// OpenModel loads the manifest's model (a relative File is looked up under modelsDir, then
// beside the manifest) and checks it with a probe inference, so a model whose output does not
// match the manifest (wrong name, shape, Dim or Pool) refuses to start with a message saying
// what it gives. opts.Device "cuda" falls back to the CPU with a warning when onnxruntime has
// no CUDA provider or no GPU.
func OpenModel(man Manifest, modelsDir string, opts onnx.Options) (*Model, error) {
	if err := man.Validate(); err != nil {
		return nil, err
	}
	man = man.normalized()
	path, err := man.resolve(modelsDir)
	if err != nil {
		return nil, err
	}
	man.File = path
	sess, err := onnx.Open(onnx.Spec{Path: path, Input: man.Input, Shape: man.inputShape(-1), Outputs: []string{man.Output}}, opts)
	if err != nil {
		return nil, fmt.Errorf("embedder: model %s (layout %s, size %d): %w", man.Name, man.Layout, man.Size, err)
	}
	m := &Model{man: man, lut: man.pixelLUT(), sess: sess}
	if ins, _, err := ort.GetInputOutputInfo(path); err == nil {
		for _, in := range ins {
			if in.Name == man.Input && len(in.Dimensions) > 0 && in.Dimensions[0] > 0 {
				m.fixedBatch = int(in.Dimensions[0])
			}
		}
	}
	// Probe: two blank images (or the fixed batch) must give two vectors of the promised size.
	n := 2
	if m.fixedBatch > 0 {
		n = m.fixedBatch
	}
	vecs, err := m.Infer(make([]float32, n*man.imageLen()), n)
	if err != nil {
		sess.Close()
		if errors.Is(err, ErrOutputShape) {
			return nil, fmt.Errorf("embedder: refusing model %s (%s): %w", man.Name, path, err)
		}
		return nil, fmt.Errorf("embedder: probe inference of model %s (%s) failed (a batch dimension fixed inside the model?): %w", man.Name, path, err)
	}
	m.dim = len(vecs[0])
	return m, nil
}

// Name names the model in messages.
func (m *Model) Name() string { return m.man.Name }

// Manifest returns the manifest the model was opened with (defaults filled, File resolved).
func (m *Model) Manifest() Manifest { return m.man }

// Device reports where the model runs.
func (m *Model) Device() onnx.Device { return m.sess.Device() }

// Dim is the length of the model's vectors.
func (m *Model) Dim() int { return m.dim }

// FixedBatch is the model's batch size when its input does not have a dynamic batch dimension
// (Infer then runs the model in chunks of that size), else 0.
func (m *Model) FixedBatch() int { return m.fixedBatch }

// ImageLen is the number of float32 values of one preprocessed image.
func (m *Model) ImageLen() int { return m.man.imageLen() }

// Preprocess writes one crop (8-bit BGR as OpenCV decodes it; grey and BGRA are converted)
// into dst, which must hold exactly ImageLen values.
func (m *Model) Preprocess(dst []float32, crop gocv.Mat) error {
	return preprocess(dst, crop, &m.man, &m.lut)
}

// AppendInput preprocesses one crop and appends it to blob.
func (m *Model) AppendInput(blob []float32, crop gocv.Mat) ([]float32, error) {
	start := len(blob)
	blob = append(blob, make([]float32, m.ImageLen())...)
	if err := m.Preprocess(blob[start:], crop); err != nil {
		return blob[:start], err
	}
	return blob, nil
}

// Infer runs n preprocessed images and returns n vectors (not normalised; the clusterer
// normalises). A model with a fixed batch size runs in chunks, the last padded with zeros.
func (m *Model) Infer(blob []float32, n int) ([][]float32, error) {
	per := m.man.imageLen()
	if n <= 0 || len(blob) != n*per {
		return nil, fmt.Errorf("embedder: %d values for %d images of %d", len(blob), n, per)
	}
	if m.fixedBatch <= 0 || n == m.fixedBatch {
		return m.infer(blob, n)
	}
	k := m.fixedBatch
	vecs := make([][]float32, 0, n)
	for off := 0; off < n; off += k {
		cnt := min(k, n-off)
		chunk := blob[off*per : (off+cnt)*per]
		if cnt < k {
			chunk = append(append(make([]float32, 0, k*per), chunk...), make([]float32, (k-cnt)*per)...)
		}
		v, err := m.infer(chunk, k)
		if err != nil {
			return nil, err
		}
		vecs = append(vecs, v[:cnt]...)
	}
	return vecs, nil
}

func (m *Model) infer(blob []float32, n int) ([][]float32, error) {
	outs, shapes, err := m.sess.Run(m.man.inputShape(int64(n)), blob)
	if err != nil {
		if errors.Is(err, onnx.ErrClosed) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("embedder: %w", err)
	}
	data, shape := outs[0], shapes[0]
	vecs, err := m.vectors(data, shape, n)
	if err != nil {
		return nil, fmt.Errorf("%w: model %s output %q has shape %v for a batch of %d: %v", ErrOutputShape, m.man.Name, m.man.Output, shape, n, err)
	}
	return vecs, nil
}

// vectors turns the output tensor into n vectors: pooling a feature map, or taking [N,D]
// (also [N,D,1,1] and [N,1,1,D]) as it is.
func (m *Model) vectors(data []float32, shape []int64, n int) ([][]float32, error) {
	if len(shape) < 2 || shape[0] != int64(n) {
		return nil, errors.New("the first dimension must be the batch")
	}
	dim := 0
	if m.man.Pool {
		if len(shape) != 4 {
			return nil, fmt.Errorf("pool expects a 4-d %s feature map", m.man.OutputLayout)
		}
		var c, hw int
		if m.man.OutputLayout == NHWC {
			c, hw = int(shape[3]), int(shape[1]*shape[2])
		} else {
			c, hw = int(shape[1]), int(shape[2]*shape[3])
		}
		if c <= 0 || hw <= 0 || len(data) != n*c*hw {
			return nil, fmt.Errorf("%d values", len(data))
		}
		data, dim = pool(data, n, c, hw, m.man.OutputLayout == NHWC), c
	} else {
		big := 0
		dim = 1
		for _, d := range shape[1:] {
			dim *= int(d)
			if d != 1 {
				big++
			}
		}
		if big > 1 {
			return nil, errors.New("a feature map, not one vector per image (set \"pool\": true to average it)")
		}
		if len(data) != n*dim {
			return nil, fmt.Errorf("%d values", len(data))
		}
	}
	if m.man.Dim != 0 && dim != m.man.Dim {
		return nil, fmt.Errorf("%d-d vectors, the manifest says dim %d", dim, m.man.Dim)
	}
	vecs := make([][]float32, n)
	for i := range vecs {
		vecs[i] = data[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return vecs, nil
}

// pool averages each channel of n feature maps of c channels × hw positions, channels first
// ([n,c,hw]) or last ([n,hw,c]). Sums run in float64.
func pool(data []float32, n, c, hw int, channelsLast bool) []float32 {
	out := make([]float32, n*c)
	if !channelsLast {
		for i := 0; i < n*c; i++ {
			var s float64
			for _, v := range data[i*hw : (i+1)*hw] {
				s += float64(v)
			}
			out[i] = float32(s / float64(hw))
		}
		return out
	}
	sums := make([]float64, c)
	for i := 0; i < n; i++ {
		clear(sums)
		img := data[i*hw*c : (i+1)*hw*c]
		for p := 0; p < hw; p++ {
			for ch, v := range img[p*c : (p+1)*c] {
				sums[ch] += float64(v)
			}
		}
		for ch, s := range sums {
			out[i*c+ch] = float32(s / float64(hw))
		}
	}
	return out
}

// Close frees the session; safe to call twice.
func (m *Model) Close() error {
	if m == nil || m.sess == nil {
		return nil
	}
	return m.sess.Close()
}

func imagePoint(size int) image.Point { return image.Pt(size, size) }
