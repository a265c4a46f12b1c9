package deploytest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/proctest"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// skipShort skips the tests that run the pipeline as processes (a minute or two in all) under -short.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every stage as a process on the real models; skipped with -short")
	}
}

const hamiltonClip = "video/short_hamilton_clip.mp4"

// faultRequest samples every other frame of the Hamilton clip (138 frames, 43 with 2–4
// faces): small enough for a 2-core machine, and the quota of 20 accepted frames is reached
// mid-video, so the clusterer has published its first result and is still working.
var faultRequest = []string{"--every", "2", "--quota", "20"}

// testEnv is added to every process: a killed stage's unacked inputs come back after 5 s
// (instead of a minute), and the streams are sized for a test machine's disk.
var testEnv = []string{"PERSONCLUSTER_ACK_WAIT=5s", "PERSONCLUSTER_STREAM_MAX_BYTES=268435456"}

// single is one NATS server process (file store) and one process per stage.
type single struct {
	h      *proctest.Harness
	url    string
	server *proctest.Proc
	stages map[string]*proctest.Proc
	nc     *nats.Conn
	js     jetstream.JetStream
}

func startSingle(ctx context.Context, t *testing.T) *single {
	t.Helper()
	h := proctest.New(t)
	h.Env = append(h.Env, testEnv...)
	port := proctest.FreePort(t)
	d := &single{h: h, url: proctest.URL(port), stages: map[string]*proctest.Proc{}}
	d.server = h.Start("server", []string{"server", "--port", strconv.Itoa(port), "--store", t.TempDir(), "--server-name", "single"})
	if err := d.server.WaitLog(ctx, "JetStream serving at"); err != nil {
		t.Fatal(err)
	}
	for _, name := range pipeline.All {
		d.stages[name] = h.Start(name, []string{name, "--nats", d.url})
	}
	for _, name := range pipeline.All {
		if err := d.stages[name].WaitLog(ctx, "stage running"); err != nil {
			t.Fatal(err)
		}
	}
	d.nc, d.js = connect(t, d.url)
	return d
}

