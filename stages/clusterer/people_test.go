package clusterer_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer"
	gallery "github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// testCut links the generated faces (model "test"): one person's faces lie about 0.05 apart,
// two people about 1.4.
func testCut(model string) (float64, bool) { return 0.5, model == "test" }

// Each cluster of the quota and the final result is linked to a gallery person: the same
// people get the same person in both, and the gallery holds one person per generated person.
func TestResultsCarryPeople(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	r := startWith(t, env, clusterer.Config{LinkCut: testCut})
	defer r.stop(t)
	p := params()
	publishAll(t, env.JS, frameMessages(30, p))
	publishEOS(t, env.JS, 30, p)
	got := results(t, env.JS, 2)
	byMember := map[[2]int64]string{}
	for _, res := range got {
		seen := map[string]bool{}
		for _, c := range res.Clusters {
			if c.Person == "" {
				t.Fatalf("final %v: cluster %d has no person", res.Final, c.ID)
			}
			if seen[c.Person] {
				t.Errorf("two clusters of one result are person %s", c.Person)
			}
			seen[c.Person] = true
			for _, m := range c.Members {
				k := [2]int64{m.Seq, int64(m.Face)}
				if prev, ok := byMember[k]; ok && prev != c.Person {
					t.Errorf("face %v: person %s in one result, %s in the other", k, prev, c.Person)
				}
				byMember[k] = c.Person
			}
		}
	}
	g, err := gallery.Open(context.Background(), env.JS)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := g.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Errorf("%d people in the gallery, want 3", len(ps))
	}
	for _, p := range ps {
		if p.Thumbnail != "" {
			t.Errorf("%s has a thumbnail, but the faces had no body crops", p.ID)
		}
	}
}

// --people=false: the clusters carry no person and the gallery stays empty.
func TestNoPeople(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	r := startWith(t, env, clusterer.Config{LinkCut: testCut})
	defer r.stop(t)
	p := params()
	p.NoPeople = true
	publishAll(t, env.JS, frameMessages(30, p))
	publishEOS(t, env.JS, 30, p)
	for _, res := range results(t, env.JS, 2) {
		for _, c := range res.Clusters {
			if c.Person != "" {
				t.Errorf("cluster %d linked to %s with NoPeople", c.ID, c.Person)
			}
		}
	}
	g, err := gallery.Open(context.Background(), env.JS)
	if err != nil {
		t.Fatal(err)
	}
	if ps, err := g.List(context.Background()); err != nil || len(ps) != 0 {
		t.Errorf("%d people, %v", len(ps), err)
	}
}

// A file source with more faces than one clustering takes is clustered in windows of Quota
// accepted frames linked by person, its vectors purged window by window; its final result has
// one cluster per person with every face, and a clusterer restarted halfway goes on from the
// windows it left.
func TestLongSourceLinksWindowsByPerson(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	cfg := clusterer.Config{LinkCut: testCut, MaxFaces: 30}
	r := startWith(t, env, cfg)
	p := params() // quota 10
	msgs := frameMessages(90, p)
	publishAll(t, env.JS, msgs[:90])
	waitAcked(t, env.JS, 90)
	r.stop(t)
	vectors, err := env.JS.Stream(context.Background(), stage.StreamVectors)
	if err != nil {
		t.Fatal(err)
	}
	info, err := vectors.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs >= 90 {
		t.Errorf("%d vector messages kept after the first windows: not purged window by window", info.State.Msgs)
	}
	r = startWith(t, env, cfg)
	defer r.stop(t)
	publishAll(t, env.JS, msgs[90:])
	publishEOS(t, env.JS, 90, p)
	got := results(t, env.JS, 2)
	final := got[len(got)-1]
	if !final.Final {
		t.Fatalf("last result is not final")
	}
	wantFaces := 0
	for _, m := range msgs {
		if fv, ok := m.(*messages.FaceVectors); ok {
			wantFaces += len(fv.Vectors)
		}
	}
	if final.Faces != wantFaces || final.FramesAccepted != 60 || final.FramesSeen != 90 {
		t.Errorf("final: %d faces (want %d), %d accepted (want 60), %d seen", final.Faces, wantFaces, final.FramesAccepted, final.FramesSeen)
	}
	if len(final.Clusters) != 3 {
		t.Fatalf("%d clusters, want one per person (3)", len(final.Clusters))
	}
	seen := map[[2]int64]bool{}
	for _, c := range final.Clusters {
		if c.Person == "" {
			t.Errorf("cluster %d has no person", c.ID)
		}
		for _, m := range c.Members {
			k := [2]int64{m.Seq, int64(m.Face)}
			if seen[k] {
				t.Errorf("face %v twice", k)
			}
			seen[k] = true
		}
	}
}

// liveRun is what a live source's run left: its results in order, and the gallery's people.
type liveRun struct {
	results []*messages.ClusterResult
	people  map[string]map[string]int64 // person → faces per source
}

func (r liveRun) windows() []string {
	var out []string
	for _, res := range r.results {
		out = append(out, fmt.Sprintf("window %d final %v end %d: %v", res.Window, res.Final, res.WindowEnd, personPartition(res)))
	}
	return out
}

