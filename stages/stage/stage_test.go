package stage_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// scripted is a processor whose behaviour per frame index is set by the test.
type scripted struct {
	mu       sync.Mutex
	calls    map[int64]int
	behave   func(index int64, call int) error
	closed   atomic.Int32
	batches  atomic.Int32
	maxBatch atomic.Int32
}

func (p *scripted) Process(ctx context.Context, batch []*stage.Input) []stage.Result {
	p.batches.Add(1)
	if n := int32(len(batch)); n > p.maxBatch.Load() {
		p.maxBatch.Store(n)
	}
	out := make([]stage.Result, len(batch))
	for i, in := range batch {
		f, ok := in.Message.(*messages.Frame)
		if !ok {
			out[i].Err = stage.Permanent(fmt.Errorf("unexpected %T", in.Message))
			continue
		}
		p.mu.Lock()
		p.calls[f.Index]++
		call := p.calls[f.Index]
		p.mu.Unlock()
		if err := p.behave(f.Index, call); err != nil {
			out[i].Err = err
			continue
		}
		out[i].Outputs = []stage.Output{{
			Subject: messages.Subject(messages.SubjectFaces, f.Source),
			MsgID:   messages.MsgID(f.Source, f.Seq, "test"),
			Message: &messages.FrameFaces{Source: f.Source, Seq: f.Seq, Index: f.Index, Width: f.Width, Height: f.Height, Params: f.Params},
		}}
	}
	return out
}

func (p *scripted) Close(context.Context) error { p.closed.Add(1); return nil }

func frame(index int64) *messages.Frame {
	return &messages.Frame{Source: "src1", Seq: index, Index: index, Width: 2, Height: 2, Scale: 1, JPEG: []byte{1}, Params: messages.DefaultParams()}
}

func publish(t *testing.T, js jetstream.JetStream, subject string, data []byte, id string) {
	t.Helper()
	opts := []jetstream.PublishOpt{}
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	if _, err := js.Publish(context.Background(), subject, data, opts...); err != nil {
		t.Fatal(err)
	}
}

