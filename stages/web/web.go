// Package web is the live UI the binary serves (`watch --http`, `run --http`): every source with
// its progress, pushed to the browser by server-sent events as status, result and dead-letter
// messages arrive from NATS, and each source's result page built from the stored result and
// the Object Store's images, and the people gallery across sources with its edits (rename,
// merge, split, forget). Assets are embedded; nothing is loaded from elsewhere. Reads are
// open to whoever reaches the address (localhost unless told otherwise); writes need the token.
package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
)

// Config configures a Server.
type Config struct {
	// Token authorises writes (cancelling a source, editing the people gallery): requests carry it as
	// "Authorization: Bearer <token>". Empty turns writes off.
	Token string
	// Cancel stops a source (reader.Cancel); nil turns cancelling off.
	Cancel func(ctx context.Context, js jetstream.JetStream, source string) error
	// CatchUpEvery is how often the state is re-read from the streams after the connection
	// came back (1s): what was published while it was down is not lost.
	CatchUpEvery time.Duration
	Logger       *slog.Logger
}

func (c *Config) setDefaults() {
	if c.CatchUpEvery <= 0 {
		c.CatchUpEvery = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// SourceState is what the UI shows of one source: the reader's last status, the counts of its
// latest result and its dead letters.
type SourceState struct {
	Source          string  `json:"source"`
	State           string  `json:"state"` // the reader's: queued, reading, progress, done, failed, cancelled
	Reason          string  `json:"reason,omitempty"`
	FramesRead      int64   `json:"frames_read"`
	FramesPublished int64   `json:"frames_published"`
	FramesTotal     int64   `json:"frames_total"` // 0 when unknown (live)
	ETASeconds      float64 `json:"eta_s"`
	// FramesEncoded counts frames whose face and clothing vectors are stored: how far the
	// pipeline behind the reader has got (the largest count seen; the clusterer purges them).
	FramesEncoded int64 `json:"frames_encoded"`
	// FramesAccepted and Faces count what the clusterer has gathered so far (its progress
	// events, then its results); People is the latest result's.
	FramesAccepted int64  `json:"frames_accepted"`
	Faces          int    `json:"faces"`
	People         int    `json:"people"`
	Dead           int    `json:"dead"`   // dead letters stored for the source
	Result         string `json:"result"` // "", "intermediate", "final"
	StatusAtMillis int64  `json:"status_at_ms"`
	ResultAtMillis int64  `json:"result_at_ms"`
}

// Label says where the source is, for people: the reader's state while it reads or where it
// failed; once it has read everything, what the stages behind it are doing until the final
// result ("encoding" while frames wait for their vectors, then "clustering").
func (s SourceState) Label() string {
	switch {
	case s.State == messages.StateDone && s.Result == "final":
		return "done"
	case s.State == messages.StateDone && s.FramesEncoded < s.FramesPublished:
		return "encoding"
	case s.State == messages.StateDone:
		return "clustering"
	case s.Reason != "":
		return s.State + ": " + s.Reason
	}
	return s.State
}

// MarshalJSON adds the label to the fields, so that the page's script shows what the server's
// first paint shows.
func (s SourceState) MarshalJSON() ([]byte, error) {
	type fields SourceState // without this method
	return json.Marshal(struct {
		fields
		Label string `json:"label"`
	}{fields(s), s.Label()})
}

// Running reports whether the reader is still at it (what cancel can stop).
func (s SourceState) Running() bool {
	switch s.State {
	case messages.StateQueued, messages.StateReading, messages.StateProgress:
		return true
	}
	return false
}

// Server keeps the state of every source and serves it (Handler).
type Server struct {
	cfg Config

	mu        sync.Mutex
	sources   map[string]*SourceState
	results   map[string]*messages.ClusterResult
	js        jetstream.JetStream
	connected bool
	natsURL   string
	clients   map[*client]struct{}
	montages  map[string]montageCache
	// galleryOpen is the gallery, opened on first use; lastPeople its last list, shown while NATS
	// is away.
	galleryOpen *people.Gallery
	lastPeople  []*people.Person
	closed      chan struct{}
	closeOnce   sync.Once
}

// montageCache is the montage drawn for the result of at.
type montageCache struct {
	at  int64
	png []byte
}

// New makes a Server; Run feeds it from NATS.
func New(cfg Config) *Server {
	cfg.setDefaults()
	return &Server{cfg: cfg, sources: map[string]*SourceState{}, results: map[string]*messages.ClusterResult{},
		clients: map[*client]struct{}{}, montages: map[string]montageCache{}, closed: make(chan struct{})}
}

// Close ends the open event streams (an http.Server's Shutdown waits for them otherwise).
// Safe to call twice.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closed) }) }

// Sources returns every source's state, sorted by id.
func (s *Server) Sources() []SourceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SourceState, 0, len(s.sources))
	for _, st := range s.sources {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}

// result is a source's latest result (nil if none yet).
func (s *Server) result(source string) (*messages.ClusterResult, jetstream.JetStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.results[source], s.js
}

// Run follows status.>, results.> and dead.> on nc until ctx ends. It first reads what the
// streams hold (each source's last status and result, its dead letters), and reads them again
// whenever the connection comes back, so the page keeps the last state while NATS is away and
// catches up after.
func (s *Server) Run(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	s.mu.Lock()
	s.js = js
	s.mu.Unlock()
	msgs := make(chan *nats.Msg, 1024)
	for _, subject := range []string{messages.SubjectStatus + ".>", messages.SubjectResults + ".>", messages.SubjectDead + ".>"} {
		sub, err := nc.ChanSubscribe(subject, msgs)
		if err != nil {
			return fmt.Errorf("web: subscribing to %s: %w", subject, err)
		}
		defer sub.Unsubscribe()
	}
	// Flush so the subscriptions are in place before the catch-up reads: nothing published
	// between the two is missed.
	_ = nc.FlushWithContext(ctx)
	stale := true // the streams must be read (first, and after a reconnect)
	reconnects := nc.Stats().Reconnects
	tick := time.NewTicker(s.cfg.CatchUpEvery)
	defer tick.Stop()
	for {
		connected := nc.IsConnected()
		s.setConnected(connected, nc.ConnectedUrlRedacted())
		if r := nc.Stats().Reconnects; r != reconnects {
			reconnects, stale = r, true
		}
		if stale && connected {
			if err := s.catchUp(ctx, js); err != nil {
				s.cfg.Logger.Warn("web: reading the streams", "err", err)
			} else {
				stale = false
			}
		}
		if connected {
			if err := s.countVectors(ctx, js); err != nil {
				s.cfg.Logger.Debug("web: counting vectors", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			s.apply(m.Subject, m.Data)
		case <-tick.C:
		}
	}
}

// catchUp reads each source's last status and result and counts its dead letters.
func (s *Server) catchUp(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, sc := range []struct{ stream, filter string }{
		{stage.StreamStatus, messages.SubjectStatus + ".>"},
		{stage.StreamResults, messages.SubjectResults + ".>"},
	} {
		str, err := js.Stream(ctx, sc.stream)
		if err != nil {
			return fmt.Errorf("web: %s: %w", sc.stream, err)
		}
		info, err := str.Info(ctx, jetstream.WithSubjectFilter(sc.filter))
		if err != nil {
			return fmt.Errorf("web: %s: %w", sc.stream, err)
		}
		for subject := range info.State.Subjects {
			raw, err := str.GetLastMsgForSubject(ctx, subject)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("web: last message on %s: %w", subject, err)
			}
			s.apply(raw.Subject, raw.Data)
		}
	}
	str, err := js.Stream(ctx, stage.StreamDead)
	if err != nil {
		return fmt.Errorf("web: %s: %w", stage.StreamDead, err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(messages.SubjectDead+".>"))
	if err != nil {
		return fmt.Errorf("web: %s: %w", stage.StreamDead, err)
	}
	dead := map[string]int{}
	for subject, n := range info.State.Subjects {
		dead[subject[strings.LastIndexByte(subject, '.')+1:]] += int(n)
	}
	s.mu.Lock()
	for src, n := range dead {
		if messages.ValidateSourceID(src) != nil {
			continue
		}
		st := s.state(src)
		if st.Dead != n {
			st.Dead = n
			s.changed(src)
		}
	}
	s.mu.Unlock()
	return nil
}

// countVectors updates each source's FramesEncoded from the vectors stream's subject counts
// (one message per frame on facevec.<source> and on clothvec.<source>, and one end of stream).
func (s *Server) countVectors(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	str, err := js.Stream(ctx, stage.StreamVectors)
	if err != nil {
		return err
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return err
	}
	face, cloth := map[string]int64{}, map[string]int64{}
	for subject, n := range info.State.Subjects {
		prefix, src, _ := strings.Cut(subject, ".")
		switch prefix {
		case messages.SubjectFaceVec:
			face[src] = int64(n)
		case messages.SubjectClothVec:
			cloth[src] = int64(n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for src, n := range face {
		st := s.sources[src]
		if n = min(n, cloth[src]); st == nil || n <= st.FramesEncoded {
			continue
		}
		if st.FramesTotal > 0 {
			n = min(n, st.FramesTotal) // the end-of-stream message is not a frame
		}
		st.FramesEncoded = n
		s.changed(src)
	}
	return nil
}

// apply takes one message of status.*, results.* or dead.*.* into the state.
func (s *Server) apply(subject string, data []byte) {
	msg, err := messages.Decode(data)
	if err != nil {
		s.cfg.Logger.Debug("web: undecodable message", "subject", subject, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch v := msg.(type) {
	case *messages.Status:
		if v.Stage == messages.StageClusterer { // its progress: counts only grow
			st := s.state(v.Source)
			st.FramesAccepted, st.Faces = max(st.FramesAccepted, v.FramesAccepted), max(st.Faces, int(v.Faces))
			s.changed(v.Source)
			return
		}
		if v.Stage != messages.StageReader && v.Stage != "" {
			return
		}
		st := s.state(v.Source)
		if v.AtMillis < st.StatusAtMillis { // an older event read again after a reconnect
			return
		}
		st.State, st.Reason, st.StatusAtMillis = v.State, v.Reason, v.AtMillis
		st.FramesRead, st.FramesPublished, st.FramesTotal, st.ETASeconds = v.FramesRead, v.FramesPublished, v.FramesTotal, v.ETASeconds
		s.changed(v.Source)
	case *messages.ClusterResult:
		st := s.state(v.Source)
		if v.AtMillis < st.ResultAtMillis || (st.Result == "final" && !v.Final && v.AtMillis == st.ResultAtMillis) {
			return
		}
		// A live source's window counts only its own frames: the progress events' totals stay.
		st.FramesAccepted, st.Faces = max(st.FramesAccepted, v.FramesAccepted), max(st.Faces, v.Faces)
		st.People, st.ResultAtMillis = len(v.Clusters), v.AtMillis
		st.Result = "intermediate"
		if v.Final {
			st.Result = "final"
		}
		s.results[v.Source] = v
		s.changed(v.Source)
	case *messages.DeadLetter:
		src := subject[strings.LastIndexByte(subject, '.')+1:]
		if messages.ValidateSourceID(src) != nil {
			return
		}
		s.state(src).Dead++
		s.changed(src)
	}
}

// state returns a source's state, adding it; s.mu is held.
func (s *Server) state(source string) *SourceState {
	st := s.sources[source]
	if st == nil {
		st = &SourceState{Source: source}
		s.sources[source] = st
	}
	return st
}

func (s *Server) setConnected(connected bool, url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connected == connected && s.natsURL == url {
		return
	}
	s.connected, s.natsURL = connected, url
	for c := range s.clients {
		c.mark("")
	}
}

// changed tells every client that source changed; s.mu is held.
func (s *Server) changed(source string) {
	for c := range s.clients {
		c.mark(source)
	}
}

// client is one event stream: the sources changed since it last wrote ("" is the connection
// state). Marks coalesce, so a slow browser gets the latest state, never a backlog.
type client struct {
	mu     sync.Mutex
	dirty  map[string]bool
	notify chan struct{}
}

func (c *client) mark(source string) {
	c.mu.Lock()
	c.dirty[source] = true
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *client) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.dirty))
	for k := range c.dirty {
		out = append(out, k)
	}
	sort.Strings(out)
	clear(c.dirty)
	return out
}

// natsState is the "nats" event: whether the server is connected to NATS.
type natsState struct {
	Connected bool   `json:"connected"`
	URL       string `json:"url"`
}

// events streams server-sent events: "nats" (the connection) and "source" (a SourceState),
// every source's state first, then each change.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "web: streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	c := &client{dirty: map[string]bool{"": true}, notify: make(chan struct{}, 1)}
	s.mu.Lock()
	for src := range s.sources {
		c.dirty[src] = true
	}
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
	}()
	c.notify <- struct{}{}
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case <-c.notify:
			for _, src := range c.take() {
				var event string
				var v any
				s.mu.Lock()
				if src == "" {
					event, v = "nats", natsState{Connected: s.connected, URL: s.natsURL}
				} else {
					event, v = "source", *s.sources[src]
				}
				s.mu.Unlock()
				data, _ := json.Marshal(v)
				if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
					return
				}
			}
		}
		flusher.Flush()
	}
}

// authorised checks a write's token in constant time; it answers the refusal itself.
func (s *Server) authorised(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Token == "" {
		http.Error(w, "web: writes are off (start with --ui-token)", http.StatusForbidden)
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="personcluster"`)
		http.Error(w, "web: a valid token is needed to change anything", http.StatusUnauthorized)
		return false
	}
	return true
}

// ListenAddr is addr with the host defaulting to localhost: ":8080" serves 127.0.0.1:8080,
// "0.0.0.0:8080" every interface.
func ListenAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}
