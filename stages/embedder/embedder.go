// Package embedder is the clothing embedder stage: faces.<source> → clothvec.<source>. It runs
// an ImageNet CNN on every clothing crop, batching the crops of several messages into one
// inference so a GPU sees full batches; inputs are acked only after their outputs are stored.
package embedder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// StageName names the stage in message ids, dead-letter subjects and metrics.
const StageName = "embedder"

// Manifest describes an ONNX image model: value = (pixel/255 − Mean)/Std per channel after
// resizing to Size×Size (bicubic, as the original's Keras preprocessing).
type Manifest struct {
	Name   string     `json:"name"`
	File   string     `json:"file"` // relative to the manifest's folder, or absolute
	Input  string     `json:"input"`
	Output string     `json:"output"`
	Size   int        `json:"size"`
	Layout string     `json:"layout"` // NCHW (only NCHW is supported by the shipped models)
	RGB    bool       `json:"rgb"`
	Mean   [3]float64 `json:"mean"`
	Std    [3]float64 `json:"std"`
	Dim    int        `json:"dim"`
	// Pool says the output is a feature map [N,C,H,W] to average over H and W.
	Pool bool `json:"pool"`
}

// MobileNetV1 is the default model: the shared MobileNet v1 backbone, x/127.5−1 on RGB.
var MobileNetV1 = Manifest{Name: "mobilenet_v1-512", File: "cloth/mobilenet_v1_backbone.onnx", Input: "input", Output: "embedding",
	Size: 224, Layout: "NCHW", RGB: true, Mean: [3]float64{0.5, 0.5, 0.5}, Std: [3]float64{0.5, 0.5, 0.5}, Dim: 512}

// LoadManifest reads a JSON manifest; File is resolved against the manifest's folder.
func LoadManifest(path string) (Manifest, error) {
	var m Manifest
	data, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("embedder: reading manifest: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("embedder: manifest %s: %w", path, err)
	}
	if !filepath.IsAbs(m.File) {
		m.File = filepath.Join(filepath.Dir(path), m.File)
	}
	return m, m.Validate()
}

