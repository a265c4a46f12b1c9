package people

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/personcluster/personcluster/stages/stage"
)

const indexKey = "index"

// maxAttempts bounds the tries of one transaction against concurrent writers.
const maxAttempts = 64

// Gallery is the people gallery of one JetStream deployment. It is safe for concurrent use.
type Gallery struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	thumbs jetstream.ObjectStore // nil: no thumbnails
	mu     sync.Mutex
	// cache holds decoded records by key: a record key is written once, so an entry never goes
	// stale, it only stops being referenced.
	cache map[string]*Person
	// markerTTL is how long the marker of a purged record lives (0: for good, in a bucket
	// made without marker TTLs).
	markerTTL time.Duration
}

// purgeMarkerTTL is how long a purged record's marker lives where the bucket allows it: every
// change purges the records it replaced, and markers kept for good would pile up.
var purgeMarkerTTL = time.Minute

// Open opens the gallery's buckets (stage.Topology.Ensure creates them).
func Open(ctx context.Context, js jetstream.JetStream) (*Gallery, error) {
	kv, err := js.KeyValue(ctx, stage.PeopleBucket)
	if err != nil {
		return nil, fmt.Errorf("people: opening %s: %w", stage.PeopleBucket, err)
	}
	thumbs, err := js.ObjectStore(ctx, stage.PeopleImagesBucket)
	if err != nil {
		return nil, fmt.Errorf("people: opening %s: %w", stage.PeopleImagesBucket, err)
	}
	g := &Gallery{js: js, kv: kv, thumbs: thumbs, cache: map[string]*Person{}}
	if st, err := kv.Status(ctx); err == nil && st.LimitMarkerTTL() > 0 {
		g.markerTTL = purgeMarkerTTL
	}
	return g, nil
}

// holds tells whether the stored index is x: a commit whose reply was lost may have landed.
func (g *Gallery) holds(ctx context.Context, x *index) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	cur, _, err := g.readIndex(ctx)
	if err != nil {
		return false
	}
	a, errA := canonicalIndex(cur)
	b, errB := canonicalIndex(x)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// canonicalIndex encodes x with its map keys sorted, so equal indexes give equal bytes.
func canonicalIndex(x *index) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// errStale: a record the index named is gone (a newer transaction replaced it); read again.
var errStale = errors.New("people: index moved")

func (g *Gallery) readIndex(ctx context.Context) (*index, uint64, error) {
	e, err := g.kv.Get(ctx, indexKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return newIndex(), 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("people: reading the index: %w", err)
	}
	x, err := decodeIndex(e.Value())
	if err != nil {
		return nil, 0, err
	}
	return x, e.Revision(), nil
}

// load returns every person the index names, by id.
func (g *Gallery) load(ctx context.Context, x *index) (map[string]*Person, error) {
	out := make(map[string]*Person, len(x.People))
	for id, key := range x.People {
		g.mu.Lock()
		p := g.cache[key]
		g.mu.Unlock()
		if p == nil {
			e, err := g.kv.Get(ctx, key)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				return nil, errStale
			}
			if err != nil {
				return nil, fmt.Errorf("people: reading %s: %w", id, err)
			}
			if p, err = decodePerson(e.Value()); err != nil {
				return nil, err
			}
			g.mu.Lock()
			g.cache[key] = p
			g.mu.Unlock()
		}
		out[id] = p
	}
	g.mu.Lock()
	if len(g.cache) > 2*len(x.People)+16 {
		// Records another process replaced are never dropped here: forget what this index
		// does not name.
		live := make(map[string]bool, len(x.People))
		for _, key := range x.People {
			live[key] = true
		}
		for key := range g.cache {
			if !live[key] {
				delete(g.cache, key)
			}
		}
	}
	g.mu.Unlock()
	return out, nil
}

// txn is one transaction's view: the index and people as read, and what it changes.
type txn struct {
	g       *Gallery
	idx     *index             // a copy the transaction may change
	people  map[string]*Person // as read: never modify
	edited  map[string]*Person
	removed map[string]bool
	// after runs once the index is committed (object store work).
	after []func(ctx context.Context) error
}

// person returns the current state of a person (edited or as read), nil if unknown.
func (t *txn) person(id string) *Person {
	if t.removed[id] {
		return nil
	}
	if p := t.edited[id]; p != nil {
		return p
	}
	return t.people[id]
}

// edit returns a modifiable copy of a person (nil if unknown).
func (t *txn) edit(id string) *Person {
	if p := t.edited[id]; p != nil {
		return p
	}
	p := t.person(id)
	if p == nil {
		return nil
	}
	p = p.clone()
	t.edited[id] = p
	return p
}

func (t *txn) add(p *Person) {
	t.edited[p.ID] = p
	delete(t.removed, p.ID)
}

func (t *txn) remove(id string) {
	t.removed[id] = true
	delete(t.edited, id)
}

