package encoder_test

import (
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/dlibface"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/vision"
)

var colorGrey = color.RGBA{R: 128, G: 128, B: 128}

// backend is a face detector and a face encoder that belong together.
type backend struct {
	name string
	det  detector.FaceDetector
	enc  encoder.FaceEncoder
}

func onnxBackend(t testing.TB) backend {
	t.Helper()
	dir := testenv.ModelsDir(t)
	if err := onnx.Init(filepath.Join(dir, "lib", "libonnxruntime.so")); err != nil {
		t.Fatal(err)
	}
	det, err := detector.NewUltraFace(detector.UltraFaceConfig{Path: filepath.Join(dir, "face", "fr_detect.onnx"), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = det.Close() })
	enc := openONNX(t)
	return backend{"onnx", det, enc}
}

func openONNX(t testing.TB) *encoder.ONNXEncoder {
	t.Helper()
	dir := testenv.ModelsDir(t)
	if err := onnx.Init(filepath.Join(dir, "lib", "libonnxruntime.so")); err != nil {
		t.Fatal(err)
	}
	enc, err := encoder.NewONNX(encoder.ONNXConfig{LandmarkPath: filepath.Join(dir, "face", "fr_landmark.onnx"),
		FeaturePath: filepath.Join(dir, "face", "fr_feature.onnx"), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = enc.Close() })
	return enc
}

// dlibBackend is the original's path; it skips, naming the file, when a model is missing.
func dlibBackend(t testing.TB) backend {
	t.Helper()
	cfg := dlibface.EncoderConfig{Dir: filepath.Join(testenv.ModelsDir(t), "dlib")}
	sp, net := cfg.Paths()
	for _, f := range []string{sp, net} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("dlib model %s not available (%v): fetch it with `make deps` from the mirror", f, err)
		}
	}
	det, err := dlibface.NewDetector(dlibface.DetectorConfig{Upsample: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = det.Close() })
	enc, err := dlibface.NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = enc.Close() })
	return backend{"dlib", det, enc}
}

func readImage(t testing.TB, path string) gocv.Mat {
	t.Helper()
	img := gocv.IMRead(path, gocv.IMReadColor)
	if img.Empty() {
		img.Close()
		t.Fatalf("cannot read %s", path)
	}
	return img
}

// locateChip finds the face of a 150×150 face chip the way the pipeline would: the chip is
// placed in the middle of a grey canvas three times its size (detectors need context around a
// face), the backend's detector runs on the canvas, and the detection overlapping the chip most
// is taken; when nothing is found the chip minus a 10% margin is the box. It returns the
// detector stage's face crop (the box plus a 25% margin) and the box inside it.
func locateChip(t testing.TB, det detector.FaceDetector, chip gocv.Mat) (gocv.Mat, messages.Box, bool) {
	t.Helper()
	pad := chip.Rows()
	canvas := gocv.NewMat()
	defer canvas.Close()
	gocv.CopyMakeBorder(chip, &canvas, pad, pad, pad, pad, gocv.BorderConstant, colorGrey)
	chipBox := messages.Box{pad, pad + chip.Cols(), pad + chip.Rows(), pad}
	dets, err := det.Detect(canvas)
	if err != nil {
		t.Fatal(err)
	}
	box, found := chipBox, false
	best := 0.2
	for _, d := range dets {
		if v := d.Box.IoU(chipBox); v > best {
			best, box, found = v, d.Box, true
		}
	}
	if !found {
		m := chip.Rows() / 10
		box = messages.Box{chipBox.Top() + m, chipBox.Right() - m, chipBox.Bottom() - m, chipBox.Left() + m}
	}
	r := vision.FaceWithMargin(box, 0.25)
	crop, err := vision.Crop(canvas, r)
	if err != nil {
		t.Fatal(err)
	}
	return crop, messages.Box{box.Top() - r.Y1, box.Right() - r.X1, box.Bottom() - r.Y1, box.Left() - r.X1}, found
}

type identityResult struct {
	n, correct, located int
	sameMean, diffMean  float64
}

func (r identityResult) accuracy() float64 { return float64(r.correct) / float64(max(1, r.n)) }

