package people_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// The gallery's tests run on a real in-process JetStream server. The faces are generated: each
// "person" is a random direction in 32 dimensions (two are about 1.4 apart once normalised),
// each face that direction plus a little noise (about 0.3 from it), and the windows link with a
// cut of 0.8, so what is tested is the gallery's logic, not a face model.
const (
	dim   = 32
	model = "test-32"
	cut   = 0.8
)

type cast struct {
	r     *rand.Rand
	faces [][]float32
}

func newCast(n int, seed uint64) *cast {
	c := &cast{r: rand.New(rand.NewPCG(seed, 7))}
	for range n {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(c.r.NormFloat64())
		}
		c.faces = append(c.faces, v)
	}
	return c
}

// cluster returns n noisy faces of the given people (one after another, round robin).
func (c *cast) cluster(n int, who ...int) people.Cluster {
	var out people.Cluster
	for i := range n {
		base := c.faces[who[i%len(who)]]
		v := make([]float32, dim)
		for j := range v {
			v[j] = base[j] + float32(c.r.NormFloat64()*0.05)
		}
		out.Faces = append(out.Faces, people.Face{Vector: v, Frame: int64(i), PTSMillis: int64(100 * i)})
	}
	return out
}

func window(id, source string, clusters ...people.Cluster) people.Window {
	return people.Window{ID: id, Source: source, Model: model, Cut: cut, AtMillis: time.Now().UnixMilli(), Clusters: clusters}
}

