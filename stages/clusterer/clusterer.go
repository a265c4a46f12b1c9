// Package clusterer is the clusterer stage: facevec.<source> + clothvec.<source> →
// results.<source>. It joins the face and clothing vectors of each frame, builds the original's
// fingerprints [face/‖face‖, cloth/‖cloth‖], and clusters them with the scipy-exact HAC of
// package hac: once when the quota of accepted frames is reached (the first Quota accepted
// frames in source order, as the original) and again, over every accepted frame, at the end of
// the stream.
//
// Its state is recoverable: vectors stay in the PC_VECTORS stream (limits retention) until a
// source's final result is stored, so a restarted clusterer rebuilds an unfinished source from
// the stream, and inputs are acked only after they are part of that state.
package clusterer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/vec"
	"github.com/personcluster/personcluster/stages/output"
	"github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
)

// StageName names the stage in message ids, dead-letter subjects and metrics.
const StageName = messages.StageClusterer

// DefaultMaxFaces is Config.MaxFaces when not set: 20,000 faces are 200 million distances.
const DefaultMaxFaces = 20000

// Config configures the stage.
type Config struct {
	Metric string // euclidean (the original) or cosine
	// MaxFaces bounds the faces one result clusters (memory: n²/2 distances; default
	// DefaultMaxFaces). A source with more ends early with a partial final result of its first
	// frames that fit, saying why (--max-source-faces).
	MaxFaces  int
	Logger    *slog.Logger
	NoImages  bool // do not store crops and montages in the object store
	KeepInput bool // do not purge a finished source's vectors (debugging)
	// LinkCut is the people gallery's linking cut per face model (nil: people.LinkCut; a
	// model without one is not linked).
	LinkCut func(faceModel string) (float64, bool)
}