func encode(t *testing.T, m messages.Message) []byte {
	t.Helper()
	data, err := messages.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func testConfig(env *stagetest.Env) stage.Config {
	return stage.Config{Name: "detector", Stream: stage.StreamFrames, Consumer: stage.ConsumerDetector,
		MaxDeliver: 3, RetryDelay: 20 * time.Millisecond, BatchWait: 100 * time.Millisecond, Concurrency: 2, BatchSize: 4}
}

func TestRunRetriesDeadLettersAndDeduplicates(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	proc := &scripted{calls: map[int64]int{}, behave: func(index int64, call int) error {
		switch {
		case index == 1:
			return stage.Permanent(errors.New("corrupt JPEG"))
		case index == 2 && call <= 2:
			return errors.New("model busy")
		case index == 3:
			return errors.New("always failing")
		}
		return nil
	}}
	for i := int64(0); i < 5; i++ {
		publish(t, env.JS, "frames.src1", encode(t, frame(i)), fmt.Sprintf("f%d", i))
	}
	// The same frame again under another id: processed twice, stored once downstream.
	publish(t, env.JS, "frames.src1", encode(t, frame(0)), "f0-again")
	publish(t, env.JS, "frames.src1", []byte("\x93garbage"), "bad")

	reg := stage.NewRegistry()
	cfg := testConfig(env)
	cfg.Metrics = reg
	stop := stagetest.Run(t, env.JS, cfg, proc)

	faces := stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 3)
	dead := stagetest.Collect(t, env.JS, stage.StreamDead, "dead.detector.>", 3)
	stop()
	if proc.closed.Load() != 1 {
		t.Errorf("Close called %d times", proc.closed.Load())
	}
	seen := map[int64]bool{}
	for _, m := range faces {
		ff, err := messages.DecodeAs[*messages.FrameFaces](m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if seen[ff.Index] {
			t.Errorf("frame %d stored twice downstream", ff.Index)
		}
		seen[ff.Index] = true
	}
	for _, want := range []int64{0, 2, 4} {
		if !seen[want] {
			t.Errorf("frame %d has no output", want)
		}
	}
	if len(faces) != 3 {
		t.Errorf("%d outputs, want 3", len(faces))
	}
	reasons := map[string]bool{}
	for _, m := range dead {
		dl, err := messages.DecodeAs[*messages.DeadLetter](m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject() != "dead.detector.src1" {
			t.Errorf("dead letter on %s", m.Subject())
		}
		if dl.Forwarded || !dl.EndsSource() {
			t.Errorf("a dead letter nothing downstream heard of is marked forwarded: %+v", dl)
		}
		switch {
		case strings.Contains(dl.Reason, "corrupt JPEG"):
			reasons["permanent"] = true
			if dl.Deliveries != 1 {
				t.Errorf("permanent error was retried: %d deliveries", dl.Deliveries)
			}
		case strings.Contains(dl.Reason, "giving up after 3 attempts"):
			reasons["exhausted"] = true
		case strings.Contains(dl.Reason, "messages: malformed"):
			reasons["decode"] = true
			if string(dl.Data) != "\x93garbage" {
				t.Errorf("dead letter lost the original bytes: %q", dl.Data)
			}
		default:
			t.Errorf("unexpected dead letter reason %q", dl.Reason)
		}
	}
	if len(reasons) != 3 || len(dead) != 3 {
		t.Errorf("dead letters %v (%d), want permanent, exhausted and decode", reasons, len(dead))
	}
	proc.mu.Lock()
	if proc.calls[2] != 3 {
		t.Errorf("frame 2 processed %d times, want 3 (two transient failures)", proc.calls[2])
	}
	if proc.calls[3] != 3 {
		t.Errorf("frame 3 processed %d times, want MaxDeliver=3", proc.calls[3])
	}
	proc.mu.Unlock()
	var metrics strings.Builder
	if err := reg.WriteText(&metrics); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`personcluster_dead_letters_total{stage="detector"} 3`, `personcluster_messages_out_total{stage="detector"}`, `personcluster_process_seconds_count{stage="detector"}`} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics.String())
		}
	}
}

// A cancelled context lets the batch in hand finish and be acked: nothing is redelivered.
func TestRunDrainsInFlightWork(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	proc := &scripted{calls: map[int64]int{}, behave: func(int64, int) error {
		once.Do(func() { close(started) })
		<-release
		return nil
	}}
	publish(t, env.JS, "frames.src1", encode(t, frame(0)), "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := testConfig(env)
	cfg.Concurrency = 1
	go func() { done <- stage.Run(ctx, env.JS, cfg, proc) }()
	<-started
	cancel()
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 1)
	info, err := env.JS.Consumer(context.Background(), stage.StreamFrames, stage.ConsumerDetector)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := info.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ci.NumAckPending != 0 || ci.NumPending != 0 {
		t.Errorf("after drain: %d pending, %d awaiting ack", ci.NumPending, ci.NumAckPending)
	}
}

// Dynamic batching: with a batch size of 8, queued inputs arrive together, also for an eager
// stage, which in addition handles a lone input without waiting for a batch that never fills.
func TestRunBatches(t *testing.T) {
	for _, eager := range []bool{false, true} {
		t.Run(fmt.Sprintf("eager %v", eager), func(t *testing.T) {
			env := stagetest.Start(t, stage.Topology{})
			proc := &scripted{calls: map[int64]int{}, behave: func(int64, int) error { return nil }}
			for i := int64(0); i < 16; i++ {
				publish(t, env.JS, "frames.src1", encode(t, frame(i)), "")
			}
			cfg := testConfig(env)
			cfg.Concurrency, cfg.BatchSize, cfg.Eager = 1, 8, eager
			if eager {
				cfg.BatchWait = 2 * time.Second
			}
			stop := stagetest.Run(t, env.JS, cfg, proc)
			defer stop()
			stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 16)
			if proc.maxBatch.Load() != 8 {
				t.Errorf("largest batch %d, want 8", proc.maxBatch.Load())
			}
			if !eager {
				return
			}
			start := time.Now()
			publish(t, env.JS, "frames.src1", encode(t, frame(16)), "")
			stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 17)
			// Not a speed check: a stage that waited for its batch would take the whole BatchWait.
			if d := time.Since(start); d >= cfg.BatchWait/2 {
				t.Errorf("a lone input took %v, as if waiting for a batch (BatchWait %v)", d, cfg.BatchWait)
			}
		})
	}
}

