package encoder_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

func TestSimilarityRecoversATransform(t *testing.T) {
	// Rotate the template by 20°, scale by 1.7, shift by (30, −12): Similarity must undo it.
	th, s := 20*math.Pi/180, 1.7
	var src [5][2]float64
	for i, p := range encoder.Template {
		src[i] = [2]float64{s*(math.Cos(th)*p[0]-math.Sin(th)*p[1]) + 30, s*(math.Sin(th)*p[0]+math.Cos(th)*p[1]) - 12}
	}
	m, err := encoder.Similarity(src, encoder.Template)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range src {
		x := m[0][0]*p[0] + m[0][1]*p[1] + m[0][2]
		y := m[1][0]*p[0] + m[1][1]*p[1] + m[1][2]
		if math.Abs(x-encoder.Template[i][0]) > 1e-9 || math.Abs(y-encoder.Template[i][1]) > 1e-9 {
			t.Errorf("point %d maps to (%v, %v), want %v", i, x, y, encoder.Template[i])
		}
	}
	if m[0][0] != m[1][1] || m[0][1] != -m[1][0] {
		t.Errorf("not a similarity: %v", m)
	}
	var same [5][2]float64
	for i := range same {
		same[i] = [2]float64{3, 4}
	}
	if _, err := encoder.Similarity(same, encoder.Template); err == nil {
		t.Error("degenerate landmarks accepted")
	}
	same[0][0] = math.NaN()
	if _, err := encoder.Similarity(same, encoder.Template); err == nil {
		t.Error("NaN landmarks accepted")
	}
}

func TestFivePoints(t *testing.T) {
	var lm [68][2]float64
	for i := range lm {
		lm[i] = [2]float64{float64(i), float64(2 * i)}
	}
	got := encoder.FivePoints(lm)
	want := [5][2]float64{{39, 78}, {45, 90}, {30, 60}, {54, 108}, {59, 118}}
	if got != want {
		t.Errorf("FivePoints = %v, want %v", got, want)
	}
}

// fake is a BatchEncoder whose vector for a face is [box top, box left, crop width].
type fake struct {
	batches, singles int
	failTop          int // EncodeBatch fails when a face has this box top
	closed           int
}

func (f *fake) vec(face encoder.Face) []float32 {
	return []float32{float32(face.Box.Top()), float32(face.Box.Left()), float32(face.Crop.Cols())}
}
func (f *fake) Encode(crop gocv.Mat, box messages.Box) ([]float32, error) {
	f.singles++
	return f.vec(encoder.Face{Crop: crop, Box: box}), nil
}
func (f *fake) EncodeBatch(faces []encoder.Face) ([][]float32, error) {
	f.batches++
	var out [][]float32
	for _, face := range faces {
		if f.failTop != 0 && face.Box.Top() == f.failTop {
			return nil, errors.New("model busy")
		}
		out = append(out, f.vec(face))
	}
	return out, nil
}
func (f *fake) Name() string { return "fake" }
func (f *fake) Close() error { f.closed++; return nil }

// single is fake without EncodeBatch.
type single struct{ f *fake }

func (s single) Encode(crop gocv.Mat, box messages.Box) ([]float32, error) {
	return s.f.Encode(crop, box)
}
func (s single) Name() string { return s.f.Name() }
func (s single) Close() error { return s.f.Close() }