// ids lists the people present in the transaction, sorted.
func (t *txn) ids() []string {
	seen := map[string]bool{}
	for id := range t.people {
		seen[id] = true
	}
	for id := range t.edited {
		seen[id] = true
	}
	var out []string
	for id := range seen {
		if !t.removed[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// errNoChange ends a transaction that has nothing to write.
var errNoChange = errors.New("people: nothing to change")

// update runs fn on a fresh view of the gallery and commits its changes with a
// compare-and-set of the index, again from the start when another writer got there first.
// An error from fn ends it with nothing changed.
func (g *Gallery) update(ctx context.Context, fn func(*txn) error) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			// A little random wait spreads writers that keep colliding.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(mrand.IntN(5*min(attempt, 8))+1) * time.Millisecond):
			}
		}
		x, rev, err := g.readIndex(ctx)
		if err != nil {
			return err
		}
		read, err := g.load(ctx, x)
		if errors.Is(err, errStale) {
			continue
		}
		if err != nil {
			return err
		}
		t := &txn{g: g, idx: x.clone(), people: read, edited: map[string]*Person{}, removed: map[string]bool{}}
		if err := fn(t); err != nil {
			if errors.Is(err, errNoChange) {
				return nil
			}
			return err
		}
		committed, err := g.commit(ctx, x, rev, t)
		if err != nil {
			return err
		}
		if !committed {
			continue
		}
		var errs []error
		for _, f := range t.after {
			if err := f(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	return ErrConflict
}

// commit writes the transaction's records and sets the index; false when another writer
// changed the index first (what was written is deleted again).
func (g *Gallery) commit(ctx context.Context, before *index, rev uint64, t *txn) (bool, error) {
	x := t.idx
	x.Seq++
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	var written []string
	undo := func() {
		for _, k := range written {
			_ = g.purge(context.WithoutCancel(ctx), k)
		}
	}
	ids := make([]string, 0, len(t.edited))
	for id := range t.edited {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	fresh := map[string]*Person{}
	for _, id := range ids {
		p := t.edited[id]
		data, err := msgpack.Marshal(p)
		if err != nil {
			undo()
			return false, fmt.Errorf("people: encoding %s: %w", id, err)
		}
		key := fmt.Sprintf("person.%s.%d-%s", id, x.Seq, hex.EncodeToString(nonce))
		if _, err := g.kv.Put(ctx, key, data); err != nil {
			undo()
			return false, fmt.Errorf("people: writing %s: %w", id, err)
		}
		written = append(written, key)
		x.People[id] = key
		fresh[key] = p
	}
	for id := range t.removed {
		delete(x.People, id)
	}
	data, err := msgpack.Marshal(x)
	if err != nil {
		undo()
		return false, fmt.Errorf("people: encoding the index: %w", err)
	}
	if rev == 0 {
		_, err = g.kv.Create(ctx, indexKey, data)
	} else {
		_, err = g.kv.Update(ctx, indexKey, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		undo()
		return false, nil
	}
	if err != nil && !g.holds(ctx, x) {
		// The index may yet be stored although its reply was lost (a leader that died after
		// replicating it, a context that ended): the records it would name stay. Unnamed
		// ones cost a little space; deleting named ones would break the gallery for good.
		return false, fmt.Errorf("people: committing: %w", err)
	}
	g.mu.Lock()
	for k, p := range fresh {
		g.cache[k] = p
	}
	g.mu.Unlock()
	// The records this commit replaced are unreferenced now.
	for id := range t.edited {
		if old, ok := before.People[id]; ok {
			g.drop(ctx, old)
		}
	}
	for id := range t.removed {
		if old, ok := before.People[id]; ok {
			g.drop(ctx, old)
		}
	}
	return true, nil
}

// drop purges an unreferenced record (a reader holding an older index then reads again).
func (g *Gallery) drop(ctx context.Context, key string) {
	_ = g.purge(context.WithoutCancel(ctx), key)
	g.mu.Lock()
	delete(g.cache, key)
	g.mu.Unlock()
}

// purge removes a record key, its marker expiring where the bucket allows it.
func (g *Gallery) purge(ctx context.Context, key string) error {
	if g.markerTTL > 0 {
		return g.kv.Purge(ctx, key, jetstream.PurgeTTL(g.markerTTL))
	}
	return g.kv.Purge(ctx, key)
}

// view reads a consistent snapshot of the gallery.
func (g *Gallery) view(ctx context.Context) (*index, map[string]*Person, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		x, _, err := g.readIndex(ctx)
		if err != nil {
			return nil, nil, err
		}
		read, err := g.load(ctx, x)
		if errors.Is(err, errStale) {
			continue
		}
		return x, read, err
	}
	return nil, nil, ErrConflict
}

// List returns every person, oldest first.
func (g *Gallery) List(ctx context.Context) ([]*Person, error) {
	_, read, err := g.view(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Person, 0, len(read))
	for _, p := range read {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created < out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Get returns a person by id. An id merged into another person returns the survivor, with
// mergedInto set to its id.
func (g *Gallery) Get(ctx context.Context, id string) (p *Person, mergedInto string, err error) {
	if err := ValidateID(id); err != nil {
		return nil, "", err
	}
	x, read, err := g.view(ctx)
	if err != nil {
		return nil, "", err
	}
	to := x.resolve(id)
	p = read[to]
	if p == nil {
		return nil, "", fmt.Errorf("%w %q", ErrUnknownPerson, id)
	}
	if to != id {
		mergedInto = to
	}
	return p, mergedInto, nil
}

// CannotLink lists the people split apart from id.
func (g *Gallery) CannotLink(ctx context.Context, id string) ([]string, error) {
	x, _, err := g.view(ctx)
	if err != nil {
		return nil, err
	}
	return x.cannotLinked(x.resolve(id)), nil
}

// Thumbnail returns a person's thumbnail JPEG (nil when there is none).
func (g *Gallery) Thumbnail(ctx context.Context, p *Person) ([]byte, error) {
	if p.Thumbnail == "" || g.thumbs == nil {
		return nil, nil
	}
	data, err := g.thumbs.GetBytes(ctx, p.Thumbnail)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("people: thumbnail of %s: %w", p.ID, err)
	}
	return data, nil
}
