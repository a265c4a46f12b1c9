package embedder_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/embedder"
	"github.com/personcluster/personcluster/stages/embedder/internal/castcrops"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// BenchmarkEmbedder compares onnxruntime's bare batched inference (Model.Infer on a prepared
// blob) with the stage's Process on FrameFaces messages of real clothing crops (decode,
// preprocess, infer, split), one thread, batch 1, 8 and 32; both report img/s. The table with
// 1 and 2 threads, ratios and peak RSS: `make bench-embedder`.
//
//	go test -run '^$' -bench Embedder -benchtime 2s ./stages/embedder/
func BenchmarkEmbedder(b *testing.B) {
	video := testenv.Shared(b, "video/cast_public.mp4")
	crops, err := castcrops.Load(video, video+".truth.json", 4, 90)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1, 8, 32} {
		m := openModel(b, embedder.MobileNetV1, onnx.Options{Threads: 1})
		s := newStage(b, m, embedder.Config{MaxBatch: size})
		var blob []float32
		for i := 0; i < size; i++ {
			img, err := vision.DecodeJPEG(crops[i%len(crops)].JPEG, messages.MaxFrameSide)
			if err != nil {
				b.Fatal(err)
			}
			blob, err = m.AppendInput(blob, img)
			img.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("bare/batch=%d", size), func(b *testing.B) {
			for b.Loop() {
				if _, err := m.Infer(blob, size); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "img/s")
		})
		b.Run(fmt.Sprintf("stage/batch=%d", size), func(b *testing.B) {
			k := 0
			for b.Loop() {
				for _, r := range s.Process(context.Background(), benchBatch(crops, size, k)) {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
				k += size
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "img/s")
		})
	}
}

// benchBatch holds exactly n crops in messages of up to 4 faces, from crop k on.
func benchBatch(crops []castcrops.Crop, n, k int) []*stage.Input {
	var ms []messages.Message
	for left := n; left > 0; {
		c := min(4, left)
		var jpegs [][]byte
		for i := 0; i < c; i++ {
			jpegs = append(jpegs, crops[(k+i)%len(crops)].JPEG)
		}
		ms = append(ms, frameFaces(int64(k), jpegs...))
		k += c
		left -= c
	}
	return inputs(ms...)
}
