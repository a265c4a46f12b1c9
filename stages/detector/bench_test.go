package detector_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/vision"
)

// benchThreads is the onnxruntime thread count of the benchmarks: PERSONCLUSTER_BENCH_THREADS,
// or 1 (the binary's default --threads).
func benchThreads() int {
	if n, err := strconv.Atoi(os.Getenv("PERSONCLUSTER_BENCH_THREADS")); err == nil && n > 0 {
		return n
	}
	return 1
}

// castFrame is frame 30 of the labelled test video (960×540, three people) as the reader
// publishes it (JPEG quality 90).
func castFrame(tb testing.TB) *messages.Frame {
	tb.Helper()
	v, err := vision.OpenVideo(testenv.Shared(tb, "video/cast_public.mp4"))
	if err != nil {
		tb.Fatal(err)
	}
	defer v.Close()
	m := gocv.NewMat()
	defer m.Close()
	for i := 0; i <= 30; i++ {
		if !v.Read(&m) {
			tb.Fatal("cast_public.mp4: too short")
		}
	}
	return frameOf(tb, m)
}

// BenchmarkDetector compares the stage's Frame() (JPEG decode, input, inference, NMS, crops and
// their JPEGs) with the bare inference of fr_detect.onnx on the same prepared input, at the same
// thread count, alternating the two in one run. Metrics: frames/s of each and their ratio,
// and where the stage's time goes.
func BenchmarkDetector(b *testing.B) {
	threads := benchThreads()
	u := openUltraFace(b, detector.UltraFaceConfig{Threads: threads})
	s := newStage(b, keepOpen{u})
	f := castFrame(b)
	img, err := vision.DecodeJPEG(f.JPEG, messages.MaxFrameSide)
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	blob, err := u.Prepare(nil, img)
	if err != nil {
		b.Fatal(err)
	}
	ff, err := s.Frame(f)
	if err != nil || !ff.Accepted {
		b.Fatalf("%+v, %v", ff, err)
	}
	var bare, stage, dec, prep, infer, post time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, _, err := u.Infer(blob); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := s.Frame(f); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		bare += t1.Sub(t0)
		stage += t2.Sub(t1)
		// The stage's parts, timed separately.
		m, _ := vision.DecodeJPEG(f.JPEG, messages.MaxFrameSide)
		t3 := time.Now()
		blob, _ = u.Prepare(blob, m)
		t4 := time.Now()
		scores, boxes, _ := u.Infer(blob)
		t5 := time.Now()
		detector.Decode(scores, boxes, m.Cols(), m.Rows(), u.Config())
		t6 := time.Now()
		m.Close()
		dec += t3.Sub(t2)
		prep += t4.Sub(t3)
		infer += t5.Sub(t4)
		post += t6.Sub(t5)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(n/stage.Seconds(), "frames/s")
	b.ReportMetric(n/bare.Seconds(), "bare-frames/s")
	b.ReportMetric(bare.Seconds()/stage.Seconds(), "ratio")
	ms := func(d time.Duration) float64 { return d.Seconds() * 1000 / n }
	b.ReportMetric(ms(dec), "decode-ms")
	b.ReportMetric(ms(prep), "input-ms")
	b.ReportMetric(ms(infer), "infer-ms")
	b.ReportMetric(ms(post), "nms-ms")
	b.ReportMetric(ms(stage)-ms(dec)-ms(prep)-ms(infer)-ms(post), "crops-ms")
	b.ReportMetric(float64(len(ff.Faces)), "faces")
	b.Logf("threads %d, %dx%d frame, %d faces: stage %.1f frames/s, bare ORT %.1f frames/s, ratio %.2f",
		threads, f.Width, f.Height, len(ff.Faces), n/stage.Seconds(), n/bare.Seconds(), bare.Seconds()/stage.Seconds())
}

// keepOpen keeps a test's UltraFace open when a stage closes.
type keepOpen struct{ *detector.UltraFace }

func (keepOpen) Close() error { return nil }
