package detector_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/dlibface"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// fixed is a FaceDetector that finds the same faces in every image.
type fixed struct {
	dets   []detector.Detection
	err    error
	closed int
}

func (f *fixed) Detect(gocv.Mat) ([]detector.Detection, error) {
	return append([]detector.Detection(nil), f.dets...), f.err
}
func (f *fixed) Name() string { return "fixed" }
func (f *fixed) Close() error { f.closed++; return nil }

// flatFrame is a Frame of a width×height grey JPEG.
func flatFrame(t testing.TB, width, height int) *messages.Frame {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(90, 120, 150, 0), height, width, gocv.MatTypeCV8UC3)
	defer m.Close()
	return frameOf(t, m)
}

func frameOf(t testing.TB, img gocv.Mat) *messages.Frame {
	t.Helper()
	data, err := vision.EncodeJPEG(img, 90)
	if err != nil {
		t.Fatal(err)
	}
	return &messages.Frame{Source: "test", Seq: 3, Index: 7, PTSMillis: 700, Width: img.Cols(), Height: img.Rows(), Scale: 1,
		JPEG: data, Params: messages.DefaultParams()}
}

// newStage wraps det without the face-quality gate (gate_test.go tests it): the fixed
// detector's boxes lie on flat frames, which the gate would refuse as blurred.
func newStage(t testing.TB, det detector.FaceDetector) *detector.Stage {
	t.Helper()
	s, err := detector.New(detector.Config{Gate: detector.GateConfig{Off: true}}, det)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func decodeSize(t testing.TB, data []byte) (w, h int) {
	t.Helper()
	w, h, err := vision.JPEGSize(data)
	if err != nil {
		t.Fatal(err)
	}
	return w, h
}

func TestDecodeThresholdNMSAndTrim(t *testing.T) {
	cfg := detector.UltraFaceConfig{Threshold: 0.7, NMSIoU: 0.3, CandidateSize: 200}
	// Candidates on a 200×100 image: (score, x1, y1, x2, y2) relative.
	cands := [][5]float32{
		{0.90, 0.10, 0.10, 0.30, 0.50},  // A: kept (second best)
		{0.95, 0.50, 0.20, 0.75, 0.60},  // B: best
		{0.80, 0.11, 0.12, 0.31, 0.52},  // overlaps A (IoU ≈ 0.86): suppressed
		{0.69, 0.80, 0.10, 0.90, 0.30},  // below the threshold
		{0.75, -0.05, 0.80, 0.05, 1.10}, // runs past the bottom-left corner: trimmed
		{0.99, float32(math.NaN()), 0, 0.1, 0.1},
		{0.85, 0.52, 0.22, 0.70, 0.60}, // overlaps B (IoU ≈ 0.68): suppressed
		{0.72, 0.40, 0.10, 0.50, 0.30}, // touches nothing above 0.3: kept
	}
	var scores, boxes []float32
	for _, c := range cands {
		scores = append(scores, 1-c[0], c[0])
		boxes = append(boxes, c[1], c[2], c[3], c[4])
	}
	got := detector.Decode(scores, boxes, 200, 100, cfg)
	want := []detector.Detection{
		{Box: messages.Box{20, 150, 60, 100}, Score: 0.95},
		{Box: messages.Box{10, 60, 50, 20}, Score: 0.90},
		{Box: messages.Box{80, 10, 100, 0}, Score: 0.75},
		{Box: messages.Box{10, 100, 30, 80}, Score: 0.72},
	}
	if len(got) != len(want) {
		t.Fatalf("Decode = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Box != want[i].Box || got[i].Score != want[i].Score {
			t.Errorf("detection %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// Only the best CandidateSize candidates enter NMS.
	cfg.CandidateSize = 1
	if got := detector.Decode(scores, boxes, 200, 100, cfg); len(got) != 1 || got[0].Score != 0.95 {
		t.Errorf("candidate size 1: %v", got)
	}
	// A looser NMS keeps the overlapping boxes.
	cfg.CandidateSize, cfg.NMSIoU = 200, 0.9
	if got := detector.Decode(scores, boxes, 200, 100, cfg); len(got) != 6 {
		t.Errorf("NMS IoU 0.9 kept %d boxes, want 6", len(got))
	}
	// Tiny boxes are dropped with MinSidePix.
	cfg.NMSIoU, cfg.MinSidePix = 0.3, 21
	if got := detector.Decode(scores, boxes, 200, 100, cfg); len(got) != 2 {
		t.Errorf("min side 21 kept %v, want the two large boxes", got)
	}
}

func TestFrameVerdicts(t *testing.T) {
	box := func(top, left, side int) detector.Detection {
		return detector.Detection{Box: messages.Box{top, left + side, top + side, left}, Score: 0.9}
	}
	det := &fixed{}
	s := newStage(t, det)
	f := flatFrame(t, 320, 240)
	for _, c := range []struct {
		faces  int
		accept bool
		reason string
	}{{0, false, detector.SkipTooFew}, {1, false, detector.SkipTooFew}, {2, true, ""}, {4, true, ""}, {5, false, detector.SkipTooMany}} {
		det.dets = nil
		for i := 0; i < c.faces; i++ {
			det.dets = append(det.dets, box(20+40*(i%2), 20+60*i, 30))
		}
		ff, err := s.Frame(f)
		if err != nil {
			t.Fatal(err)
		}
		if ff.Accepted != c.accept || ff.SkipReason != c.reason || ff.Detected != c.faces {
			t.Errorf("%d faces: accepted=%v reason=%q detected=%d", c.faces, ff.Accepted, ff.SkipReason, ff.Detected)
		}
		if want := map[bool]int{true: c.faces, false: 0}[c.accept]; len(ff.Faces) != want {
			t.Errorf("%d faces: %d faces published", c.faces, len(ff.Faces))
		}
		if err := ff.Validate(); err != nil {
			t.Errorf("%d faces: invalid FrameFaces: %v", c.faces, err)
		}
	}
	if s.Counts.Frames.Load() != 5 || s.Counts.Accepted.Load() != 2 || s.Counts.TooFew.Load() != 2 || s.Counts.TooMany.Load() != 1 || s.Counts.Faces.Load() != 6 {
		t.Errorf("counts frames=%d accepted=%d few=%d many=%d faces=%d", s.Counts.Frames.Load(), s.Counts.Accepted.Load(),
			s.Counts.TooFew.Load(), s.Counts.TooMany.Load(), s.Counts.Faces.Load())
	}
	if got := s.Counts.Skipped(); got[detector.SkipTooFew] != 2 || got[detector.SkipTooMany] != 1 {
		t.Errorf("skipped by reason %v", got)
	}
	// The request's own limits apply.
	f.Params.MinFaces, f.Params.MaxFaces = 1, 1
	det.dets = []detector.Detection{box(10, 10, 30)}
	if ff, err := s.Frame(f); err != nil || !ff.Accepted {
		t.Errorf("min=max=1 with one face: %+v, %v", ff, err)
	}
}

// Crops: sizes follow DESIGN step 4 and the face margin; boxes are mapped back to the source
// frame when the reader shrank it; the face's box inside its crop is where the face is.
func TestFrameCropsAndBoxes(t *testing.T) {
	det := &fixed{dets: []detector.Detection{
		{Box: messages.Box{40, 140, 80, 100}, Score: 0.99},  // 40×40 in the middle
		{Box: messages.Box{0, 40, 30, 0}, Score: 0.8},       // 40 wide, 30 high, top-left corner
		{Box: messages.Box{200, 330, 250, 300}, Score: 0.7}, // runs past the bottom-right: trimmed to 240/320
	}}
	s := newStage(t, det)
	f := flatFrame(t, 320, 240)
	f.Scale = 0.5 // the source was 640×480
	ff, err := s.Frame(f)
	if err != nil {
		t.Fatal(err)
	}
	if !ff.Accepted || len(ff.Faces) != 3 || ff.Width != 640 || ff.Height != 480 {
		t.Fatalf("accepted=%v faces=%d size %dx%d", ff.Accepted, len(ff.Faces), ff.Width, ff.Height)
	}
	wantFull := []messages.Box{{80, 280, 160, 200}, {0, 80, 60, 0}, {400, 640, 480, 600}}
	trimmed := []messages.Box{{40, 140, 80, 100}, {0, 40, 30, 0}, {200, 320, 240, 300}}
	for i, face := range ff.Faces {
		if face.Box != wantFull[i] {
			t.Errorf("face %d box %v, want %v (full frame)", i, face.Box, wantFull[i])
		}
		b := trimmed[i]
		h, w := b.Height(), b.Width()
		if bw, bh := decodeSize(t, face.BodyJPEG); bw != 3*w || bh != 3*h {
			t.Errorf("face %d body crop %dx%d, want %dx%d", i, bw, bh, 3*w, 3*h)
		}
		if cw, ch := decodeSize(t, face.ClothJPEG); cw != 3*w || ch != h-int(0.2*float64(h)) {
			t.Errorf("face %d clothing crop %dx%d, want %dx%d", i, cw, ch, 3*w, h-int(0.2*float64(h)))
		}
		my, mx := int(0.25*float64(h)), int(0.25*float64(w))
		if fw, fh := decodeSize(t, face.FaceJPEG); fw != w+2*mx || fh != h+2*my {
			t.Errorf("face %d face crop %dx%d, want %dx%d", i, fw, fh, w+2*mx, h+2*my)
		}
		if want := (messages.Box{my, mx + w, my + h, mx}); face.FaceBox != want {
			t.Errorf("face %d box in its crop %v, want %v", i, face.FaceBox, want)
		}
		if face.Score != det.dets[i].Score {
			t.Errorf("face %d score %v", i, face.Score)
		}
	}
}

// A box wholly outside the frame is dropped (and does not count as a face).
func TestFrameDropsBoxesOutsideTheFrame(t *testing.T) {
	det := &fixed{dets: []detector.Detection{
		{Box: messages.Box{10, 50, 50, 10}, Score: 0.9},
		{Box: messages.Box{10, 400, 50, 330}, Score: 0.9}, // right of the frame
		{Box: messages.Box{-50, 50, -10, 10}, Score: 0.9}, // above it
		{Box: messages.Box{60, 100, 100, 60}, Score: 0.9},
	}}
	s := newStage(t, det)
	ff, err := s.Frame(flatFrame(t, 320, 240))
	if err != nil {
		t.Fatal(err)
	}
	if ff.Detected != 2 || len(ff.Faces) != 2 {
		t.Errorf("detected %d, published %d faces; want 2", ff.Detected, len(ff.Faces))
	}
}

// Bad input is a dead letter (stage.ErrPermanent), counted, and never reaches the detector;
// a failing detector is a retryable error.
func TestFrameBadInput(t *testing.T) {
	det := &fixed{}
	s := newStage(t, det)
	good := flatFrame(t, 64, 48)
	truncated := *good
	truncated.JPEG = good.JPEG[:len(good.JPEG)/2]
	notJPEG := *good
	notJPEG.JPEG = []byte("\x89PNG\r\n\x1a\n....")
	wrongSize := *good
	wrongSize.Width = 65
	zeroSize := *good
	zeroSize.Width, zeroSize.Height = 0, 0
	zeroJPEG := *good // a JPEG whose header declares 0×0
	zeroJPEG.JPEG = append([]byte(nil), good.JPEG...)
	for i := 0; i+8 < len(zeroJPEG.JPEG); i++ {
		if zeroJPEG.JPEG[i] == 0xFF && zeroJPEG.JPEG[i+1] == 0xC0 {
			copy(zeroJPEG.JPEG[i+5:i+9], []byte{0, 0, 0, 0})
			break
		}
	}
	noSource := *good
	noSource.Source = ""
	for name, f := range map[string]*messages.Frame{
		"truncated JPEG": &truncated, "not a JPEG": &notJPEG, "size disagrees": &wrongSize,
		"zero-size frame": &zeroSize, "JPEG declaring 0x0": &zeroJPEG, "no source": &noSource,
	} {
		ff, err := s.Frame(f)
		if !errors.Is(err, stage.ErrPermanent) {
			t.Errorf("%s: %v (%+v), want a permanent error", name, err, ff)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "detector: ") {
			t.Errorf("%s: error %q does not start with the package name", name, err)
		}
	}
	if n := s.Counts.Bad.Load(); n != 6 {
		t.Errorf("bad frames counted %d, want 6", n)
	}
	if s.Counts.Frames.Load() != 0 {
		t.Errorf("bad frames reached the detector")
	}
	det.err = errors.New("model busy")
	if _, err := s.Frame(good); err == nil || errors.Is(err, stage.ErrPermanent) {
		t.Errorf("detector failure: %v, want a retryable error", err)
	}
}

func TestProcessBatch(t *testing.T) {
	det := &fixed{dets: []detector.Detection{{Box: messages.Box{5, 25, 25, 5}, Score: 1}, {Box: messages.Box{5, 55, 25, 35}, Score: 1}}}
	s := newStage(t, det)
	good := flatFrame(t, 64, 48)
	bad := *good
	bad.JPEG = []byte{0xFF, 0xD8, 0xFF}
	eos := &messages.EndOfStream{Source: "test", Frames: 2, Params: messages.DefaultParams()}
	res := s.Process(context.Background(), []*stage.Input{
		{Subject: "frames.test", Message: good}, {Subject: "frames.test", Message: &bad}, {Subject: "frames.test", Message: eos},
		{Subject: "frames.test", Message: &messages.FaceVectors{Source: "test"}},
	})
	if len(res) != 4 {
		t.Fatalf("%d results", len(res))
	}
	if res[0].Err != nil || len(res[0].Outputs) != 1 || res[0].Outputs[0].Subject != "faces.test" || res[0].Outputs[0].MsgID != messages.MsgID("test", 3, "detector") {
		t.Errorf("good frame: %+v", res[0])
	}
	if !errors.Is(res[1].Err, stage.ErrPermanent) {
		t.Errorf("bad frame: %v", res[1].Err)
	}
	if res[2].Err != nil || len(res[2].Outputs) != 1 || res[2].Outputs[0].Message != eos {
		t.Errorf("end of stream not forwarded: %+v", res[2])
	}
	if !errors.Is(res[3].Err, stage.ErrPermanent) {
		t.Errorf("unexpected message type: %v", res[3].Err)
	}
}

func TestCloseTwice(t *testing.T) {
	det := &fixed{}
	s, err := detector.New(detector.Config{}, det)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if det.closed != 1 {
		t.Errorf("detector closed %d times", det.closed)
	}
	if _, err := s.Frame(flatFrame(t, 8, 8)); err == nil {
		t.Error("Frame after Close succeeded")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []detector.Config{{JPEGQuality: 101}, {JPEGQuality: -1}, {FaceMargin: -0.1}, {FaceMargin: 3}} {
		if _, err := detector.New(c, &fixed{}); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	if _, err := detector.New(detector.Config{}, nil); err == nil {
		t.Error("nil detector accepted")
	}
	for _, c := range []detector.UltraFaceConfig{
		{Path: "x.onnx", Threshold: 1.5}, {Path: "x.onnx", NMSIoU: -1}, {Path: "x.onnx", Width: -320, Height: 240}, {},
	} {
		if _, err := detector.NewUltraFace(c); err == nil {
			t.Errorf("UltraFace config %+v accepted", c)
		}
	}
}

func initORT(t testing.TB) string {
	t.Helper()
	dir := testenv.ModelsDir(t)
	if err := onnx.Init(filepath.Join(dir, "lib", "libonnxruntime.so")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openUltraFace(t testing.TB, cfg detector.UltraFaceConfig) *detector.UltraFace {
	t.Helper()
	dir := initORT(t)
	if cfg.Path == "" {
		cfg.Path = filepath.Join(dir, "face", "fr_detect.onnx")
	}
	if cfg.Threads == 0 {
		cfg.Threads = 1
	}
	u, err := detector.NewUltraFace(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}

// A missing or wrong model file is refused at start with an error naming the file and the
// expected input shape.
func TestUltraFaceRefusesMissingOrWrongModel(t *testing.T) {
	dir := initORT(t)
	missing := filepath.Join(t.TempDir(), "fr_detect.onnx")
	wrong := filepath.Join(dir, "face", "fr_landmark.onnx") // input [1,1,64,64]
	garbage := filepath.Join(t.TempDir(), "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{missing, wrong, garbage} {
		u, err := detector.NewUltraFace(detector.UltraFaceConfig{Path: path})
		if err == nil {
			u.Close()
			t.Errorf("%s accepted", path)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || !strings.Contains(msg, "[1 3 240 320]") || !strings.HasPrefix(msg, "detector: ") {
			t.Errorf("error %q should start with detector: and name %s and the shape [1 3 240 320]", msg, path)
		}
	}
	// The 640 model opened as a 320 one is refused too.
	if u, err := detector.NewUltraFace(detector.UltraFaceConfig{Path: filepath.Join(dir, "face", "version-RFB-640.onnx")}); err == nil {
		u.Close()
		t.Error("RFB-640 accepted with a 320×240 input")
	}
}

func TestUltraFaceCloseTwice(t *testing.T) {
	u := openUltraFace(t, detector.UltraFaceConfig{})
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	img := gocv.NewMatWithSize(240, 320, gocv.MatTypeCV8UC3)
	defer img.Close()
	if _, err := u.Detect(img); err == nil {
		t.Error("Detect after Close succeeded")
	}
}

// Real group photos through the whole stage: every face found, crops cut.
func TestUltraFaceOnGroupPhotos(t *testing.T) {
	s := newStage(t, openUltraFace(t, detector.UltraFaceConfig{}))
	for _, c := range []struct {
		file  string
		faces int
	}{{"images/two_people.jpg", 2}, {"images/bbt1.jpg", 4}, {"images/obama.jpg", 1}} {
		data, err := os.ReadFile(testenv.Shared(t, c.file))
		if err != nil {
			t.Fatal(err)
		}
		img, err := vision.DecodeJPEG(data, messages.MaxFrameSide)
		if err != nil {
			t.Fatal(err)
		}
		f := frameOf(t, img)
		img.Close()
		f.Params.MinFaces = 1
		ff, err := s.Frame(f)
		if err != nil {
			t.Fatal(err)
		}
		if ff.Detected != c.faces || !ff.Accepted {
			t.Errorf("%s: detected %d faces (accepted %v), want %d", c.file, ff.Detected, ff.Accepted, c.faces)
		}
		for i := 1; i < len(ff.Faces); i++ {
			if ff.Faces[i].Score > ff.Faces[i-1].Score {
				t.Errorf("%s: faces not in score order", c.file)
			}
		}
	}
}

// Quality gate: recall and precision at IoU ≥ 0.4 on dlib's hand-annotated photos.
func TestUltraFaceQualityGate(t *testing.T) {
	u := openUltraFace(t, detector.UltraFaceConfig{})
	s := evaluate(t, u, 0.4)
	t.Logf("UltraFace-320 (fr_detect.onnx), threshold %.2f: %d annotated faces, %d found, %d matched: recall %.3f, precision %.3f",
		u.Config().Threshold, s.truth, s.found, s.matched, s.recall(), s.precision())
	if s.truth < 40 {
		t.Fatalf("only %d annotated faces read", s.truth)
	}
	if s.recall() < 0.9 || s.precision() < 0.9 {
		t.Errorf("recall %.3f, precision %.3f; the gate is 0.9 each", s.recall(), s.precision())
	}
}

// The original's detector (dlib HOG, upsampled once) on the same annotated photos. It is not
// the default; it is held to the same gate.
func TestDlibHOGQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("HOG on upsampled photos takes a few seconds")
	}
	d, err := dlibface.NewDetector(dlibface.DetectorConfig{Upsample: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := evaluate(t, d, 0.4)
	t.Logf("dlib HOG (upsample 1): %d annotated faces, %d found, %d matched at IoU ≥ 0.4: recall %.3f, precision %.3f",
		s.truth, s.found, s.matched, s.recall(), s.precision())
	if s.recall() < 0.9 || s.precision() < 0.9 {
		t.Errorf("dlib HOG recall %.3f, precision %.3f", s.recall(), s.precision())
	}
}

// truthFrames reads a labelled video's truth file: per frame, the face boxes.
func truthFrames(t testing.TB, path string) map[int][]messages.Box {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		BoxOrder string `json:"box_order"`
		Frames   []struct {
			Frame  int `json:"frame"`
			People []struct {
				Box messages.Box `json:"box"`
			} `json:"people"`
		} `json:"frames"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.BoxOrder != "top,right,bottom,left" {
		t.Fatalf("%s: box order %q", path, doc.BoxOrder)
	}
	out := map[int][]messages.Box{}
	for _, f := range doc.Frames {
		for _, p := range f.People {
			out[f.Frame] = append(out[f.Frame], p.Box)
		}
	}
	return out
}

// The default detector on the labelled videos: recall and precision against the truth boxes
// (cast_public: 960×540, faces about 90 px; cast_hard_public: faces 36–70 px, blurred, dimmed,
// partly covered — UltraFace-320 misses most of those; the 640 model finds more).
func TestUltraFaceOnLabelledVideos(t *testing.T) {
	if testing.Short() {
		t.Skip("reads two videos")
	}
	dir := initORT(t)
	u320 := openUltraFace(t, detector.UltraFaceConfig{})
	u640 := openUltraFace(t, detector.UltraFaceConfig{Path: filepath.Join(dir, "face", "version-RFB-640.onnx"), Width: 640, Height: 480, RGB: true})
	for _, video := range []string{"video/cast_public.mp4", "video/cast_hard_public.mp4"} {
		scores := scoreVideo(t, video, 4, u320, u640)
		s320, s640 := scores[0], scores[1]
		t.Logf("%s (every 4th frame, %d faces), IoU ≥ 0.4: UltraFace-320 recall %.3f precision %.3f; UltraFace-640 recall %.3f precision %.3f",
			video, s320.truth, s320.recall(), s320.precision(), s640.recall(), s640.precision())
		if video == "video/cast_public.mp4" && (s320.recall() < 0.9 || s320.precision() < 0.9) {
			t.Errorf("%s: UltraFace-320 recall %.3f precision %.3f", video, s320.recall(), s320.precision())
		}
	}
}