// Validate checks the manifest.
func (m Manifest) Validate() error {
	var errs []error
	if m.File == "" || m.Input == "" || m.Output == "" {
		errs = append(errs, errors.New("file, input and output are required"))
	}
	if m.Size < 16 || m.Size > 1024 {
		errs = append(errs, fmt.Errorf("size %d outside 16..1024", m.Size))
	}
	if m.Layout != "" && m.Layout != "NCHW" {
		errs = append(errs, fmt.Errorf("layout %q unsupported (NCHW)", m.Layout))
	}
	for _, s := range m.Std {
		if s <= 0 {
			errs = append(errs, errors.New("std must be positive"))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("embedder: manifest %s: %w", m.Name, err)
	}
	return nil
}

// Model is a loaded clothing model.
type Model struct {
	man  Manifest
	sess *onnx.Session
}

// OpenModel loads the manifest's model; modelsDir resolves a relative File.
func OpenModel(man Manifest, modelsDir string, opts onnx.Options) (*Model, error) {
	if err := man.Validate(); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(man.File) && modelsDir != "" {
		man.File = filepath.Join(modelsDir, man.File)
	}
	sess, err := onnx.Open(onnx.Spec{Path: man.File, Input: man.Input, Shape: []int64{-1, 3, int64(man.Size), int64(man.Size)},
		Outputs: []string{man.Output}}, opts)
	if err != nil {
		return nil, fmt.Errorf("embedder: %w", err)
	}
	return &Model{man: man, sess: sess}, nil
}

// Name names the model in messages.
func (m *Model) Name() string { return m.man.Name }

// Device reports where the model runs.
func (m *Model) Device() onnx.Device { return m.sess.Device() }

// AppendInput preprocesses one BGR clothing crop and appends it to blob.
func (m *Model) AppendInput(blob []float32, crop gocv.Mat) ([]float32, error) {
	start := len(blob)
	// value = (p/255 − mean)/std = (p − 255·mean)·(1/(255·std)); one pass when channels agree.
	if m.man.Mean[0] == m.man.Mean[1] && m.man.Mean[1] == m.man.Mean[2] && m.man.Std[0] == m.man.Std[1] && m.man.Std[1] == m.man.Std[2] {
		return vision.AppendBlob(blob, crop, vision.BlobOptions{Width: m.man.Size, Height: m.man.Size, Scale: 1 / (255 * m.man.Std[0]),
			Mean: 255 * m.man.Mean[0], RGB: m.man.RGB, Interp: gocv.InterpolationCubic})
	}
	blob, err := vision.AppendBlob(blob, crop, vision.BlobOptions{Width: m.man.Size, Height: m.man.Size, Scale: 1.0 / 255, RGB: m.man.RGB, Interp: gocv.InterpolationCubic})
	if err != nil {
		return blob, err
	}
	plane := m.man.Size * m.man.Size
	for c := 0; c < 3; c++ {
		mean, std := float32(m.man.Mean[c]), float32(m.man.Std[c])
		for i := start + c*plane; i < start+(c+1)*plane; i++ {
			blob[i] = (blob[i] - mean) / std
		}
	}
	return blob, nil
}

// Infer runs n preprocessed crops and returns n vectors.
func (m *Model) Infer(blob []float32, n int) ([][]float32, error) {
	s := int64(m.man.Size)
	outs, shapes, err := m.sess.Run([]int64{int64(n), 3, s, s}, blob)
	if err != nil {
		return nil, fmt.Errorf("embedder: %w", err)
	}
	data, shape := outs[0], shapes[0]
	dim := 0
	switch {
	case m.man.Pool && len(shape) == 4 && shape[0] == int64(n):
		data, dim = pool(data, n, int(shape[1]), int(shape[2]*shape[3])), int(shape[1])
	case !m.man.Pool && len(shape) == 2 && shape[0] == int64(n):
		dim = int(shape[1])
	default:
		return nil, fmt.Errorf("embedder: model %s output %q has shape %v for a batch of %d (pool=%v)", m.man.Name, m.man.Output, shape, n, m.man.Pool)
	}
	if m.man.Dim != 0 && dim != m.man.Dim {
		return nil, fmt.Errorf("embedder: model %s gives %d-d vectors, manifest says %d", m.man.Name, dim, m.man.Dim)
	}
	vecs := make([][]float32, n)
	for i := range vecs {
		vecs[i] = data[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return vecs, nil
}

// pool averages each channel of an [n,c,hw] feature map.
func pool(data []float32, n, c, hw int) []float32 {
	out := make([]float32, n*c)
	for i := 0; i < n*c; i++ {
		var s float32
		for _, v := range data[i*hw : (i+1)*hw] {
			s += v
		}
		out[i] = s / float32(hw)
	}
	return out
}

// Close frees the session; safe to call twice.
func (m *Model) Close() error { return m.sess.Close() }

// Stage is the embedder's stage.Processor.
type Stage struct {
	model *Model
}

// New wraps a model; the stage owns it and closes it.
func New(model *Model) *Stage { return &Stage{model: model} }

// Process embeds every clothing crop of the batch in one inference.
func (s *Stage) Process(ctx context.Context, batch []*stage.Input) []stage.Result {
	out := make([]stage.Result, len(batch))
	var blob []float32
	type slot struct{ input, faces int }
	var slots []slot
	for i, in := range batch {
		switch m := in.Message.(type) {
		case *messages.FrameFaces:
			start := len(blob)
			var err error
			for j, face := range m.Faces {
				if blob, err = s.appendCrop(blob, face.ClothJPEG); err != nil {
					err = stage.Permanent(fmt.Errorf("embedder: frame %d face %d of %s: %w", m.Index, j, m.Source, err))
					break
				}
			}
			if err != nil {
				blob = blob[:start]
				out[i].Err = err
				continue
			}
			slots = append(slots, slot{i, len(m.Faces)})
		case *messages.EndOfStream:
			out[i].Outputs = []stage.Output{{Subject: messages.Subject(messages.SubjectClothVec, m.Source),
				MsgID: m.Source + ".eos." + StageName, Message: m}}
		default:
			out[i].Err = stage.Permanent(fmt.Errorf("embedder: unexpected %s on %s", in.Message.MessageType(), in.Subject))
		}
	}
	total := 0
	for _, sl := range slots {
		total += sl.faces
	}
	var vecs [][]float32
	if total > 0 {
		var err error
		if vecs, err = s.model.Infer(blob, total); err != nil {
			for _, sl := range slots {
				out[sl.input].Err = err
			}
			return out
		}
	}
	next := 0
	for _, sl := range slots {
		m := batch[sl.input].Message.(*messages.FrameFaces)
		cv := &messages.ClothVectors{Source: m.Source, Seq: m.Seq, Index: m.Index, Accepted: m.Accepted, Model: s.model.Name(),
			Vectors: vecs[next : next+sl.faces], Params: m.Params}
		if sl.faces == 0 {
			cv.Vectors = nil
		}
		next += sl.faces
		out[sl.input].Outputs = []stage.Output{{Subject: messages.Subject(messages.SubjectClothVec, m.Source),
			MsgID: messages.MsgID(m.Source, m.Seq, StageName), Message: cv}}
	}
	return out
}

func (s *Stage) appendCrop(blob []float32, jpeg []byte) ([]float32, error) {
	crop, err := vision.DecodeJPEG(jpeg, messages.MaxFrameSide)
	if err != nil {
		return blob, err
	}
	defer crop.Close()
	return s.model.AppendInput(blob, crop)
}

// Close closes the model; safe to call twice.
func (s *Stage) Close(context.Context) error {
	if s.model == nil {
		return nil
	}
	err := s.model.Close()
	s.model = nil
	return err
}
