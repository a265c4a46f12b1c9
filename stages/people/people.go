// Package people keeps identities that outlive a result: a gallery of people in a JetStream
// key-value bucket (stage.PeopleBucket). Each person has a stable short id, an optional name, a
// bounded set of exemplar face vectors per face model, counts, the first and last sighting and
// a thumbnail in the object store stage.PeopleImagesBucket. The clusterer links each result's
// clusters to people (Link); users name, merge, split and forget people.
//
// # Storage and concurrency
//
// One key, "index", lists the people: for each person the key of its current record, plus the
// constraints (merged ids, pairs split apart) and the windows linked last. Every change — a
// link, a rename, a merge — is one transaction: read the index, read the records it names
// (cached: a record key is written once and never changed), compute, write the changed records
// under fresh keys, then compare-and-set the index on the revision read. A writer that loses
// the race deletes what it wrote and starts again from the new index; one killed midway leaves
// only unreferenced records. So replicated clusterers and many sources can link at once, and no
// person is created twice or lost.
//
// A window linked again (a redelivery after a clusterer died between the gallery update and
// the result's publish) gets the people it got the first time, without counting twice.
package people

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/personcluster/personcluster/stages/internal/vec"
)

// MaxExemplars bounds the exemplar face vectors kept per person and face model.
const MaxExemplars = 16

// MaxNameRunes bounds a person's name.
const MaxNameRunes = 64

// maxSources bounds the sources a person's record counts faces for; the oldest go first (the
// counts stay in Faces).
const maxSources = 1024

// maxRecent is how many linked windows the index remembers for redeliveries.
const maxRecent = 128

// Sentinel errors, matched with errors.Is.
var (
	ErrUnknownPerson = errors.New("people: unknown person")
	ErrBadName       = errors.New("people: bad name")
	ErrBadRequest    = errors.New("people: bad request")
	// ErrConflict is returned when a transaction lost its compare-and-set too many times.
	ErrConflict = errors.New("people: the gallery kept changing; giving up")
)

// Sighting is where a person was seen.
type Sighting struct {
	Source    string `msgpack:"source" json:"source"`
	Frame     int64  `msgpack:"frame" json:"frame"`
	PTSMillis int64  `msgpack:"pts" json:"pts_ms"`
	AtMillis  int64  `msgpack:"at" json:"at_ms"` // when the result was made
}

// Exemplar is one kept face vector, unit-normalised, with where it came from.
type Exemplar struct {
	Model  string    `msgpack:"model" json:"model"`
	Vector []float32 `msgpack:"vec" json:"-"`
	Source string    `msgpack:"source" json:"source"`
	Frame  int64     `msgpack:"frame" json:"frame"`
	Image  string    `msgpack:"image,omitempty" json:"image,omitempty"` // crop key in the images bucket
	// Group is the id of the person the exemplar first belonged to: a merged person keeps one
	// group per person merged, and a cluster is compared with each group apart (one person may
	// look two ways: the merge says so).
	Group string `msgpack:"group,omitempty" json:"group,omitempty"`
}

// Person is one gallery entry.
type Person struct {
	ID        string     `msgpack:"id" json:"id"`
	Name      string     `msgpack:"name,omitempty" json:"name,omitempty"`
	Created   int64      `msgpack:"created" json:"created_ms"`
	Exemplars []Exemplar `msgpack:"exemplars" json:"exemplars"`
	// Sources counts faces per source: the most any one result of a file source gave (its
	// quota result's faces are also in its final one), summed over a live source's windows.
	Sources   map[string]int64 `msgpack:"sources" json:"sources"`
	First     Sighting         `msgpack:"first" json:"first"`
	Last      Sighting         `msgpack:"last" json:"last"`
	Thumbnail string           `msgpack:"thumb,omitempty" json:"thumbnail,omitempty"` // key in the people images bucket
	Links     int64            `msgpack:"links" json:"links"`                         // clusters linked to this person
}

// Faces is the number of faces counted for the person over all sources.
func (p *Person) Faces() int64 {
	var n int64
	for _, c := range p.Sources {
		n += c
	}
	return n
}

// ModelExemplars returns the person's exemplar vectors of one face model.
func (p *Person) ModelExemplars(model string) [][]float32 {
	var out [][]float32
	for _, e := range p.Exemplars {
		if e.Model == model {
			out = append(out, e.Vector)
		}
	}
	return out
}

// groups returns the person's unit exemplar vectors of one model by group, in a fixed order.
func (p *Person) groups(model string) (names []string, vectors [][][]float64) {
	at := map[string]int{}
	for _, e := range p.Exemplars {
		if e.Model != model {
			continue
		}
		g := e.Group
		if g == "" {
			g = p.ID
		}
		k, ok := at[g]
		if !ok {
			k = len(names)
			at[g] = k
			names = append(names, g)
			vectors = append(vectors, nil)
		}
		vectors[k] = append(vectors[k], vec.Unit(e.Vector))
	}
	return names, vectors
}