func open(t *testing.T, env *stagetest.Env) *people.Gallery {
	t.Helper()
	g, err := people.Open(context.Background(), env.JS)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func link(t *testing.T, g *people.Gallery, w people.Window) []people.Link {
	t.Helper()
	links, err := g.Link(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != len(w.Clusters) {
		t.Fatalf("%d links for %d clusters", len(links), len(w.Clusters))
	}
	return links
}

func list(t *testing.T, g *people.Gallery) []*people.Person {
	t.Helper()
	ps, err := g.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func TestLinkMakesPeopleAndFindsThemAgain(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	g := open(t, env)
	c := newCast(4, 1)
	first := link(t, g, window("a.final", "a", c.cluster(10, 0), c.cluster(6, 1)))
	if !first[0].New || !first[1].New || first[0].Person == first[1].Person {
		t.Fatalf("first window: %+v, want two new people", first)
	}
	// Another source: people 1 and 0 again (in the other order) and a newcomer, 2.
	second := link(t, g, window("b.final", "b", c.cluster(5, 1), c.cluster(7, 2), c.cluster(9, 0)))
	if second[0].Person != first[1].Person || second[2].Person != first[0].Person {
		t.Errorf("second window linked %s and %s, want %s and %s", second[0].Person, second[2].Person, first[1].Person, first[0].Person)
	}
	if !second[1].New {
		t.Errorf("a newcomer was linked to %s at %.3f", second[1].Person, second[1].Distance)
	}
	if second[0].Distance <= 0 || second[0].Distance > cut {
		t.Errorf("distance %v", second[0].Distance)
	}
	ps := list(t, g)
	if len(ps) != 3 {
		t.Fatalf("%d people, want 3", len(ps))
	}
	p, merged, err := g.Get(context.Background(), first[0].Person)
	if err != nil || merged != "" {
		t.Fatal(err, merged)
	}
	if p.Faces() != 19 || p.Sources["a"] != 10 || p.Sources["b"] != 9 || p.Links != 2 {
		t.Errorf("counts: faces %d, sources %v, links %d", p.Faces(), p.Sources, p.Links)
	}
	if p.First.Source != "a" || p.Last.Source != "b" || p.Last.Frame != 8 {
		t.Errorf("sightings: first %+v last %+v", p.First, p.Last)
	}
}

// A file source's quota result is part of its final one: the person's count is the larger, not
// the sum; a live source's windows add up.
func TestCountsOfFileAndLiveSources(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	g := open(t, env)
	c := newCast(1, 2)
	id := link(t, g, window("f.quota", "f", c.cluster(4, 0)))[0].Person
	link(t, g, window("f.final", "f", c.cluster(9, 0)))
	live := window("l.w0", "l", c.cluster(3, 0))
	live.Live = true
	link(t, g, live)
	live.ID = "l.w1"
	link(t, g, live)
	p, _, err := g.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if p.Sources["f"] != 9 || p.Sources["l"] != 6 {
		t.Errorf("sources %v, want f 9, l 6", p.Sources)
	}
}

// Two clusters of one window are two people, even when both look like the same person.
func TestClustersOfOneWindowAreDifferentPeople(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	g := open(t, env)
	c := newCast(1, 3)
	id := link(t, g, window("a.final", "a", c.cluster(8, 0)))[0].Person
	links := link(t, g, window("b.final", "b", c.cluster(8, 0), c.cluster(8, 0)))
	if links[0].Person == links[1].Person {
		t.Fatalf("both clusters linked to %s", links[0].Person)
	}
	if links[0].Person != id && links[1].Person != id {
		t.Errorf("neither cluster linked to %s: %+v", id, links)
	}
}

// A window linked again (a clusterer redelivered its input after the gallery update) gets the
// same people and counts nothing twice.
func TestRelinkedWindowIsIdempotent(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	g := open(t, env)
	c := newCast(2, 4)
	w := window("a.final", "a", c.cluster(6, 0), c.cluster(6, 1))
	first := link(t, g, w)
	again := link(t, open(t, env), w) // another process: no shared cache
	for i := range first {
		if first[i].Person != again[i].Person {
			t.Errorf("cluster %d: %s then %s", i, first[i].Person, again[i].Person)
		}
	}
	ps := list(t, g)
	if len(ps) != 2 || ps[0].Links != 1 || ps[1].Links != 1 {
		t.Errorf("%d people, links %d %d", len(ps), ps[0].Links, ps[1].Links)
	}
}

// Replicated clusterers link windows of many sources at once: every window showing the same
// newcomer must end with one person, not one per clusterer.
func TestConcurrentLinkersMakeNoDuplicate(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	c := newCast(3, 5)
	const linkers = 6
	var wg sync.WaitGroup
	results := make([][]people.Link, linkers)
	errs := make([]error, linkers)
	windows := make([]people.Window, linkers)
	for i := range windows {
		// Each window shows people 0, 1 and 2 in its own order.
		order := []int{i % 3, (i + 1) % 3, (i + 2) % 3}
		windows[i] = window(fmt.Sprintf("s%d.final", i), fmt.Sprintf("s%d", i), c.cluster(5, order[0]), c.cluster(5, order[1]), c.cluster(5, order[2]))
	}
	start := make(chan struct{})
	for i := range linkers {
		g := open(t, env) // each its own "clusterer"
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = g.Link(context.Background(), windows[i])
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("linker %d: %v", i, err)
		}
	}
	ps := list(t, open(t, env))
	if len(ps) != 3 {
		ids := []string{}
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		t.Fatalf("%d people after %d concurrent windows of the same 3: %v", len(ps), linkers, ids)
	}
	// Each person was linked by every window, once.
	byPerson := map[int]string{}
	for i, links := range results {
		order := []int{i % 3, (i + 1) % 3, (i + 2) % 3}
		for k, l := range links {
			who := order[k]
			if prev, ok := byPerson[who]; ok && prev != l.Person {
				t.Errorf("person %d linked to %s and %s", who, prev, l.Person)
			}
			byPerson[who] = l.Person
		}
	}
	for _, p := range ps {
		if p.Links != linkers || len(p.Sources) != linkers {
			t.Errorf("%s: %d links over %d sources, want %d", p.ID, p.Links, len(p.Sources), linkers)
		}
	}
}

func TestExemplarsStayBounded(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	g := open(t, env)
	c := newCast(1, 6)
	var id string
	for i := range 6 {
		id = link(t, g, window(fmt.Sprintf("w%d", i), "a", c.cluster(40, 0)))[0].Person
	}
	other := link(t, g, people.Window{ID: "m", Source: "a", Model: "other-8", Cut: cut, AtMillis: 1, Clusters: []people.Cluster{{Faces: []people.Face{{Vector: []float32{1, 0, 0, 0, 0, 0, 0, 0}}}}}})
	p, _, err := g.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.ModelExemplars(model)); n != people.MaxExemplars {
		t.Errorf("%d exemplars after 240 faces, want %d", n, people.MaxExemplars)
	}
	if other[0].Person == id {
		t.Errorf("a face of another model linked to %s", id)
	}
}

// Merge is a must-link: the merged id names the survivor, whose exemplars now find both.
func TestMergeJoinsPeopleForLaterLinks(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	g := open(t, env)
	ctx := context.Background()
	c := newCast(2, 8)
	ids := link(t, g, window("a.final", "a", c.cluster(6, 0), c.cluster(6, 1)))
	if err := g.Rename(ctx, ids[1].Person, "Bea"); err != nil {
		t.Fatal(err)
	}
	if err := g.Merge(ctx, ids[0].Person, ids[1].Person); err != nil {
		t.Fatal(err)
	}
	p, mergedInto, err := g.Get(ctx, ids[1].Person)
	if err != nil || mergedInto != ids[0].Person || p.Name != "Bea" || p.Faces() != 12 {
		t.Fatalf("merged id: %s (%q, %d faces) into %q, %v", p.ID, p.Name, p.Faces(), mergedInto, err)
	}
	// Face 1 alone now links to the survivor (the window's other cluster, a newcomer, is new).
	links := link(t, g, window("b.final", "b", c.cluster(6, 1)))
	if links[0].Person != ids[0].Person || links[0].Name != "Bea" {
		t.Errorf("after the merge, face 1 linked to %+v, want %s", links[0], ids[0].Person)
	}
	if n := len(list(t, g)); n != 1 {
		t.Errorf("%d people after the merge, want 1", n)
	}
}

// Split is a cannot-link: the moved exemplars make a new person that later faces of that kind
// link to, and a cluster mixing both, linked to the first, does not feed it the other's faces.
func TestSplitKeepsPeopleApart(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	g := open(t, env)
	ctx := context.Background()
	c := newCast(2, 9)
	// Faces 0 and 1 shrunk towards each other so that one cluster of both links as one person.
	for i := range c.faces[1] {
		c.faces[1][i] = 0.75*c.faces[0][i] + 0.25*c.faces[1][i]
	}
	mixed := link(t, g, window("a.final", "a", c.cluster(16, 0, 1)))[0].Person
	p, _, err := g.Get(ctx, mixed)
	if err != nil {
		t.Fatal(err)
	}
	var move []int
	for k, e := range p.Exemplars {
		if e.Frame%2 == 1 { // the faces of person 1
			move = append(move, k)
		}
	}
	split, err := g.Split(ctx, mixed, move)
	if err != nil {
		t.Fatal(err)
	}
	apart, err := g.CannotLink(ctx, mixed)
	if err != nil || len(apart) != 1 || apart[0] != split {
		t.Fatalf("cannot-links of %s: %v, %v", mixed, apart, err)
	}
	links := link(t, g, window("b.final", "b", c.cluster(8, 1), c.cluster(8, 0)))
	if links[0].Person != split || links[1].Person != mixed {
		t.Errorf("after the split: %s and %s, want %s and %s", links[0].Person, links[1].Person, split, mixed)
	}
	// A mixed cluster again: it links to one of them, and gains only its own kind of face.
	links = link(t, g, window("c.final", "c", c.cluster(20, 0, 1)))
	p, _, err = g.Get(ctx, links[0].Person)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Exemplars {
		if e.Source == "c" && (e.Frame%2 == 1) != (links[0].Person == split) {
			t.Errorf("%s gained face %d of the other person", links[0].Person, e.Frame)
		}
	}
}

// Bad input gets a clear error that names the problem and changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	g := open(t, env)
	ctx := context.Background()
	c := newCast(2, 10)
	ids := link(t, g, window("a.final", "a", c.cluster(6, 0), c.cluster(6, 1)))
	a, b := ids[0].Person, ids[1].Person
	if err := g.Merge(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	d := link(t, g, window("b.final", "b", c.cluster(6, 1), people.Cluster{Faces: newCast(1, 99).cluster(4, 0).Faces}))[1].Person
	kv, err := env.JS.KeyValue(ctx, stage.PeopleBucket)
	if err != nil {
		t.Fatal(err)
	}
	revision := func() uint64 {
		e, err := kv.Get(ctx, "index")
		if err != nil {
			t.Fatal(err)
		}
		return e.Revision()
	}
	before := revision()
	tests := []struct {
		name string
		do   func() error
		want error
		msg  string
	}{
		{"rename unknown", func() error { return g.Rename(ctx, "pzzzzzzz", "Ann") }, people.ErrUnknownPerson, "pzzzzzzz"},
		{"rename not an id", func() error { return g.Rename(ctx, "../x", "Ann") }, people.ErrUnknownPerson, "not an id"},
		{"empty name", func() error { return g.Rename(ctx, a, "") }, people.ErrBadName, "empty"},
		{"blank name", func() error { return g.Rename(ctx, a, "   ") }, people.ErrBadName, "empty"},
		{"long name", func() error { return g.Rename(ctx, a, strings.Repeat("x", 65)) }, people.ErrBadName, "65 characters"},
		{"control character", func() error { return g.Rename(ctx, a, "Ann\x1b[31m") }, people.ErrBadName, "control character"},
		{"newline", func() error { return g.Rename(ctx, a, "Ann\nBob") }, people.ErrBadName, "control character"},
		{"not UTF-8", func() error { return g.Rename(ctx, a, "Ann\xff") }, people.ErrBadName, "UTF-8"},
		{"bidi override", func() error { return g.Rename(ctx, a, "Ann\u202egpj.exe") }, people.ErrBadName, "U+202E"},
		{"bidi isolate", func() error { return g.Rename(ctx, a, "Ann\u2067x") }, people.ErrBadName, "U+2067"},
		{"line separator", func() error { return g.Rename(ctx, a, "Ann\u2028Bob") }, people.ErrBadName, "U+2028"},
		{"DEL", func() error { return g.Rename(ctx, a, "Ann\x7f") }, people.ErrBadName, "control character"},
		{"leading space", func() error { return g.Rename(ctx, a, " Ann") }, people.ErrBadName, "leading or trailing"},
		{"rename merged-away id with a bad name", func() error { return g.Rename(ctx, b, "") }, people.ErrBadName, "empty"},
		{"merge its merged id into it", func() error { return g.Merge(ctx, b, a) }, people.ErrBadRequest, "already one person"},
		{"merge not an id", func() error { return g.Merge(ctx, a, "P-1") }, people.ErrUnknownPerson, "not an id"},
		{"split a negative exemplar", func() error { _, err := g.Split(ctx, a, []int{-1}); return err }, people.ErrBadRequest, "exemplar -1"},
		{"forget not an id", func() error { _, err := g.Forget(ctx, ""); return err }, people.ErrUnknownPerson, "not an id"},
		{"get unknown", func() error { _, _, err := g.Get(ctx, "pzzzzzzz"); return err }, people.ErrUnknownPerson, "pzzzzzzz"},
		{"merge with itself", func() error { return g.Merge(ctx, a, a) }, people.ErrBadRequest, "itself"},
		{"merge with its merged id", func() error { return g.Merge(ctx, a, b) }, people.ErrBadRequest, "already one person"},
		{"merge unknown", func() error { return g.Merge(ctx, a, "pzzzzzzz") }, people.ErrUnknownPerson, "pzzzzzzz"},
		{"split nothing", func() error { _, err := g.Split(ctx, a, nil); return err }, people.ErrBadRequest, "no exemplars"},
		{"split out of range", func() error { _, err := g.Split(ctx, a, []int{0, 99}); return err }, people.ErrBadRequest, "exemplar 99"},
		{"split twice named", func() error { _, err := g.Split(ctx, a, []int{0, 0}); return err }, people.ErrBadRequest, "twice"},
		{"split everything", func() error { _, err := g.Split(ctx, d, []int{0, 1, 2, 3}); return err }, people.ErrBadRequest, "every exemplar"},
		{"split unknown", func() error { _, err := g.Split(ctx, "pzzzzzzz", []int{0}); return err }, people.ErrUnknownPerson, "pzzzzzzz"},
		{"forget unknown", func() error { _, err := g.Forget(ctx, "pzzzzzzz"); return err }, people.ErrUnknownPerson, "pzzzzzzz"},
		{"window without cut", func() error {
			_, err := g.Link(ctx, people.Window{ID: "x", Model: model, AtMillis: 1, Clusters: []people.Cluster{{}}})
			return err
		}, people.ErrBadRequest, "cut"},
		{"cluster without faces", func() error {
			_, err := g.Link(ctx, people.Window{ID: "x", Model: model, Cut: cut, AtMillis: 1, Clusters: []people.Cluster{{}}})
			return err
		}, people.ErrBadRequest, "no faces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "people: ") {
				t.Errorf("error %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			if after := revision(); after != before {
				t.Errorf("the index changed (revision %d → %d)", before, after)
			}
		})
	}
}