// levels records the level of each log record's message.
type levels struct {
	mu  sync.Mutex
	got map[string][]slog.Level
}

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got[r.Message] = append(l.got[r.Message], r.Level)
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

// An input that came too early (ErrNotYet) is retried like any transient failure, without a
// warning.
func TestRunRetriesNotYetQuietly(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	proc := &scripted{calls: map[int64]int{}, behave: func(index int64, call int) error {
		if call == 1 {
			return fmt.Errorf("frame %d: its other half has not come: %w", index, stage.ErrNotYet)
		}
		return nil
	}}
	publish(t, env.JS, "frames.src1", encode(t, frame(0)), "")
	logs := &levels{got: map[string][]slog.Level{}}
	cfg := testConfig(env)
	cfg.Logger = slog.New(logs)
	stop := stagetest.Run(t, env.JS, cfg, proc)
	stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 1)
	stop()
	proc.mu.Lock()
	calls := proc.calls[0]
	proc.mu.Unlock()
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if calls != 2 || !slices.Equal(logs.got["retrying input"], []slog.Level{slog.LevelDebug}) {
		t.Errorf("%d calls, retries logged at %v; want 2 calls, one retry at debug level", calls, logs.got["retrying input"])
	}
}

// An input that came too early waits, before it is given up, for longer than the ack wait
// after which what it waits for comes back from a stage that died holding it: the clusterer's
// end of a source whose last frames an encoder had when it was killed.
func TestRunWaitsOutTheAckWaitForNotYet(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{AckWait: time.Second})
	var first time.Time
	proc := &scripted{calls: map[int64]int{}, behave: func(index int64, call int) error {
		if call == 1 {
			first = time.Now()
		}
		if time.Since(first) < 1500*time.Millisecond {
			return fmt.Errorf("frame %d: its other half is with a stage that died: %w", index, stage.ErrNotYet)
		}
		return nil
	}}
	publish(t, env.JS, "frames.src1", encode(t, frame(0)), "")
	cfg := testConfig(env) // 3 deliveries, 20 ms retry delay: about 60 ms in all without the wait
	stop := stagetest.Run(t, env.JS, cfg, proc)
	stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 1)
	stop()
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.calls[0] != 3 {
		t.Errorf("%d calls, want 3 (the last after the ack wait)", proc.calls[0])
	}
}

// An input handed over to another worker is neither acked nor naked: it comes again only when
// its ack wait runs out (here nobody else holds it).
func TestRunLeavesHandedOverInput(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{AckWait: time.Second})
	var first, second time.Time
	proc := &scripted{calls: map[int64]int{}, behave: func(index int64, call int) error {
		if call == 1 {
			first = time.Now()
			return fmt.Errorf("frame %d: another worker reads it now: %w", index, stage.ErrHandedOver)
		}
		second = time.Now()
		return nil
	}}
	publish(t, env.JS, "frames.src1", encode(t, frame(0)), "")
	stop := stagetest.Run(t, env.JS, testConfig(env), proc)
	stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 1)
	stop()
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.calls[0] != 2 || second.Sub(first) < 900*time.Millisecond {
		t.Errorf("%d calls, the second %v after the first; want 2, the second after the 1 s ack wait (a nak comes back in 40 ms)", proc.calls[0], second.Sub(first))
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  stage.Config
	}{
		{"no name", stage.Config{Name: "", Stream: "S", Consumer: "c"}},
		{"name with a dot", stage.Config{Name: "a.b", Stream: "S", Consumer: "c"}},
		{"no stream", stage.Config{Name: "x", Stream: "", Consumer: "c"}},
		{"batch too large", stage.Config{Name: "x", Stream: "S", Consumer: "c", BatchSize: 5000}},
		{"negative concurrency", stage.Config{Name: "x", Stream: "S", Consumer: "c", Concurrency: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "stage: ") {
				t.Errorf("Validate(%+v) = %v", tc.cfg, err)
			}
		})
	}
}