// identityAccuracy encodes every chip of faces/<set>/<person>/* and scores leave-one-out
// nearest-neighbour identity on L2-normalised descriptors (as the fingerprints are built).
func identityAccuracy(t testing.TB, b backend, set string) identityResult {
	t.Helper()
	root := testenv.Shared(t, "faces/"+set)
	people, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	var faces []encoder.Face
	var res identityResult
	defer func() {
		for _, f := range faces {
			f.Crop.Close()
		}
	}()
	for _, p := range people {
		if !p.IsDir() {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(root, p.Name(), "*"))
		sort.Strings(files)
		for _, f := range files {
			chip := readImage(t, f)
			crop, box, found := locateChip(t, b.det, chip)
			chip.Close()
			if found {
				res.located++
			}
			faces = append(faces, encoder.Face{Crop: crop, Box: box})
			labels = append(labels, p.Name())
		}
	}
	var vecs [][]float32
	if be, ok := b.enc.(encoder.BatchEncoder); ok {
		if vecs, err = be.EncodeBatch(faces); err != nil {
			t.Fatal(err)
		}
	} else {
		for _, f := range faces {
			v, err := b.enc.Encode(f.Crop, f.Box)
			if err != nil {
				t.Fatal(err)
			}
			vecs = append(vecs, v)
		}
	}
	for i := range vecs {
		vecs[i] = normalised(vecs[i])
	}
	var sameSum, diffSum float64
	var sameN, diffN int
	for i := range vecs {
		best, bestJ := math.Inf(1), -1
		for j := range vecs {
			if i == j {
				continue
			}
			d := dist(vecs[i], vecs[j])
			if d < best {
				best, bestJ = d, j
			}
			if j > i {
				if labels[i] == labels[j] {
					sameSum += d
					sameN++
				} else {
					diffSum += d
					diffN++
				}
			}
		}
		res.n++
		if labels[bestJ] == labels[i] {
			res.correct++
		}
	}
	res.sameMean, res.diffMean = sameSum/float64(max(1, sameN)), diffSum/float64(max(1, diffN))
	return res
}

func normalised(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	n := math.Sqrt(s)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

func dist(a, b []float32) float64 {
	var s float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// portraitVector runs a photo through the real detector and encoder stages (MinFaces 1) and
// returns the descriptor of its best-scoring face.
func portraitVector(t testing.TB, b backend, file string) []float32 {
	t.Helper()
	img := readImage(t, testenv.Shared(t, file))
	defer img.Close()
	data, err := vision.EncodeJPEG(img, 95)
	if err != nil {
		t.Fatal(err)
	}
	p := messages.DefaultParams()
	p.MinFaces, p.MaxFaces = 1, 8
	f := &messages.Frame{Source: "portrait", Width: img.Cols(), Height: img.Rows(), Scale: 1, JPEG: data, Params: p}
	ds, err := detector.New(detector.Config{}, noClose{b.det})
	if err != nil {
		t.Fatal(err)
	}
	ff, err := ds.Frame(f)
	if err != nil {
		t.Fatal(err)
	}
	if !ff.Accepted {
		t.Fatalf("%s: no face found (%s)", file, ff.SkipReason)
	}
	fv, err := encoder.New(noCloseEnc{b.enc}).Frame(ff)
	if err != nil {
		t.Fatal(err)
	}
	best := 0
	for i, f := range ff.Faces {
		if f.Score > ff.Faces[best].Score {
			best = i
		}
	}
	return fv.Vectors[best]
}

// noClose and noCloseEnc let a test share one model between stages it builds.
type noClose struct{ detector.FaceDetector }

func (noClose) Close() error { return nil }

type noCloseEnc struct{ encoder.FaceEncoder }

func (noCloseEnc) Close() error { return nil }

func testQualityGate(t *testing.T, b backend) {
	for _, c := range []struct {
		set  string
		gate float64
	}{{"johns", 0.95}, {"bbt", 0.9}} {
		r := identityAccuracy(t, b, c.set)
		t.Logf("%s on faces/%s: nearest-neighbour identity %d/%d = %.3f (faces located by the detector: %d/%d); mean normalised distance same person %.3f, different %.3f",
			b.name, c.set, r.correct, r.n, r.accuracy(), r.located, r.n, r.sameMean, r.diffMean)
		if r.accuracy() < c.gate {
			t.Errorf("%s: faces/%s accuracy %.3f below the gate %.2f", b.name, c.set, r.accuracy(), c.gate)
		}
	}
	obama := normalised(portraitVector(t, b, "images/obama.jpg"))
	obama2 := normalised(portraitVector(t, b, "images/obama2.jpg"))
	biden := normalised(portraitVector(t, b, "images/biden.jpg"))
	same, diff := dist(obama, obama2), dist(obama, biden)
	t.Logf("%s: normalised distance obama–obama2 %.3f, obama–biden %.3f, obama2–biden %.3f", b.name, same, diff, dist(obama2, biden))
	if !(same < diff) || !(same < dist(obama2, biden)) {
		t.Errorf("%s: same-person distance %.3f not below the different-person ones (%.3f, %.3f)", b.name, same, diff, dist(obama2, biden))
	}
}

// Quality gates of the default encoder: faces/johns ≥ 0.95, faces/bbt ≥ 0.9 leave-one-out
// nearest-neighbour identity; obama/obama2 closer than obama/biden.
func TestONNXQualityGate(t *testing.T) { testQualityGate(t, onnxBackend(t)) }

// The same gates for the original's dlib path (HOG upsampled once, 68-landmark ResNet).
func TestDlibQualityGate(t *testing.T) {
	if testing.Short() {
		t.Skip("dlib's ResNet takes about 30 ms a face")
	}
	testQualityGate(t, dlibBackend(t))
}
