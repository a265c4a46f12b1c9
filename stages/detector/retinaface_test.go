package detector_test

import (
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/vision"
)

func openRetinaFace(t testing.TB, threshold float32) *detector.RetinaFace {
	t.Helper()
	dir := initORT(t)
	r, err := detector.NewRetinaFace(detector.RetinaFaceConfig{Path: filepath.Join(dir, "face", "retinaface-mnet025-640.onnx"), Threads: 1, Threshold: threshold})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// openRetinaZoom is the pipeline's default detector: proposals at a low score, a second look at
// the doubtful ones.
func openRetinaZoom(t testing.TB) *detector.Zoom {
	t.Helper()
	z, err := detector.NewZoom(openRetinaFace(t, detector.RetinaFaceProposalScore), detector.ZoomConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// retinaOutputs builds zeroed outputs of a size×size input with one face anchor set.
func retinaOutputs(size int) [][]float32 {
	var outs [][]float32
	for _, stride := range []int{32, 16, 8} {
		plane := (size / stride) * (size / stride)
		outs = append(outs, make([]float32, 4*plane), make([]float32, 8*plane))
	}
	return outs
}

func TestDecodeRetina(t *testing.T) {
	const size = 64
	cfg := detector.RetinaFaceConfig{Threshold: 0.5, NMSIoU: 0.4}
	outs := retinaOutputs(size)
	// Stride 8 (outputs 4 and 5) is 8×8 cells; anchor 1 there is 16 px. Cell (x 3, y 2) centres
	// it at (31.5, 23.5); deltas move it by (+0.5, −0.25)·16 and double its width.
	const plane, cell = 64, 2*8 + 3
	outs[4][(2+1)*plane+cell] = 0.9
	outs[5][(4+0)*plane+cell] = 0.5
	outs[5][(4+1)*plane+cell] = -0.25
	outs[5][(4+2)*plane+cell] = float32(math.Log(2))
	// The same place, anchor 0 (32 px) moved and flattened onto nearly the same box (IoU 0.6),
	// weaker: suppressed by NMS.
	outs[4][(2+0)*plane+cell] = 0.8
	outs[5][0*plane+cell] = 0.25
	outs[5][3*plane+cell] = float32(math.Log(0.5))
	// Below the threshold, and a NaN delta: both dropped.
	outs[4][(2+1)*plane+cell+1] = 0.4
	outs[4][(2+1)*plane+cell+8] = 0.95
	outs[5][(4+0)*plane+cell+8] = float32(math.NaN())

	dets, err := detector.DecodeRetina(outs, size, size, 0.5, 128, 128, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Centre (39.5, 19.5), 32×16 px in the input: x 24..55, y 12..27; halved scale doubles them.
	want := messages.Box{24, 110, 54, 48}
	if len(dets) != 1 || dets[0].Box.IoU(want) < 0.95 || dets[0].Score != 0.9 {
		t.Fatalf("decoded %+v, want one face %v scoring 0.9", dets, want)
	}
	cfg.NMSIoU = 1
	if dets, _ := detector.DecodeRetina(outs, size, size, 0.5, 128, 128, cfg); len(dets) != 2 {
		t.Errorf("without NMS: %d faces, want 2", len(dets))
	}
	if _, err := detector.DecodeRetina(outs[:5], size, size, 1, 64, 64, cfg); err == nil {
		t.Error("five outputs accepted")
	}
	if _, err := detector.DecodeRetina(retinaOutputs(32), size, size, 1, 64, 64, cfg); err == nil || !strings.HasPrefix(err.Error(), "detector: ") {
		t.Errorf("outputs of another size: %v", err)
	}
}

func TestRetinaFaceRefusesMissingOrWrongModel(t *testing.T) {
	dir := initORT(t)
	missing := filepath.Join(t.TempDir(), "retinaface.onnx")
	wrong := filepath.Join(dir, "face", "fr_detect.onnx")
	garbage := filepath.Join(t.TempDir(), "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{missing, wrong, garbage} {
		r, err := detector.NewRetinaFace(detector.RetinaFaceConfig{Path: path})
		if err == nil {
			r.Close()
			t.Errorf("%s accepted", path)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "[1 3 H W]") || !strings.HasPrefix(msg, "detector: ") {
			t.Errorf("error %q should start with detector: and name %s and the shape [1 3 H W]", msg, path)
		}
	}
	for _, cfg := range []detector.RetinaFaceConfig{{}, {Path: "x.onnx", Size: 100}, {Path: "x.onnx", Threshold: 1}, {Path: "x.onnx", NMSIoU: -1}, {Path: "x.onnx", Threads: -1}} {
		if _, err := detector.NewRetinaFace(cfg); err == nil || !strings.HasPrefix(err.Error(), "detector: retinaface: ") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestRetinaFaceAndZoomCloseTwice(t *testing.T) {
	z := openRetinaZoom(t)
	for range 2 {
		if err := z.Close(); err != nil {
			t.Fatal(err)
		}
	}
	img := gocv.NewMatWithSize(240, 320, gocv.MatTypeCV8UC3)
	defer img.Close()
	if _, err := z.Detect(img); err == nil {
		t.Error("Detect after Close succeeded")
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := openRetinaFace(t, 0).Detect(empty); err == nil {
		t.Error("empty image accepted")
	}
}

func TestZoomConfigValidation(t *testing.T) {
	for _, cfg := range []detector.ZoomConfig{{Accept: 2}, {Confirm: -1}, {Context: 0.5}, {Cells: 9}, {CellSide: 8}, {MaxLooks: -1}, {MinSide: -1}} {
		if _, err := detector.NewZoom(openRetinaFace(t, 0.1), cfg); err == nil || !strings.HasPrefix(err.Error(), "detector: zoom: ") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// Quality gate on dlib's hand-annotated photos, as UltraFace's.
func TestRetinaFaceQualityGate(t *testing.T) {
	for _, det := range []detector.FaceDetector{openRetinaFace(t, 0), openRetinaZoom(t)} {
		s := evaluate(t, det, 0.4)
		t.Logf("%s: %d annotated faces, %d found, %d matched at IoU ≥ 0.4: recall %.3f, precision %.3f",
			det.Name(), s.truth, s.found, s.matched, s.recall(), s.precision())
		if s.recall() < 0.9 || s.precision() < 0.9 {
			t.Errorf("%s: recall %.3f, precision %.3f; the gate is 0.9 each", det.Name(), s.recall(), s.precision())
		}
	}
}

// A face shrunk to a few dozen pixels in a large frame scores low at the frame's scale; the
// second look finds it, and the box it maps back lies on the face.
func TestZoomFindsASmallFaceAndMapsItBack(t *testing.T) {
	data, err := os.ReadFile(testenv.Shared(t, "images/obama.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	photo, err := vision.DecodeJPEG(data, messages.MaxFrameSide)
	if err != nil {
		t.Fatal(err)
	}
	defer photo.Close()
	whole := openRetinaFace(t, 0)
	big, err := whole.Detect(photo)
	if err != nil || len(big) != 1 {
		t.Fatalf("obama.jpg: %d faces (%v)", len(big), err)
	}
	// 1/8 of the photo, blurred, at (700, 300) of a grey 1280×720 frame.
	const shrink = 8
	small := gocv.NewMat()
	defer small.Close()
	gocv.Resize(photo, &small, image.Pt(photo.Cols()/shrink, photo.Rows()/shrink), 0, 0, gocv.InterpolationArea)
	gocv.GaussianBlur(small, &small, image.Pt(3, 3), 0, 0, gocv.BorderReflect)
	frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 720, 1280, gocv.MatTypeCV8UC3)
	defer frame.Close()
	at := image.Pt(700, 300)
	dst := frame.Region(image.Rectangle{Min: at, Max: at.Add(image.Pt(small.Cols(), small.Rows()))})
	small.CopyTo(&dst)
	dst.Close()
	b := big[0].Box
	want := messages.Box{at.Y + b.Top()/shrink, at.X + b.Right()/shrink, at.Y + b.Bottom()/shrink, at.X + b.Left()/shrink}

	// At the frame's scale RetinaFace does not keep it: the second look has to.
	plain, err := whole.Detect(frame)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range plain {
		if d.Box.IoU(want) >= 0.4 {
			t.Fatalf("RetinaFace alone found the %d-px face (score %.2f): the test needs a smaller one", want.Width(), d.Score)
		}
	}
	z := openRetinaZoom(t)
	got, err := z.Detect(frame)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Box.IoU(want) < 0.6 || got[0].Score < 0.5 {
		t.Fatalf("zoom found %+v; want one face on %v (side %d px)", got, want, want.Width())
	}
	t.Logf("face of %d px: zoom box %v score %.2f (IoU %.2f with the shrunk full-size box)", want.Width(), got[0].Box, got[0].Score, got[0].Box.IoU(want))
}

// Small, blurred and partly covered faces (cast_hard_public.mp4, every 8th frame): the second
// look finds at least 0.8 of them (measured 0.867, no false face), far more than RetinaFace at
// the frame's scale (0.434), and all but a few of the plain cast video's (measured 1.000).
func TestZoomFindsSmallAndCoveredFaces(t *testing.T) {
	if testing.Short() {
		t.Skip("reads two videos")
	}
	whole, zoom := openRetinaFace(t, 0), openRetinaZoom(t)
	for _, video := range []string{"video/cast_hard_public.mp4", "video/cast_public.mp4"} {
		scores := scoreVideo(t, video, 8, whole, zoom)
		sw, sz := scores[0], scores[1]
		t.Logf("%s: RetinaFace recall %.3f precision %.3f; with the second look recall %.3f precision %.3f",
			video, sw.recall(), sw.precision(), sz.recall(), sz.precision())
		minRecall := 0.98
		if video == "video/cast_hard_public.mp4" {
			minRecall = max(0.8, sw.recall()+0.2)
		}
		if sz.recall() < minRecall || sz.precision() < 0.98 {
			t.Errorf("%s: zoom recall %.3f precision %.3f (frame scale %.3f)", video, sz.recall(), sz.precision(), sw.recall())
		}
	}
}

// The input is shaped like the image (bbt1.jpg, 16:9: 640×384 instead of a 640×640 square):
// the faces and scores equal those of the image letterboxed in the square, as the model was
// exported for.
func TestRetinaFaceFrameShapedInputFindsTheSquaresFaces(t *testing.T) {
	r := openRetinaFace(t, 0.5)
	img := gocv.IMRead(testenv.Shared(t, "images/bbt1.jpg"), gocv.IMReadColor)
	defer img.Close()
	frame := gocv.NewMat()
	defer frame.Close()
	gocv.Resize(img, &frame, image.Pt(640, 360), 0, 0, gocv.InterpolationLinear)
	square := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), 640, 640, gocv.MatTypeCV8UC3)
	defer square.Close()
	top := square.Region(image.Rect(0, 0, 640, 360))
	frame.CopyTo(&top)
	top.Close()

	shaped, err := r.Detect(frame)
	if err != nil {
		t.Fatal(err)
	}
	letterboxed, err := r.Detect(square)
	if err != nil {
		t.Fatal(err)
	}
	if len(shaped) < 4 || len(shaped) != len(letterboxed) {
		t.Fatalf("frame-shaped input: %d faces, letterboxed square: %d; want the same, at least 4", len(shaped), len(letterboxed))
	}
	for i, d := range shaped {
		sq := letterboxed[i]
		if d.Box.IoU(sq.Box) < 0.95 || math.Abs(float64(d.Score-sq.Score)) > 0.02 {
			t.Errorf("face %d: %v scoring %.3f, in the square %v scoring %.3f", i, d.Box, d.Score, sq.Box, sq.Score)
		}
	}
}
