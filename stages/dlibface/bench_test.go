package dlibface_test

import (
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
