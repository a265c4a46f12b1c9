package embedder_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/embedder"
	"github.com/personcluster/personcluster/stages/embedder/internal/castcrops"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// modelsDir initialises onnxruntime and returns the models folder.
func modelsDir(t testing.TB) string {
	t.Helper()
	dir := testenv.ModelsDir(t)
	if err := onnx.Init(filepath.Join(dir, "lib", "libonnxruntime.so")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openModel(t testing.TB, man embedder.Manifest, opts onnx.Options) *embedder.Model {
	t.Helper()
	m, err := embedder.OpenModel(man, modelsDir(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newStage(t testing.TB, m *embedder.Model, cfg embedder.Config) *embedder.Stage {
	t.Helper()
	s, err := embedder.NewWithConfig(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// tinyManifest describes an identity model of 16×16 images, pooled to 3 channel means.
func tinyManifest(path, layout, channels string) embedder.Manifest {
	return embedder.Manifest{Name: "tiny-" + layout, File: path, Input: "input", Output: "features", Size: 16, Layout: layout,
		Channels: channels, Scale: 1.0 / 255, Mean: [3]float64{0.485, 0.456, 0.406}, Std: [3]float64{0.229, 0.224, 0.225}, Dim: 3, Pool: true}
}

// testImage is a deterministic colourful BGR image.
func testImage(w, h, seed int) gocv.Mat {
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetUCharAt(y, 3*x, uint8((x*7+seed*31)%256))
			m.SetUCharAt(y, 3*x+1, uint8((y*5+x+seed*17)%256))
			m.SetUCharAt(y, 3*x+2, uint8((x*y+seed*13)%256))
		}
	}
	return m
}

func testJPEG(t testing.TB, w, h, seed int) []byte {
	t.Helper()
	m := testImage(w, h, seed)
	defer m.Close()
	b, err := vision.EncodeJPEG(m, 95)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func frameFaces(index int64, crops ...[]byte) *messages.FrameFaces {
	ff := &messages.FrameFaces{Source: "src1", Seq: index, Index: index, Width: 960, Height: 540, Accepted: len(crops) > 0,
		Detected: len(crops), Params: messages.DefaultParams()}
	for _, c := range crops {
		ff.Faces = append(ff.Faces, messages.Face{Box: messages.Box{10, 20, 20, 10}, FaceJPEG: c, ClothJPEG: c})
	}
	return ff
}

func inputs(ms ...messages.Message) []*stage.Input {
	var in []*stage.Input
	for _, m := range ms {
		in = append(in, &stage.Input{Subject: "faces.src1", Source: "src1", Message: m, Deliveries: 1})
	}
	return in
}

// reference computes the manifest's preprocessing the slow, obvious way on a decoded crop:
// bicubic resize, then value = (pixel·scale − mean)/std in float64, per model channel, NCHW.
func reference(t testing.TB, crop gocv.Mat, man embedder.Manifest) [3][]float64 {
	t.Helper()
	r := gocv.NewMat()
	defer r.Close()
	gocv.Resize(crop, &r, image.Pt(man.Size, man.Size), 0, 0, gocv.InterpolationCubic)
	var out [3][]float64
	for c := 0; c < 3; c++ {
		src := 2 - c // RGB: R is byte 2 of OpenCV's BGR
		if man.Channels == embedder.BGR {
			src = c
		}
		for y := 0; y < man.Size; y++ {
			for x := 0; x < man.Size; x++ {
				p := float64(r.GetUCharAt(y, 3*x+src))
				out[c] = append(out[c], (p*man.Scale-man.Mean[c])/man.Std[c])
			}
		}
	}
	return out
}

func TestMobileNetPreprocessingIsExact(t *testing.T) {
	m := openModel(t, embedder.MobileNetV1, onnx.Options{Threads: 1})
	img := testImage(300, 90, 1)
	defer img.Close()
	blob, err := m.AppendInput(nil, img)
	if err != nil {
		t.Fatal(err)
	}
	if len(blob) != 3*224*224 {
		t.Fatalf("blob has %d values", len(blob))
	}
	// x/127.5 − 1 on RGB after a 224×224 INTER_CUBIC resize, NCHW.
	r := gocv.NewMat()
	defer r.Close()
	gocv.Resize(img, &r, image.Pt(224, 224), 0, 0, gocv.InterpolationCubic)
	for c, src := range []int{2, 1, 0} {
		for y := 0; y < 224; y++ {
			for x := 0; x < 224; x++ {
				want := float32(float64(r.GetUCharAt(y, 3*x+src))/127.5 - 1)
				if got := blob[c*224*224+y*224+x]; got != want {
					t.Fatalf("channel %d (%d,%d): %v, want %v", c, x, y, got, want)
				}
			}
		}
	}
}

func TestLayoutsAndChannelOrders(t *testing.T) {
	modelsDir(t)
	img := testImage(120, 70, 2)
	defer img.Close()
	for _, tc := range []struct{ layout, channels string }{{"NCHW", "RGB"}, {"NCHW", "BGR"}, {"NHWC", "RGB"}, {"NHWC", "BGR"}} {
		t.Run(tc.layout+"-"+tc.channels, func(t *testing.T) {
			shape := []int64{-1, 3, 16, 16}
			if tc.layout == "NHWC" {
				shape = []int64{-1, 16, 16, 3}
			}
			man := tinyManifest(writeIdentityModel(t, shape), tc.layout, tc.channels)
			m := openModel(t, man, onnx.Options{Threads: 1})
			blob, err := m.AppendInput(nil, img)
			if err != nil {
				t.Fatal(err)
			}
			ref := reference(t, img, man)
			for c := 0; c < 3; c++ {
				for i := 0; i < 256; i++ {
					at := c*256 + i
					if tc.layout == "NHWC" {
						at = i*3 + c
					}
					if got, want := blob[at], float32(ref[c][i]); got != want {
						t.Fatalf("channel %d pixel %d: %v, want %v", c, i, got, want)
					}
				}
			}
			// Pooled output: the channel means.
			vecs, err := m.Infer(blob, 1)
			if err != nil {
				t.Fatal(err)
			}
			for c := 0; c < 3; c++ {
				var s float64
				for _, v := range ref[c] {
					s += float64(float32(v))
				}
				if got, want := vecs[0][c], s/256; math.Abs(float64(got)-want) > 1e-5 {
					t.Errorf("pooled channel %d: %v, want %v", c, got, want)
				}
			}
		})
	}
}

func TestGreyAndBGRAInputs(t *testing.T) {
	m := openModel(t, embedder.MobileNetV1, onnx.Options{Threads: 1})
	bgr := testImage(50, 40, 3)
	defer bgr.Close()
	for _, code := range []gocv.ColorConversionCode{gocv.ColorBGRToGray, gocv.ColorBGRToBGRA} {
		other := gocv.NewMat()
		gocv.CvtColor(bgr, &other, code)
		_, err := m.AppendInput(nil, other)
		other.Close()
		if err != nil {
			t.Errorf("conversion %v: %v", code, err)
		}
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := m.AppendInput(nil, empty); !errors.Is(err, embedder.ErrCrop) || !strings.Contains(err.Error(), "zero-area") {
		t.Errorf("empty image: %v", err)
	}
}

func TestProcessMatchesSingleInference(t *testing.T) {
	m := openModel(t, embedder.MobileNetV1, onnx.Options{Threads: 2})
	s := newStage(t, m, embedder.Config{MaxBatch: 3})
	crops := [][]byte{testJPEG(t, 300, 80, 1), testJPEG(t, 200, 100, 2), testJPEG(t, 90, 60, 3), testJPEG(t, 321, 86, 4), testJPEG(t, 40, 30, 5)}
	eos := &messages.EndOfStream{Source: "src1", Frames: 3, Reason: "end", Params: messages.DefaultParams()}
	res := s.Process(context.Background(), inputs(frameFaces(0, crops[0], crops[1]), frameFaces(1), frameFaces(2, crops[2], crops[3], crops[4]), eos))
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	for i, r := range res {
		if r.Err != nil || len(r.Outputs) != 1 {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if st := s.Stats(); st.Inferences != 2 || st.Images != 5 {
		t.Errorf("5 crops with max batch 3: %+v, want 2 inferences", st)
	}
	if o := res[3].Outputs[0]; o.Subject != "clothvec.src1" || o.Message != eos {
		t.Errorf("end of stream forwarded as %+v", o)
	}
	empty := res[1].Outputs[0].Message.(*messages.ClothVectors)
	if empty.Vectors != nil || empty.Index != 1 {
		t.Errorf("frame without faces: %+v", empty)
	}
	var got [][]float32
	for _, i := range []int{0, 2} {
		o := res[i].Outputs[0]
		cv := o.Message.(*messages.ClothVectors)
		if o.Subject != "clothvec.src1" || o.MsgID != messages.MsgID("src1", int64(i), embedder.StageName) || cv.Model != "mobilenet_v1-512" || !cv.Accepted {
			t.Errorf("output %d: %+v", i, o)
		}
		if err := cv.Validate(); err != nil {
			t.Error(err)
		}
		got = append(got, cv.Vectors...)
	}
	for k, c := range crops {
		img, err := vision.DecodeJPEG(c, 1000)
		if err != nil {
			t.Fatal(err)
		}
		blob, err := m.AppendInput(nil, img)
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.Infer(blob, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got[k]) != 512 {
			t.Fatalf("crop %d: %d-d", k, len(got[k]))
		}
		for j := range want[0] {
			if d := math.Abs(float64(got[k][j] - want[0][j])); d > 1e-4*(1+math.Abs(float64(want[0][j]))) {
				t.Fatalf("crop %d dim %d: batched %v, alone %v", k, j, got[k][j], want[0][j])
			}
		}
	}
}

func TestBadCropsDeadLetterOnlyTheirInput(t *testing.T) {
	m := openModel(t, embedder.MobileNetV1, onnx.Options{Threads: 1})
	s := newStage(t, m, embedder.Config{})
	good := testJPEG(t, 100, 50, 1)
	// Headers up to the frame size intact, cut before the scan: the size check passes, decoding fails.
	corrupt := append([]byte(nil), good[:bytes.Index(good, []byte{0xFF, 0xDA})]...)
	zeroArea := []byte{0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 0, 0, 0, 3, 0xFF, 0xD9}
	res := s.Process(context.Background(), inputs(
		frameFaces(0, good),
		frameFaces(1, good, []byte("not a jpeg")),
		frameFaces(2, good, good),
		frameFaces(3, zeroArea),
		frameFaces(4, corrupt),
		frameFaces(5, nil),
		&messages.FaceVectors{Source: "src1"},
	))
	for _, i := range []int{0, 2} {
		if res[i].Err != nil || len(res[i].Outputs[0].Message.(*messages.ClothVectors).Vectors) != i/2+1 {
			t.Errorf("good input %d: %+v", i, res[i])
		}
	}
	for _, tc := range []struct {
		i    int
		want string
	}{{1, "frame 1 face 1 of src1"}, {3, "0x0"}, {4, "corrupt or truncated"}, {5, "no bytes"}, {6, "unexpected"}} {
		err := res[tc.i].Err
		if !errors.Is(err, stage.ErrPermanent) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "embedder: ") {
			t.Errorf("input %d: %v, want a permanent error mentioning %q", tc.i, err, tc.want)
		}
		if tc.i != 6 && !errors.Is(err, embedder.ErrCrop) {
			t.Errorf("input %d: %v is not ErrCrop", tc.i, err)
		}
	}
}

func TestUnexpectedOutputShapeRefusesToStart(t *testing.T) {
	dir := modelsDir(t)
	wrongDim := embedder.MobileNetV1
	wrongDim.Dim = 256
	pooled := embedder.MobileNetV1
	pooled.Pool = true
	tinyMap := tinyManifest(writeIdentityModel(t, []int64{-1, 3, 16, 16}), "NCHW", "RGB")
	tinyMap.Pool = false
	wrongOutput := embedder.MobileNetV1
	wrongOutput.Output = "logits"
	for _, tc := range []struct {
		name string
		man  embedder.Manifest
		want string
	}{
		{"dim", wrongDim, "512-d vectors, the manifest says dim 256"},
		{"pool", pooled, "pool expects a 4-d NCHW feature map"},
		{"map", tinyMap, `set "pool": true`},
		{"output", wrongOutput, `no output "logits"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := embedder.OpenModel(tc.man, dir, onnx.Options{Threads: 1})
			if err == nil {
				m.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "embedder: ") {
				t.Errorf("%v, want it to mention %q", err, tc.want)
			}
			if tc.name != "output" && !errors.Is(err, embedder.ErrOutputShape) {
				t.Errorf("%v is not ErrOutputShape", err)
			}
		})
	}
}

func TestMissingModelNamesTheFile(t *testing.T) {
	dir := modelsDir(t)
	man := embedder.MobileNetV1
	man.File = "cloth/resnet18_missing.onnx"
	_, err := embedder.OpenModel(man, dir, onnx.Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "cloth/resnet18_missing.onnx")) {
		t.Errorf("missing model: %v", err)
	}
	// A manifest file whose model is missing: the error names the manifest's folder too.
	mdir := t.TempDir()
	p := filepath.Join(mdir, "m.json")
	os.WriteFile(p, []byte(`{"name":"x","file":"nope.onnx","input":"input","output":"embedding","size":224}`), 0o644)
	man, err = embedder.LoadManifest(p)
	if err != nil {
		t.Fatal(err)
	}
	_, err = embedder.OpenModel(man, dir, onnx.Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(mdir, "nope.onnx")) {
		t.Errorf("missing model: %v", err)
	}
}

func TestManifestValidation(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ json, want string }{
		{`{"file":"a.onnx","input":"i","output":"o","size":224,"layout":"NCWH"}`, "layout"},
		{`{"file":"a.onnx","input":"i","output":"o","size":224,"channels":"BRG"}`, "channels"},
		{`{"file":"a.onnx","input":"i","output":"o","size":8}`, "size 8"},
		{`{"file":"a.onnx","input":"i","output":"o","size":224,"std":[1,0,1]}`, "std"},
		{`{"file":"a.onnx","input":"i","output":"o","size":224,"sdt":[1,1,1]}`, "unknown field"},
		{`{"file":"a.onnx","output":"o","size":224}`, "required"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.want, " ", "_")+".json")
			if err := os.WriteFile(p, []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := embedder.LoadManifest(p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want %q", tc.json, err, tc.want)
			}
		})
	}
}

// The shipped manifests load, and the MobileNet one is the built-in default.
func TestShippedManifests(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.Root(), "models", "manifests", "*.json"))
	if len(files) < 3 {
		t.Fatalf("manifests: %v", files)
	}
	for _, f := range files {
		man, err := embedder.LoadManifest(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if man.Dim != 512 {
			t.Errorf("%s: dim %d", f, man.Dim)
		}
		if filepath.Base(f) == "mobilenet_v1.json" {
			def := embedder.MobileNetV1
			if man.Name != def.Name || man.File != def.File || man.Input != def.Input || man.Output != def.Output || man.Size != def.Size ||
				man.Layout != def.Layout || man.Channels != def.Channels || man.Scale != def.Scale || man.Mean != def.Mean || man.Std != def.Std || man.Pool {
				t.Errorf("%s differs from the built-in default: %+v", f, man)
			}
			m := openModel(t, man, onnx.Options{Threads: 1})
			if m.Dim() != 512 {
				t.Errorf("dim %d", m.Dim())
			}
		}
	}
}

// On this CPU-only onnxruntime build, --device cuda warns and runs on the CPU.
func TestCUDAFallsBackToCPUWithAWarning(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	m := openModel(t, embedder.MobileNetV1, onnx.Options{Threads: 1, Device: onnx.CUDA, Logger: log})
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if m.Device() != onnx.CPU {
		t.Skipf("a CUDA provider is available here (device %s)", m.Device())
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "CUDA execution provider unavailable; running on CPU") {
		t.Errorf("no fallback warning: %q", out)
	}
	s := newStage(t, m, embedder.Config{})
	res := s.Process(context.Background(), inputs(frameFaces(0, testJPEG(t, 100, 50, 1))))
	if res[0].Err != nil || len(res[0].Outputs[0].Message.(*messages.ClothVectors).Vectors[0]) != 512 {
		t.Errorf("after the fallback: %+v", res[0])
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A model with a fixed batch dimension runs in chunks (the last padded).
func TestFixedBatchModel(t *testing.T) {
	man := tinyManifest(writeIdentityModel(t, []int64{2, 3, 16, 16}), "NCHW", "RGB")
	m := openModel(t, man, onnx.Options{Threads: 1})
	if m.FixedBatch() != 2 {
		t.Fatalf("fixed batch %d", m.FixedBatch())
	}
	s := newStage(t, m, embedder.Config{MaxBatch: 5})
	if s.Config().MaxBatch != 4 {
		t.Errorf("max batch %d, want 4 (whole chunks of 2)", s.Config().MaxBatch)
	}
	var crops [][]byte
	for i := 0; i < 5; i++ {
		crops = append(crops, testJPEG(t, 60+i, 40, i))
	}
	res := s.Process(context.Background(), inputs(frameFaces(0, crops...)))
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	checkTinyVectors(t, m, crops, res[0].Outputs[0].Message.(*messages.ClothVectors).Vectors)
}

// checkTinyVectors compares identity-model vectors with each crop's channel means.
func checkTinyVectors(t testing.TB, m *embedder.Model, crops [][]byte, vecs [][]float32) {
	t.Helper()
	if len(vecs) != len(crops) {
		t.Fatalf("%d vectors for %d crops", len(vecs), len(crops))
	}
	for k, c := range crops {
		img, err := vision.DecodeJPEG(c, 1000)
		if err != nil {
			t.Fatal(err)
		}
		ref := reference(t, img, m.Manifest())
		img.Close()
		for ch := 0; ch < 3; ch++ {
			var s float64
			for _, v := range ref[ch] {
				s += float64(float32(v))
			}
			if d := math.Abs(float64(vecs[k][ch]) - s/float64(len(ref[ch]))); d > 1e-5 {
				t.Fatalf("crop %d channel %d: %v, want %v", k, ch, vecs[k][ch], s/float64(len(ref[ch])))
			}
		}
	}
}

// Concurrent Process calls (several stage workers) share inferences, and every vector goes
// back to its own crop, also when inferences run at once and one call's crops are split
// between them.
func TestConcurrentCallsShareBatches(t *testing.T) {
	for _, cfg := range []embedder.Config{{MaxBatch: 8, Workers: 1}, {MaxBatch: 3, Workers: 1, Inferences: 3}} {
		t.Run(fmt.Sprintf("batch %d, %d at once", cfg.MaxBatch, max(1, cfg.Inferences)), func(t *testing.T) {
			man := tinyManifest(writeIdentityModel(t, []int64{-1, 3, 16, 16}), "NCHW", "RGB")
			m := openModel(t, man, onnx.Options{Threads: 1})
			s := newStage(t, m, cfg)
			const callers, rounds = 4, 10
			var wg sync.WaitGroup
			for c := 0; c < callers; c++ {
				wg.Go(func() {
					for r := 0; r < rounds; r++ {
						var crops [][]byte
						for k := 0; k < 1+(c+r)%4; k++ {
							crops = append(crops, testJPEG(t, 30+c*10+k, 20+r, c*100+r*10+k))
						}
						res := s.Process(context.Background(), inputs(frameFaces(int64(r), crops[:1]...), frameFaces(int64(r), crops[1:]...)))
						if res[0].Err != nil || res[1].Err != nil {
							t.Error(res[0].Err, res[1].Err)
							return
						}
						vecs := append(res[0].Outputs[0].Message.(*messages.ClothVectors).Vectors, res[1].Outputs[0].Message.(*messages.ClothVectors).Vectors...)
						checkTinyVectors(t, m, crops, vecs)
					}
				})
			}
			wg.Wait()
			st := s.Stats()
			t.Logf("%d images in %d inferences", st.Images, st.Inferences)
			if st.Images != callers*rounds*10/4 {
				t.Errorf("images %d", st.Images)
			}
		})
	}
}

func TestCloseTwiceAndProcessAfterClose(t *testing.T) {
	man := tinyManifest(writeIdentityModel(t, []int64{-1, 3, 16, 16}), "NCHW", "RGB")
	m, err := embedder.OpenModel(man, modelsDir(t), onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := embedder.New(m)
	if res := s.Process(context.Background(), inputs(frameFaces(0, testJPEG(t, 20, 20, 1)))); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := s.Process(context.Background(), inputs(frameFaces(0, testJPEG(t, 20, 20, 1))))
	if !errors.Is(res[0].Err, embedder.ErrClosed) || errors.Is(res[0].Err, stage.ErrPermanent) {
		t.Errorf("after close: %v (want a transient ErrClosed)", res[0].Err)
	}
	// A stage that never ran closes too.
	m2, err := embedder.OpenModel(man, modelsDir(t), onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	s2 := embedder.New(m2)
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
}

var _ = castcrops.Load