func (c *Config) setDefaults() {
	if c.Metric == "" {
		c.Metric = "euclidean"
	}
	if c.MaxFaces <= 0 {
		c.MaxFaces = DefaultMaxFaces
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LinkCut == nil {
		c.LinkCut = people.LinkCut
	}
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	if c.Metric != "euclidean" && c.Metric != "cosine" {
		return fmt.Errorf("clusterer: metric %q (euclidean or cosine)", c.Metric)
	}
	return nil
}

type frameParts struct {
	face      *messages.FaceVectors
	cloth     *messages.ClothVectors
	streamSeq uint64 // lowest stream sequence of its messages: what a purge must keep
}

func (f *frameParts) complete() bool { return f.face != nil && f.cloth != nil }

type sourceState struct {
	// stored names the crops already in the object store: the final result shares most
	// members with the quota result, and a crop is stored once.
	stored map[string]bool
	// thumbs are the crops of the last montage, decoded and scaled: the final montage shows
	// mostly the quota's crops (nil until the first montage).
	thumbs     *output.Thumbnails
	frames     map[int64]*frameParts
	prefix     int64  // frames 0..prefix-1 are complete
	base       int64  // live sources: frames before base were clustered in a window and forgotten
	windows    int    // live sources: window results published
	lastStream uint64 // highest stream sequence merged into the state
	eosFace    *messages.EndOfStream
	eosCloth   *messages.EndOfStream
	// eosStream is the lowest stream sequence of the end-of-stream messages merged: a purge
	// keeps them, or a restarted clusterer would wait for an end that already came.
	eosStream uint64
	// adopted is when the state last took what another clusterer stored (adopt).
	adopted    time.Time
	quotaDone  bool
	finished   bool
	params     messages.Params
	paramsSeen bool
	// faceDim and clothDim are the lengths of the source's first vectors: every later vector
	// of that part must match, or its message is bad input.
	faceDim, clothDim int
	// windowFaces counts the faces of a live source's windows already clustered and
	// forgotten; reported, reportedAt: the progress last published (progress).
	windowFaces int64
	reported    [2]int64
	reportedAt  time.Time
	// long: a file source with more faces than one clustering takes, clustered in windows
	// joined by person (see linkWindows); nil until then.
	long *longState
}

// checkDim refuses vectors whose length differs from the source's first ones of that part.
func checkDim(dim *int, part string, vectors [][]float32) error {
	if len(vectors) == 0 {
		return nil
	}
	if *dim == 0 {
		*dim = len(vectors[0])
	}
	if n := len(vectors[0]); n != *dim {
		return fmt.Errorf("%s vectors of length %d, the source's have %d", part, n, *dim)
	}
	return nil
}

// Stage is the clusterer's stage.Processor. It must run with concurrency 1 (one worker): its
// state is per process, and sources are not split between replicas.
type Stage struct {
	cfg     Config
	js      jetstream.JetStream
	images  jetstream.ObjectStore
	sources map[string]*sourceState
	// gallery links results to people; opened on first use (nil until then, and when the
	// deployment has no people bucket: results then carry no person).
	gallery     *people.Gallery
	galleryDone bool
	vectors     jetstream.Stream // nil until first used
}

// New returns a clusterer; images may be nil (no object store).
func New(cfg Config, js jetstream.JetStream, images jetstream.ObjectStore) (*Stage, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Stage{cfg: cfg, js: js, images: images, sources: map[string]*sourceState{}}, nil
}

// Process adds each vector message to its source's state and publishes results when due.
// It publishes them itself (in.Publish), so they are stored before the input that completed
// them is acked.
func (s *Stage) Process(ctx context.Context, batch []*stage.Input) []stage.Result {
	return stage.Each(ctx, batch, stage.Route{Stage: StageName}, func(ctx context.Context, in *stage.Input, _ messages.Message) ([]stage.Output, error) {
		return nil, s.handle(ctx, in)
	})
}

func (s *Stage) handle(ctx context.Context, in *stage.Input) error {
	src := in.Source
	st, err := s.state(ctx, src)
	if err != nil {
		return err
	}
	if st.finished {
		return nil // a redelivery after the final result: nothing to do
	}
	if in.StreamSeq > st.lastStream+1 {
		if err := s.catchUp(ctx, src, st, in.StreamSeq); err != nil {
			return err
		}
		if st.finished {
			return nil
		}
	}
	eos, isEnd := in.Message.(*messages.EndOfStream)
	if isEnd {
		st.addEOS(in.Subject, eos, in.StreamSeq)
	} else if err := st.add(in.Message, in.StreamSeq); err != nil {
		return stage.Permanent(fmt.Errorf("clusterer: %s: %w", in.Subject, err))
	}
	// Frames missing although both ends came: their vectors are on their way (an end often
	// overtakes its source's last vectors while a stage's other worker still has them), or
	// another clusterer clustered and purged them, or took parts this state never merged.
	// Only the end is retried for them, and only its redelivery looks for them (it re-reads
	// the source, 0.13 s on cast_public): the vectors on their way complete the source as
	// usual. Each vector that came after both ends once did both, 2.5 s at the end of a file.
	if isEnd && in.Deliveries > 1 && st.eosFace != nil && st.eosCloth != nil && !st.ended() {
		if err := s.adopt(ctx, src, st); err != nil || st.finished {
			return err
		}
		if !st.ended() {
			if err := s.refill(ctx, src, st); err != nil {
				return err
			}
		}
	}
	if err := s.emitDue(ctx, in, src, st); err != nil || st.finished {
		return err
	}
	if isEnd && st.eosFace != nil && st.eosCloth != nil && !st.ended() {
		// Acked now, this end would leave the source waiting for frames no message might
		// bring: retried instead, until the frames' vectors come, or the other clusterer's
		// stored windows or final result cover them (adopt), or, failing that, dead-lettered
		// with this reason.
		return fmt.Errorf("clusterer: %s ended, but frame %d of %d has not reached this clusterer (its vectors are on their way, or another clusterer took them): %w",
			src, st.prefix, st.eosFace.Frames, stage.ErrNotYet)
	}
	return nil
}

// refill merges every message of src the vectors stream still holds: the parts of frames
// this state is missing although its end came.
func (s *Stage) refill(ctx context.Context, src string, st *sourceState) error {
	vectors, err := s.vectorsStream(ctx)
	if err != nil {
		return err
	}
	filter := "*." + src
	for next := uint64(1); next <= st.lastStream; {
		raw, err := vectors.GetMsg(ctx, next, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("clusterer: re-reading %s: %w", src, err)
		}
		if raw.Sequence > st.lastStream {
			break
		}
		if m, err := messages.Decode(raw.Data); err == nil {
			if _, ok := m.(*messages.EndOfStream); !ok {
				_ = st.add(m, raw.Sequence)
			}
		}
		next = raw.Sequence + 1
	}
	return nil
}

// adoptEvery bounds how often a source's state checks what another clusterer stored.
const adoptEvery = 250 * time.Millisecond

// catchUp merges the messages of src that came before stream sequence seq and that this
// clusterer never saw: another clusterer on the same consumer took them (a replacement started
// before the old one stopped). So each sees the whole source and both publish the same results
// under the same message ids (stored once) and link the same windows (linked once). What the
// other already clustered and purged is taken from its stored results (adopt).
func (s *Stage) catchUp(ctx context.Context, src string, st *sourceState, seq uint64) error {
	vectors, err := s.vectorsStream(ctx)
	if err != nil {
		return err
	}
	filter := "*." + src // facevec.<src> and clothvec.<src>: the stream holds nothing else
	for next := st.lastStream + 1; next < seq; {
		raw, err := vectors.GetMsg(ctx, next, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return fmt.Errorf("clusterer: catching up on %s: %w", src, err)
		}
		if raw.Sequence >= seq {
			break
		}
		if m, err := messages.Decode(raw.Data); err == nil {
			if eos, ok := m.(*messages.EndOfStream); ok {
				st.addEOS(raw.Subject, eos, raw.Sequence)
			} else {
				_ = st.add(m, raw.Sequence) // bad messages are dead-lettered by whoever got them
			}
		}
		st.lastStream = max(st.lastStream, raw.Sequence)
		next = raw.Sequence + 1
	}
	if time.Since(st.adopted) < adoptEvery {
		return nil
	}
	return s.adopt(ctx, src, st)
}

// adopt takes what another clusterer stored of src beyond this state: the source's final
// result (it is done), a live source's later windows, a long source's later windows.
func (s *Stage) adopt(ctx context.Context, src string, st *sourceState) error {
	st.adopted = time.Now()
	results, err := s.js.Stream(ctx, stage.StreamResults)
	if err != nil {
		return fmt.Errorf("clusterer: %w", err)
	}
	raw, err := results.GetLastMsgForSubject(ctx, messages.Subject(messages.SubjectResults, src))
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("clusterer: checking results of %s: %w", src, err)
	}
	if err == nil {
		r, err := messages.DecodeAs[*messages.ClusterResult](raw.Data)
		switch {
		case err != nil:
		case r.Final:
			st.finished, st.frames = true, nil
			return nil
		case r.Window > st.windows:
			st.windows = r.Window
			st.forget(r.WindowEnd)
		}
	}
	if st.params.Live || s.images == nil {
		return nil
	}
	var stored sourceState
	if err := s.loadLong(ctx, src, &stored); err != nil || stored.long == nil {
		return err
	}
	if st.long == nil || stored.long.Windows > st.long.Windows {
		st.long, st.quotaDone = stored.long, true
		st.forget(stored.long.Base)
	}
	return nil
}

