package stage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// A panic in Process is that input's error: the input is dead-lettered with the panic as its
// reason, the other inputs of its batch are processed, and the stage keeps running.
func TestRunRecoversPanicAsDeadLetter(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	proc := &scripted{calls: map[int64]int{}, behave: func(index int64, call int) error {
		if index == 1 {
			var m map[string]int
			m["boom"]++ // a bug: assignment to a nil map
		}
		return nil
	}}
	for i := int64(0); i < 3; i++ {
		publish(t, env.JS, "frames.src1", encode(t, frame(i)), fmt.Sprintf("f%d", i))
	}
	cfg := testConfig(env)
	cfg.Concurrency, cfg.BatchSize = 1, 4
	stop := stagetest.Run(t, env.JS, cfg, proc)
	dead := stagetest.Collect(t, env.JS, stage.StreamDead, "dead.detector.src1", 1)
	faces := stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 2)
	// The stage still serves after the panic.
	publish(t, env.JS, "frames.src1", encode(t, frame(3)), "f3")
	stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 3)
	stop()
	dl, err := messages.DecodeAs[*messages.DeadLetter](dead[0].Data())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dl.Reason, "panicked") || !strings.Contains(dl.Reason, "nil map") || dl.Deliveries != 1 || !dl.EndsSource() {
		t.Errorf("dead letter of the panicking input: %+v", dl)
	}
	if got, err := messages.DecodeAs[*messages.Frame](dl.Data); err != nil || got.Index != 1 {
		t.Errorf("the dead letter holds %+v, %v; want frame 1", got, err)
	}
	if len(dead) != 1 || len(faces) != 2 {
		t.Errorf("%d dead letters and %d outputs, want 1 and 2", len(dead), len(faces))
	}
}

// fillStream fills a (discard-new) stream through subject to its last byte and returns the
// server's refusal of the last message that did not fit.
func fillStream(t *testing.T, js jetstream.JetStream, subject string) error {
	t.Helper()
	var refused error
	for _, size := range []int{1024, 64, 1} {
		for i := 0; ; i++ {
			if i == 10000 {
				t.Fatalf("%s never filled up", subject)
			}
			if _, err := js.Publish(context.Background(), subject, make([]byte, size)); err != nil {
				refused = err
				break
			}
		}
	}
	return refused
}

// IsStreamFull says yes to what nats-server answers for a full stream, and no to its other
// "store failed" answers (same error code, 10077): a message too large for the file store is
// refused at once, not retried as backpressure forever.
func TestIsStreamFullMatchesTheServer(t *testing.T) {
	env := stagetest.StartServer(t, broker.ServerConfig{MaxPayload: 40 << 20}, stage.Topology{MaxBytes: 16 << 10})
	full := fillStream(t, env.JS, "faces.filler")
	if !stage.IsStreamFull(full) {
		t.Errorf("IsStreamFull(%v) = false for a full stream", full)
	}

	// 33 MiB is over the file store's largest record (32 MiB): the server refuses it with code
	// 10077 too, but the stream is not full.
	_, tooBig := env.JS.Publish(context.Background(), "results.big", make([]byte, 33<<20))
	var apiErr *jetstream.APIError
	if !errors.As(tooBig, &apiErr) || apiErr.ErrorCode != 10077 {
		t.Fatalf("publishing 33 MiB: %v; the test expects the server's store-failed error 10077", tooBig)
	}
	if stage.IsStreamFull(tooBig) {
		t.Errorf("IsStreamFull(%v) = true: a message too large is not a full stream", tooBig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub := stage.NewPublisher(env.JS, nil)
	err := pub.Publish(ctx, []stage.Output{{Subject: "results.big", Message: &messages.DeadLetter{Stage: "x", Source: "big", Data: make([]byte, 33<<20)}}})
	if err == nil || ctx.Err() != nil {
		t.Errorf("Publish of a message too large for the store: %v (context: %v); want its error at once", err, ctx.Err())
	}
}

// An output held back by a full stream keeps its input alive (InProgress) while it waits for
// room, so the input is not redelivered after AckWait and processed twice.
func TestRunKeepsInputAliveWhileWaitingForRoom(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{MaxBytes: 16 << 10, AckWait: time.Second})
	fillStream(t, env.JS, "faces.filler")
	proc := &scripted{calls: map[int64]int{}, behave: func(int64, int) error { return nil }}
	cfg := testConfig(env) // two workers: a redelivered input would be taken by the other
	stop := stagetest.Run(t, env.JS, cfg, proc)
	publish(t, env.JS, "frames.src1", encode(t, frame(0)), "")
	time.Sleep(2500 * time.Millisecond) // over twice AckWait
	faces, err := env.JS.Stream(context.Background(), stage.StreamFaces)
	if err != nil {
		t.Fatal(err)
	}
	if err := faces.Purge(context.Background(), jetstream.WithPurgeSubject("faces.filler")); err != nil {
		t.Fatal(err)
	}
	stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 1)
	stop()
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.calls[0] != 1 {
		t.Errorf("the input was processed %d times while its output waited for room; want once", proc.calls[0])
	}
}

// A stream that stays full does not hold an input for ever: after RoomWait the publish fails,
// the input is retried, and after MaxDeliver attempts it is dead-lettered naming the full stream.
func TestRunRoomWaitIsBounded(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{MaxBytes: 16 << 10})
	fillStream(t, env.JS, "faces.filler")
	proc := &scripted{calls: map[int64]int{}, behave: func(int64, int) error { return nil }}
	cfg := testConfig(env)
	cfg.RoomWait, cfg.MaxDeliver = 200*time.Millisecond, 2
	stop := stagetest.Run(t, env.JS, cfg, proc)
	publish(t, env.JS, "frames.src1", encode(t, frame(0)), "")
	dead := stagetest.Collect(t, env.JS, stage.StreamDead, "dead.detector.src1", 1)
	stop()
	dl, err := messages.DecodeAs[*messages.DeadLetter](dead[0].Data())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dl.Reason, "stream full") || !strings.Contains(dl.Reason, "faces.src1") || dl.Deliveries != 2 {
		t.Errorf("dead letter after a full stream: %q after %d deliveries", dl.Reason, dl.Deliveries)
	}
}

// Run owns its processor: it closes it also when it cannot start.
func TestRunClosesProcessorWhenItCannotStart(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	proc := &scripted{calls: map[int64]int{}, behave: func(int64, int) error { return nil }}
	cfg := testConfig(env)
	cfg.Consumer = "nobody"
	if err := stage.Run(context.Background(), env.JS, cfg, proc); err == nil || !strings.Contains(err.Error(), "opening consumer") {
		t.Fatalf("Run with a missing consumer: %v", err)
	}
	if proc.closed.Load() != 1 {
		t.Errorf("Close called %d times, want once", proc.closed.Load())
	}
	// Defaults fill zero values only: a negative one is still refused (and proc closed again,
	// safely).
	cfg = testConfig(env)
	cfg.Concurrency = -1
	if err := stage.Run(context.Background(), env.JS, cfg, proc); err == nil || !strings.Contains(err.Error(), "must not be negative") {
		t.Fatalf("Run with concurrency -1: %v", err)
	}
}
