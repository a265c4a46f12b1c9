package dlibface_test

import (
	"errors"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/dlibface"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/vision"
)

var (
	_ encoder.BatchEncoder = (*dlibface.Encoder)(nil)
)

func readImage(t testing.TB, rel string) gocv.Mat {
	t.Helper()
	img := gocv.IMRead(testenv.Shared(t, rel), gocv.IMReadColor)
	if img.Empty() {
		t.Fatalf("cannot read %s", rel)
	}
	return img
}

func newDetector(t testing.TB, upsample int) *dlibface.Detector {
	t.Helper()
	d, err := dlibface.NewDetector(dlibface.DetectorConfig{Upsample: upsample})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// newEncoder opens the go-face model folder; a missing model file skips, naming it.
func newEncoder(t testing.TB) *dlibface.Encoder {
	t.Helper()
	cfg := dlibface.EncoderConfig{Dir: filepath.Join(testenv.ModelsDir(t), "dlib")}
	sp, net := cfg.Paths()
	for _, f := range []string{sp, net} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("dlib model %s not available (%v): fetch it with `make deps` from the mirror", f, err)
		}
	}
	e, err := dlibface.NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func TestHOGFindsFaces(t *testing.T) {
	d := newDetector(t, 1)
	if d.Name() != "dlib-hog-up1" {
		t.Errorf("name %q", d.Name())
	}
	for _, c := range []struct {
		file  string
		faces int
	}{{"images/two_people.jpg", 2}, {"images/bbt1.jpg", 4}, {"images/obama.jpg", 1}} {
		img := readImage(t, c.file)
		dets, err := d.Detect(img)
		w, h := img.Cols(), img.Rows()
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(dets) != c.faces {
			t.Errorf("%s: %d faces, want %d", c.file, len(dets), c.faces)
		}
		for i, det := range dets {
			b := det.Box
			if b.Left() < 0 || b.Top() < 0 || b.Right() > w || b.Bottom() > h || b.Width() < 40 || b.Height() < 40 {
				t.Errorf("%s: face %d box %v impossible in %dx%d", c.file, i, b, w, h)
			}
			if i > 0 && det.Score > dets[i-1].Score {
				t.Errorf("%s: not best first", c.file)
			}
			if !(det.Score >= 0) {
				t.Errorf("%s: score %v below dlib's threshold 0", c.file, det.Score)
			}
		}
	}
}

// Upsampling finds faces too small for HOG's 80×80 window, as face_recognition's default does.
func TestHOGUpsampling(t *testing.T) {
	img := readImage(t, "images/two_people.jpg")
	defer img.Close()
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(img, &small, image.Pt(img.Cols()/3, img.Rows()/3), 0, 0, gocv.InterpolationArea) // faces ≈ 50 px
	d0, d1 := newDetector(t, 0), newDetector(t, 1)
	found0, err := d0.Detect(small)
	if err != nil {
		t.Fatal(err)
	}
	found1, err := d1.Detect(small)
	if err != nil {
		t.Fatal(err)
	}
	if len(found0) != 0 || len(found1) != 2 {
		t.Errorf("faces of about 50 px: %d found without upsampling (want 0), %d with (want 2)", len(found0), len(found1))
	}
	if _, err := dlibface.NewDetector(dlibface.DetectorConfig{Upsample: 4}); err == nil {
		t.Error("upsample 4 accepted")
	}
}

