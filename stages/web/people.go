package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/stages/output"
	"github.com/personcluster/personcluster/stages/people"
)

// errNoGallery: the deployment has no people gallery (its buckets were never made).
var errNoGallery = errors.New("web: this deployment has no people gallery (start personcluster server, or a stage with --ensure, once)")

// gallery opens the people gallery once NATS is there (nil and an error before, or where the
// deployment has none; it is tried again on the next request).
func (s *Server) gallery(ctx context.Context) (*people.Gallery, error) {
	s.mu.Lock()
	g, js := s.galleryOpen, s.js
	s.mu.Unlock()
	if g != nil {
		return g, nil
	}
	if js == nil {
		return nil, errors.New("web: not connected to NATS yet")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	g, err := people.Open(ctx, js)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, errNoGallery
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.galleryOpen = g
	s.mu.Unlock()
	return g, nil
}

// listPeople reads every person; while NATS is away it returns the last list read, with the
// error that says why it is not fresh.
func (s *Server) listPeople(ctx context.Context) ([]*people.Person, error) {
	s.mu.Lock()
	connected := s.connected
	s.mu.Unlock()
	g, err := s.gallery(ctx)
	if err == nil && !connected {
		// A read would wait for the connection: answer at once with what was read last.
		err = errors.New("web: NATS is not connected")
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var ps []*people.Person
		if ps, err = g.List(ctx); err == nil {
			s.mu.Lock()
			s.lastPeople = ps
			s.mu.Unlock()
			return ps, nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastPeople, err
}

// personView is one person as the gallery page shows them.
type personView struct {
	ID, Name, Label string
	Thumb           string // URL, "" for none
	Faces           int64
	Links           int64
	Sources         []sourceFaces
	First, Last     string
	Exemplars       []exemplarView
}

type sourceFaces struct {
	Source string
	Faces  int64
}

type exemplarView struct {
	Index  int
	Image  string // URL, "" for none
	Alt    string
	Source string
	Frame  int64
}

func personLabel(p *people.Person) string {
	if p.Name != "" {
		return p.Name
	}
	return "Person " + p.ID
}

func sightingText(s people.Sighting) string {
	if s.AtMillis == 0 {
		return "not yet"
	}
	return fmt.Sprintf("%s, frame %d at %s (%s)", s.Source, s.Frame, output.FormatPTS(s.PTSMillis),
		time.UnixMilli(s.AtMillis).UTC().Format("2006-01-02 15:04 UTC"))
}

func peopleViews(ps []*people.Person) []personView {
	out := make([]personView, 0, len(ps))
	for _, p := range ps {
		label := personLabel(p)
		v := personView{ID: p.ID, Name: p.Name, Label: label, Faces: p.Faces(), Links: p.Links,
			First: sightingText(p.First), Last: sightingText(p.Last)}
		if p.Thumbnail != "" {
			v.Thumb = "/people/" + p.ID + "/thumbnail.jpg"
		}
		for src, n := range p.Sources {
			v.Sources = append(v.Sources, sourceFaces{src, n})
		}
		sort.Slice(v.Sources, func(i, j int) bool { return v.Sources[i].Source < v.Sources[j].Source })
		for k, e := range p.Exemplars {
			x := exemplarView{Index: k, Source: e.Source, Frame: e.Frame,
				Alt: fmt.Sprintf("exemplar %d of %s: %s frame %d", k, label, e.Source, e.Frame)}
			if e.Image != "" {
				x.Image = "/objects/" + e.Image
			}
			v.Exemplars = append(v.Exemplars, x)
		}
		out = append(out, v)
	}
	return out
}

// peoplePage is the gallery across sources, with its edits where writes are on.
func (s *Server) peoplePage(w http.ResponseWriter, r *http.Request) {
	// The newest result read before the gallery: a later one may have changed it.
	var resultsAt int64
	for _, st := range s.Sources() {
		resultsAt = max(resultsAt, st.ResultAtMillis)
	}
	ps, err := s.listPeople(r.Context())
	data := struct {
		People    []personView
		Writes    bool
		Problem   string
		NoGallery bool
		ResultsAt int64 // newest result time known (ms): the page offers to reload after a newer one
	}{People: peopleViews(ps), Writes: s.cfg.Token != "", ResultsAt: resultsAt}
	switch {
	case errors.Is(err, errNoGallery):
		data.NoGallery, data.Problem = true, err.Error()
	case err != nil && ps != nil:
		data.Problem = "The gallery cannot be read now (" + err.Error() + "): showing the last state."
	case err != nil:
		data.Problem = "The gallery cannot be read now: " + err.Error()
	}
	s.render(w, "people.html.tmpl", data)
}

// peopleJSON is GET /api/people: every person (exemplar vectors left out).
func (s *Server) peopleJSON(w http.ResponseWriter, r *http.Request) {
	ps, err := s.listPeople(r.Context())
	if err != nil {
		galleryError(w, err)
		return
	}
	if ps == nil {
		ps = []*people.Person{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ps)
}

// thumbnail serves a person's thumbnail from the gallery's object store.
func (s *Server) thumbnail(w http.ResponseWriter, r *http.Request) {
	g, err := s.gallery(r.Context())
	if err != nil {
		galleryError(w, err)
		return
	}
	p, _, err := g.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		galleryError(w, err)
		return
	}
	data, err := g.Thumbnail(r.Context(), p)
	if err != nil {
		galleryError(w, err)
		return
	}
	if data == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, max-age=10")
	_, _ = w.Write(data)
}

// galleryError answers an error of the gallery with the status that fits it.
func galleryError(w http.ResponseWriter, err error) {
	code := http.StatusServiceUnavailable
	switch {
	case errors.Is(err, people.ErrUnknownPerson):
		code = http.StatusNotFound
	case errors.Is(err, people.ErrBadName), errors.Is(err, people.ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, people.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, errNoGallery):
		code = http.StatusNotFound
	}
	http.Error(w, err.Error(), code)
}

// editRequest is the body of POST /api/people/{id}/{action}: name for "name", from for
// "merge" (the person that becomes part of id), exemplars for "split" (positions, from 0).
type editRequest struct {
	Name      string `json:"name"`
	From      string `json:"from"`
	Exemplars []int  `json:"exemplars"`
}

// editResult answers an edit: what happened, in words, and the person it made (split).
type editResult struct {
	Message string `json:"message"`
	Person  string `json:"person,omitempty"`
}

// editPerson is POST /api/people/{id}/{action} (name, merge, split, forget); it needs the
// token. Bad input is refused before the gallery is touched.
func (s *Server) editPerson(w http.ResponseWriter, r *http.Request) {
	if !s.authorised(w, r) {
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	if err := people.ValidateID(id); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req editRequest
	if action != "forget" {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("web: %s %s: the body must be JSON: %v", action, id, err), http.StatusBadRequest)
			return
		}
	}
	g, err := s.gallery(r.Context())
	if err != nil {
		galleryError(w, err)
		return
	}
	ctx := r.Context()
	var res editResult
	switch action {
	case "name":
		err = g.Rename(ctx, id, req.Name)
		res.Message = fmt.Sprintf("%s is now %q", id, req.Name)
	case "merge":
		err = g.Merge(ctx, id, req.From)
		res.Message = fmt.Sprintf("merged %s into %s", req.From, id)
	case "split":
		res.Person, err = g.Split(ctx, id, req.Exemplars)
		res.Message = fmt.Sprintf("split %s of %s off into %s; the two are kept apart from now on",
			plural(int64(len(req.Exemplars)), "exemplar", "exemplars"), id, res.Person)
	case "forget":
		var n int
		n, err = g.Forget(ctx, id)
		res.Message = fmt.Sprintf("forgot %s: vectors, thumbnail and %s deleted", id, plural(int64(n), "face crop", "face crops"))
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		galleryError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}
