package onnx_test

import (
	"errors"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/onnx"
)

// ultraFace320 is the smallest real model in models/data: UltraFace RFB-320, one 240×320 image
// in, 4420 anchors' class scores (softmax pairs) and boxes out.
func ultraFace320(t *testing.T) onnx.Spec {
	return onnx.Spec{Path: filepath.Join(testenv.ModelsDir(t), "face", "version-RFB-320.onnx"),
		Input: "input", Shape: []int64{1, 3, 240, 320}, Outputs: []string{"scores", "boxes"}}
}

// initLibrary loads the onnxruntime library of models/data (once per process).
func initLibrary(t *testing.T) {
	t.Helper()
	if err := onnx.Init(filepath.Join(testenv.ModelsDir(t), "lib", "libonnxruntime.so")); err != nil {
		t.Fatal(err)
	}
}

// First in the file: the library is not loaded yet, so a missing one is reported as missing.
func TestInitMissingLibraryNamesIt(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "libonnxruntime.so")
	err := onnx.Init(missing)
	if !errors.Is(err, onnx.ErrNoLibrary) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Init(%s) = %v, want ErrNoLibrary naming the file", missing, err)
	}
}

func TestOpenRefusesWithTheModelsName(t *testing.T) {
	initLibrary(t)
	good := ultraFace320(t)
	missing := good
	missing.Path = filepath.Join(t.TempDir(), "nope.onnx")
	noInput := good
	noInput.Input = "image"
	wrongShape := good
	wrongShape.Shape = []int64{1, 3, 480, 640}
	noOutput := good
	noOutput.Outputs = []string{"scores", "landmarks"}
	for _, tc := range []struct {
		name    string
		spec    onnx.Spec
		opts    onnx.Options
		want    error // nil: any error
		mention string
	}{
		{"missing file", missing, onnx.Options{}, onnx.ErrModel, missing.Path},
		{"no such input", noInput, onnx.Options{}, onnx.ErrModel, `no input "image"`},
		{"input of another shape", wrongShape, onnx.Options{}, onnx.ErrModel, "[1 3 240 320]"},
		{"no such output", noOutput, onnx.Options{}, onnx.ErrModel, `no output "landmarks"`},
		{"unknown device", good, onnx.Options{Device: "tpu"}, nil, `unknown device "tpu"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := onnx.Open(tc.spec, tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "onnx: ") || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not start with onnx: and mention %q", err, tc.mention)
			}
		})
	}
}

// A real inference, checked shapes, and a session that is safe to close twice.
func TestRunAndCloseTwice(t *testing.T) {
	initLibrary(t)
	s, err := onnx.Open(ultraFace320(t), onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Device() != onnx.CPU {
		t.Errorf("device %s, want cpu", s.Device())
	}
	shape := []int64{1, 3, 240, 320}
	data := make([]float32, 3*240*320)
	outs, shapes, err := s.Run(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || len(shapes) != 2 {
		t.Fatalf("%d outputs, %d shapes, want 2", len(outs), len(shapes))
	}
	for i, want := range [][]int64{{1, 4420, 2}, {1, 4420, 4}} {
		if !slices.Equal(shapes[i], want) || int64(len(outs[i])) != want[1]*want[2] {
			t.Errorf("output %d: shape %v with %d values, want %v", i, shapes[i], len(outs[i]), want)
		}
	}
	for a := 0; a+1 < len(outs[0]); a += 2 { // each anchor's background/face scores are a softmax
		if sum := outs[0][a] + outs[0][a+1]; math.Abs(float64(sum)-1) > 1e-3 {
			t.Fatalf("anchor %d scores sum to %v, want 1", a/2, sum)
		}
	}
	if _, _, err := s.Run([]int64{1, 3, 240, 321}, make([]float32, 3*240*321)); !errors.Is(err, onnx.ErrInputShape) {
		t.Errorf("Run with another width: %v, want ErrInputShape", err)
	}
	if _, _, err := s.Run(shape, data[:10]); !errors.Is(err, onnx.ErrInputShape) {
		t.Errorf("Run with too few values: %v, want ErrInputShape", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, _, err := s.Run(shape, data); !errors.Is(err, onnx.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
}

// RetinaFace's file declares its 640×640 export size; freed, the same graph runs at a frame's
// shape, multiple of 32 or not, and its outputs follow the input.
func TestFreeDimsRunsAConvolutionalGraphAtAnySize(t *testing.T) {
	initLibrary(t)
	spec := onnx.Spec{Path: filepath.Join(testenv.ModelsDir(t), "face", "retinaface-mnet025-640.onnx"),
		Input: "data", Shape: []int64{1, 3, -1, -1}, Outputs: []string{"face_rpn_cls_prob_reshape_stride32"}}
	if _, err := onnx.Open(spec, onnx.Options{Threads: 1}); err != nil {
		t.Fatal(err) // the declared 640×640 satisfies -1
	}
	spec.FreeDims = []int{2, 3}
	s, err := onnx.Open(spec, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, hw := range [][2]int64{{384, 640}, {640, 320}, {64, 96}, {360, 640}} {
		outs, shapes, err := s.Run([]int64{1, 3, hw[0], hw[1]}, make([]float32, 3*hw[0]*hw[1]))
		if err != nil {
			t.Fatalf("%v: %v", hw, err)
		}
		want := []int64{1, 4, (hw[0] + 31) / 32, (hw[1] + 31) / 32} // stride-2 convolutions round up
		if !slices.Equal(shapes[0], want) || int64(len(outs[0])) != 4*want[2]*want[3] {
			t.Errorf("input %v: output shape %v with %d values, want %v", hw, shapes[0], len(outs[0]), want)
		}
	}
}

func TestFreeDimsRefusesWhatIsNotProtobuf(t *testing.T) {
	for _, bad := range [][]byte{[]byte("not a model"), {0x3a, 0x05, 0x01}, {0x3a, 0x80}} {
		if _, err := onnx.FreeDims(bad, 2, 3); err == nil || !strings.HasPrefix(err.Error(), "onnx: ") {
			t.Errorf("FreeDims(%q) = %v, want an onnx: error", bad, err)
		}
	}
}

func FuzzFreeDims(f *testing.F) {
	f.Add([]byte("not a model"))
	f.Add([]byte{0x3a, 0x0c, 0x5a, 0x0a, 0x12, 0x08, 0x0a, 0x06, 0x12, 0x04, 0x0a, 0x02, 0x08, 0x01})
	f.Fuzz(func(t *testing.T, model []byte) {
		out, err := onnx.FreeDims(model, 0, 1)
		if err != nil {
			return
		}
		// What it wrote parses again, and freeing twice changes nothing more.
		again, err := onnx.FreeDims(out, 0, 1)
		if err != nil {
			t.Fatalf("its own output refused: %v", err)
		}
		if !slices.Equal(again, out) {
			t.Fatalf("freeing twice differs")
		}
	})
}

// The clothing backbone has a second, 1024-channel head after the 512-channel one the embedder
// uses: asked for "embedding" alone, the session runs without that head's weights and gives
// the same numbers, bit for bit.
func TestPruneDropsTheHeadsNotAskedFor(t *testing.T) {
	initLibrary(t)
	path := filepath.Join(testenv.ModelsDir(t), "cloth", "mobilenet_v1_backbone.onnx")
	model, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := onnx.Prune(model, []string{"embedding"})
	if err != nil {
		t.Fatal(err)
	}
	if headWeights := 512 * 1024 * 4; len(model)-len(pruned) < headWeights {
		t.Errorf("pruned model %d bytes of %d: want the 1024-channel head's %d bytes of weights gone", len(pruned), len(model), headWeights)
	}
	spec := onnx.Spec{Path: path, Input: "input", Shape: []int64{-1, 3, 224, 224}, Outputs: []string{"embedding", "embedding_1024"}}
	both, err := onnx.Open(spec, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer both.Close()
	spec.Outputs = spec.Outputs[:1]
	one, err := onnx.Open(spec, onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	shape := []int64{2, 3, 224, 224}
	data := make([]float32, 2*3*224*224)
	for i := range data {
		data[i] = float32(i*7919%255)/127.5 - 1
	}
	want, _, err := both.Run(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	got, shapes, err := one.Run(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !slices.Equal(shapes[0], []int64{2, 512}) || !slices.Equal(got[0], want[0]) {
		t.Errorf("pruned session: %d outputs, shape %v, equal to the whole graph's: %v", len(got), shapes[0], slices.Equal(got[0], want[0]))
	}
}

// RetinaFace and dlib's ResNet begin with a Sub and a Mul by constants; folded out, the graph
// fed the input those constants make gives the same numbers, bit for bit.
func TestFoldInputAffine(t *testing.T) {
	initLibrary(t)
	models := testenv.ModelsDir(t)
	for _, tc := range []struct {
		spec     onnx.Spec
		shape    []int64
		sub, mul []float32
	}{
		{onnx.Spec{Path: filepath.Join(models, "face", "dlib_resnet_v1.onnx"), Input: "input", Shape: []int64{-1, 3, 150, 150}, Outputs: []string{"embedding"}},
			[]int64{2, 3, 150, 150}, []float32{122.782, 117.001, 104.298}, []float32{1.0 / 256}},
		{onnx.Spec{Path: filepath.Join(models, "face", "retinaface-mnet025-640.onnx"), Input: "data", Shape: []int64{1, 3, -1, -1},
			Outputs: []string{"face_rpn_cls_prob_reshape_stride8", "face_rpn_bbox_pred_stride32"}, FreeDims: []int{2, 3}},
			[]int64{1, 3, 96, 160}, nil, nil},
	} {
		t.Run(filepath.Base(tc.spec.Path), func(t *testing.T) {
			whole, err := onnx.Open(tc.spec, onnx.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer whole.Close()
			if a := whole.InputAffine(); a.Sub != nil || a.Mul != nil {
				t.Errorf("without FoldInput: %+v, want the identity", a)
			}
			tc.spec.FoldInput = true
			folded, err := onnx.Open(tc.spec, onnx.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer folded.Close()
			a := folded.InputAffine()
			if len(a.Sub) == 0 || len(a.Mul) == 0 || (tc.sub != nil && (!slices.Equal(a.Sub, tc.sub) || !slices.Equal(a.Mul, tc.mul))) {
				t.Fatalf("folded %+v, want sub %v mul %v", a, tc.sub, tc.mul)
			}
			n := tc.shape[0] * tc.shape[1] * tc.shape[2] * tc.shape[3]
			plane := tc.shape[2] * tc.shape[3]
			raw, normalised := make([]float32, n), make([]float32, n)
			for i := range raw {
				raw[i] = float32(i * 7919 % 256)
				normalised[i] = a.Apply(int(int64(i)/plane%tc.shape[1]), raw[i])
			}
			want, _, err := whole.Run(tc.shape, raw)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := folded.Run(tc.shape, normalised)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !slices.Equal(got[i], want[i]) {
					t.Errorf("output %s differs from the whole graph's", tc.spec.Outputs[i])
				}
			}
		})
	}
}

func TestFoldInputAffineLeavesOtherGraphsAlone(t *testing.T) {
	model, err := os.ReadFile(filepath.Join(testenv.ModelsDir(t), "cloth", "mobilenet_v1_backbone.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	out, a, err := onnx.FoldInputAffine(model, "input")
	if err != nil || a.Sub != nil || a.Mul != nil || !slices.Equal(out, model) {
		t.Errorf("a graph beginning with a convolution: affine %+v, changed %v, %v", a, !slices.Equal(out, model), err)
	}
	if _, _, err := onnx.FoldInputAffine([]byte("not a model"), "input"); err == nil || !strings.HasPrefix(err.Error(), "onnx: ") {
		t.Errorf("not protobuf: %v", err)
	}
}

func FuzzFoldInputAffine(f *testing.F) {
	f.Add([]byte("not a model"))
	// A graph: "y" = Sub("x", "c"), "c" a float initializer of one value.
	f.Add([]byte{0x3a, 0x1f, 0x0a, 0x0e, 0x0a, 0x01, 'x', 0x0a, 0x01, 'c', 0x12, 0x01, 'y', 0x22, 0x03, 'S', 'u', 'b',
		0x2a, 0x0d, 0x08, 0x01, 0x10, 0x01, 0x42, 0x01, 'c', 0x4a, 0x04, 0, 0, 0x80, 0x3f})
	f.Fuzz(func(t *testing.T, model []byte) {
		out, a, err := onnx.FoldInputAffine(model, "x")
		if err != nil {
			return
		}
		if (a.Sub == nil) != (a.Mul == nil) {
			t.Fatalf("half an affine: %+v", a)
		}
		// What it wrote parses again; folding again finds nothing more to fold, or folds less.
		if _, _, err := onnx.FoldInputAffine(out, "x"); err != nil {
			t.Fatalf("its own output refused: %v", err)
		}
	})
}

func TestPruneRefusesWhatIsNotProtobuf(t *testing.T) {
	for _, bad := range [][]byte{[]byte("not a model"), {0x3a, 0x05, 0x01}, {0x3a, 0x80}} {
		if _, err := onnx.Prune(bad, []string{"out"}); err == nil || !strings.HasPrefix(err.Error(), "onnx: ") {
			t.Errorf("Prune(%q) = %v, want an onnx: error", bad, err)
		}
	}
}

func FuzzPrune(f *testing.F) {
	f.Add([]byte("not a model"))
	// A graph of one node "n" (input "x", output "y") and the output "y".
	f.Add([]byte{0x3a, 0x0d, 0x0a, 0x06, 0x0a, 0x01, 'x', 0x12, 0x01, 'y', 0x62, 0x03, 0x0a, 0x01, 'y'})
	f.Fuzz(func(t *testing.T, model []byte) {
		out, err := onnx.Prune(model, []string{"y"})
		if err != nil {
			return
		}
		// What it wrote parses again, and pruning twice changes nothing more.
		again, err := onnx.Prune(out, []string{"y"})
		if err != nil {
			t.Fatalf("its own output refused: %v", err)
		}
		if !slices.Equal(again, out) {
			t.Fatalf("pruning twice differs")
		}
	})
}

// Where the CUDA provider cannot run (CI and this machine: the provider library is not beside
// libonnxruntime.so, no GPU), "cuda" falls back to the CPU with a warning naming the model and
// "auto" falls back without one; both then run.
func TestCUDAFallsBackToTheCPU(t *testing.T) {
	initLibrary(t)
	for _, tc := range []struct {
		device   onnx.Device
		wantWarn bool
	}{{onnx.CUDA, true}, {onnx.Auto, false}} {
		t.Run(string(tc.device), func(t *testing.T) {
			var logged strings.Builder
			log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
			spec := ultraFace320(t)
			s, err := onnx.Open(spec, onnx.Options{Threads: 1, Device: tc.device, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Device() == onnx.CUDA {
				t.Skip("this machine runs the CUDA provider")
			}
			if s.Device() != onnx.CPU {
				t.Errorf("device %q, want cpu", s.Device())
			}
			warned := strings.Contains(logged.String(), "level=WARN") && strings.Contains(logged.String(), spec.Path)
			if warned != tc.wantWarn {
				t.Errorf("warning naming the model: %v, want %v (log %q)", warned, tc.wantWarn, logged.String())
			}
			if _, _, err := s.Run([]int64{1, 3, 240, 320}, make([]float32, 3*240*320)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseDevice(t *testing.T) {
	for in, want := range map[string]onnx.Device{"": onnx.CPU, "cpu": onnx.CPU, "cuda": onnx.CUDA, "auto": onnx.Auto} {
		if got, err := onnx.ParseDevice(in); err != nil || got != want {
			t.Errorf("ParseDevice(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := onnx.ParseDevice("gpu"); err == nil || !strings.Contains(err.Error(), "auto") {
		t.Errorf("ParseDevice(gpu) = %v, want an error listing the devices", err)
	}
}

// A CUDA provider that is there but cannot load (a broken install, a CUDA library missing)
// fails where onnxruntime makes the session: "cuda" still opens the model on the CPU, with a
// warning. The library is process-wide, so this runs in a child process of the test binary,
// with a copy of the library beside two provider files that are not libraries.
func TestBrokenCUDAProviderFallsBackToTheCPU(t *testing.T) {
	if lib := os.Getenv("ONNX_TEST_BROKEN_CUDA_LIB"); lib != "" {
		if err := onnx.Init(lib); err != nil {
			t.Fatal(err)
		}
		var logged strings.Builder
		log := slog.New(slog.NewTextHandler(&logged, nil))
		s, err := onnx.Open(ultraFace320(t), onnx.Options{Threads: 1, Device: onnx.CUDA, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Device() != onnx.CPU || !strings.Contains(logged.String(), "CUDA execution provider unavailable") {
			t.Fatalf("device %q, log %q: want the CPU and a warning", s.Device(), logged.String())
		}
		return
	}
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(testenv.ModelsDir(t), "lib", "libonnxruntime.so"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"libonnxruntime.so": data,
		onnx.CUDAProviderFile: []byte("not a library"), "libonnxruntime_providers_shared.so": []byte("not a library")} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestBrokenCUDAProviderFallsBackToTheCPU$", "-test.v")
	cmd.Env = append(os.Environ(), "ONNX_TEST_BROKEN_CUDA_LIB="+filepath.Join(dir, "libonnxruntime.so"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
