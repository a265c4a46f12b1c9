// Package onnx wraps onnxruntime (through onnxruntime_go, which opens libonnxruntime.so at run
// time) for personcluster's models: one process-wide environment, sessions with checked input
// and output shapes, and explicit Close of every native handle.
package onnx

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Sentinel errors, matched with errors.Is.
var (
	ErrNoLibrary  = errors.New("onnx: onnxruntime library not found")
	ErrModel      = errors.New("onnx: unusable model")
	ErrClosed     = errors.New("onnx: session closed")
	ErrInputShape = errors.New("onnx: input shape mismatch")
)

var (
	envMu   sync.Mutex
	envPath string
)

// Init loads libonnxruntime.so from libPath and creates the process-wide environment. Calling
// it again with the same path does nothing; another path is an error (one library per process).
func Init(libPath string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if envPath != "" {
		if envPath != libPath {
			return fmt.Errorf("onnx: already initialised with %s, not %s", envPath, libPath)
		}
		return nil
	}
	if _, err := os.Stat(libPath); err != nil {
		return fmt.Errorf("%w at %s (run `make deps` or pass --ort-lib): %v", ErrNoLibrary, libPath, err)
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("onnx: loading %s: %w", libPath, err)
	}
	envPath = libPath
	return nil
}

// Device selects the execution provider.
type Device string

const (
	CPU  Device = "cpu"
	CUDA Device = "cuda" // NVIDIA's CUDA provider; the CPU with a warning when it cannot run
	// Auto is CUDA where it runs (the provider library beside libonnxruntime.so, CUDA 12 and
	// cuDNN 9 loadable, a GPU visible) and the CPU otherwise, without a warning.
	Auto Device = "auto"
)

// Devices lists the valid devices.
var Devices = []Device{Auto, CPU, CUDA}

// ParseDevice checks a device name ("" is the CPU).
func ParseDevice(s string) (Device, error) {
	if s == "" {
		return CPU, nil
	}
	for _, d := range Devices {
		if Device(s) == d {
			return d, nil
		}
	}
	return "", fmt.Errorf("onnx: unknown device %q (one of %v)", s, Devices)
}

// Options configure a session.
type Options struct {
	Threads int    // intra-op threads (0: onnxruntime's default, all cores)
	Device  Device // "cpu" (default), "cuda" (the CPU with a warning where CUDA cannot run) or "auto"
	Logger  *slog.Logger
}

// Spec names a model's input and outputs and the input shape it must have. A -1 in Shape
// means "any" (a dynamic batch dimension).
type Spec struct {
	Path    string
	Input   string
	Shape   []int64
	Outputs []string
	// FreeDims lists dimensions (indices into Shape, which holds -1 there) that the file
	// declares fixed but the graph computes at any size: they are freed in memory before the
	// model is loaded (see FreeDims). For fully convolutional graphs only.
	FreeDims []int
	// FoldInput takes the Sub and Mul by constants that the graph begins with out of it
	// (FoldInputAffine): the caller applies Session.InputAffine while it builds the input.
	FoldInput bool
}

// Session is one loaded model. Run is safe for concurrent use (onnxruntime sessions are).
type Session struct {
	mu       sync.RWMutex
	sess     *ort.DynamicAdvancedSession
	spec     Spec
	outShape [][]int64
	device   Device
	affine   InputAffine
}

