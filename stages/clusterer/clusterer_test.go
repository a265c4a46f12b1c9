package clusterer_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer"
	"github.com/personcluster/personcluster/stages/clusterer/hac"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// The clusterer's tests exercise its join, quota, windows and recovery over a real JetStream
// server; the vectors are generated (three "people" with distinct face and clothing
// directions) because what is tested is the state machine, not the models.
const dim = 16

type person struct{ face, cloth []float32 }

func people(n int) []person {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]person, n)
	for i := range out {
		out[i] = person{face: randVec(r, 1), cloth: randVec(r, 1)}
	}
	return out
}

func randVec(r *rand.Rand, scale float64) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func noisy(r *rand.Rand, v []float32) []float32 {
	out := make([]float32, len(v))
	for i := range v {
		out[i] = v[i] + float32(r.NormFloat64()*0.05)
	}
	return out
}

// frameMessages makes the vector messages of frames 0..n-1: every third frame is skipped, the
// others show 2 or 3 of the people.
func frameMessages(n int, p messages.Params) []messages.Message {
	r := rand.New(rand.NewPCG(3, 4))
	cast := people(3)
	var out []messages.Message
	for seq := int64(0); seq < int64(n); seq++ {
		fv := &messages.FaceVectors{Source: "src", Seq: seq, Index: 2 * seq, PTSMillis: 100 * seq, Model: "test", Params: p}
		cv := &messages.ClothVectors{Source: "src", Seq: seq, Index: 2 * seq, Model: "test", Params: p}
		if seq%3 != 2 {
			fv.Accepted, cv.Accepted = true, true
			for j := 0; j < 2+int(seq%2); j++ {
				who := cast[(int(seq)+j)%3]
				fv.Vectors = append(fv.Vectors, noisy(r, who.face))
				fv.Boxes = append(fv.Boxes, messages.Box{10, 20 + 30*j, 40, 10 + 30*j})
				cv.Vectors = append(cv.Vectors, noisy(r, who.cloth))
			}
		}
		out = append(out, fv, cv)
	}
	return out
}

func subjectOf(m messages.Message) string {
	switch m.(type) {
	case *messages.FaceVectors:
		return "facevec.src"
	case *messages.ClothVectors:
		return "clothvec.src"
	}
	return ""
}