func TestHOGInputs(t *testing.T) {
	d := newDetector(t, 0)
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := d.Detect(empty); !errors.Is(err, vision.ErrEmpty) {
		t.Errorf("empty image: %v", err)
	}
	img := readImage(t, "images/obama.jpg")
	defer img.Close()
	grey, bgra := gocv.NewMat(), gocv.NewMat()
	defer grey.Close()
	defer bgra.Close()
	gocv.CvtColor(img, &grey, gocv.ColorBGRToGray)
	gocv.CvtColor(img, &bgra, gocv.ColorBGRToBGRA)
	roi := img.Region(image.Rect(0, 0, img.Cols()-1, img.Rows()-1)) // not continuous
	defer roi.Close()
	for name, m := range map[string]gocv.Mat{"grey": grey, "BGRA": bgra, "region": roi} {
		dets, err := d.Detect(m)
		if err != nil || len(dets) != 1 {
			t.Errorf("%s: %v, %v; want one face", name, dets, err)
		}
	}
	f32 := gocv.NewMatWithSize(10, 10, gocv.MatTypeCV32F)
	defer f32.Close()
	if _, err := d.Detect(f32); err == nil {
		t.Error("float image accepted")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Detect(img); !errors.Is(err, dlibface.ErrClosed) {
		t.Errorf("Detect after Close: %v", err)
	}
}

func dist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// The descriptor of a face in the detector stage's margin crop is the descriptor of the face
// in the whole frame (face_recognition.face_encodings(frame, boxes), the original's call).
func TestEncodeCropMatchesWholeFrame(t *testing.T) {
	enc := newEncoder(t)
	if enc.Parts() != 68 {
		t.Logf("shape predictor has %d parts; the original used 68", enc.Parts())
	}
	d := newDetector(t, 1)
	img := readImage(t, "images/two_people.jpg")
	defer img.Close()
	dets, err := d.Detect(img)
	if err != nil || len(dets) != 2 {
		t.Fatalf("%v, %v", dets, err)
	}
	var boxes []messages.Box
	for _, det := range dets {
		boxes = append(boxes, det.Box)
	}
	whole, err := enc.EncodeAll(img, boxes)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != 2 || len(whole[0]) != dlibface.DescriptorLen {
		t.Fatalf("%d descriptors", len(whole))
	}
	if dd := dist(whole[0], whole[1]); dd < 0.6 {
		t.Errorf("two different people at distance %.3f (< 0.6, dlib's same-person threshold)", dd)
	}
	var faces []encoder.Face
	for i, b := range boxes {
		r := vision.FaceWithMargin(b, 0.25)
		crop, err := vision.Crop(img, r)
		if err != nil {
			t.Fatal(err)
		}
		defer crop.Close()
		inCrop := messages.Box{b.Top() - r.Y1, b.Right() - r.X1, b.Bottom() - r.Y1, b.Left() - r.X1}
		v, err := enc.Encode(crop, inCrop)
		if err != nil {
			t.Fatal(err)
		}
		if dd := dist(v, whole[i]); dd > 0.05 {
			t.Errorf("face %d: crop descriptor %.4f away from the whole-frame one", i, dd)
		}
		v2, shape, err := enc.Landmarks(crop, inCrop)
		if err != nil {
			t.Fatal(err)
		}
		if dist(v, v2) != 0 {
			t.Errorf("face %d: descriptor not deterministic", i)
		}
		if len(shape) != enc.Parts() {
			t.Errorf("%d landmarks", len(shape))
		}
		m := inCrop.Width() / 4 // the jaw line runs past HOG's tight boxes
		for _, p := range shape {
			if p[0] < inCrop.Left()-m || p[0] > inCrop.Right()+m || p[1] < inCrop.Top()-m || p[1] > inCrop.Bottom()+m {
				t.Errorf("face %d: landmark %v far outside its box %v", i, p, inCrop)
				break
			}
		}
		faces = append(faces, encoder.Face{Crop: crop, Box: inCrop})
	}
	batch, err := enc.EncodeBatch(faces)
	if err != nil {
		t.Fatal(err)
	}
	for i := range batch {
		if dd := dist(batch[i], whole[i]); dd > 0.05 {
			t.Errorf("batch face %d: %.4f away", i, dd)
		}
	}
}

func TestEncodeInputs(t *testing.T) {
	enc := newEncoder(t)
	img := readImage(t, "images/obama.jpg")
	defer img.Close()
	if _, err := enc.Encode(img, messages.Box{10, 10, 50, 10}); err == nil {
		t.Error("empty box accepted")
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := enc.Encode(empty, messages.Box{0, 10, 10, 0}); err == nil {
		t.Error("empty image accepted")
	}
	// A box partly outside the image still gives a descriptor (dlib pads with black).
	if v, err := enc.Encode(img, messages.Box{-20, 200, 150, -30}); err != nil || len(v) != 128 {
		t.Errorf("box past the corner: %d values, %v", len(v), err)
	}
	if v, err := enc.EncodeAll(img, nil); err != nil || v != nil {
		t.Errorf("no boxes: %v, %v", v, err)
	}
}

// One encoder is safe to share between goroutines (calls are serialised).
func TestEncodeConcurrently(t *testing.T) {
	enc := newEncoder(t)
	img := readImage(t, "images/obama.jpg")
	defer img.Close()
	box := messages.Box{142, 617, 409, 349}
	want, err := enc.Encode(img, box)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := enc.Encode(img, box)
			if err == nil && dist(v, want) != 0 {
				err = errors.New("different descriptor")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A missing or wrong model file is refused with an error naming it and what it must be.
func TestEncoderRefusesMissingOrWrongModels(t *testing.T) {
	dir := filepath.Join(testenv.ModelsDir(t), "dlib")
	good := dlibface.EncoderConfig{Dir: dir}
	sp, net := good.Paths()
	for _, f := range []string{sp, net} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("dlib model %s not available (%v)", f, err)
		}
	}
	empty := t.TempDir()
	garbage := filepath.Join(t.TempDir(), "garbage.dat")
	if err := os.WriteFile(garbage, []byte("not a dlib model"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg        dlibface.EncoderConfig
		file, want string
	}{
		{dlibface.EncoderConfig{Dir: empty}, filepath.Join(empty, dlibface.ShapePredictor5), "shape predictor"},
		{dlibface.EncoderConfig{Dir: empty, ShapePredictor: sp}, filepath.Join(empty, dlibface.Network), "150×150×3"},
		{dlibface.EncoderConfig{ShapePredictor: sp, Network: garbage}, garbage, "150×150×3"},
		{dlibface.EncoderConfig{ShapePredictor: net, Network: net}, net, "shape_predictor"},
	} {
		e, err := dlibface.NewEncoder(c.cfg)
		if err == nil {
			e.Close()
			t.Errorf("%+v accepted", c.cfg)
			continue
		}
		msg := err.Error()
		if !errors.Is(err, dlibface.ErrModel) || !strings.Contains(msg, c.file) || !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, "dlibface: ") {
			t.Errorf("error %q should be ErrModel naming %s and %q", msg, c.file, c.want)
		}
	}
	if _, err := dlibface.NewEncoder(dlibface.EncoderConfig{Dir: dir, Padding: -1}); err == nil {
		t.Error("negative padding accepted")
	}
}

func TestEncoderCloseTwice(t *testing.T) {
	enc := newEncoder(t)
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	img := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC3)
	defer img.Close()
	if _, err := enc.Encode(img, messages.Box{10, 90, 90, 10}); !errors.Is(err, dlibface.ErrClosed) {
		t.Errorf("Encode after Close: %v", err)
	}
}