// Topology.Ensure is idempotent: every process runs it at start.
func TestEnsureIdempotent(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	if err := (stage.Topology{}).Ensure(context.Background(), env.JS); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
}

// skipping is a scripted processor that reports dead-lettered frames downstream.
type skipping struct{ *scripted }

func (p skipping) OnDeadLetter(in *stage.Input, reason error) []stage.Output {
	f := in.Message.(*messages.Frame)
	return []stage.Output{{Subject: messages.Subject(messages.SubjectFaces, f.Source), MsgID: messages.MsgID(f.Source, f.Seq, "test"),
		Message: &messages.FrameFaces{Source: f.Source, Seq: f.Seq, Index: f.Index, Width: f.Width, Height: f.Height, SkipReason: "dead_letter", Params: f.Params}}}
}

// A processor that implements DeadLetterHandler gets its "skipped" outputs published with the
// dead letter, so downstream counts stay complete.
func TestDeadLetterHandlerOutputs(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	proc := skipping{&scripted{calls: map[int64]int{}, behave: func(index int64, call int) error {
		if index == 1 {
			return stage.Permanent(errors.New("corrupt JPEG"))
		}
		return nil
	}}}
	for i := int64(0); i < 3; i++ {
		publish(t, env.JS, "frames.src1", encode(t, frame(i)), "")
	}
	stop := stagetest.Run(t, env.JS, testConfig(env), proc)
	faces := stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 3)
	dead := stagetest.Collect(t, env.JS, stage.StreamDead, "dead.detector.src1", 1)
	stop()
	if dl, err := messages.DecodeAs[*messages.DeadLetter](dead[0].Data()); err != nil || !dl.Forwarded || dl.EndsSource() {
		t.Errorf("the dead letter of a frame reported downstream must be marked forwarded: %+v, %v", dl, err)
	}
	skipped := 0
	for _, m := range faces {
		ff, err := messages.DecodeAs[*messages.FrameFaces](m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if ff.SkipReason == "dead_letter" {
			skipped++
			if ff.Index != 1 {
				t.Errorf("frame %d reported dead", ff.Index)
			}
		}
	}
	if skipped != 1 || len(faces) != 3 {
		t.Errorf("%d outputs, %d dead-letter skips; want 3 and 1", len(faces), skipped)
	}
}