func publishAll(t *testing.T, js jetstream.JetStream, msgs []messages.Message) {
	t.Helper()
	for _, m := range msgs {
		msg, err := stage.EncodeMsg(stage.Output{Subject: subjectOf(m), Message: m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
}

func publishEOS(t *testing.T, js jetstream.JetStream, n int, p messages.Params) {
	t.Helper()
	eos := &messages.EndOfStream{Source: "src", Frames: int64(n), FramesRead: int64(n), Reason: "end", Params: p}
	for _, subj := range []string{"facevec.src", "clothvec.src"} {
		msg, err := stage.EncodeMsg(stage.Output{Subject: subj, Message: eos})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
}

type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, env *stagetest.Env) *running {
	t.Helper()
	return startWith(t, env, clusterer.Config{})
}

func startWith(t *testing.T, env *stagetest.Env, ccfg clusterer.Config) *running {
	t.Helper()
	return startMetered(t, env, ccfg, nil)
}

func startMetered(t *testing.T, env *stagetest.Env, ccfg clusterer.Config, metrics *stage.Registry) *running {
	t.Helper()
	images, err := env.JS.ObjectStore(context.Background(), stage.ImagesBucket)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := clusterer.New(ccfg, env.JS, images)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	cfg := stage.Config{Name: "clusterer", Stream: stage.StreamVectors, Consumer: stage.ConsumerClusterer, BatchSize: 8, BatchWait: 50 * time.Millisecond, DrainTimeout: 2 * time.Second, Metrics: metrics}
	go func() { r.done <- stage.Run(ctx, env.JS, cfg, proc) }()
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
}

// results waits for n results of src.
func results(t *testing.T, js jetstream.JetStream, n int) []*messages.ClusterResult {
	t.Helper()
	var got []*messages.ClusterResult
	for _, msg := range stagetest.Collect(t, js, stage.StreamResults, "results.src", n) {
		r, err := messages.DecodeAs[*messages.ClusterResult](msg.Data())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	return got
}

func waitAcked(t *testing.T, js jetstream.JetStream, want uint64) {
	t.Helper()
	cons, err := js.Consumer(context.Background(), stage.StreamVectors, stage.ConsumerClusterer)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ci, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ci.AckFloor.Stream >= want {
			return
		}
	}
	t.Fatalf("the clusterer did not ack %d messages", want)
}

func params() messages.Params {
	p := messages.DefaultParams()
	p.Quota = 10
	return p
}

func partition(r *messages.ClusterResult) [][][2]int64 {
	var out [][][2]int64
	for _, c := range r.Clusters {
		var members [][2]int64
		for _, m := range c.Members {
			members = append(members, [2]int64{m.Seq, int64(m.Face)})
		}
		out = append(out, members)
	}
	return out
}

func TestQuotaAndFinalResults(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	p := params()
	r := start(t, env)
	defer r.stop(t)
	publishAll(t, env.JS, frameMessages(30, p))
	publishEOS(t, env.JS, 30, p)
	got := results(t, env.JS, 2)
	quota, final := got[0], got[1]
	if quota.Final || quota.FramesAccepted != 10 || !final.Final || final.Partial || final.FramesAccepted != 20 || final.FramesSeen != 30 {
		t.Fatalf("quota %+v\nfinal %+v", quota, final)
	}
	// The first 10 accepted frames are seqs 0,1,3,4,...,13: 2 or 3 faces each.
	if quota.Faces != 25 || final.Faces != 50 {
		t.Errorf("faces %d and %d, want 25 and 50", quota.Faces, final.Faces)
	}
	if len(final.Clusters) != 3 {
		t.Errorf("%d clusters, want the 3 people", len(final.Clusters))
	}
	// The fingerprints file re-clusters to the same partition (scipy-exact path).
	images, _ := env.JS.ObjectStore(context.Background(), stage.ImagesBucket)
	data, err := images.GetBytes(context.Background(), final.Fingerprints)
	if err != nil {
		t.Fatalf("fingerprints %q: %v", final.Fingerprints, err)
	}
	c, err := hac.DecodeCase(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Run()
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Clusters) != len(final.Clusters) || math.Abs(again.Threshold-final.Threshold) > 1e-12 {
		t.Errorf("re-clustering the saved fingerprints: %d clusters at %v, result had %d at %v",
			len(again.Clusters), again.Threshold, len(final.Clusters), final.Threshold)
	}
	checkNPYFingerprints(t, images, final.Fingerprints, again)

	// Progress went out on the clusterer's own status subject, counting accepted frames so far.
	statuses, err := env.JS.Stream(context.Background(), stage.StreamStatus)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := statuses.GetLastMsgForSubject(context.Background(), messages.StageStatusSubject(clusterer.StageName, "src"))
	if err != nil {
		t.Fatalf("no progress event: %v", err)
	}
	m, err := messages.Decode(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := m.(*messages.Status); !ok || st.Stage != clusterer.StageName || st.FramesAccepted < 1 || st.FramesAccepted > 20 || st.Faces < st.FramesAccepted {
		t.Errorf("progress event %+v, want 1–20 accepted frames and their faces", m)
	}
}

// An end that overtakes its source's last vectors (a stage's other worker still had them)
// waits for them: they complete the source as usual and are acked at once; only the end
// is retried (it was each vector after both ends, each re-reading the whole source).
func TestEndsBeforeLastVectors(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	p := params()
	metrics := stage.NewRegistry()
	r := startMetered(t, env, clusterer.Config{}, metrics)
	defer r.stop(t)
	msgs := frameMessages(30, p)
	publishAll(t, env.JS, msgs[:len(msgs)-8])
	publishEOS(t, env.JS, 30, p)
	for _, m := range msgs[len(msgs)-8:] {
		time.Sleep(100 * time.Millisecond) // as an embedder finishes its last frames
		publishAll(t, env.JS, []messages.Message{m})
	}
	got := results(t, env.JS, 2)
	if final := got[1]; !final.Final || final.Partial || final.FramesAccepted != 20 || final.Faces != 50 {
		t.Fatalf("final %+v", final)
	}
	waitAcked(t, env.JS, uint64(len(msgs)+2))
	// The end is retried after 0.5 s and 1 s while the last vectors take 0.8 s (each vector
	// after both ends was retried, 61 retries in all, before).
	if n := metrics.Stage("clusterer").Retried.Load(); n > 2 {
		t.Errorf("%d inputs retried, want the end's at most 2", n)
	}
}

// A clusterer stopped mid-stream loses nothing: its successor rebuilds the source from the
// vectors stream, and the final result equals an undisturbed run's.
func TestRestartRebuildsState(t *testing.T) {
	p := params()
	p.Quota = 100 // only the final result
	msgs := frameMessages(30, p)

	undisturbed := stagetest.Start(t, stage.Topology{})
	r := start(t, undisturbed)
	publishAll(t, undisturbed.JS, msgs)
	publishEOS(t, undisturbed.JS, 30, p)
	want := results(t, undisturbed.JS, 1)[0]
	r.stop(t)

	env := stagetest.Start(t, stage.Topology{})
	first := start(t, env)
	publishAll(t, env.JS, msgs[:25])
	waitAcked(t, env.JS, 25)
	first.stop(t) // its memory is gone with it
	second := start(t, env)
	defer second.stop(t)
	publishAll(t, env.JS, msgs[25:])
	publishEOS(t, env.JS, 30, p)
	got := results(t, env.JS, 1)[0]
	if got.Faces != want.Faces || got.FramesAccepted != want.FramesAccepted || !reflect.DeepEqual(partition(got), partition(want)) {
		t.Errorf("after a restart: %d faces %d frames %v\nundisturbed: %d faces %d frames %v",
			got.Faces, got.FramesAccepted, partition(got), want.Faces, want.FramesAccepted, partition(want))
	}
	// The finished source's vectors were purged.
	vectors, _ := env.JS.Stream(context.Background(), stage.StreamVectors)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, err := vectors.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d vector messages left after the final result", info.State.Msgs)
		}
	}
}

// Live sources get a result per window of Quota accepted frames, and forget each window.
func TestLiveWindows(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	p := params()
	p.Live = true
	r := start(t, env)
	defer r.stop(t)
	publishAll(t, env.JS, frameMessages(45, p)) // 30 accepted frames: 3 windows
	got := results(t, env.JS, 3)
	for i, res := range got {
		if res.Final || res.FramesAccepted != 10 {
			t.Errorf("window %d: final=%v accepted=%d", i, res.Final, res.FramesAccepted)
		}
		for _, c := range res.Clusters {
			for _, m := range c.Members {
				if m.Seq < int64(15*i) || m.Seq >= int64(15*(i+1)) {
					t.Errorf("window %d holds frame %d", i, m.Seq)
				}
			}
		}
	}
	vectors, _ := env.JS.Stream(context.Background(), stage.StreamVectors)
	info, err := vectors.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs > 4 {
		t.Errorf("%d vector messages kept after three windows; clustered windows should be purged", info.State.Msgs)
	}
}

// A source with more faces than MaxFaces ends at once with a partial final result of the
// frames that fit, saying why; it is not dead-lettered, and the inputs after it are acked
// without a second result.
func TestSourceOverMaxFacesEndsWithPartialResult(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	p := params()
	p.Quota = 100 // only the final result
	r := startWith(t, env, clusterer.Config{MaxFaces: 50})
	defer r.stop(t)
	msgs := frameMessages(60, p) // 40 accepted frames, 100 faces
	publishAll(t, env.JS, msgs)  // no end of stream: the limit alone ends the source
	got := results(t, env.JS, 1)
	final := got[0]
	// Accepted frames 0,1,3,4,6,7,… show 2 faces (even seq) or 3 (odd): the first 20 hold 50.
	if !final.Final || !final.Partial || final.Faces != 50 || final.FramesAccepted != 20 || len(final.Clusters) == 0 {
		t.Errorf("final: final %v partial %v, %d faces in %d frames, %d clusters; want a partial final of 50 faces in 20 frames",
			final.Final, final.Partial, final.Faces, final.FramesAccepted, len(final.Clusters))
	}
	if !strings.Contains(final.Reason, "--max-source-faces 50") {
		t.Errorf("reason %q does not name the limit", final.Reason)
	}
	publishEOS(t, env.JS, 60, p)
	waitAcked(t, env.JS, uint64(len(msgs)+2))
	if got := results(t, env.JS, 1); len(got) != 1 {
		t.Errorf("%d results after the end of stream, want the one final", len(got))
	}
	dead, err := stage.ListDeadLetters(context.Background(), env.JS, "dead.>")
	if err != nil || len(dead) != 0 {
		t.Errorf("dead letters %+v, %v; want none", dead, err)
	}
}

func TestFingerprint(t *testing.T) {
	fp := clusterer.Fingerprint([]float32{3, 4}, []float32{0, 2}, 1, 1)
	want := []float64{0.6, 0.8, 0, 1}
	if !reflect.DeepEqual(fp, want) {
		t.Errorf("Fingerprint = %v, want %v", fp, want)
	}
	if got := clusterer.Fingerprint([]float32{3, 4}, []float32{0, 2}, 2, 0); !reflect.DeepEqual(got, []float64{1.2, 1.6}) {
		t.Errorf("face-only weighted fingerprint = %v", got)
	}
	if got := fmt.Sprint(clusterer.Fingerprint([]float32{0, 0}, []float32{1}, 1, 1)); got != "[0 0 1]" {
		t.Errorf("zero face vector gives %s", got)
	}
}
