package people

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
)

// Rename sets a person's name (ValidateName).
func (g *Gallery) Rename(ctx context.Context, id, name string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := ValidateName(name); err != nil {
		return err
	}
	return g.update(ctx, func(t *txn) error {
		p := t.edit(t.idx.resolve(id))
		if p == nil {
			return fmt.Errorf("%w %q", ErrUnknownPerson, id)
		}
		p.Name = name
		return nil
	})
}

// Merge makes from part of into: into keeps its id and gains from's exemplars (chosen again to
// stay within MaxExemplars), counts and sightings, and from's name if it has none. from's id
// then names into (a must-link: later linking sees one person). A merge overrides an earlier
// split of the two.
func (g *Gallery) Merge(ctx context.Context, into, from string) error {
	for _, id := range []string{into, from} {
		if err := ValidateID(id); err != nil {
			return err
		}
	}
	if into == from {
		return fmt.Errorf("%w: merging %s with itself", ErrBadRequest, into)
	}
	return g.update(ctx, func(t *txn) error {
		a, b := t.idx.resolve(into), t.idx.resolve(from)
		for _, id := range []string{into, from} {
			if t.person(t.idx.resolve(id)) == nil {
				return fmt.Errorf("%w %q", ErrUnknownPerson, id)
			}
		}
		if a == b {
			return fmt.Errorf("%w: %s and %s are already one person (%s)", ErrBadRequest, into, from, a)
		}
		pa, pb := t.edit(a), t.person(b)
		if pa.Name == "" {
			pa.Name = pb.Name
		}
		for src, n := range pb.Sources {
			pa.Sources[src] += n
		}
		pa.Links += pb.Links
		pa.seen(pb.First, pb.Last)
		if pa.Created == 0 || (pb.Created != 0 && pb.Created < pa.Created) {
			pa.Created = pb.Created
		}
		if pa.Thumbnail == "" {
			pa.Thumbnail = pb.Thumbnail
		}
		models := map[string]bool{}
		for _, e := range pb.Exemplars {
			models[e.Model] = true
		}
		for m := range models {
			var offered []Exemplar
			for _, e := range pb.Exemplars {
				if e.Model == m {
					if e.Group == "" || e.Group == a {
						e.Group = b // compared apart from a's own faces
					}
					offered = append(offered, e)
				}
			}
			pa.Exemplars = chooseExemplars(pa.Exemplars, offered, m)
		}
		t.remove(b)
		t.idx.Merged[b] = a
		for k, v := range t.idx.Merged {
			if v == b {
				t.idx.Merged[k] = a
			}
		}
		var pairs [][2]string
		for _, p := range t.idx.CannotLink {
			for i := range p {
				if p[i] == b {
					p[i] = a
				}
			}
			if p[0] != p[1] && !slices.Contains(pairs, p) && !slices.Contains(pairs, [2]string{p[1], p[0]}) {
				pairs = append(pairs, p)
			}
		}
		t.idx.CannotLink = pairs
		if pb.Thumbnail != "" && pb.Thumbnail != pa.Thumbnail && g.thumbs != nil {
			t.after = append(t.after, func(ctx context.Context) error { return deleteObject(ctx, g.thumbs, pb.Thumbnail) })
		}
		return nil
	})
}