// Open loads a model after checking that it has the expected input and outputs, so a wrong
// file fails at start with a message naming it and the expected shape.
func Open(spec Spec, opts Options) (*Session, error) {
	device, err := ParseDevice(string(opts.Device))
	if err != nil {
		return nil, err
	}
	if envPath == "" {
		return nil, fmt.Errorf("%w: call onnx.Init first", ErrNoLibrary)
	}
	if _, err := os.Stat(spec.Path); err != nil {
		return nil, fmt.Errorf("%w: %s: %v (run `make deps`)", ErrModel, spec.Path, err)
	}
	model, err := os.ReadFile(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v (run `make deps`)", ErrModel, spec.Path, err)
	}
	if len(spec.FreeDims) > 0 {
		if model, err = FreeDims(model, spec.FreeDims...); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrModel, spec.Path, err)
		}
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrModel, spec.Path, err)
	}
	if err := checkInput(spec, ins); err != nil {
		return nil, err
	}
	outShape := make([][]int64, len(spec.Outputs))
	for i, name := range spec.Outputs {
		found := false
		for _, o := range outs {
			if o.Name == name {
				outShape[i] = o.Dimensions
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: %s has no output %q (it has %s)", ErrModel, spec.Path, name, names(outs))
		}
	}
	var affine InputAffine
	if spec.FoldInput {
		if model, affine, err = FoldInputAffine(model, spec.Input); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrModel, spec.Path, err)
		}
	}
	if len(outs) > len(spec.Outputs) || spec.FoldInput {
		if model, err = Prune(model, spec.Outputs); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrModel, spec.Path, err)
		}
	}
	var sess *ort.DynamicAdvancedSession
	if device != CPU {
		// The CUDA provider is a separate library that the core loads when it is appended,
		// and CUDA itself is only met when the session is made: either may fail.
		if err = cudaProviderPresent(); err == nil {
			sess, err = newSession(model, spec, opts.Threads, true)
		}
		if err != nil {
			log := opts.Logger
			if log == nil {
				log = slog.Default()
			}
			if device == CUDA {
				log.Warn("CUDA execution provider unavailable; running on CPU", "model", spec.Path, "err", err)
			} else {
				log.Debug("no CUDA execution provider; running on CPU", "model", spec.Path, "err", err)
			}
		} else {
			device = CUDA
		}
	}
	if sess == nil {
		device = CPU
		if sess, err = newSession(model, spec, opts.Threads, false); err != nil {
			return nil, err
		}
	}
	return &Session{sess: sess, spec: spec, outShape: outShape, device: device, affine: affine}, nil
}

// CUDAProviderFile is the library of onnxruntime's CUDA provider, which onnxruntime loads from
// the folder of libonnxruntime.so (with libonnxruntime_providers_shared.so) when a session asks
// for CUDA. npm's onnxruntime-node ships the core only; its install script, like `make
// deps-cuda`, takes both from NuGet's Microsoft.ML.OnnxRuntime.Gpu.Linux of the same version.
const CUDAProviderFile = "libonnxruntime_providers_cuda.so"

// cudaProviderPresent says why CUDA cannot be tried without asking onnxruntime, which logs
// its failure to load the provider on stderr, whatever its log level.
func cudaProviderPresent() error {
	envMu.Lock()
	dir := filepath.Dir(envPath)
	envMu.Unlock()
	for _, name := range []string{CUDAProviderFile, "libonnxruntime_providers_shared.so"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("onnx: no %s beside %s (make deps-cuda)", name, filepath.Join(dir, "libonnxruntime.so"))
		}
	}
	return nil
}

// newSession makes a session of the model with intra-op threads (0: onnxruntime's default) on
// the CPU or, with cuda, on the CUDA provider (operators it lacks stay on the CPU).
func newSession(model []byte, spec Spec, threads int, cuda bool) (*ort.DynamicAdvancedSession, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	defer so.Destroy()
	if threads > 0 {
		if err := so.SetIntraOpNumThreads(threads); err != nil {
			return nil, fmt.Errorf("onnx: setting threads: %w", err)
		}
		if err := so.SetInterOpNumThreads(1); err != nil {
			return nil, fmt.Errorf("onnx: setting threads: %w", err)
		}
		if threads > 1 {
			// Pool threads that spin between operators burn a core another stage needs: the
			// stages of one process share a few cores, so idle pool threads sleep instead.
			if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
				return nil, fmt.Errorf("onnx: setting threads: %w", err)
			}
		}
	}
	// The memory pattern plans one block for all of a run's intermediate tensors, per input
	// shape: with the batch sizes a stage sees, the arena grew to about twice what reusing
	// freed tensors needs (the embedder: ~400 MB at its first batch of 32, against ~210 MB),
	// and on a VM each new page is a costly first touch. Steady-state speed is the same.
	if err := so.SetMemPattern(false); err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	if cuda {
		if err := appendCUDA(so); err != nil {
			return nil, fmt.Errorf("onnx: CUDA provider: %w", err)
		}
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(model, []string{spec.Input}, spec.Outputs, so)
	if err != nil {
		return nil, fmt.Errorf("%w: loading %s: %v", ErrModel, spec.Path, err)
	}
	return sess, nil
}