// personPartition lists each cluster's person with its faces.
func personPartition(r *messages.ClusterResult) []string {
	var out []string
	for _, c := range r.Clusters {
		var faces []string
		for _, m := range c.Members {
			faces = append(faces, fmt.Sprintf("%d/%d", m.Seq, m.Face))
		}
		out = append(out, c.Person+"="+strings.Join(faces, ","))
	}
	sort.Strings(out)
	return out
}

func galleryPeople(t *testing.T, js jetstream.JetStream) map[string]map[string]int64 {
	t.Helper()
	g, err := gallery.Open(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := g.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int64{}
	for _, p := range ps {
		out[p.ID] = p.Sources
	}
	return out
}

// liveFrames is a live source of 50 frames (34 accepted: three windows of 10 and a final
// result of 4) and the number of results it gives.
func liveFrames() ([]messages.Message, messages.Params, int) {
	p := params()
	p.Live = true
	return frameMessages(50, p), p, 4
}

// cleanLiveRun runs the live source undisturbed.
func cleanLiveRun(t *testing.T) liveRun {
	t.Helper()
	msgs, p, n := liveFrames()
	env := stagetest.Start(t, stage.Topology{})
	r := startWith(t, env, clusterer.Config{LinkCut: testCut})
	defer r.stop(t)
	publishAll(t, env.JS, msgs)
	publishEOS(t, env.JS, 50, p)
	return liveRun{results: results(t, env.JS, n), people: galleryPeople(t, env.JS)}
}

func sameRun(t *testing.T, got, want liveRun) {
	t.Helper()
	if !reflect.DeepEqual(got.windows(), want.windows()) {
		t.Errorf("results differ from a clean run's:\n%s\nclean:\n%s", strings.Join(got.windows(), "\n"), strings.Join(want.windows(), "\n"))
	}
	if !reflect.DeepEqual(got.people, want.people) {
		t.Errorf("gallery %v, a clean run's %v", got.people, want.people)
	}
}

// A live source's windows are numbered, and a clusterer restarted between windows goes on
// with the next one: the same windows, people and counts as a clean run (a window numbered
// again would be dropped as a duplicate message and linked to the people of the window that
// first had its number).
func TestLiveWindowsSurviveRestart(t *testing.T) {
	want := cleanLiveRun(t)
	for i, res := range want.results {
		if res.Window != i+1 || res.Final != (i == len(want.results)-1) {
			t.Fatalf("result %d: window %d final %v", i, res.Window, res.Final)
		}
	}
	msgs, p, n := liveFrames()
	env := stagetest.Start(t, stage.Topology{})
	cfg := clusterer.Config{LinkCut: testCut}
	r := startWith(t, env, cfg)
	publishAll(t, env.JS, msgs[:44]) // 22 frames: the first window and part of the second
	waitAcked(t, env.JS, 44)
	r.stop(t)
	r = startWith(t, env, cfg)
	defer r.stop(t)
	publishAll(t, env.JS, msgs[44:])
	publishEOS(t, env.JS, 50, p)
	sameRun(t, liveRun{results: results(t, env.JS, n), people: galleryPeople(t, env.JS)}, want)
}

// The original profile (no cannot-links, the cut at max(d)·(1−sim)) with the gallery on keeps
// the original's single clustering of every accepted frame where the faces fit one clustering
// (MaxFaces, here exactly the source's faces): the gallery only names the clusters. One face
// more than fits, and the source is clustered in windows joined by person instead.
func TestOriginalProfileClustersOnceWhereItFits(t *testing.T) {
	p := params() // DefaultParams: the original profile
	if p.CannotLink || p.Cut != "" {
		t.Fatalf("params are not the original profile's: %+v", p)
	}
	msgs := frameMessages(30, p)
	faces := 0
	for _, m := range msgs {
		if fv, ok := m.(*messages.FaceVectors); ok {
			faces += len(fv.Vectors)
		}
	}
	final := func(maxFaces int, noPeople bool) *messages.ClusterResult {
		t.Helper()
		env := stagetest.Start(t, stage.Topology{Memory: true})
		r := startWith(t, env, clusterer.Config{LinkCut: testCut, MaxFaces: maxFaces})
		defer r.stop(t)
		q := p
		q.NoPeople = noPeople
		publishAll(t, env.JS, frameMessages(30, q))
		publishEOS(t, env.JS, 30, q)
		got := results(t, env.JS, 2)
		return got[len(got)-1]
	}
	without := final(faces, true)
	with := final(faces, false)
	if !reflect.DeepEqual(partition(with), partition(without)) || with.Threshold != without.Threshold || with.Fingerprints == "" || with.Faces != faces {
		t.Errorf("with the gallery: %d faces at %v, %v\nwithout: %d faces at %v, %v", with.Faces, with.Threshold, partition(with), without.Faces, without.Threshold, partition(without))
	}
	if windowed := final(faces-1, false); windowed.Fingerprints != "" || windowed.Threshold != 0 || windowed.Faces != faces {
		t.Errorf("one face over the limit: %d faces, fingerprints %q, threshold %v; want the windows joined by person", windowed.Faces, windowed.Fingerprints, windowed.Threshold)
	}
}
