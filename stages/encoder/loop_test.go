package encoder_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// Through the real stage loop on JetStream, batched: bad frames become dead letters on their
// first delivery, the good ones get their vectors.
func TestStageLoopDeadLettersBadFrames(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	f := &fake{}
	proc := encoder.New(f)
	undecodable := frameFaces(t, 1, 1)
	undecodable.Faces[0].FaceJPEG = []byte("garbage")
	outside := frameFaces(t, 2, 1)
	outside.Faces[0].FaceBox = messages.Box{10, 60, 30, 20} // the crop is 40 wide
	for _, ff := range []*messages.FrameFaces{frameFaces(t, 0, 1, 2), undecodable, outside, frameFaces(t, 3, 4)} {
		ff.Source = "src1"
		stagetest.Publish(t, env.JS, "faces.src1", ff, messages.MsgID("src1", ff.Seq, "test"))
	}
	stop := stagetest.Run(t, env.JS, stage.Config{Name: encoder.StageName, Stream: stage.StreamFaces, Consumer: stage.ConsumerEncoder,
		BatchSize: 8, BatchWait: 300 * time.Millisecond, RetryDelay: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, proc)
	out := stagetest.Collect(t, env.JS, stage.StreamVectors, "facevec.src1", 4)
	dead := stagetest.Collect(t, env.JS, stage.StreamDead, "dead.encoder.src1", 2)
	stop()
	vectors, placeholders := 0, 0
	for _, m := range out {
		fv, err := messages.DecodeAs[*messages.FaceVectors](m.Data())
		if err != nil {
			t.Fatal(err)
		}
		switch fv.Model {
		case "fake":
			vectors += len(fv.Vectors)
		case "dead_letter":
			placeholders++
		}
	}
	if len(out) != 4 || vectors != 3 || placeholders != 2 {
		t.Errorf("%d outputs, %d vectors, %d placeholders; want 4, 3, 2", len(out), vectors, placeholders)
	}
	for _, m := range dead {
		dl, err := messages.DecodeAs[*messages.DeadLetter](m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if dl.Deliveries != 1 || !(strings.Contains(dl.Reason, "not a JPEG") || strings.Contains(dl.Reason, "outside its 40x40 crop")) {
			t.Errorf("dead letter after %d deliveries: %s", dl.Deliveries, dl.Reason)
		}
	}
	if f.closed != 1 {
		t.Errorf("encoder closed %d times", f.closed)
	}
}