func connect(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append([]nats.Option{nats.Name("deploytest"), nats.MaxReconnects(-1), nats.ReconnectWait(200 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// ingest queues video as source with the request flags.
func ingest(ctx context.Context, h *proctest.Harness, client []string, source, video string, request []string) error {
	args := append(append([]string{"ingest"}, client...), "--source", source)
	args = append(append(args, request...), video)
	_, err := h.Run(ctx, "ingest-"+source, args...)
	return err
}

// consumerOf names the durable consumer and stream of a stage.
var consumerOf = map[string][2]string{
	pipeline.Reader:    {stage.StreamIngest, stage.ConsumerReader},
	pipeline.Detector:  {stage.StreamFrames, stage.ConsumerDetector},
	pipeline.Encoder:   {stage.StreamFaces, stage.ConsumerEncoder},
	pipeline.Embedder:  {stage.StreamFaces, stage.ConsumerEmbedder},
	pipeline.Clusterer: {stage.StreamVectors, stage.ConsumerClusterer},
}

// checkComplete checks what a deployment stored for source against the undisturbed baseline:
// the final result (same partition, same face and frame counts, no face twice), exactly one
// quota result and one final result stored, and no dead letter.
func checkComplete(ctx context.Context, t *testing.T, js jetstream.JetStream, want, got *messages.ClusterResult) {
	t.Helper()
	if err := proctest.Compare(want, got); err != nil {
		t.Error(err)
	}
	wantQuota := 1
	if want.Partial {
		wantQuota = 0
	}
	// A replicated stream's info can lag the message a direct get just returned (a replica
	// answers one, the leader the other): read again for a few seconds before judging.
	var results []*messages.ClusterResult
	var quota, final int
	for deadline := time.Now().Add(15 * time.Second); ; {
		var err error
		if results, err = proctest.Results(ctx, js, got.Source); err != nil {
			t.Fatal(err)
		}
		quota, final = 0, 0
		for _, r := range results {
			if r.Final {
				final++
			} else {
				quota++
			}
		}
		if (quota == wantQuota && final == 1) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if quota != wantQuota || final != 1 {
		t.Errorf("%s: %d quota and %d final results stored, want %d and 1", got.Source, quota, final, wantQuota)
	}
	dead, err := proctest.CountStored(ctx, js, stage.StreamDead, messages.SubjectDead+".*."+got.Source)
	if err != nil {
		t.Fatal(err)
	}
	if dead != 0 {
		t.Errorf("%s: %d dead letters", got.Source, dead)
	}
	t.Logf("%s: %d frames, %d accepted, %d faces, %d clusters, %d dropped: equal to the one-process run; %d results stored, %d dead letters",
		got.Source, got.FramesSeen, got.FramesAccepted, got.Faces, len(got.Clusters), len(got.Dropped), len(results), dead)
}

// runFault runs the pipeline as separate processes on one source, kills victim (a stage or
// "server") with SIGKILL when the at-th message on subject.<source> is seen, restarts it, and
// checks that the final result equals an undisturbed run's.
func runFault(t *testing.T, victim, subject string, at int) {
	skipShort(t)
	video := testenv.Shared(t, hamiltonClip)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := startSingle(ctx, t)
	want, err := d.h.Baseline(ctx, video, faultRequest...)
	if err != nil {
		t.Fatal(err)
	}
	source := "kill-" + victim
	proc := d.server
	if victim != "server" {
		proc = d.stages[victim]
	}
	var seenAtKill int
	trigger := proctest.OnMessage(t, d.nc, messages.Subject(subject, source), at, func(seen int) {
		seenAtKill = seen
		proc.Kill()
	})
	started := time.Now()
	if err := ingest(ctx, d.h, []string{"--nats", d.url}, source, video, faultRequest); err != nil {
		t.Fatal(err)
	}
	if err := trigger.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Since(started)
	proc.Restart()
	ready := "stage running"
	if victim == "server" {
		ready = "JetStream serving at"
	}
	if err := proc.WaitLog(ctx, ready); err != nil {
		t.Fatal(err)
	}
	got, err := proctest.WaitFinal(ctx, d.js, source)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s killed (SIGKILL) after %d messages on %s.%s, %.1fs into the source; restarted; final result after %.1fs",
		victim, seenAtKill, subject, source, killedAt.Seconds(), time.Since(started).Seconds())
	checkComplete(ctx, t, d.js, want, got)

	// The kill was mid-stream: the victim had more to do after it.
	switch victim {
	case pipeline.Reader:
		if int64(seenAtKill) >= got.FramesSeen {
			t.Errorf("the reader was killed after its last frame (%d of %d)", seenAtKill, got.FramesSeen)
		}
	case pipeline.Clusterer:
		results, err := proctest.Results(ctx, d.js, source)
		if err != nil {
			t.Fatal(err)
		}
		if len(results) == 0 || results[0].Final {
			t.Errorf("the clusterer was not killed between its quota result and its final result")
		}
	default: // detector, encoder, embedder: one output per frame
		if int64(seenAtKill) >= got.FramesSeen {
			t.Errorf("%s was killed after its last output (%d of %d frames)", victim, seenAtKill, got.FramesSeen)
		}
	}
	for name, p := range d.stages {
		if !p.Running() {
			t.Errorf("stage %s exited: %v", name, p.ExitErr())
		}
	}
	if victim != "server" {
		sc := consumerOf[victim]
		if c, err := d.js.Consumer(ctx, sc[0], sc[1]); err == nil {
			if info, err := c.Info(ctx); err == nil {
				// One source per stream here: deliveries beyond the last stream sequence are redeliveries.
				t.Logf("%s consumer: %d deliveries of %d messages (%d redelivered after the kill), %d pending, %d unacked", victim,
					info.Delivered.Consumer, info.Delivered.Stream, info.Delivered.Consumer-info.Delivered.Stream, info.NumPending, info.NumAckPending)
			}
		}
	}
	if err := stopAll(d.stages); err != nil {
		t.Error(err)
	}
}

// stopAll sends SIGTERM to every stage and checks each exits 0 (drained).
func stopAll(procs map[string]*proctest.Proc) error {
	var errs []error
	for name, p := range procs {
		if err := p.Stop(45 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// At-least-once end to end: each stage killed with SIGKILL mid-stream and restarted; the NATS
// server (file store) likewise. Every test checks the final result against the one-process run.

func TestKillReader(t *testing.T) { runFault(t, pipeline.Reader, messages.SubjectFrames, 20) }

func TestKillDetector(t *testing.T) { runFault(t, pipeline.Detector, messages.SubjectFaces, 5) }

func TestKillEncoder(t *testing.T) { runFault(t, pipeline.Encoder, messages.SubjectFaceVec, 5) }

func TestKillEmbedder(t *testing.T) { runFault(t, pipeline.Embedder, messages.SubjectClothVec, 5) }

// The clusterer dies right after its quota result; the restarted one rebuilds its state from
// PC_VECTORS and publishes the final result, with neither result stored twice.
func TestKillClusterer(t *testing.T) { runFault(t, pipeline.Clusterer, messages.SubjectResults, 1) }

func TestRestartServer(t *testing.T) { runFault(t, "server", messages.SubjectFaceVec, 10) }
