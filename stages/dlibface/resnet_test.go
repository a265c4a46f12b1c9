package dlibface_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/dlibface"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/vision"
)

var _ encoder.BatchEncoder = (*dlibface.ResNetONNX)(nil)

func resNetConfig(t testing.TB) dlibface.ResNetConfig {
	t.Helper()
	dir := testenv.ModelsDir(t)
	if err := onnx.Init(filepath.Join(dir, "lib", "libonnxruntime.so")); err != nil {
		t.Fatal(err)
	}
	sp, _ := dlibface.EncoderConfig{Dir: filepath.Join(dir, "dlib")}.Paths()
	model := filepath.Join(dir, "face", dlibface.ResNetONNXFile)
	for _, f := range []string{sp, model} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("model %s not available (%v): fetch it with `make deps` from the mirror", f, err)
		}
	}
	return dlibface.ResNetConfig{ShapePredictor: sp, Model: model, Threads: 1}
}

func newResNet(t testing.TB) *dlibface.ResNetONNX {
	t.Helper()
	e, err := dlibface.NewResNetONNX(resNetConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// The ONNX network gives dlib's own descriptors: on every face HOG finds in the group photos,
// in the detector stage's margin crops and batched as the encoder stage batches them.
func TestResNetONNXEqualsDlib(t *testing.T) {
	onnxEnc, dlibEnc, hog := newResNet(t), newEncoder(t), newDetector(t, 1)
	if onnxEnc.Name() != dlibEnc.Name() {
		t.Errorf("names %q and %q: one descriptor, one calibrated cut", onnxEnc.Name(), dlibEnc.Name())
	}
	var faces []encoder.Face
	var want [][]float32
	for _, file := range []string{"images/two_people.jpg", "images/bbt1.jpg", "images/bbt3.jpg", "images/obama.jpg"} {
		img := readImage(t, file)
		dets, err := hog.Detect(img)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dets {
			r := vision.FaceWithMargin(d.Box, 0.25)
			crop, err := vision.Crop(img, r)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { crop.Close() })
			b := d.Box
			inCrop := messages.Box{b.Top() - r.Y1, b.Right() - r.X1, b.Bottom() - r.Y1, b.Left() - r.X1}
			v, err := dlibEnc.Encode(crop, inCrop)
			if err != nil {
				t.Fatal(err)
			}
			faces = append(faces, encoder.Face{Crop: crop, Box: inCrop})
			want = append(want, v)
		}
		img.Close()
	}
	if len(faces) < 8 {
		t.Fatalf("only %d faces found", len(faces))
	}
	got, err := onnxEnc.EncodeBatch(faces)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i := range faces {
		if len(got[i]) != dlibface.DescriptorLen {
			t.Fatalf("face %d: %d values", i, len(got[i]))
		}
		for k := range got[i] {
			worst = math.Max(worst, math.Abs(float64(got[i][k]-want[i][k])))
		}
	}
	t.Logf("%d faces: largest difference from dlib's network %.2g", len(faces), worst)
	if worst > 1e-4 {
		t.Errorf("descriptors differ from dlib's by up to %.3g (want ≤ 1e-4)", worst)
	}
	one, err := onnxEnc.Encode(faces[0].Crop, faces[0].Box)
	if err != nil {
		t.Fatal(err)
	}
	if d := dist(one, got[0]); d > 1e-5 {
		t.Errorf("batch of one differs from the batch by %.3g", d)
	}
}

func newLandmarker(t *testing.T, shapePredictor string) *dlibface.Landmarker {
	t.Helper()
	lm, err := dlibface.NewLandmarker(shapePredictor, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lm.Close() })
	return lm
}

