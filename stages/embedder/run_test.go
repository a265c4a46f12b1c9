package embedder_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/embedder"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// Through the real stage loop on an in-process JetStream server: two workers share the
// batcher, every good frame gets its vectors, the corrupt crop's frame is dead-lettered (with
// an empty ClothVectors so the clusterer's count completes), end of stream is forwarded, and
// inputs are acked only after their outputs are stored.
func TestStageRunOnJetStream(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	m, err := embedder.OpenModel(embedder.MobileNetV1, modelsDir(t), onnx.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := embedder.NewWithConfig(m, embedder.Config{MaxBatch: 8, MaxWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const frames = 8
	for i := int64(0); i < frames; i++ {
		var ff *messages.FrameFaces
		if i == 5 {
			ff = frameFaces(i, testJPEG(t, 90, 40, int(i)), []byte("\xFF\xD8 broken"))
		} else {
			ff = frameFaces(i, testJPEG(t, 90, 40, int(i)), testJPEG(t, 120, 50, int(i)+100), testJPEG(t, 60, 30, int(i)+200))
		}
		stagetest.Publish(t, env.JS, "faces.src1", ff, messages.MsgID("src1", ff.Seq, "test"))
	}
	stagetest.Publish(t, env.JS, "faces.src1", &messages.EndOfStream{Source: "src1", Frames: frames, Reason: "end", Params: messages.DefaultParams()}, "eos")

	cfg := stage.Config{Name: embedder.StageName, Stream: stage.StreamFaces, Consumer: stage.ConsumerEmbedder, Concurrency: 2,
		BatchSize: 4, BatchWait: 50 * time.Millisecond, MaxDeliver: 2, RetryDelay: 20 * time.Millisecond}
	stop := stagetest.Run(t, env.JS, cfg, s)

	vecs := stagetest.Collect(t, env.JS, stage.StreamVectors, "clothvec.src1", frames+1)
	dead := stagetest.Collect(t, env.JS, stage.StreamDead, "dead.embedder.src1", 1)
	// Every input acked or terminated: nothing left pending on the consumer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := env.JS.Consumer(ctx, stage.StreamFaces, stage.ConsumerEmbedder)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer still has %d pending, %d unacked", info.NumPending, info.NumAckPending)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	seen := map[int64]bool{}
	eos := 0
	for _, msg := range vecs {
		decoded, err := messages.Decode(msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		switch v := decoded.(type) {
		case *messages.EndOfStream:
			eos++
		case *messages.ClothVectors:
			if seen[v.Index] {
				t.Errorf("frame %d twice", v.Index)
			}
			seen[v.Index] = true
			want := 3
			if v.Index == 5 {
				want = 0
			}
			if len(v.Vectors) != want {
				t.Errorf("frame %d: %d vectors, want %d (model %s)", v.Index, len(v.Vectors), want, v.Model)
			}
			for _, vec := range v.Vectors {
				if len(vec) != 512 {
					t.Errorf("frame %d: %d-d vector", v.Index, len(vec))
				}
			}
		}
	}
	if len(seen) != frames || eos != 1 {
		t.Errorf("outputs for %d frames and %d end-of-stream messages", len(seen), eos)
	}
	dl, err := messages.DecodeAs[*messages.DeadLetter](dead[0].Data())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dl.Reason, "frame 5 face 1 of src1") || dl.Deliveries != 1 {
		t.Errorf("dead letter: %q after %d deliveries", dl.Reason, dl.Deliveries)
	}
	st := s.Stats()
	t.Logf("%d crops in %d inferences", st.Images, st.Inferences)
	if st.Images != (frames-1)*3 {
		t.Errorf("%d crops inferred, want %d", st.Images, (frames-1)*3)
	}
}