// An input over MaxMessageBytes is dead-lettered before decoding, with its bytes; one whose dead
// letter could not fit the server's max payload keeps only its head, marked truncated.
func TestRunRefusesOversizedInput(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	proc := &scripted{calls: map[int64]int{}, behave: func(int64, int) error { return nil }}
	big := encode(t, frame(0))
	big = append(big, make([]byte, 3000)...) // trailing bytes: only the size check may refuse it
	huge := make([]byte, int(env.NC.MaxPayload())-1024)
	publish(t, env.JS, "frames.src1", big, "big")
	publish(t, env.JS, "frames.src1", huge, "huge")
	publish(t, env.JS, "frames.src1", encode(t, frame(1)), "ok")
	cfg := testConfig(env)
	cfg.MaxMessageBytes = 2000
	stop := stagetest.Run(t, env.JS, cfg, proc)
	dead := stagetest.Collect(t, env.JS, stage.StreamDead, "dead.detector.src1", 2)
	stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 1)
	stop()
	for _, m := range dead {
		dl, err := messages.DecodeAs[*messages.DeadLetter](m.Data())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(dl.Reason, "too large") || dl.Deliveries != 1 {
			t.Errorf("reason %q after %d deliveries", dl.Reason, dl.Deliveries)
		}
		switch {
		case len(dl.Data) == len(big):
			if dl.Truncated || string(dl.Data) != string(big) {
				t.Errorf("the oversized input's dead letter does not hold its bytes")
			}
		case dl.Truncated:
			if dl.Size != int64(len(huge)) || len(dl.Data) >= len(huge) {
				t.Errorf("truncated dead letter: size %d, %d bytes kept", dl.Size, len(dl.Data))
			}
		default:
			t.Errorf("dead letter of %d bytes, truncated %v", len(dl.Data), dl.Truncated)
		}
	}
	if proc.calls[0] != 0 {
		t.Errorf("the oversized frame reached the processor")
	}
}

// A publish that fails because the output stream cannot be reached (here: it is gone, and comes
// back) is retried in place: the input is processed once, not redelivered, not dead-lettered.
func TestRunRetriesFailedPublishInPlace(t *testing.T) {
	topo := stage.Topology{}
	env := stagetest.Start(t, topo)
	ctx := context.Background()
	if err := env.JS.DeleteStream(ctx, stage.StreamFaces); err != nil {
		t.Fatal(err)
	}
	processed := make(chan struct{})
	var once sync.Once
	proc := &scripted{calls: map[int64]int{}, behave: func(int64, int) error {
		once.Do(func() { close(processed) })
		return nil
	}}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	reg := stage.NewRegistry()
	cfg := testConfig(env)
	cfg.Metrics = reg
	done := make(chan error, 1)
	go func() { done <- stage.Run(runCtx, env.JS, cfg, proc) }()
	publish(t, env.JS, "frames.src1", encode(t, frame(0)), "")
	<-processed
	time.Sleep(1500 * time.Millisecond) // the first publish (no response after 0.5 s) and a retry fail meanwhile
	if _, err := env.JS.Stream(ctx, stage.StreamFaces); err == nil {
		t.Fatal("faces stream still there")
	}
	if err := topo.Ensure(ctx, env.JS); err != nil {
		t.Fatal(err)
	}
	stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 1)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	proc.mu.Lock()
	defer proc.mu.Unlock()
	m := reg.Stage("detector")
	if proc.calls[0] != 1 || m.Retried.Load() != 0 || m.Dead.Load() != 0 || m.Acked.Load() != 1 {
		t.Errorf("processed %d times, %d redeliveries, %d dead letters, %d acked; want 1, 0, 0, 1",
			proc.calls[0], m.Retried.Load(), m.Dead.Load(), m.Acked.Load())
	}
}

// A frame whose body names another source than its subject is dead-lettered unprocessed.
func TestRunRefusesMessageForAnotherSource(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	proc := &scripted{calls: map[int64]int{}, behave: func(int64, int) error { return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- stage.Run(ctx, env.JS, testConfig(env), proc) }()
	forged := frame(7)
	forged.Source = "victim"
	publish(t, env.JS, "frames.src1", encode(t, forged), "")
	publish(t, env.JS, "frames.src1", encode(t, frame(8)), "")
	dead := stagetest.Collect(t, env.JS, stage.StreamDead, "dead.detector.src1", 1)
	stagetest.Collect(t, env.JS, stage.StreamFaces, "faces.src1", 1)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dl, err := messages.DecodeAs[*messages.DeadLetter](dead[0].Data())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dl.Reason, `source "victim"`) {
		t.Errorf("reason %q", dl.Reason)
	}
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.calls[7] != 0 || proc.calls[8] != 1 {
		t.Errorf("processed %v: the forged frame must not reach the processor", proc.calls)
	}
}