// Split moves the exemplars at the given positions of a person's Exemplars (as `people show`
// numbers them, from 0) to a new person, and keeps the two apart from then on (a cannot-link:
// linking never again feeds faces that look like one to the other). It returns the new id.
func (g *Gallery) Split(ctx context.Context, id string, exemplars []int) (string, error) {
	if err := ValidateID(id); err != nil {
		return "", err
	}
	if len(exemplars) == 0 {
		return "", fmt.Errorf("%w: split %s: no exemplars named", ErrBadRequest, id)
	}
	var newID string
	now := time.Now().UnixMilli()
	err := g.update(ctx, func(t *txn) error {
		src := t.idx.resolve(id)
		p := t.person(src)
		if p == nil {
			return fmt.Errorf("%w %q", ErrUnknownPerson, id)
		}
		move := map[int]bool{}
		for _, k := range exemplars {
			if k < 0 || k >= len(p.Exemplars) {
				return fmt.Errorf("%w: split %s: exemplar %d, it has 0..%d", ErrBadRequest, id, k, len(p.Exemplars)-1)
			}
			if move[k] {
				return fmt.Errorf("%w: split %s: exemplar %d named twice", ErrBadRequest, id, k)
			}
			move[k] = true
		}
		if len(move) == len(p.Exemplars) {
			return fmt.Errorf("%w: split %s: that is every exemplar (forget or merge instead)", ErrBadRequest, id)
		}
		sum := sha256.Sum256(fmt.Appendf(nil, "split/%s/%d", src, t.idx.Seq))
		newID = "p" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:7]
		if t.person(newID) != nil || t.idx.Merged[newID] != "" {
			return fmt.Errorf("people: split %s: id %s taken; try again", id, newID)
		}
		q := &Person{ID: newID, Created: now, Sources: map[string]int64{}}
		kept := t.edit(src)
		kept.Exemplars = nil
		for k, e := range p.Exemplars {
			if !move[k] {
				kept.Exemplars = append(kept.Exemplars, e)
				continue
			}
			e.Group = ""
			q.Exemplars = append(q.Exemplars, e)
			q.Sources[e.Source]++
			s := Sighting{Source: e.Source, Frame: e.Frame, AtMillis: now}
			q.seen(s, s)
		}
		q.Links = 1
		t.add(q)
		t.idx.CannotLink = append(t.idx.CannotLink, [2]string{src, newID})
		return nil
	})
	if err != nil {
		return "", err
	}
	return newID, nil
}

// Forget removes a person for good (privacy): its record and exemplar vectors, its thumbnail,
// the crops of its faces in every result of the sources it was seen in and of its exemplars,
// and its points in those results' fingerprint files. Results keep their boxes and the
// forgotten id. It returns the number of crops deleted.
func (g *Gallery) Forget(ctx context.Context, id string) (int, error) {
	if err := ValidateID(id); err != nil {
		return 0, err
	}
	var gone *Person
	var ids []string
	err := g.update(ctx, func(t *txn) error {
		target := t.idx.resolve(id)
		p := t.person(target)
		if p == nil {
			return fmt.Errorf("%w %q", ErrUnknownPerson, id)
		}
		gone = p
		ids = []string{target}
		t.remove(target)
		for k, v := range t.idx.Merged {
			if v == target {
				ids = append(ids, k)
				delete(t.idx.Merged, k)
			}
		}
		var pairs [][2]string
		for _, pr := range t.idx.CannotLink {
			if pr[0] != target && pr[1] != target {
				pairs = append(pairs, pr)
			}
		}
		t.idx.CannotLink = pairs
		var recent []linked
		for _, r := range t.idx.Recent {
			if !slices.ContainsFunc(r.People, func(x string) bool { return slices.Contains(ids, x) }) {
				recent = append(recent, r)
			}
		}
		t.idx.Recent = recent
		return nil
	})
	if err != nil {
		return 0, err
	}
	var errs []error
	// Records a writer left behind when it died between writing and committing hold vectors
	// too: every record of the forgotten ids goes.
	errs = append(errs, g.purgeRecords(ctx, ids))
	if gone.Thumbnail != "" && g.thumbs != nil {
		errs = append(errs, deleteObject(ctx, g.thumbs, gone.Thumbnail))
	}
	images, err := g.js.ObjectStore(ctx, stage.ImagesBucket)
	if err != nil {
		return 0, errors.Join(append(errs, fmt.Errorf("people: forgetting %s: %w", id, err))...)
	}
	crops := map[string]bool{}
	for _, e := range gone.Exemplars {
		if e.Image != "" {
			crops[e.Image] = true
		}
	}
	for src := range gone.Sources {
		if err := g.scrubSource(ctx, images, src, ids, crops); err != nil {
			errs = append(errs, err)
		}
	}
	for key := range crops {
		errs = append(errs, deleteObject(ctx, images, key))
	}
	return len(crops), errors.Join(errs...)
}

