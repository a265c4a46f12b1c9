package people

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/stages/internal/vec"
)

// linkCuts are, per face model, the largest face distance at which a cluster joins a gallery
// person: the average euclidean distance between the cluster's unit face vectors (up to 32)
// and the person's exemplars. Measured on the two labelled cast videos, each video's clusters
// against people made from the other's: the same person lies at most 1.19 (ONNX) and 0.41
// (dlib) away, another person at least 1.23 and 0.45, except for impure clusters of the hard
// video. stages/pipeline's TestPeopleAcrossCastVideos measures the result.
var linkCuts = map[string]float64{
	"fr_feature-512":  1.2,
	"dlib-resnet-128": 0.43,
}

// LinkCut is the linking cut measured for a face model; ok is false for a model without one
// (its clusters are not linked).
func LinkCut(model string) (cut float64, ok bool) {
	cut, ok = linkCuts[model]
	return cut, ok
}

// Face is one face of a cluster to link.
type Face struct {
	Vector    []float32 // the face descriptor (any norm)
	Frame     int64
	PTSMillis int64
	Image     string // its crop's key in the images bucket ("" if none)
}

// Cluster is one cluster of a window.
type Cluster struct {
	Faces []Face
	// Thumbnail is a JPEG shown for the person when the cluster makes a new one (optional).
	Thumbnail []byte
}

// Window is one result's clusters to link.
type Window struct {
	// ID names the result uniquely and the same way on every try (e.g. "<source>.final"): a
	// window linked again gets the people it got before.
	ID     string
	Source string
	// Live: the source's results are disjoint windows whose counts add up; otherwise each
	// result of the source covers the one before and a person's count is the largest.
	Live     bool
	Model    string  // face model of the vectors
	Cut      float64 // largest linking distance (LinkCut)
	AtMillis int64
	Clusters []Cluster
}

// Link is what one cluster of a window was linked to.
type Link struct {
	Person   string
	Name     string
	New      bool    // the cluster made a new person
	Distance float64 // to the person's exemplars before the link (0 for a new person)
}

// Sample sizes: a cluster's faces compared with a person's exemplars, and the faces offered as
// new exemplars. Evenly spaced over the cluster, so cost is bounded however long it is.
const (
	compareSample   = 32
	candidateSample = 64
)