// vectorsStream is the vectors stream's handle, looked up once.
func (s *Stage) vectorsStream(ctx context.Context) (jetstream.Stream, error) {
	if s.vectors == nil {
		v, err := s.js.Stream(ctx, stage.StreamVectors)
		if err != nil {
			return nil, fmt.Errorf("clusterer: %w", err)
		}
		s.vectors = v
	}
	return s.vectors, nil
}

// add merges one message (at streamSeq in the vectors stream) into the state; duplicates and
// frames already clustered in a live window are ignored.
func (st *sourceState) add(m messages.Message, streamSeq uint64) error {
	st.lastStream = max(st.lastStream, streamSeq)
	// The face or clothing part of a frame: where it goes, and what the checks need of it.
	var (
		dim     *int
		name    string
		vectors [][]float32
		params  messages.Params
		seq     int64
		set     func(*frameParts)
	)
	switch m := m.(type) {
	case *messages.FaceVectors:
		dim, name, vectors, params, seq = &st.faceDim, "face", m.Vectors, m.Params, m.Seq
		set = func(f *frameParts) { f.face = m }
	case *messages.ClothVectors:
		dim, name, vectors, params, seq = &st.clothDim, "clothing", m.Vectors, m.Params, m.Seq
		set = func(f *frameParts) { f.cloth = m }
	case *messages.EndOfStream:
		return errors.New("end of stream on an unexpected subject")
	default:
		return fmt.Errorf("unexpected %s", m.MessageType())
	}
	if err := checkDim(dim, name, vectors); err != nil {
		return err
	}
	st.setParams(params)
	if seq < st.base {
		return nil
	}
	f := st.frames[seq]
	if f == nil {
		f = &frameParts{streamSeq: streamSeq}
		st.frames[seq] = f
	}
	f.streamSeq = min(f.streamSeq, streamSeq)
	set(f)
	st.advance()
	return nil
}

// advance moves the prefix over the complete frames after it.
func (st *sourceState) advance() {
	st.prefix = max(st.prefix, st.base)
	for {
		f := st.frames[st.prefix]
		if f == nil || !f.complete() {
			break
		}
		st.prefix++
	}
}

func (st *sourceState) setParams(p messages.Params) {
	if !st.paramsSeen {
		st.params, st.paramsSeen = p, true
	}
}

func (st *sourceState) addEOS(subject string, eos *messages.EndOfStream, streamSeq uint64) {
	st.lastStream = max(st.lastStream, streamSeq)
	if st.eosStream == 0 || streamSeq < st.eosStream {
		st.eosStream = streamSeq
	}
	if strings.HasPrefix(subject, messages.SubjectFaceVec+".") {
		st.eosFace = eos
	} else {
		st.eosCloth = eos
	}
	st.setParams(eos.Params)
}

// ended reports whether every frame of the stream has both parts.
func (st *sourceState) ended() bool {
	return st.eosFace != nil && st.eosCloth != nil && st.prefix >= st.eosFace.Frames
}