// purgeRecords purges every record key of the given ids, referenced or not.
func (g *Gallery) purgeRecords(ctx context.Context, ids []string) error {
	filters := make([]string, len(ids))
	for i, id := range ids {
		filters[i] = "person." + id + ".>"
	}
	keys, err := g.kv.ListKeysFiltered(ctx, filters...)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("people: listing records to purge: %w", err)
	}
	var errs []error
	for k := range keys.Keys() {
		if err := g.purge(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("people: purging %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

// scrubSource collects the crops of the forgotten ids' faces in the stored results of src and
// removes their points from those results' fingerprint files.
func (g *Gallery) scrubSource(ctx context.Context, images jetstream.ObjectStore, src string, ids []string, crops map[string]bool) error {
	if messages.ValidateSourceID(src) != nil {
		return nil
	}
	results, err := storedResults(ctx, g.js, src)
	if err != nil {
		return fmt.Errorf("people: reading the results of %s: %w", src, err)
	}
	var errs []error
	for _, r := range results {
		faces := map[[2]int64]bool{}
		for _, c := range r.Clusters {
			if !slices.Contains(ids, c.Person) {
				continue
			}
			for _, m := range c.Members {
				faces[[2]int64{m.Seq, int64(m.Face)}] = true
				if m.Image != "" {
					crops[m.Image] = true
				}
			}
		}
		if len(faces) > 0 && r.Fingerprints != "" {
			if err := scrubFingerprints(ctx, images, r.Fingerprints, faces); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// storedResults reads every result of src still in the results stream.
func storedResults(ctx context.Context, js jetstream.JetStream, src string) ([]*messages.ClusterResult, error) {
	subject := messages.Subject(messages.SubjectResults, src)
	stream, err := js.Stream(ctx, stage.StreamResults)
	if err != nil {
		return nil, err
	}
	if _, err := stream.GetLastMsgForSubject(ctx, subject); errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, stage.StreamResults, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, err
	}
	var out []*messages.ClusterResult
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, err
		}
		if r, err := messages.DecodeAs[*messages.ClusterResult](msg.Data()); err == nil {
			out = append(out, r)
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		if md.NumPending == 0 {
			return out, nil
		}
	}
}

// scrubFingerprints rewrites a fingerprint file (gzip JSON with parallel "points" and
// "members") without the given faces (seq, face index).
func scrubFingerprints(ctx context.Context, images jetstream.ObjectStore, key string, faces map[[2]int64]bool) error {
	data, err := images.GetBytes(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("people: reading %s: %w", key, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("people: reading %s: %w", key, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("people: reading %s: %w", key, err)
	}
	var file map[string]json.RawMessage
	if err := json.Unmarshal(raw, &file); err != nil {
		return fmt.Errorf("people: decoding %s: %w", key, err)
	}
	var points []json.RawMessage
	var members []messages.Member
	if err := json.Unmarshal(file["points"], &points); err != nil {
		return fmt.Errorf("people: decoding %s: %w", key, err)
	}
	if err := json.Unmarshal(file["members"], &members); err != nil || len(members) != len(points) {
		return fmt.Errorf("people: decoding %s: members do not match points", key)
	}
	keptPoints, keptMembers := []json.RawMessage{}, []messages.Member{}
	for i, m := range members {
		if !faces[[2]int64{m.Seq, int64(m.Face)}] {
			keptPoints = append(keptPoints, points[i])
			keptMembers = append(keptMembers, m)
		}
	}
	file["points"], _ = json.Marshal(keptPoints)
	file["members"], _ = json.Marshal(keptMembers)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(file); err != nil {
		return fmt.Errorf("people: encoding %s: %w", key, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("people: encoding %s: %w", key, err)
	}
	if _, err := images.PutBytes(ctx, key, buf.Bytes()); err != nil {
		return fmt.Errorf("people: writing %s: %w", key, err)
	}
	return nil
}

func deleteObject(ctx context.Context, obj jetstream.ObjectStore, key string) error {
	if err := obj.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("people: deleting %s: %w", key, err)
	}
	return nil
}