func jpegOf(t testing.TB, w, h int) []byte {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(60, 90, 120, 0), h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	data, err := vision.EncodeJPEG(m, 90)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// frameFaces is an accepted FrameFaces with faces whose boxes inside their 40×40 crops have the
// given tops.
func frameFaces(t testing.TB, seq int64, tops ...int) *messages.FrameFaces {
	t.Helper()
	ff := &messages.FrameFaces{Source: "test", Seq: seq, Index: 10 * seq, Width: 640, Height: 480, Accepted: true,
		Detected: len(tops), Params: messages.DefaultParams()}
	for i, top := range tops {
		ff.Faces = append(ff.Faces, messages.Face{Box: messages.Box{100, 200 + 50*i, 150, 150 + 50*i}, Score: 0.9,
			FaceJPEG: jpegOf(t, 40, 40), FaceBox: messages.Box{top, 30, top + 20, 5}, ClothJPEG: []byte{1}, BodyJPEG: []byte{byte(i)}})
	}
	return ff
}

// One pulled batch: one encoder call for the faces of every frame, outputs in input order.
func TestProcessBatchesFacesAcrossFrames(t *testing.T) {
	f := &fake{}
	s := encoder.New(f)
	skipped := &messages.FrameFaces{Source: "test", Seq: 3, Index: 30, Width: 640, Height: 480, SkipReason: detector.SkipTooFew,
		Detected: 1, Params: messages.DefaultParams()}
	eos := &messages.EndOfStream{Source: "test", Frames: 4, Params: messages.DefaultParams()}
	bad := frameFaces(t, 5, 1)
	bad.Faces[0].FaceJPEG = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0}
	batch := []*stage.Input{
		{Message: frameFaces(t, 0, 1, 2)}, {Message: skipped}, {Message: frameFaces(t, 1, 3, 4, 5)},
		{Message: eos}, {Message: bad}, {Message: frameFaces(t, 2, 6)},
	}
	res := s.Process(context.Background(), batch)
	if f.batches != 1 || f.singles != 0 {
		t.Errorf("%d batch calls, %d single calls; want one batch", f.batches, f.singles)
	}
	wantTops := map[int][]float32{0: {1, 2}, 1: {}, 2: {3, 4, 5}, 5: {6}}
	for i, tops := range wantTops {
		if res[i].Err != nil || len(res[i].Outputs) != 1 {
			t.Fatalf("input %d: %+v", i, res[i])
		}
		fv := res[i].Outputs[0].Message.(*messages.FaceVectors)
		in := batch[i].Message.(*messages.FrameFaces)
		if res[i].Outputs[0].MsgID != messages.MsgID("test", in.Seq, "encoder") || res[i].Outputs[0].Subject != "facevec.test" {
			t.Errorf("input %d published as %s on %s", i, res[i].Outputs[0].MsgID, res[i].Outputs[0].Subject)
		}
		if len(fv.Vectors) != len(tops) || fv.Accepted != in.Accepted || fv.Model != "fake" {
			t.Errorf("input %d: %+v", i, fv)
			continue
		}
		for j, v := range fv.Vectors {
			if v[0] != tops[j] || v[2] != 40 || fv.Boxes[j] != in.Faces[j].Box || fv.Bodies[j][0] != byte(j) {
				t.Errorf("input %d face %d: vector %v box %v", i, j, v, fv.Boxes[j])
			}
		}
		if err := fv.Validate(); err != nil {
			t.Errorf("input %d: invalid FaceVectors: %v", i, err)
		}
	}
	if res[3].Err != nil || res[3].Outputs[0].Message != eos {
		t.Errorf("end of stream not forwarded: %+v", res[3])
	}
	if !errors.Is(res[4].Err, stage.ErrPermanent) {
		t.Errorf("undecodable face crop: %v, want a permanent error", res[4].Err)
	}
	if s.Counts.Faces.Load() != 6 || s.Counts.Frames.Load() != 4 || s.Counts.Bad.Load() != 1 {
		t.Errorf("counts faces=%d frames=%d bad=%d", s.Counts.Faces.Load(), s.Counts.Frames.Load(), s.Counts.Bad.Load())
	}
}

// When the batch call fails, frames are encoded one by one so the error stays with its frame.
func TestProcessBatchFailureStaysWithItsFrame(t *testing.T) {
	f := &fake{failTop: 4}
	s := encoder.New(f)
	res := s.Process(context.Background(), []*stage.Input{
		{Message: frameFaces(t, 0, 1, 2)}, {Message: frameFaces(t, 1, 3, 4)}, {Message: frameFaces(t, 2, 5)},
	})
	if res[0].Err != nil || res[2].Err != nil {
		t.Errorf("healthy frames failed: %v, %v", res[0].Err, res[2].Err)
	}
	if res[1].Err == nil || errors.Is(res[1].Err, stage.ErrPermanent) {
		t.Errorf("failing frame: %v, want a retryable error", res[1].Err)
	}
}