// acceptedPrefix returns the seqs of accepted frames among complete frames 0..prefix-1, in order.
func (st *sourceState) acceptedPrefix() []int64 {
	var seqs []int64
	for seq := st.base; seq < st.prefix; seq++ {
		// A frame counts when both parts describe the same faces; a part dead-lettered upstream
		// arrives empty and leaves the frame out.
		if f := st.frames[seq]; f.face.Accepted && f.cloth.Accepted && len(f.face.Vectors) > 0 && len(f.face.Vectors) == len(f.cloth.Vectors) {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}

// progressEvery bounds how often a source's progress is published.
const progressEvery = time.Second

// progress publishes how many accepted frames and faces of src the clusterer has gathered
// (status.clusterer.<src>), when they changed and at most every progressEvery: the live UI
// shows them before the first result. It is best effort: a failed publish is logged, and the
// input goes on.
func (s *Stage) progress(ctx context.Context, in *stage.Input, src string, st *sourceState, accepted []int64) {
	now := time.Now()
	if now.Sub(st.reportedAt) < progressEvery {
		return // before counting: this runs for every vector message
	}
	frames, faces := int64(st.windows*st.params.Quota+len(accepted)), st.windowFaces
	for _, seq := range accepted {
		faces += int64(len(st.frames[seq].face.Vectors))
	}
	if [2]int64{frames, faces} == st.reported {
		return
	}
	st.reported, st.reportedAt = [2]int64{frames, faces}, now
	msg := &messages.Status{Source: src, Stage: StageName, State: messages.StateProgress, FramesAccepted: frames, Faces: faces,
		AtMillis: now.UnixMilli()}
	if err := in.Publish(ctx, stage.Output{Subject: messages.StageStatusSubject(StageName, src), Message: msg}); err != nil {
		s.cfg.Logger.Debug("clusterer: progress not published", "source", src, "err", err)
	}
}

func (s *Stage) emitDue(ctx context.Context, in *stage.Input, src string, st *sourceState) (err error) {
	accepted := st.acceptedPrefix()
	s.progress(ctx, in, src, st, accepted)
	quota := st.params.Quota
	windowed := st.params.Live && quota > 0
	switch {
	case windowed:
		// Live: a result per window of Quota accepted frames; the window is then forgotten.
		for len(accepted) >= quota {
			window := accepted[:quota]
			id := fmt.Sprintf("w%d", st.windows)
			res, err := s.result(ctx, src, st, window, false, id)
			if err != nil {
				return err
			}
			res.Window, res.WindowEnd = st.windows+1, window[len(window)-1]+1
			if err := publishResult(ctx, in, src, id, res); err != nil {
				return err
			}
			st.windows++
			st.windowFaces += int64(res.Faces)
			st.forget(window[len(window)-1] + 1)
			s.purge(ctx, src, st.keepFrom())
			accepted = accepted[quota:]
		}
	case !st.quotaDone && quota > 0 && len(accepted) >= quota:
		res, err := s.result(ctx, src, st, accepted[:quota], false, "quota")
		if err != nil {
			return err
		}
		if err := publishResult(ctx, in, src, "quota", res); err != nil {
			return err
		}
		st.quotaDone = true
	}
	if !st.params.Live && quota > 0 {
		// More faces than one clustering takes: windows linked through the people gallery.
		if accepted, err = s.linkWindows(ctx, src, st, accepted, st.ended()); err != nil {
			return err
		}
	}
	if !windowed && st.long == nil && s.framesFitting(st, accepted) < len(accepted) {
		// More faces than one result may cluster and no gallery to link windows: end the
		// source now with a partial final result of the frames that fit (result says why),
		// rather than holding ever more vectors for a result that could never be computed.
		return s.finish(ctx, in, src, st, accepted)
	}
	if !st.ended() {
		return nil
	}
	if st.long != nil {
		if err := publishResult(ctx, in, src, "final", st.long.final(src, st)); err != nil {
			return err
		}
		s.dropLong(ctx, src)
		s.forgetSource(ctx, src, st)
		return nil
	}
	return s.finish(ctx, in, src, st, accepted)
}

// publishResult publishes one of a source's results; id (quota, final, a window's) makes its
// message id, so a redelivered input never publishes it twice.
func publishResult(ctx context.Context, in *stage.Input, src, id string, res *messages.ClusterResult) error {
	return in.Publish(ctx, stage.Output{Subject: messages.Subject(messages.SubjectResults, src), MsgID: messages.ResultMsgID(src, id), Message: res})
}

// forgetSource drops a finished source's frames and their messages in the vectors stream.
func (s *Stage) forgetSource(ctx context.Context, src string, st *sourceState) {
	st.finished = true
	st.frames = nil
	s.purge(ctx, src, 0)
}

// finish publishes the source's final result over the accepted frames and forgets the source.
func (s *Stage) finish(ctx context.Context, in *stage.Input, src string, st *sourceState, accepted []int64) error {
	res, err := s.result(ctx, src, st, accepted, true, "final")
	if err != nil {
		return err
	}
	if st.params.Live && st.params.Quota > 0 {
		res.Window, res.WindowEnd = st.windows+1, st.prefix // a live source's last window
	}
	if err := publishResult(ctx, in, src, "final", res); err != nil {
		return err
	}
	s.forgetSource(ctx, src, st)
	return nil
}

// framesFitting is how many of the frames seqs, taken in order, hold at most MaxFaces faces.
func (s *Stage) framesFitting(st *sourceState, seqs []int64) int {
	faces := 0
	for i, seq := range seqs {
		faces += len(st.frames[seq].face.Vectors)
		if faces > s.cfg.MaxFaces {
			return i
		}
	}
	return len(seqs)
}

// forget drops the frames before seq (a live window that has its result).
func (st *sourceState) forget(seq int64) {
	for k := range st.frames {
		if k < seq {
			delete(st.frames, k)
		}
	}
	st.base = seq
	st.advance()
	st.stored = nil // the next window's members are all later frames
}

// keepFrom is the lowest stream sequence still needed to rebuild the state: that of the oldest
// frame in memory, or, with none, the one after everything merged so far.
func (st *sourceState) keepFrom() uint64 {
	keep := st.lastStream + 1
	for _, f := range st.frames {
		keep = min(keep, f.streamSeq)
	}
	if st.eosStream > 0 {
		keep = min(keep, st.eosStream)
	}
	return keep
}

// rejected gathers what the face-quality gate refused in frames base..end-1: the first
// MaxRejectedListed, and a count of all by reason.
func (st *sourceState) rejected(end int64) ([]messages.RejectedFace, map[string]int) {
	var list []messages.RejectedFace
	var counts map[string]int
	for seq := st.base; seq < end; seq++ {
		f := st.frames[seq]
		if f == nil || f.face == nil {
			continue
		}
		for _, r := range f.face.Rejected {
			if counts == nil {
				counts = map[string]int{}
			}
			counts[r.Reason]++
			if len(list) < messages.MaxRejectedListed {
				list = append(list, r)
			}
		}
	}
	return list, counts
}

// result clusters the faces of the given frames.
func (s *Stage) result(ctx context.Context, src string, st *sourceState, seqs []int64, final bool, kind string) (*messages.ClusterResult, error) {
	reason := ""
	if fit := s.framesFitting(st, seqs); fit < len(seqs) {
		reason = fmt.Sprintf("clusterer: %s: %d accepted frames hold more than --max-source-faces %d faces; the result clusters the first %d of them",
			src, len(seqs), s.cfg.MaxFaces, fit)
		seqs = seqs[:fit]
	}
	res := &messages.ClusterResult{Source: src, Final: final, Params: st.params, FramesAccepted: int64(len(seqs)), AtMillis: time.Now().UnixMilli()}
	if final {
		res.FramesSeen = st.prefix
		res.Partial = st.params.Quota > 0 && len(seqs) < st.params.Quota
		if st.eosFace != nil && strings.HasPrefix(st.eosFace.Reason, "error:") {
			res.Partial = true
		}
	} else if len(seqs) > 0 {
		res.FramesSeen = seqs[len(seqs)-1] + 1 - st.base
	}
	end := st.prefix
	if !final && len(seqs) > 0 {
		end = seqs[len(seqs)-1] + 1
	}
	res.Rejected, res.RejectedCounts = st.rejected(end)
	if reason != "" {
		res.Partial, res.Reason = true, reason
	}
	var faces Faces
	var members []messages.Member
	for _, seq := range seqs {
		f := st.frames[seq]
		res.FaceModel, res.ClothModel = f.face.Model, f.cloth.Model
		if len(f.face.Vectors) != len(f.cloth.Vectors) {
			s.cfg.Logger.Warn("frame has different face and clothing counts; skipped", "source", src, "seq", seq)
			continue
		}
		for j := range f.face.Vectors {
			faces.Face = append(faces.Face, f.face.Vectors[j])
			faces.Cloth = append(faces.Cloth, f.cloth.Vectors[j])
			faces.Frame = append(faces.Frame, seq)
			faces.Box = append(faces.Box, f.face.Boxes[j])
			members = append(members, messages.Member{Seq: seq, Frame: f.face.Index, PTSMillis: f.face.PTSMillis, Face: j, Box: f.face.Boxes[j]})
		}
	}
	res.Faces = len(members)
	scheme, calibrated := SchemeFor(st.params, s.cfg.Metric, res.FaceModel, res.ClothModel)
	if st.params.Cut == messages.CutCalibrated && !calibrated && len(members) > 0 {
		s.cfg.Logger.Warn("no calibrated cut for this face model; cutting at max(d)·(1−sim)", "source", src, "face_model", res.FaceModel, "sim", st.params.Sim)
	}
	var labels grouping
	var threshold float64
	var err error
	labels.kept, labels.dropped, threshold, err = ClusterFaces(faces, scheme)
	if err != nil {
		return nil, stage.Permanent(fmt.Errorf("clusterer: %s: %w", src, err))
	}
	res.Threshold = threshold
	for _, group := range labels.kept {
		c := messages.Cluster{ID: len(res.Clusters), Typical: Typical(faces, group, scheme)}
		for _, idx := range group {
			c.Members = append(c.Members, members[idx])
		}
		res.Clusters = append(res.Clusters, c)
	}
	for _, idx := range labels.dropped {
		res.Dropped = append(res.Dropped, members[idx])
	}
	fingerprints := func() error { return nil }
	if !s.cfg.NoImages && s.images != nil {
		if fingerprints, err = s.storeObjects(ctx, src, st, res, kind, faces, members); err != nil {
			return nil, err
		}
	}
	if err := s.linkPeople(ctx, src, st, res, kind, labels.kept, faces); err != nil {
		return nil, errors.Join(err, fingerprints())
	}
	if !s.cfg.NoImages && s.images != nil && st.long == nil {
		if err := s.storeMontage(ctx, src, st, res, kind); err != nil {
			return nil, errors.Join(err, fingerprints())
		}
	}
	if err := fingerprints(); err != nil {
		return nil, err
	}
	return res, nil
}

// openGallery opens the people gallery on first use; nil (no error) when the deployment has
// none.
func (s *Stage) openGallery(ctx context.Context) (*people.Gallery, error) {
	if !s.galleryDone {
		g, err := people.Open(ctx, s.js)
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			s.cfg.Logger.Warn("no people gallery in this deployment (run the topology's ensure); results carry no person", "err", err)
		} else if err != nil {
			return nil, fmt.Errorf("clusterer: %w", err)
		}
		s.gallery, s.galleryDone = g, true
	}
	return s.gallery, nil
}

// linkPeople links the result's clusters to gallery people on the face part (package
// people) and names each cluster's person.
func (s *Stage) linkPeople(ctx context.Context, src string, st *sourceState, res *messages.ClusterResult, kind string, groups [][]int, faces Faces) error {
	if st.params.NoPeople || len(res.Clusters) == 0 || st.params.FaceWeight == 0 {
		return nil
	}
	cut, ok := s.cfg.LinkCut(res.FaceModel)
	if !ok {
		return nil
	}
	if g, err := s.openGallery(ctx); err != nil || g == nil {
		return err
	}
	w := people.Window{ID: src + "." + kind, Source: src, Live: st.params.Live, Model: res.FaceModel, Cut: cut, AtMillis: res.AtMillis}
	for ci, group := range groups {
		c := people.Cluster{}
		best := -1
		for mi, idx := range group {
			m := res.Clusters[ci].Members[mi]
			c.Faces = append(c.Faces, people.Face{Vector: faces.Face[idx], Frame: m.Frame, PTSMillis: m.PTSMillis, Image: m.Image})
			if best < 0 || m.Box.Width()*m.Box.Height() > res.Clusters[ci].Members[best].Box.Width()*res.Clusters[ci].Members[best].Box.Height() {
				best = mi
			}
		}
		// The largest face's upper body shows a new person best.
		if m := res.Clusters[ci].Members[best]; !s.cfg.NoImages {
			if f := st.frames[m.Seq]; f != nil && m.Face < len(f.face.Bodies) {
				c.Thumbnail = f.face.Bodies[m.Face]
			}
		}
		w.Clusters = append(w.Clusters, c)
	}
	links, err := s.gallery.Link(ctx, w)
	if err != nil {
		return fmt.Errorf("clusterer: linking %s to people: %w", w.ID, err)
	}
	for ci := range res.Clusters {
		res.Clusters[ci].Person, res.Clusters[ci].Name = links[ci].Person, links[ci].Name
	}
	return nil
}

type grouping struct {
	kept    [][]int
	dropped []int
}

// Fingerprint is the original's [face/‖face‖, cloth/‖cloth‖], each part scaled by its weight
// (1 and 1 reproduce the original). A zero weight leaves that part out.
func Fingerprint(face, cloth []float32, faceWeight, clothWeight float64) []float64 {
	out := make([]float64, 0, len(face)+len(cloth))
	if faceWeight != 0 {
		out = vec.AppendUnit(out, face, faceWeight)
	}
	if clothWeight != 0 {
		out = vec.AppendUnit(out, cloth, clothWeight)
	}
	return out
}

// storeObjects puts each member's upper-body crop in the object store and starts storing the
// fingerprints (JSON and .npy): wait returns once they are stored, with their error.
func (s *Stage) storeObjects(ctx context.Context, src string, st *sourceState, res *messages.ClusterResult, kind string,
	faces Faces, members []messages.Member) (wait func() error, err error) {
	res.Bucket = stage.ImagesBucket
	if st.long != nil {
		// A long source's window: only the crops outlive it (its final result has no
		// fingerprints, and the result folder draws its montage from the crops).
		return func() error { return nil }, s.storeCrops(ctx, src, st, res)
	}
	res.Fingerprints = fmt.Sprintf("%s/fingerprints-%s.json.gz", src, kind)
	// The fingerprints are encoded on another core while the crops, the people and the
	// montage are done: after the last frame the rest of the pipeline is idle, and the JSON
	// (0.18 s on cast_public) was the result's longest step after the montage.
	head := *res // what the files' header reads, unaffected by the steps that follow
	done := make(chan error, 1)
	go func() {
		points := make([][]float64, len(faces.Face))
		for i := range points {
			points[i] = Fingerprint(faces.Face[i], faces.Cloth[i], head.Params.FaceWeight, head.Params.ClothWeight)
		}
		fp, err := EncodeFingerprints(&head, points, members, s.cfg.Metric)
		if err == nil {
			if _, perr := s.images.PutBytes(ctx, head.Fingerprints, fp); perr != nil {
				err = fmt.Errorf("clusterer: storing %s: %w", head.Fingerprints, perr)
			}
		}
		if err == nil {
			err = s.storeFingerprintsNPY(ctx, &head, points, members)
		}
		done <- err
	}()
	wait = func() error { return <-done }
	if err := s.storeCrops(ctx, src, st, res); err != nil {
		_ = wait()
		return nil, err
	}
	return wait, nil
}

// storeMontage draws the montage of a result whose crops are stored, once its clusters are
// linked to people, so each column is headed by its person, and puts it in the object store.
func (s *Stage) storeMontage(ctx context.Context, src string, st *sourceState, res *messages.ClusterResult, kind string) error {
	byKey := map[string]messages.Member{}
	for _, c := range res.Clusters {
		for _, m := range c.Members {
			byKey[m.Image] = m
		}
	}
	body := func(key string) ([]byte, error) {
		m := byKey[key]
		if f, ok := st.frames[m.Seq]; ok && m.Face < len(f.face.Bodies) {
			return f.face.Bodies[m.Face], nil
		}
		return nil, nil // left out of the montage
	}
	if st.thumbs == nil {
		st.thumbs = output.NewThumbnails(96)
	}
	png, err := st.thumbs.ResultMontage(res, body)
	if err != nil {
		return fmt.Errorf("clusterer: %w", err)
	}
	res.Montage = fmt.Sprintf("%s/montage-%s.png", src, kind)
	if _, err := s.images.PutBytes(ctx, res.Montage, png); err != nil {
		return fmt.Errorf("clusterer: storing %s: %w", res.Montage, err)
	}
	return nil
}

// storeCrops puts each member's upper-body crop in the object store.
func (s *Stage) storeCrops(ctx context.Context, src string, st *sourceState, res *messages.ClusterResult) error {
	for ci := range res.Clusters {
		for mi := range res.Clusters[ci].Members {
			m := &res.Clusters[ci].Members[mi]
			f := st.frames[m.Seq]
			if m.Face >= len(f.face.Bodies) || len(f.face.Bodies[m.Face]) == 0 {
				continue
			}
			m.Image = fmt.Sprintf("%s/faces/%06d-%d.jpg", src, m.Seq, m.Face)
			if st.stored[m.Image] { // by the source's first result
				continue
			}
			if _, err := s.images.PutBytes(ctx, m.Image, f.face.Bodies[m.Face]); err != nil {
				return fmt.Errorf("clusterer: storing %s: %w", m.Image, err)
			}
			if st.stored == nil {
				st.stored = map[string]bool{}
			}
			st.stored[m.Image] = true
		}
	}
	return nil
}

// state returns a source's state, rebuilding it from the vectors stream after a restart.
func (s *Stage) state(ctx context.Context, src string) (*sourceState, error) {
	if st := s.sources[src]; st != nil {
		return st, nil
	}
	st := &sourceState{frames: map[int64]*frameParts{}}
	if err := s.rebuild(ctx, src, st); err != nil {
		return nil, err
	}
	s.sources[src] = st
	return st, nil
}

// rebuild replays what the vectors stream holds for src. A source whose final result is
// already stored is marked finished.
func (s *Stage) rebuild(ctx context.Context, src string, st *sourceState) error {
	results, err := s.js.Stream(ctx, stage.StreamResults)
	if err != nil {
		return fmt.Errorf("clusterer: %w", err)
	}
	if raw, err := results.GetLastMsgForSubject(ctx, messages.Subject(messages.SubjectResults, src)); err == nil {
		if r, err := messages.DecodeAs[*messages.ClusterResult](raw.Data); err == nil && r.Final {
			st.finished = true
			return nil
		} else if err == nil && r.Window > 0 {
			// A live source goes on after its last window: numbered on (a number used again
			// would make a duplicate message id and a gallery window already linked), its
			// frames not clustered twice.
			st.windows, st.base, st.prefix = r.Window, r.WindowEnd, r.WindowEnd
		}
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("clusterer: checking results of %s: %w", src, err)
	}
	if err := s.loadLong(ctx, src, st); err != nil {
		return err
	}
	vectors, err := s.js.Stream(ctx, stage.StreamVectors)
	if err != nil {
		return fmt.Errorf("clusterer: %w", err)
	}
	subjects := []string{messages.Subject(messages.SubjectFaceVec, src), messages.Subject(messages.SubjectClothVec, src)}
	var last uint64
	for _, subj := range subjects {
		raw, err := vectors.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("clusterer: rebuilding %s: %w", src, err)
		}
		last = max(last, raw.Sequence)
	}
	if last == 0 {
		return nil
	}
	cons, err := s.js.OrderedConsumer(ctx, stage.StreamVectors, jetstream.OrderedConsumerConfig{FilterSubjects: subjects})
	if err != nil {
		return fmt.Errorf("clusterer: rebuilding %s: %w", src, err)
	}
	n := 0
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return fmt.Errorf("clusterer: rebuilding %s after %d messages: %w", src, n, err)
		}
		n++
		md, mdErr := msg.Metadata()
		if mdErr != nil {
			return fmt.Errorf("clusterer: rebuilding %s: %w", src, mdErr)
		}
		if m, err := messages.Decode(msg.Data()); err == nil {
			if eos, ok := m.(*messages.EndOfStream); ok {
				st.addEOS(msg.Subject(), eos, md.Sequence.Stream)
			} else {
				_ = st.add(m, md.Sequence.Stream) // bad messages were dead-lettered when first delivered
			}
		}
		if md.Sequence.Stream >= last {
			break
		}
	}
	if n > 0 {
		s.cfg.Logger.Info("rebuilt source state from the vectors stream", "source", src, "messages", n, "complete_frames", st.prefix)
	}
	return nil
}