// Forget removes the person, its thumbnail, its crops in the results of its sources and its
// points in their fingerprint files; other people keep theirs.
func TestForgetRemovesVectorsAndImages(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	g := open(t, env)
	ctx := context.Background()
	images, err := env.JS.ObjectStore(ctx, stage.ImagesBucket)
	if err != nil {
		t.Fatal(err)
	}
	c := newCast(2, 11)
	w := window("src.final", "src", c.cluster(4, 0), c.cluster(4, 1))
	for ci := range w.Clusters {
		w.Clusters[ci].Thumbnail = []byte{0xff, 0xd8, 0xff, 0xd9}
		for fi := range w.Clusters[ci].Faces {
			w.Clusters[ci].Faces[fi].Frame = int64(10*ci + fi)
			key := fmt.Sprintf("src/faces/%06d-0.jpg", 10*ci+fi)
			w.Clusters[ci].Faces[fi].Image = key
			if _, err := images.PutBytes(ctx, key, []byte{1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	links := link(t, g, w)
	publishResult(t, env, images, links)
	gone, kept := links[0].Person, links[1].Person
	p, _, err := g.Get(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := g.Thumbnail(ctx, p); err != nil || len(data) == 0 {
		t.Fatalf("thumbnail before forgetting: %d bytes, %v", len(data), err)
	}
	// A record a writer left when it died before committing: it holds the vectors too.
	kv, err := env.JS.KeyValue(ctx, stage.PeopleBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "person."+gone+".999-deadbeef", []byte{0x80}); err != nil {
		t.Fatal(err)
	}
	n, err := g.Forget(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("%d crops deleted, want 4", n)
	}
	if _, _, err := g.Get(ctx, gone); !errors.Is(err, people.ErrUnknownPerson) {
		t.Errorf("Get after Forget: %v", err)
	}
	for fi := range 4 {
		_, err := images.GetBytes(ctx, fmt.Sprintf("src/faces/%06d-0.jpg", fi))
		if !errors.Is(err, jetstream.ErrObjectNotFound) {
			t.Errorf("crop %d of the forgotten person: %v", fi, err)
		}
		if _, err := images.GetBytes(ctx, fmt.Sprintf("src/faces/%06d-0.jpg", 10+fi)); err != nil {
			t.Errorf("crop %d of the other person: %v", fi, err)
		}
	}
	thumbs, err := env.JS.ObjectStore(ctx, stage.PeopleImagesBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := thumbs.GetBytes(ctx, p.Thumbnail); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("thumbnail after forgetting: %v", err)
	}
	fp := readFingerprints(t, images)
	if len(fp.Points) != 4 || len(fp.Members) != 4 || fp.Members[0].Seq != 10 {
		t.Errorf("fingerprints after forgetting: %d points, members %+v", len(fp.Points), fp.Members)
	}
	// No record of the forgotten person's vectors is left in the bucket.
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		if strings.Contains(k, gone) {
			t.Errorf("key %s left after forgetting", k)
		}
	}
	if ps := list(t, g); len(ps) != 1 || ps[0].ID != kept {
		t.Errorf("people after forgetting: %v", ps)
	}
}

// Each change writes the changed records under fresh keys and purges the ones replaced: the
// bucket's stream holds the live records and index only, once the purge markers expire, however
// many windows were linked (a long live source links one every few seconds), and a process
// keeps no more records in memory than the gallery holds, whoever replaced them.
func TestGalleryStoreStaysBounded(t *testing.T) {
	defer people.SetPurgeMarkerTTL(time.Second)()
	env := stagetest.Start(t, stage.Topology{Memory: true})
	galleries := []*people.Gallery{open(t, env), open(t, env)} // two clusterers, taking turns
	c := newCast(3, 7)
	for i := range 40 {
		w := window(fmt.Sprintf("live.w%d", i), "live", c.cluster(8, 0), c.cluster(8, 1), c.cluster(8, 2))
		w.Live = true
		link(t, galleries[i%2], w)
	}
	if n := len(list(t, galleries[0])); n != 3 {
		t.Fatalf("%d people, want 3", n)
	}
	for i, g := range galleries {
		if n := g.CachedRecords(); n > 2*3+16 {
			t.Errorf("gallery %d holds %d records in memory for 3 people", i, n)
		}
	}
	kv, err := env.JS.Stream(context.Background(), "KV_"+stage.PeopleBucket)
	if err != nil {
		t.Fatal(err)
	}
	var msgs uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		info, err := kv.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if msgs = info.State.Msgs; msgs <= 4 {
			return // three records and the index
		}
	}
	t.Errorf("%d messages in the gallery's stream after 40 windows of 3 people; want the 3 records and the index", msgs)
}

// lostReplies makes the gallery's index updates fail after the fact: the first `stored` of them
// are written and then reported as timed out (the reply lost with a leader that died after
// replicating it), the next `refused` are not written and time out. No in-process server
// loses a reply; the writes are the real bucket's.
type lostReplies struct {
	jetstream.JetStream
	stored, refused *int
}

func (l lostReplies) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	kv, err := l.JetStream.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return lostReplyKV{KeyValue: kv, stored: l.stored, refused: l.refused}, nil
}

type lostReplyKV struct {
	jetstream.KeyValue
	stored, refused *int
}

func (kv lostReplyKV) lose(key string, write func() (uint64, error)) (uint64, error) {
	if key == "index" && *kv.stored > 0 {
		*kv.stored--
		if _, err := write(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("nats: %w", context.DeadlineExceeded)
	}
	if key == "index" && *kv.refused > 0 {
		*kv.refused--
		return 0, fmt.Errorf("nats: %w", context.DeadlineExceeded)
	}
	return write()
}

func (kv lostReplyKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return kv.lose(key, func() (uint64, error) { return kv.KeyValue.Create(ctx, key, value, opts...) })
}

func (kv lostReplyKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	return kv.lose(key, func() (uint64, error) { return kv.KeyValue.Update(ctx, key, value, revision) })
}

// A commit whose index was stored but whose reply was lost is a commit: the records the index
// names stay (deleting them made every later read of the gallery fail for good). One that was
// not stored fails and leaves the gallery as it was.
func TestCommitWithALostReply(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	stored, refused := 2, 0
	g, err := people.Open(context.Background(), lostReplies{JetStream: env.JS, stored: &stored, refused: &refused})
	if err != nil {
		t.Fatal(err)
	}
	c := newCast(3, 9)
	first := link(t, g, window("a.final", "a", c.cluster(6, 0), c.cluster(6, 1))) // the index's Create
	second := link(t, g, window("b.final", "b", c.cluster(5, 1)))                 // an Update
	if second[0].Person != first[1].Person {
		t.Errorf("b's cluster linked to %s, want %s", second[0].Person, first[1].Person)
	}
	refused = 1
	if _, err := g.Link(context.Background(), window("c.final", "c", c.cluster(4, 2))); err == nil {
		t.Error("a commit that was not stored succeeded")
	}
	// A fresh reader sees a whole gallery, and it takes new links.
	fresh := open(t, env)
	if ps := list(t, fresh); len(ps) != 2 {
		t.Fatalf("%d people, want 2", len(ps))
	}
	link(t, fresh, window("c.final", "c", c.cluster(4, 2)))
	if ps := list(t, fresh); len(ps) != 3 {
		t.Errorf("%d people after a new link, want 3", len(ps))
	}
}

// failingThumbs fails the first `fails` thumbnail writes (a store without a leader for a
// while); the rest go to the real object store.
type failingThumbs struct {
	jetstream.JetStream
	fails *int
}

func (f failingThumbs) ObjectStore(ctx context.Context, bucket string) (jetstream.ObjectStore, error) {
	os, err := f.JetStream.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, err
	}
	return failingPut{ObjectStore: os, fails: f.fails}, nil
}

type failingPut struct {
	jetstream.ObjectStore
	fails *int
}

func (f failingPut) PutBytes(ctx context.Context, name string, data []byte) (*jetstream.ObjectInfo, error) {
	if *f.fails > 0 {
		*f.fails--
		return nil, fmt.Errorf("nats: %w", context.DeadlineExceeded)
	}
	return f.ObjectStore.PutBytes(ctx, name, data)
}

// A link whose thumbnail could not be stored fails; tried again (the window is linked by
// then), it stores the thumbnail the new person names.
func TestRelinkStoresAMissingThumbnail(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{Memory: true})
	fails := 1
	g, err := people.Open(context.Background(), failingThumbs{JetStream: env.JS, fails: &fails})
	if err != nil {
		t.Fatal(err)
	}
	c := newCast(1, 4)
	w := window("a.final", "a", c.cluster(5, 0))
	w.Clusters[0].Thumbnail = []byte{0xff, 0xd8, 0xff, 0xd9}
	if _, err := g.Link(context.Background(), w); err == nil {
		t.Fatal("a link whose thumbnail was not stored succeeded")
	}
	links := link(t, g, w)
	p, _, err := g.Get(context.Background(), links[0].Person)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := g.Thumbnail(context.Background(), p); err != nil || len(data) != 4 {
		t.Errorf("thumbnail of %s after the link was tried again: %d bytes, %v", p.ID, len(data), err)
	}
}