func TestProcessWithoutBatchEncoder(t *testing.T) {
	f := &fake{}
	s := encoder.New(single{f})
	res := s.Process(context.Background(), []*stage.Input{{Message: frameFaces(t, 0, 1, 2)}, {Message: frameFaces(t, 1, 3)}})
	if res[0].Err != nil || res[1].Err != nil || f.singles != 3 || f.batches != 0 {
		t.Errorf("errors %v %v; %d single, %d batch calls", res[0].Err, res[1].Err, f.singles, f.batches)
	}
}

// Bad input is a dead letter (stage.ErrPermanent) and never reaches the encoder.
func TestFrameBadInput(t *testing.T) {
	f := &fake{}
	s := encoder.New(f)
	cases := map[string]func(ff *messages.FrameFaces){
		"undecodable face crop": func(ff *messages.FrameFaces) { ff.Faces[0].FaceJPEG = []byte("not a jpeg") },
		"truncated face crop":   func(ff *messages.FrameFaces) { ff.Faces[0].FaceJPEG = ff.Faces[0].FaceJPEG[:50] },
		"box right of its crop": func(ff *messages.FrameFaces) { ff.Faces[0].FaceBox = messages.Box{5, 45, 25, 10} },
		"box above its crop":    func(ff *messages.FrameFaces) { ff.Faces[0].FaceBox = messages.Box{-3, 30, 20, 5} },
		"box below its crop":    func(ff *messages.FrameFaces) { ff.Faces[0].FaceBox = messages.Box{30, 30, 41, 5} },
		"empty box in its crop": func(ff *messages.FrameFaces) { ff.Faces[0].FaceBox = messages.Box{10, 5, 20, 5} },
		"empty frame box":       func(ff *messages.FrameFaces) { ff.Faces[0].Box = messages.Box{10, 10, 10, 10} },
		"zero-size frame":       func(ff *messages.FrameFaces) { ff.Width, ff.Height = 0, 0 },
		"skipped frame with faces": func(ff *messages.FrameFaces) {
			ff.Accepted = false
		},
	}
	for name, mutate := range cases {
		ff := frameFaces(t, 0, 1)
		mutate(ff)
		_, err := s.Frame(ff)
		if !errors.Is(err, stage.ErrPermanent) || !strings.HasPrefix(err.Error(), "encoder: ") {
			t.Errorf("%s: %v, want a permanent error starting with encoder:", name, err)
		}
	}
	if f.singles+f.batches != 0 {
		t.Error("bad input reached the encoder")
	}
	if n := s.Counts.Bad.Load(); n != int64(len(cases)) {
		t.Errorf("bad frames counted %d, want %d", n, len(cases))
	}
}

func TestStageCloseTwice(t *testing.T) {
	f := &fake{}
	s := encoder.New(f)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.closed != 1 {
		t.Errorf("encoder closed %d times", f.closed)
	}
	if _, err := s.Frame(frameFaces(t, 0, 1)); err == nil {
		t.Error("Frame after Close succeeded")
	}
}

// A missing or wrong model file is refused at start with an error naming the file and the
// expected input shape.
func TestONNXRefusesMissingOrWrongModels(t *testing.T) {
	dir := testenv.ModelsDir(t)
	if err := onnx.Init(filepath.Join(dir, "lib", "libonnxruntime.so")); err != nil {
		t.Fatal(err)
	}
	lm, ft := filepath.Join(dir, "face", "fr_landmark.onnx"), filepath.Join(dir, "face", "fr_feature.onnx")
	missing := filepath.Join(t.TempDir(), "fr_feature.onnx")
	garbage := filepath.Join(t.TempDir(), "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("\x08\x01garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		cfg        encoder.ONNXConfig
		file, want string
	}{
		{"missing feature model", encoder.ONNXConfig{LandmarkPath: lm, FeaturePath: missing}, missing, "[1,3,112,112]"},
		{"landmark model as feature model", encoder.ONNXConfig{LandmarkPath: lm, FeaturePath: lm}, lm, "[1,3,112,112]"},
		{"feature model as landmark model", encoder.ONNXConfig{LandmarkPath: ft, FeaturePath: ft}, ft, "[1,1,64,64]"},
		{"garbage landmark model", encoder.ONNXConfig{LandmarkPath: garbage, FeaturePath: ft}, garbage, "[1,1,64,64]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			enc, err := encoder.NewONNX(c.cfg)
			if err == nil {
				enc.Close()
				t.Fatalf("%+v accepted", c.cfg)
			}
			if msg := err.Error(); !strings.Contains(msg, c.file) || !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "encoder: ") {
				t.Errorf("error %q should name %s and the shape %s", msg, c.file, c.want)
			}
		})
	}
}

