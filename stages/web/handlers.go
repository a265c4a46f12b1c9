package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/output"
	"github.com/personcluster/personcluster/stages/stage"
)

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"plural": plural,
	"percent": func(st SourceState) int {
		if st.FramesTotal <= 0 {
			return 0
		}
		return int(min(100, st.FramesRead*100/st.FramesTotal))
	},
}).ParseFS(assets, "assets/*.tmpl"))

// plural is "1 face", "2 faces".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Handler serves the UI: / (every source, live), /events (server-sent events), /api/sources,
// /sources/{id}/ (a source's result page), /objects/{key} (its images), /people/ (the
// gallery), /api/people, and the writes, which need the token: POST /api/sources/{id}/cancel
// and POST /api/people/{id}/{name,merge,split,forget}.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /api/sources", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Sources())
	})
	mux.HandleFunc("GET /sources/{id}/{$}", s.sourcePage)
	mux.HandleFunc("GET /sources/{id}/montage.png", s.montage)
	mux.HandleFunc("GET /objects/{key...}", s.object)
	mux.HandleFunc("POST /api/sources/{id}/cancel", s.cancel)
	mux.HandleFunc("GET /people/{$}", s.peoplePage)
	mux.HandleFunc("GET /people/{id}/thumbnail.jpg", s.thumbnail)
	mux.HandleFunc("GET /api/people", s.peopleJSON)
	mux.HandleFunc("POST /api/people/{id}/{action}", s.editPerson)
	return securityHeaders(mux)
}

// csp keeps pages to their own origin: no scripts, styles or frames from elsewhere; the one
// inline script allowed is the result page's (by its hash).
var csp = "default-src 'self'; script-src 'self' " + output.PageScriptHash + "; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"

// securityHeaders sets csp and keeps browsers from guessing content types.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, fmt.Sprintf("web: rendering %s: %v", name, err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	connected := s.connected
	s.mu.Unlock()
	s.render(w, "index.html.tmpl", struct {
		Sources   []SourceState
		Connected bool
		Writes    bool
	}{s.Sources(), connected, s.cfg.Token != "" && s.cfg.Cancel != nil})
}

// sourcePage is a source's result page (as index.html of its folder, images from the Object
// Store), or, before its first result, its live progress.
func (s *Server) sourcePage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if messages.ValidateSourceID(id) != nil {
		http.NotFound(w, r)
		return
	}
	res, _ := s.result(id)
	if res == nil {
		var st *SourceState
		for _, x := range s.Sources() {
			if x.Source == id {
				st = &x
			}
		}
		if st == nil {
			http.NotFound(w, r)
			return
		}
		s.render(w, "pending.html.tmpl", st)
		return
	}
	links := output.PageLinks{
		Member: func(_ messages.Cluster, m messages.Member) string {
			if m.Image == "" {
				return ""
			}
			return "/objects/" + m.Image
		},
		Back:   "/",
		Person: func(id string) string { return "/people/#person-" + id },
	}
	if len(res.Clusters) > 0 {
		links.Montage = "montage.png"
	}
	var buf bytes.Buffer
	if err := output.WritePage(&buf, res, links); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// montage draws the montage of a source's latest result with headed columns (the clusterer's
// stored one has none), once per result.
func (s *Server) montage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	res, js := s.result(id)
	if res == nil || js == nil {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	cached := s.montages[id]
	s.mu.Unlock()
	if cached.at != res.AtMillis || cached.png == nil {
		obj, err := js.ObjectStore(r.Context(), stage.ImagesBucket)
		if err != nil {
			http.Error(w, fmt.Sprintf("web: object store: %v", err), http.StatusServiceUnavailable)
			return
		}
		png, err := output.ResultMontage(res, func(key string) ([]byte, error) {
			data, err := obj.GetBytes(r.Context(), key)
			if errors.Is(err, jetstream.ErrObjectNotFound) {
				return nil, nil
			}
			return data, err
		}, 96)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		cached = montageCache{at: res.AtMillis, png: png}
		s.mu.Lock()
		s.montages[id] = cached
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(cached.png)
}

// object serves a result's image from the Object Store. Keys start with their source id
// (<source>/faces/…, <source>/montage-….png); nothing else is served.
func (s *Server) object(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	src, _, _ := strings.Cut(key, "/")
	ext := path.Ext(key)
	types := map[string]string{".jpg": "image/jpeg", ".png": "image/png"}
	if messages.ValidateSourceID(src) != nil || path.Clean(key) != key || types[ext] == "" {
		http.NotFound(w, r)
		return
	}
	_, js := s.result(src)
	if js == nil {
		http.Error(w, "web: not connected to NATS yet", http.StatusServiceUnavailable)
		return
	}
	obj, err := js.ObjectStore(r.Context(), stage.ImagesBucket)
	if err != nil {
		http.Error(w, fmt.Sprintf("web: object store: %v", err), http.StatusServiceUnavailable)
		return
	}
	data, err := obj.GetBytes(r.Context(), key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("web: reading %s: %v", key, err), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", types[ext])
	w.Header().Set("Cache-Control", "private, max-age=60")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// cancel stops a running source (the reader ends it "cancelled"); it needs the token.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	if !s.authorised(w, r) {
		return
	}
	id := r.PathValue("id")
	if err := messages.ValidateSourceID(id); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, js := s.result(id)
	if s.cfg.Cancel == nil || js == nil {
		http.Error(w, "web: cancelling is not available here", http.StatusServiceUnavailable)
		return
	}
	if err := s.cfg.Cancel(r.Context(), js, id); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, "{\"cancelling\":%q}\n", id)
}