// The shim's landmarks are dlib's shape_predictor's, bit for bit: on every face HOG finds in
// the group photos and on boxes moved, shrunk, grown and pushed past the image's edges.
func TestLandmarksEqualDlibs(t *testing.T) {
	cfg := resNetConfig(t)
	lm := newLandmarker(t, cfg.ShapePredictor)
	hog := newDetector(t, 1)
	checked := 0
	for _, file := range []string{"images/two_people.jpg", "images/bbt1.jpg", "images/bbt3.jpg", "images/obama.jpg"} {
		img := readImage(t, file)
		dets, err := hog.Detect(img)
		if err != nil {
			t.Fatal(err)
		}
		var boxes []messages.Box
		for _, d := range dets {
			b := d.Box
			w, h := b.Width(), b.Height()
			for _, m := range [][4]int{{0, 0, 0, 0}, {w / 7, w / 9, -h / 8, 3}, {-w / 3, -w / 3, h / 3, h / 3}, {w / 4, -w / 5, 0, h / 6}} {
				boxes = append(boxes, messages.Box{b.Top() - m[2], b.Right() + m[0], b.Bottom() + m[3], b.Left() - m[1]})
			}
		}
		// A box running past the top-left corner, and one past the bottom-right.
		boxes = append(boxes, messages.Box{-40, 90, 70, -30}, messages.Box{img.Rows() - 60, img.Cols() + 30, img.Rows() + 50, img.Cols() - 80})
		differ, err := dlibface.LandmarksDiffer(lm, cfg.ShapePredictor, img, boxes)
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		if differ != 0 {
			t.Errorf("%s: %d of %d boxes' landmarks differ from dlib's", file, differ, len(boxes))
		}
		checked += len(boxes)
	}
	if checked < 40 {
		t.Errorf("only %d boxes checked", checked)
	}
}

// Chips are dlib's: the landmarks lie on the face and the chip is 150×150 RGB.
func TestLandmarkerChips(t *testing.T) {
	cfg := resNetConfig(t)
	lm := newLandmarker(t, cfg.ShapePredictor)
	img := readImage(t, "images/obama.jpg")
	defer img.Close()
	box := messages.Box{142, 617, 409, 349}
	chips, shapes, err := lm.Chips(img, []messages.Box{box, box}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(chips) != 2*150*150*3 || len(shapes) != 2 || len(shapes[0]) != lm.Parts() {
		t.Fatalf("%d chip bytes, %d shapes", len(chips), len(shapes))
	}
	if string(chips[:150*150*3]) != string(chips[150*150*3:]) {
		t.Error("one face cut twice gives two different chips")
	}
	for _, p := range shapes[0] {
		if p[0] < box.Left()-40 || p[0] > box.Right()+40 || p[1] < box.Top()-40 || p[1] > box.Bottom()+40 {
			t.Errorf("landmark %v far outside %v", p, box)
			break
		}
	}
	empty := gocv.NewMat()
	defer empty.Close()
	for name, c := range map[string]struct {
		img gocv.Mat
		box messages.Box
	}{
		"empty image": {empty, box},
		"empty box":   {img, messages.Box{10, 10, 50, 10}},
	} {
		if _, _, err := lm.Chips(c.img, []messages.Box{c.box}, false); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if err := lm.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lm.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lm.Chips(img, []messages.Box{box}, false); !errors.Is(err, dlibface.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

// A missing or wrong file, or a bad setting, is refused with an error naming what is wrong.
func TestResNetONNXRefusesBadSetup(t *testing.T) {
	good := resNetConfig(t)
	garbage := filepath.Join(t.TempDir(), "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	fr := filepath.Join(filepath.Dir(good.Model), "fr_feature.onnx")
	for _, c := range []struct {
		name string
		mod  func(*dlibface.ResNetConfig)
		want string
	}{
		{"no shape predictor", func(c *dlibface.ResNetConfig) { c.ShapePredictor = "" }, "needs a shape predictor"},
		{"missing shape predictor", func(c *dlibface.ResNetConfig) { c.ShapePredictor = garbage + ".dat" }, "garbage.onnx.dat"},
		{"shape predictor not dlib's", func(c *dlibface.ResNetConfig) { c.ShapePredictor = garbage }, "garbage.onnx"},
		{"missing model", func(c *dlibface.ResNetConfig) { c.Model = garbage + ".missing" }, "garbage.onnx.missing"},
		{"not a model", func(c *dlibface.ResNetConfig) { c.Model = garbage }, "garbage.onnx"},
		{"another model", func(c *dlibface.ResNetConfig) { c.Model = fr }, "[N,3,150,150]"},
		{"batch too large", func(c *dlibface.ResNetConfig) { c.MaxBatch = 1000 }, "max batch"},
		{"padding", func(c *dlibface.ResNetConfig) { c.Padding = -1 }, "padding"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.mod(&cfg)
			e, err := dlibface.NewResNetONNX(cfg)
			if err == nil {
				e.Close()
				t.Fatal("accepted")
			}
			if msg := err.Error(); !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "dlibface: ") {
				t.Errorf("error %q should start with dlibface: and name %q", msg, c.want)
			}
		})
	}
}

func TestResNetONNXCloseTwice(t *testing.T) {
	e := newResNet(t)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	img := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC3)
	defer img.Close()
	if _, err := e.Encode(img, messages.Box{10, 90, 90, 10}); !errors.Is(err, dlibface.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}