// Link matches each cluster of w to a gallery person by face distance: pairs closer than
// w.Cut are taken closest first, each cluster and each person at most once (two clusters of
// one window are two people); a cluster left over becomes a new person. Each linked person
// gains exemplars from its cluster, chosen to keep the set spread, never faces that look more
// like a person it was split from. Links are in w.Clusters' order.
func (g *Gallery) Link(ctx context.Context, w Window) ([]Link, error) {
	if w.ID == "" || w.Model == "" || !(w.Cut > 0) {
		return nil, fmt.Errorf("%w: window %q of model %q with cut %v", ErrBadRequest, w.ID, w.Model, w.Cut)
	}
	if len(w.Clusters) == 0 {
		return nil, nil
	}
	if w.AtMillis == 0 {
		return nil, fmt.Errorf("%w: window %q has no time", ErrBadRequest, w.ID)
	}
	samples := make([][][]float64, len(w.Clusters))
	dim := -1
	for i, c := range w.Clusters {
		if len(c.Faces) == 0 {
			return nil, fmt.Errorf("%w: window %q: cluster %d has no faces", ErrBadRequest, w.ID, i)
		}
		for _, f := range c.Faces {
			if dim < 0 {
				dim = len(f.Vector)
			}
			if len(f.Vector) != dim || dim == 0 {
				return nil, fmt.Errorf("%w: window %q: face vectors of lengths %d and %d", ErrBadRequest, w.ID, dim, len(f.Vector))
			}
		}
		for _, k := range spread(len(c.Faces), compareSample) {
			samples[i] = append(samples[i], vec.Unit(c.Faces[k].Vector))
		}
	}
	var links []Link
	var thumbs map[string][]byte // thumbnails a window linked before may have left unstored
	err := g.update(ctx, func(t *txn) error {
		links, thumbs = nil, nil
		if done := t.idx.recent(w.ID); done != nil && len(done.People) == len(w.Clusters) {
			for i, id := range done.People {
				id = t.idx.resolve(id)
				l := Link{Person: id}
				if p := t.person(id); p != nil {
					l.Name = p.Name
					if p.Thumbnail == thumbnailKey(done.People[i]) && len(w.Clusters[i].Thumbnail) > 0 && g.thumbs != nil {
						if thumbs == nil {
							thumbs = map[string][]byte{}
						}
						thumbs[p.Thumbnail] = w.Clusters[i].Thumbnail
					}
				}
				links = append(links, l)
			}
			return errNoChange
		}
		links = assign(t, w, samples)
		ids := make([]string, len(links))
		for i, l := range links {
			ids[i] = l.Person
		}
		t.idx.Recent = append(t.idx.Recent, linked{Window: w.ID, People: ids})
		if n := len(t.idx.Recent) - maxRecent; n > 0 {
			t.idx.Recent = append([]linked(nil), t.idx.Recent[n:]...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Linked before: the thumbnails of the people it made are stored after their commit, so a
	// link whose storing failed (and is tried again, as this one) may have left them out.
	for key, jpeg := range thumbs {
		if _, err := g.thumbs.GetInfo(ctx, key); errors.Is(err, jetstream.ErrObjectNotFound) {
			if _, err := g.thumbs.PutBytes(ctx, key, jpeg); err != nil {
				return nil, fmt.Errorf("people: storing the thumbnail %s: %w", key, err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("people: looking up the thumbnail %s: %w", key, err)
		}
	}
	return links, nil
}

// thumbnailKey is where the thumbnail of a person made by a link is stored.
func thumbnailKey(id string) string { return "people/" + id + ".jpg" }

type candidate struct {
	cluster int
	person  string
	d       float64
}

// assign links the clusters of w within transaction t.
func assign(t *txn, w Window, samples [][][]float64) []Link {
	ids := t.ids()
	groups := map[string][][][]float64{}
	groupNames := map[string][]string{}
	for _, id := range ids {
		groupNames[id], groups[id] = t.person(id).groups(w.Model)
	}
	var cands []candidate
	type pair struct {
		cluster int
		person  string
	}
	nearGroup := map[pair]string{} // its nearest group
	// The distance between two sets' means bounds their average distance from below (the norm
	// is convex), so a group whose mean lies beyond the cut is skipped without comparing faces.
	means := map[string][][]float64{}
	for id, gs := range groups {
		for _, g := range gs {
			means[id] = append(means[id], mean(g))
		}
	}
	for ci := range w.Clusters {
		sampleMean := mean(samples[ci])
		for _, id := range ids {
			// A person is as near as the nearest of its groups (people merged into it).
			d, best := math.Inf(1), ""
			for k, ex := range groups[id] {
				if len(ex[0]) != len(sampleMean) || dist(sampleMean, means[id][k]) > w.Cut {
					continue
				}
				if dk := averageDistance(samples[ci], ex); dk < d {
					d, best = dk, groupNames[id][k]
				}
			}
			if d <= w.Cut {
				cands = append(cands, candidate{ci, id, d})
				nearGroup[pair{ci, id}] = best
			}
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		if cands[i].d != cands[j].d {
			return cands[i].d < cands[j].d
		}
		if cands[i].cluster != cands[j].cluster {
			return cands[i].cluster < cands[j].cluster
		}
		return cands[i].person < cands[j].person
	})
	links := make([]Link, len(w.Clusters))
	taken := map[string]bool{}
	done := make([]bool, len(w.Clusters))
	for _, c := range cands {
		if done[c.cluster] || taken[c.person] {
			continue
		}
		done[c.cluster], taken[c.person] = true, true
		links[c.cluster] = Link{Person: c.person, Distance: c.d}
	}
	for ci := range w.Clusters {
		if !done[ci] {
			p := newPerson(t, w, ci)
			links[ci] = Link{Person: p.ID, New: true}
		}
	}
	exemplars := map[string][][]float64{}
	for id, gs := range groups {
		for _, g := range gs {
			exemplars[id] = append(exemplars[id], g...)
		}
	}
	for ci, c := range w.Clusters {
		p := t.edit(links[ci].Person)
		group := nearGroup[pair{ci, p.ID}]
		if group == p.ID {
			group = ""
		}
		feed(t, p, w, c, exemplars, group)
		links[ci].Name = p.Name
	}
	return links
}

// newPerson adds a person for cluster ci of w. Its id derives from the window and the
// cluster, so a window linked again after a crash makes the same id.
func newPerson(t *txn, w Window, ci int) *Person {
	var id string
	for n := 0; ; n++ {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d/%d", w.ID, ci, n))
		id = "p" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:7]
		if t.person(id) == nil && t.idx.Merged[id] == "" && !t.removed[id] {
			break
		}
	}
	p := &Person{ID: id, Created: w.AtMillis, Sources: map[string]int64{}}
	if len(w.Clusters[ci].Thumbnail) > 0 && t.g.thumbs != nil {
		p.Thumbnail = thumbnailKey(id)
		jpeg := w.Clusters[ci].Thumbnail
		t.after = append(t.after, func(ctx context.Context) error {
			if _, err := t.g.thumbs.PutBytes(ctx, p.Thumbnail, jpeg); err != nil {
				return fmt.Errorf("people: storing the thumbnail of %s: %w", id, err)
			}
			return nil
		})
	}
	t.add(p)
	return p
}

// feed adds what cluster c of w tells about person p: counts, sightings and exemplars.
func feed(t *txn, p *Person, w Window, c Cluster, exemplars map[string][][]float64, group string) {
	p.Links++
	n := int64(len(c.Faces))
	if w.Live {
		p.Sources[w.Source] += n
	} else {
		p.Sources[w.Source] = max(p.Sources[w.Source], n)
	}
	if len(p.Sources) > maxSources {
		trimSources(p, w.Source)
	}
	first, last := c.Faces[0], c.Faces[0]
	for _, f := range c.Faces {
		if f.Frame < first.Frame {
			first = f
		}
		if f.Frame > last.Frame {
			last = f
		}
	}
	p.seen(Sighting{Source: w.Source, Frame: first.Frame, PTSMillis: first.PTSMillis, AtMillis: w.AtMillis},
		Sighting{Source: w.Source, Frame: last.Frame, PTSMillis: last.PTSMillis, AtMillis: w.AtMillis})
	// Faces that look more like a person p was split from are not p's exemplars.
	var apart [][][]float64
	for _, other := range t.idx.cannotLinked(p.ID) {
		if ex := exemplars[other]; len(ex) > 0 {
			apart = append(apart, ex)
		}
	}
	own := exemplars[p.ID]
	var offered []Exemplar
	for _, k := range spread(len(c.Faces), candidateSample) {
		f := c.Faces[k]
		u := vec.Unit(f.Vector)
		if len(own) > 0 && len(apart) > 0 {
			mine := nearest(u, own)
			keep := true
			for _, ex := range apart {
				if nearest(u, ex) < mine {
					keep = false
					break
				}
			}
			if !keep {
				continue
			}
		}
		offered = append(offered, Exemplar{Model: w.Model, Vector: unit32(f.Vector), Source: w.Source, Frame: f.Frame, Image: f.Image, Group: group})
	}
	p.Exemplars = chooseExemplars(p.Exemplars, offered, w.Model)
}

func trimSources(p *Person, keep string) {
	// Drop the smallest counts first; their faces leave the total, which is a bound anyway.
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range p.Sources {
		if k != keep {
			all = append(all, kv{k, v})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	for _, e := range all[:len(p.Sources)-maxSources] {
		delete(p.Sources, e.k)
	}
}

// chooseExemplars keeps at most MaxExemplars of model among current and offered: starting
// from the face nearest their mean, it adds the face farthest from those chosen (so the set
// covers the person's poses and lighting rather than repeating one). Other models' exemplars
// are kept as they are.
func chooseExemplars(current, offered []Exemplar, model string) []Exemplar {
	var pool, rest []Exemplar
	for _, e := range current {
		if e.Model == model {
			pool = append(pool, e)
		} else {
			rest = append(rest, e)
		}
	}
	pool = append(pool, offered...)
	if len(pool) <= MaxExemplars {
		return append(rest, pool...)
	}
	vs := make([][]float64, len(pool))
	mean := make([]float64, len(pool[0].Vector))
	for i, e := range pool {
		vs[i] = vec.Unit(e.Vector)
		for j, x := range vs[i] {
			mean[j] += x
		}
	}
	first, best := 0, math.Inf(1)
	for i, v := range vs {
		if d := dist(v, mean); d < best {
			first, best = i, d
		}
	}
	chosen := []int{first}
	near := make([]float64, len(vs)) // distance to the nearest chosen
	for i, v := range vs {
		near[i] = dist(v, vs[first])
	}
	for len(chosen) < MaxExemplars {
		far, farD := -1, -1.0
		for i, d := range near {
			if d > farD {
				far, farD = i, d
			}
		}
		if farD <= 0 {
			break // the rest repeat what is chosen
		}
		chosen = append(chosen, far)
		for i, v := range vs {
			near[i] = min(near[i], dist(v, vs[far]))
		}
	}
	sort.Ints(chosen)
	for _, i := range chosen {
		rest = append(rest, pool[i])
	}
	return rest
}

// averageDistance is average linkage between two sets of unit vectors.
func averageDistance(a, b [][]float64) float64 {
	var s float64
	for _, x := range a {
		for _, y := range b {
			s += dist(x, y)
		}
	}
	return s / float64(len(a)*len(b))
}

func mean(vs [][]float64) []float64 {
	m := make([]float64, len(vs[0]))
	for _, v := range vs {
		for i, x := range v {
			m[i] += x
		}
	}
	for i := range m {
		m[i] /= float64(len(vs))
	}
	return m
}

func nearest(v []float64, set [][]float64) float64 {
	best := math.Inf(1)
	for _, x := range set {
		best = min(best, dist(v, x))
	}
	return best
}

// spread picks at most k indices of 0..n-1, evenly spaced.
func spread(n, k int) []int {
	if n <= k {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, k)
	for i := range out {
		out[i] = i * n / k
	}
	return out
}
