package dlibface_test

import (
	"path/filepath"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/dlibface"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/vision"
)

func castFrame(b *testing.B) gocv.Mat {
	b.Helper()
	v, err := vision.OpenVideo(testenv.Shared(b, "video/cast_public.mp4"))
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	m := gocv.NewMat()
	for i := 0; i <= 30; i++ {
		if !v.Read(&m) {
			b.Fatal("cast_public.mp4: too short")
		}
	}
	return m
}

// BenchmarkHOG is the original's detector (upsample 1) on a 960×540 frame.
func BenchmarkHOG(b *testing.B) {
	m := castFrame(b)
	defer m.Close()
	d := newDetector(b, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Detect(m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkDescriptor is the original's 68-landmark alignment and 128-d ResNet, per face.
func BenchmarkDescriptor(b *testing.B) {
	m := castFrame(b)
	defer m.Close()
	dets, err := newDetector(b, 1).Detect(m)
	if err != nil || len(dets) == 0 {
		b.Fatalf("%v, %v", dets, err)
	}
	enc := newEncoder(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := enc.Encode(m, dets[i%len(dets)].Box); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "faces/s")
}

// BenchmarkChips is the dlib-resnet backend's work before its network, per face: 68 landmarks
// and the aligned 150×150 chip, on the detector stage's margin crop of a face.
func BenchmarkChips(b *testing.B) {
	m := castFrame(b)
	defer m.Close()
	dets, err := newDetector(b, 1).Detect(m)
	if err != nil || len(dets) == 0 {
		b.Fatalf("%v, %v", dets, err)
	}
	box := dets[0].Box
	r := vision.FaceWithMargin(box, 0.5)
	crop, err := vision.Crop(m, r)
	if err != nil {
		b.Fatal(err)
	}
	defer crop.Close()
	local := messages.Box{box.Top() - r.Y1, box.Right() - r.X1, box.Bottom() - r.Y1, box.Left() - r.X1}
	sp, _ := dlibface.EncoderConfig{Dir: filepath.Join(testenv.ModelsDir(b), "dlib")}.Paths()
	lm, err := dlibface.NewLandmarker(sp, 0.25)
	if err != nil {
		b.Fatal(err)
	}
	defer lm.Close()
	b.Logf("crop %dx%d, face %dx%d", crop.Cols(), crop.Rows(), box.Width(), box.Height())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := lm.Chips(crop, []messages.Box{local}, false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "faces/s")
}