func TestONNXCloseTwice(t *testing.T) {
	dir := testenv.ModelsDir(t)
	if err := onnx.Init(filepath.Join(dir, "lib", "libonnxruntime.so")); err != nil {
		t.Fatal(err)
	}
	enc, err := encoder.NewONNX(encoder.ONNXConfig{LandmarkPath: filepath.Join(dir, "face", "fr_landmark.onnx"),
		FeaturePath: filepath.Join(dir, "face", "fr_feature.onnx"), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	crop := gocv.NewMatWithSize(80, 80, gocv.MatTypeCV8UC3)
	defer crop.Close()
	if _, err := enc.Encode(crop, messages.Box{10, 70, 70, 10}); err == nil {
		t.Error("Encode after Close succeeded")
	}
}

// The real detector and encoder stages on a group photo: landmarks where a face is, one
// 512-d vector per face, and a batch gives the same vectors as faces one by one.
func TestONNXOnGroupPhoto(t *testing.T) {
	b := onnxBackend(t)
	enc := b.enc.(*encoder.ONNXEncoder)
	img := readImage(t, testenv.Shared(t, "images/bbt1.jpg"))
	defer img.Close()
	data, err := vision.EncodeJPEG(img, 95)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := detector.New(detector.Config{}, noClose{b.det})
	if err != nil {
		t.Fatal(err)
	}
	ff, err := ds.Frame(&messages.Frame{Source: "bbt1", Width: img.Cols(), Height: img.Rows(), Scale: 1, JPEG: data, Params: messages.DefaultParams()})
	if err != nil || !ff.Accepted {
		t.Fatalf("detector: %+v, %v", ff, err)
	}
	s := encoder.New(noCloseEnc{enc})
	fv, err := s.Frame(ff)
	if err != nil {
		t.Fatal(err)
	}
	if err := fv.Validate(); err != nil || len(fv.Vectors) != len(ff.Faces) || fv.Model != "fr_feature-512" {
		t.Fatalf("%d vectors for %d faces, model %q: %v", len(fv.Vectors), len(ff.Faces), fv.Model, err)
	}
	for i, face := range ff.Faces {
		if len(fv.Vectors[i]) != 512 {
			t.Errorf("face %d: %d values", i, len(fv.Vectors[i]))
		}
		crop, err := vision.DecodeJPEG(face.FaceJPEG, 4096)
		if err != nil {
			t.Fatal(err)
		}
		lm, err := enc.Landmarks(crop, face.FaceBox)
		if err != nil {
			t.Fatal(err)
		}
		b := face.FaceBox
		for j, p := range lm {
			if p[0] < float64(b.Left())-0.1*float64(b.Width()) || p[0] > float64(b.Right())+0.1*float64(b.Width()) ||
				p[1] < float64(b.Top())-0.1*float64(b.Height()) || p[1] > float64(b.Bottom())+0.1*float64(b.Height()) {
				t.Errorf("face %d landmark %d at %v, outside its box %v", i, j, p, b)
				break
			}
		}
		five := encoder.FivePoints(lm)
		if !(five[0][0] < five[1][0] && five[0][1] < five[3][1] && five[2][1] < five[3][1]) {
			t.Errorf("face %d: eyes, nose and mouth out of place: %v", i, five)
		}
		one, err := enc.Encode(crop, face.FaceBox)
		crop.Close()
		if err != nil {
			t.Fatal(err)
		}
		if d := dist(one, fv.Vectors[i]); d > 1e-4 {
			t.Errorf("face %d: batch and single vectors differ by %g", i, d)
		}
	}
}