// purge drops a source's vectors below stream sequence keep (0: all of them).
func (s *Stage) purge(ctx context.Context, src string, keep uint64) {
	if s.cfg.KeepInput {
		return
	}
	vectors, err := s.js.Stream(ctx, stage.StreamVectors)
	if err == nil {
		for _, subj := range []string{messages.Subject(messages.SubjectFaceVec, src), messages.Subject(messages.SubjectClothVec, src)} {
			opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(subj)}
			if keep > 0 {
				opts = append(opts, jetstream.WithPurgeSequence(keep))
			}
			if perr := vectors.Purge(ctx, opts...); perr != nil {
				err = perr
			}
		}
	}
	if err != nil {
		s.cfg.Logger.Warn("purging a source's clustered vectors failed", "source", src, "err", err)
	}
}

// SortedSources lists the sources in memory (for status).
func (s *Stage) SortedSources() []string {
	var out []string
	for k := range s.sources {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Close has no native resources; it exists for stage.Processor.
func (s *Stage) Close(context.Context) error { return nil }

// FingerprintFile is the saved form of the vectors a result clustered: the case format that
// `personcluster cluster` and hac.ReadCaseFile read, plus which face each point is.
type FingerprintFile struct {
	Source      string  `json:"source"`
	Method      string  `json:"method"`
	Metric      string  `json:"metric"`
	Sim         float64 `json:"sim"`
	MinCSize    int     `json:"min_csize"`
	FaceModel   string  `json:"face_model"`
	ClothModel  string  `json:"cloth_model"`
	FaceWeight  float64 `json:"face_weight"`
	ClothWeight float64 `json:"cloth_weight"`
	// How the stage cut these points: the result's cut height, and whether faces of one frame
	// were kept apart. `personcluster cluster` re-clusters with the original's scipy-exact cut
	// at max(d)·(1−sim), which these do not change.
	Threshold  float64           `json:"threshold"`
	CannotLink bool              `json:"cannot_link,omitempty"`
	Cut        string            `json:"cut,omitempty"`
	Points     [][]float64       `json:"points"`
	Members    []messages.Member `json:"members"`
}

// EncodeFingerprints writes the gzip JSON fingerprint file of a result.
func EncodeFingerprints(res *messages.ClusterResult, points [][]float64, members []messages.Member, metric string) ([]byte, error) {
	f := FingerprintFile{Source: res.Source, Method: res.Params.Method, Metric: metric, Sim: res.Params.Sim, MinCSize: res.Params.MinCSize,
		FaceModel: res.FaceModel, ClothModel: res.ClothModel, FaceWeight: res.Params.FaceWeight, ClothWeight: res.Params.ClothWeight,
		Threshold: res.Threshold, CannotLink: res.Params.CannotLink, Cut: string(res.Params.Cut), Points: points, Members: members}
	if f.Points == nil {
		f.Points = [][]float64{}
	}
	var buf bytes.Buffer
	// BestSpeed: default gzip took most of a result's CPU time (float text compresses
	// about as well either way); klauspost's gzip at that level takes 100 ms where the
	// standard library's took 170 for 675 points of 640 (most of it the JSON's text).
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := json.NewEncoder(zw).Encode(f); err != nil {
		return nil, fmt.Errorf("clusterer: encoding fingerprints: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("clusterer: encoding fingerprints: %w", err)
	}
	return buf.Bytes(), nil
}
