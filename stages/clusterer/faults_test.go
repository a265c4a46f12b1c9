package clusterer_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/stages/clusterer"
	gallery "github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// The faults of a live source linked to people: whatever happens, the results and the gallery
// equal a clean run's (cleanLiveRun): no window lost or repeated, no person made twice or
// lost, no face counted twice.

// links is the number of clusters the gallery linked so far.
func links(t *testing.T, js jetstream.JetStream) int64 {
	t.Helper()
	g, err := gallery.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := g.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range ps {
		n += p.Links
	}
	return n
}

// refuseResults makes the results stream refuse new messages (full, discarding new ones), or
// take them again.
func refuseResults(t *testing.T, js jetstream.JetStream, refuse bool) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stage.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.MaxMsgs, cfg.Discard = -1, jetstream.DiscardOld
	if refuse {
		cfg.MaxMsgs, cfg.Discard = int64(info.State.Msgs), jetstream.DiscardNew
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// A clusterer killed after a window's gallery update but before its result was stored (and
// its inputs acked): its successor clusters the window again and gets the same people, counted
// once.
func TestKilledBetweenGalleryUpdateAndResult(t *testing.T) {
	want := cleanLiveRun(t)
	msgs, p, n := liveFrames()
	env := stagetest.Start(t, stage.Topology{AckWait: 2 * time.Second})
	cfg := clusterer.Config{LinkCut: testCut}
	r := startWith(t, env, cfg)
	publishAll(t, env.JS, msgs[:44]) // the first window
	waitAcked(t, env.JS, 44)
	before := links(t, env.JS)
	refuseResults(t, env.JS, true)
	publishAll(t, env.JS, msgs[44:70]) // completes the second window
	for deadline := time.Now().Add(20 * time.Second); links(t, env.JS) == before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second window was never linked")
		}
	}
	r.stop(t) // gallery updated, result not stored, inputs not acked
	refuseResults(t, env.JS, false)
	r = startWith(t, env, cfg)
	defer r.stop(t)
	publishAll(t, env.JS, msgs[70:])
	publishEOS(t, env.JS, 50, p)
	sameRun(t, liveRun{results: results(t, env.JS, n), people: galleryPeople(t, env.JS)}, want)
}

// The NATS server restarted on its store in the middle of a live source: the clusterer (a
// client over TCP) reconnects and goes on.
func TestNATSRestartMidSource(t *testing.T) {
	want := cleanLiveRun(t)
	msgs, p, n := liveFrames()
	env := stagetest.StartRestartable(t, stage.Topology{AckWait: 2 * time.Second})
	nc, js := stagetest.Dial(t, "clusterer", env.Server.ClientURL())
	r := startWith(t, &stagetest.Env{Server: env.Server, NC: nc, JS: js}, clusterer.Config{LinkCut: testCut})
	defer r.stop(t)
	publishAll(t, env.JS, msgs[:44])
	waitAcked(t, env.JS, 44)
	publishAll(t, env.JS, msgs[44:60])
	env.Server.Stop()
	after := env.Restart(t)
	publishAll(t, after.JS, msgs[60:])
	publishEOS(t, after.JS, 50, p)
	sameRun(t, liveRun{results: results(t, after.JS, n), people: galleryPeople(t, after.JS)}, want)
}

// Two clusterers at once on the one consumer (a replacement started before the old one
// stopped): each gets part of the source's messages, yet the results and the gallery equal a
// clean run's, for a live source, a file source and a file source too long for one clustering.
func TestTwoClusterersAtOnce(t *testing.T) {
	for _, c := range []struct {
		name     string
		live     bool
		maxFaces int
		results  int
	}{
		{"live", true, 0, 4},
		{"file", false, 0, 2},
		{"long file", false, 30, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := params()
			p.Live = c.live
			msgs := frameMessages(50, p)
			cfg := clusterer.Config{LinkCut: testCut, MaxFaces: c.maxFaces}
			run := func(clusterers int) liveRun {
				env := stagetest.Start(t, stage.Topology{AckWait: 2 * time.Second})
				for range clusterers {
					r := startWith(t, env, cfg)
					defer r.stop(t)
				}
				publishAll(t, env.JS, msgs)
				publishEOS(t, env.JS, 50, p)
				got := liveRun{results: results(t, env.JS, c.results), people: galleryPeople(t, env.JS)}
				if last := got.results[len(got.results)-1]; !last.Final {
					t.Fatalf("%d clusterers: the last of %d results is not final", clusterers, len(got.results))
				}
				return got
			}
			sameRun(t, run(2), run(1))
		})
	}
}
