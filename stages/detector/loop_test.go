package detector_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// Through the real stage loop on JetStream: bad frames become dead letters on their first
// delivery (never redelivered), good frames and the end of stream go through.
func TestStageLoopDeadLettersBadFrames(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	det := &fixed{dets: []detector.Detection{{Box: messages.Box{5, 25, 25, 5}, Score: 1}, {Box: messages.Box{5, 55, 25, 35}, Score: 1}}}
	proc, err := detector.New(detector.Config{Gate: detector.GateConfig{Off: true}}, det) // flat frames: the gate would refuse them as blurred
	if err != nil {
		t.Fatal(err)
	}
	good := flatFrame(t, 64, 48)
	good.Source = "src1"
	corrupt := *good
	corrupt.Seq, corrupt.Index = 1, 1
	corrupt.JPEG = append([]byte(nil), good.JPEG[:len(good.JPEG)/2]...)
	wrongSize := *good
	wrongSize.Seq, wrongSize.Index = 2, 2
	wrongSize.Width = 80
	eos := &messages.EndOfStream{Source: "src1", Frames: 3, Params: messages.DefaultParams()}
	for i, m := range []messages.Message{good, &corrupt, &wrongSize, eos} {
		stagetest.Publish(t, env.JS, "frames.src1", m, string(rune('a'+i)))
	}
	stop := stagetest.Run(t, env.JS, stage.Config{Name: detector.StageName, Stream: stage.StreamFrames, Consumer: stage.ConsumerDetector,
		BatchWait: 100 * time.Millisecond, RetryDelay: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, proc)
	out := stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 4)
	dead := stagetest.Collect(t, env.JS, stage.StreamDead, "dead.detector.src1", 2)
	stop()
	if det.closed != 1 {
		t.Errorf("detector closed %d times", det.closed)
	}
	// The good frame, a "dead_letter" placeholder for each bad one (so downstream frame counts
	// stay complete), and the end of stream.
	placeholders := 0
	for _, m := range out {
		if ff, err := messages.DecodeAs[*messages.FrameFaces](m.Data()); err == nil {
			switch {
			case ff.Accepted && ff.Index == 7 && len(ff.Faces) == 2:
			case !ff.Accepted && ff.SkipReason == "dead_letter" && len(ff.Faces) == 0:
				placeholders++
			default:
				t.Errorf("unexpected output %+v", ff)
			}
		}
	}
	if len(out) != 4 || placeholders != 2 {
		t.Errorf("%d outputs with %d dead-letter placeholders, want the good frame, 2 placeholders and the end of stream", len(out), placeholders)
	}
	for _, m := range dead {
		dl, err := messages.DecodeAs[*messages.DeadLetter](m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if dl.Deliveries != 1 || !(strings.Contains(dl.Reason, "corrupt or truncated") || strings.Contains(dl.Reason, "message says 80x48")) {
			t.Errorf("dead letter after %d deliveries: %s", dl.Deliveries, dl.Reason)
		}
	}
	if proc.Counts.Bad.Load() != 2 || proc.Counts.Accepted.Load() != 1 {
		t.Errorf("bad %d, accepted %d", proc.Counts.Bad.Load(), proc.Counts.Accepted.Load())
	}
}
