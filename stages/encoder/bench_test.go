package encoder

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// benchFaces runs the detector stage over frames of the labelled test video and returns the
// accepted FrameFaces (what the encoder stage consumes).
func benchFaces(b *testing.B, threads int) []*messages.FrameFaces {
	b.Helper()
	dir := testenv.ModelsDir(b)
	if err := onnx.Init(filepath.Join(dir, "lib", "libonnxruntime.so")); err != nil {
		b.Fatal(err)
	}
	u, err := detector.NewUltraFace(detector.UltraFaceConfig{Path: filepath.Join(dir, "face", "fr_detect.onnx"), Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	ds, err := detector.New(detector.Config{}, u)
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close(context.Background())
	v, err := vision.OpenVideo(testenv.Shared(b, "video/cast_public.mp4"))
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	m := gocv.NewMat()
	defer m.Close()
	var out []*messages.FrameFaces
	for i := 0; v.Read(&m) && len(out) < 8; i++ {
		if i%10 != 0 {
			continue
		}
		data, err := vision.EncodeJPEG(m, 90)
		if err != nil {
			b.Fatal(err)
		}
		ff, err := ds.Frame(&messages.Frame{Source: "bench", Seq: int64(i), Index: int64(i), Width: m.Cols(), Height: m.Rows(), Scale: 1,
			JPEG: data, Params: messages.DefaultParams()})
		if err != nil {
			b.Fatal(err)
		}
		if ff.Accepted {
			out = append(out, ff)
		}
	}
	return out
}

// BenchmarkEncoder compares the encoder stage (a pulled batch of 8 accepted frames: crop
// decoding, landmarks, alignment, descriptors) with the bare inference of fr_landmark plus
// fr_feature on prepared inputs, per face, at the same thread count, alternating the two in
// one run. Metrics: faces/s of each and their ratio.
func BenchmarkEncoder(b *testing.B) {
	threads := 1
	if n, err := strconv.Atoi(os.Getenv("PERSONCLUSTER_BENCH_THREADS")); err == nil && n > 0 {
		threads = n
	}
	frames := benchFaces(b, threads)
	dir := testenv.ModelsDir(b)
	enc, err := NewONNX(ONNXConfig{LandmarkPath: filepath.Join(dir, "face", "fr_landmark.onnx"),
		FeaturePath: filepath.Join(dir, "face", "fr_feature.onnx"), Threads: threads})
	if err != nil {
		b.Fatal(err)
	}
	s := New(enc)
	defer s.Close(context.Background())
	var batch []*stage.Input
	faces := 0
	for _, ff := range frames {
		batch = append(batch, &stage.Input{Subject: "faces.bench", Message: ff})
		faces += len(ff.Faces)
	}
	lmIn := make([]float32, landmarkSide*landmarkSide)
	ftIn := make([]float32, 3*alignedSide*alignedSide)
	lmShape, ftShape := []int64{1, 1, landmarkSide, landmarkSide}, []int64{1, 3, alignedSide, alignedSide}
	var bare, staged time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for j := 0; j < faces; j++ {
			if _, _, err := enc.landmark.Run(lmShape, lmIn); err != nil {
				b.Fatal(err)
			}
			if _, _, err := enc.feature.Run(ftShape, ftIn); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for k, r := range s.Process(context.Background(), batch) {
			if r.Err != nil || len(r.Outputs) != 1 {
				b.Fatalf("frame %d: %v", k, r.Err)
			}
		}
		t2 := time.Now()
		bare += t1.Sub(t0)
		staged += t2.Sub(t1)
	}
	b.StopTimer()
	n := float64(b.N * faces)
	b.ReportMetric(n/staged.Seconds(), "faces/s")
	b.ReportMetric(n/bare.Seconds(), "bare-faces/s")
	b.ReportMetric(bare.Seconds()/staged.Seconds(), "ratio")
	b.Logf("threads %d, %d frames, %d faces a batch: stage %.1f faces/s, bare landmark+feature %.1f faces/s, ratio %.2f",
		threads, len(frames), faces, n/staged.Seconds(), n/bare.Seconds(), bare.Seconds()/staged.Seconds())
}