func appendCUDA(so *ort.SessionOptions) error {
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer cuda.Destroy()
	return so.AppendExecutionProviderCUDA(cuda)
}

func checkInput(spec Spec, ins []ort.InputOutputInfo) error {
	for _, in := range ins {
		if in.Name != spec.Input {
			continue
		}
		if len(in.Dimensions) != len(spec.Shape) {
			return fmt.Errorf("%w: %s input %q has shape %v, expected %v", ErrModel, spec.Path, in.Name, in.Dimensions, spec.Shape)
		}
		for i, d := range in.Dimensions {
			if spec.Shape[i] != -1 && d != -1 && d != spec.Shape[i] {
				return fmt.Errorf("%w: %s input %q has shape %v, expected %v", ErrModel, spec.Path, in.Name, in.Dimensions, spec.Shape)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: %s has no input %q (it has %s), expected shape %v", ErrModel, spec.Path, spec.Input, names(ins), spec.Shape)
}

func names(infos []ort.InputOutputInfo) string {
	var s []string
	for _, i := range infos {
		s = append(s, fmt.Sprintf("%s%v", i.Name, i.Dimensions))
	}
	return strings.Join(s, ", ")
}

// Device reports where the session runs.
func (s *Session) Device() Device { return s.device }

// InputAffine returns the normalisation taken out of the graph (Spec.FoldInput), which the
// caller must apply to the input: the identity where there was none.
func (s *Session) InputAffine() InputAffine { return s.affine }

// Spec returns what the session was opened with.
func (s *Session) Spec() Spec { return s.spec }

// Run feeds one input tensor of the given shape and returns each output's data (copied into Go
// memory) and shape. Native tensors are freed before it returns.
func (s *Session) Run(shape []int64, data []float32) ([][]float32, [][]int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.sess == nil {
		return nil, nil, ErrClosed
	}
	n := int64(1)
	for i, d := range shape {
		if i < len(s.spec.Shape) && s.spec.Shape[i] != -1 && s.spec.Shape[i] != d {
			return nil, nil, fmt.Errorf("%w: %v, model %s wants %v", ErrInputShape, shape, s.spec.Path, s.spec.Shape)
		}
		n *= d
	}
	if int64(len(data)) != n || len(shape) != len(s.spec.Shape) {
		return nil, nil, fmt.Errorf("%w: %d values for shape %v", ErrInputShape, len(data), shape)
	}
	in, err := ort.NewTensor(ort.Shape(shape), data)
	if err != nil {
		return nil, nil, fmt.Errorf("onnx: input tensor: %w", err)
	}
	defer in.Destroy()
	outs := make([]ort.Value, len(s.spec.Outputs))
	if err := s.sess.Run([]ort.Value{in}, outs); err != nil {
		return nil, nil, fmt.Errorf("onnx: running %s: %w", s.spec.Path, err)
	}
	data2 := make([][]float32, len(outs))
	shapes := make([][]int64, len(outs))
	for i, o := range outs {
		if o == nil {
			continue
		}
		t, ok := o.(*ort.Tensor[float32])
		if !ok {
			for _, o2 := range outs {
				if o2 != nil {
					o2.Destroy()
				}
			}
			return nil, nil, fmt.Errorf("%w: output %q of %s is not float32", ErrModel, s.spec.Outputs[i], s.spec.Path)
		}
		data2[i] = append([]float32(nil), t.GetData()...)
		shapes[i] = append([]int64(nil), t.GetShape()...)
		t.Destroy()
	}
	return data2, shapes, nil
}

// Close frees the session; safe to call twice.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	return err
}