func (p *Person) clone() *Person {
	c := *p
	c.Exemplars = append([]Exemplar(nil), p.Exemplars...)
	c.Sources = make(map[string]int64, len(p.Sources))
	for k, v := range p.Sources {
		c.Sources[k] = v
	}
	return &c
}

// seen widens the first and last sightings by s.
func (p *Person) seen(first, last Sighting) {
	if p.First.AtMillis == 0 || first.AtMillis < p.First.AtMillis {
		p.First = first
	}
	if last.AtMillis >= p.Last.AtMillis {
		p.Last = last
	}
}

// index is the gallery's one mutable key.
type index struct {
	Version int `msgpack:"v"`
	// People maps a person id to the key of its current record.
	People map[string]string `msgpack:"people"`
	// Merged maps the id of a person merged into another to the survivor (must-link).
	Merged map[string]string `msgpack:"merged"`
	// CannotLink holds pairs of people split apart: linking never feeds one's faces to the other.
	CannotLink [][2]string `msgpack:"cannot_link"`
	// Recent are the windows linked last, oldest first, with the people each cluster got.
	Recent []linked `msgpack:"recent"`
	// Seq counts committed transactions (record keys carry it).
	Seq uint64 `msgpack:"seq"`
}

type linked struct {
	Window string   `msgpack:"window"`
	People []string `msgpack:"people"`
}

const indexVersion = 1

func newIndex() *index {
	return &index{Version: indexVersion, People: map[string]string{}, Merged: map[string]string{}}
}

func (x *index) clone() *index {
	c := &index{Version: x.Version, People: make(map[string]string, len(x.People)), Merged: make(map[string]string, len(x.Merged)),
		CannotLink: append([][2]string(nil), x.CannotLink...), Recent: append([]linked(nil), x.Recent...), Seq: x.Seq}
	for k, v := range x.People {
		c.People[k] = v
	}
	for k, v := range x.Merged {
		c.Merged[k] = v
	}
	return c
}

// resolve follows merges to the surviving id.
func (x *index) resolve(id string) string {
	for i := 0; i < 64; i++ {
		to, ok := x.Merged[id]
		if !ok {
			return id
		}
		id = to
	}
	return id
}

func (x *index) cannotLink(a, b string) bool {
	for _, p := range x.CannotLink {
		if (p[0] == a && p[1] == b) || (p[0] == b && p[1] == a) {
			return true
		}
	}
	return false
}

// cannotLinked lists the people split apart from id.
func (x *index) cannotLinked(id string) []string {
	var out []string
	for _, p := range x.CannotLink {
		switch id {
		case p[0]:
			out = append(out, p[1])
		case p[1]:
			out = append(out, p[0])
		}
	}
	return out
}

func (x *index) recent(window string) *linked {
	for i := range x.Recent {
		if x.Recent[i].Window == window {
			return &x.Recent[i]
		}
	}
	return nil
}

func decodeIndex(data []byte) (*index, error) {
	x := newIndex()
	if err := msgpack.Unmarshal(data, x); err != nil {
		return nil, fmt.Errorf("people: decoding the index: %w", err)
	}
	if x.Version < 1 || x.Version > indexVersion {
		return nil, fmt.Errorf("people: index version %d (this build reads 1..%d)", x.Version, indexVersion)
	}
	if x.People == nil {
		x.People = map[string]string{}
	}
	if x.Merged == nil {
		x.Merged = map[string]string{}
	}
	return x, nil
}

func decodePerson(data []byte) (*Person, error) {
	var p Person
	if err := msgpack.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("people: decoding a person: %w", err)
	}
	if p.Sources == nil {
		p.Sources = map[string]int64{}
	}
	return &p, nil
}

// ValidateName checks a name a user gives a person: not empty, at most MaxNameRunes runes of
// UTF-8 without control characters, no leading or trailing space. Control characters include
// the bidirectional overrides and isolates (they reorder the text shown after a name: a name
// could make a page or a terminal line read otherwise) and the line and paragraph separators.
func ValidateName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not UTF-8", ErrBadName)
	case utf8.RuneCountInString(name) > MaxNameRunes:
		return fmt.Errorf("%w: %d characters, at most %d", ErrBadName, utf8.RuneCountInString(name), MaxNameRunes)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: leading or trailing space", ErrBadName)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError || unicode.Is(unicode.Bidi_Control, r) || unicode.In(r, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("%w: control character %U", ErrBadName, r)
		}
	}
	return nil
}

// ValidateID checks the form of a person id (it says nothing about whether the person exists).
func ValidateID(id string) error {
	if len(id) < 2 || len(id) > 32 {
		return fmt.Errorf("%w %q: not an id", ErrUnknownPerson, truncate(id, 40))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return fmt.Errorf("%w %q: not an id", ErrUnknownPerson, truncate(id, 40))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// unit32 is vec.Unit in float32.
func unit32(v []float32) []float32 {
	u := vec.Unit(v)
	out := make([]float32, len(u))
	for i, x := range u {
		out[i] = float32(x)
	}
	return out
}

func dist(a, b []float64) float64 {
	var s float64
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return math.Sqrt(s)
}
