// Package reader is the frame reader stage: ingest.<source> → frames.<source>. It opens a
// source (file, stream URL or camera) with OpenCV's FFmpeg backend, samples frames, and
// publishes them as JPEG, ending with an EndOfStream.
//
// One reader owns one source at a time: INGEST is a work queue, the reader keeps its request
// alive with ack heartbeats, and its progress lives in a key-value bucket written by
// compare-and-set. Progress only covers frames whose publish JetStream has acknowledged, so a
// reader that dies mid-video is replaced (after AckWait) by another that continues from the
// last stored frame; the deterministic Nats-Msg-Id of each frame drops whatever the first
// reader published after its last checkpoint. A finished source is never read again.
//
// Decoding, JPEG encoding and publishing overlap: the decoder hands frames to a few encoder
// goroutines and a bounded window of publishes waits for acks. Every queue between them is
// bounded, so a full stream (discard-new at its byte limit, because the detector is behind)
// stalls the publishes, then the encoders, then the decoder: a slow detector slows the reader.
package reader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
)

// StageName names the stage in message ids, dead-letter subjects and metrics.
const StageName = messages.StageReader

// Config configures the stage. Zero values take the defaults.
type Config struct {
	JPEGQuality      int           // quality when the request has none (90)
	ProgressEvery    time.Duration // progress saves, status events, cancel checks and ack heartbeats (1s)
	MaxCorruptRun    int           // consecutive undecodable frames that end a file (50)
	Reconnects       int           // attempts to reopen a live source that dropped or does not answer (8)
	ReconnectBackoff time.Duration // wait before the first reconnect; doubles per attempt (1s)
	MaxBackoff       time.Duration // longest wait between reconnects (30s)
	Encoders         int           // goroutines JPEG-encoding one source's frames (CPUs, at most 4)
	Window           int           // frames of one source published and not yet acknowledged (32)
	AckTimeout       time.Duration // longest wait for one publish's ack before the read is retried (30s)
	// JetStream, when set, publishes frames asynchronously in seq order with up to Window acks
	// outstanding. Without it frames go one at a time through the stage's publisher (each waits
	// for its ack): the same result, slower when the NATS server is far away.
	JetStream jetstream.JetStream
	Logger    *slog.Logger
}

func (c *Config) setDefaults() {
	if c.JPEGQuality <= 0 || c.JPEGQuality > 100 {
		c.JPEGQuality = 90
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = time.Second
	}
	if c.MaxCorruptRun <= 0 {
		c.MaxCorruptRun = 50
	}
	if c.Reconnects <= 0 {
		c.Reconnects = 8
	}
	if c.ReconnectBackoff <= 0 {
		c.ReconnectBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Encoders <= 0 {
		c.Encoders = min(runtime.NumCPU(), 4)
	}
	if c.Window <= 0 {
		c.Window = 32
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Stage is the reader's stage.Processor.
type Stage struct {
	cfg Config
	kv  jetstream.KeyValue
	id  string // this process, in Progress.Owner
}

// New returns a reader that keeps progress in kv (the SourcesBucket).
func New(cfg Config, kv jetstream.KeyValue) *Stage {
	cfg.setDefaults()
	host, _ := os.Hostname()
	return &Stage{cfg: cfg, kv: kv, id: fmt.Sprintf("%s/%d", host, os.Getpid())}
}

// Process reads each requested source to its end.
func (s *Stage) Process(ctx context.Context, batch []*stage.Input) []stage.Result {
	return stage.Each(ctx, batch, route, func(ctx context.Context, in *stage.Input, req *messages.IngestRequest) ([]stage.Output, error) {
		if err := req.Validate(); err != nil {
			return nil, stage.Permanent(fmt.Errorf("reader: bad ingest request on %s: %w", in.Subject, err))
		}
		return nil, s.read(ctx, in, req) // read publishes its frames itself, as it goes
	})
}

// route: ingest requests in; the reader takes no end-of-stream markers. framesOut: its frames
// and end-of-stream markers, which it publishes itself as it reads, out on frames.<source>.
var (
	route     = stage.Route{Stage: StageName}
	framesOut = stage.Route{Stage: StageName, Next: messages.SubjectFrames}
)

// Close has nothing to free; it exists for stage.Processor.
func (s *Stage) Close(context.Context) error { return nil }

// errLostOwnership: another reader has written the source's progress, so it holds the source
// now (this reader's request lease ran out); this one stops without touching anything.
// errShuttingDown ends a read when the stage stops; the request goes back to the queue.
var errShuttingDown = errors.New("reader: the stage is shutting down; the next reader continues the source")

var errLostOwnership = errors.New("reader: another reader has taken the source over")

// run is the state of one source being read.
type run struct {
	s       *Stage
	in      *stage.Input
	req     *messages.IngestRequest
	log     *slog.Logger
	owner   string
	quality int
	started time.Time

	saveMu sync.Mutex // one progress write at a time
	mu     sync.Mutex // guards prog and rev
	prog   Progress   // advanced only over acknowledged frames
	rev    uint64

	// Decoder position, for status events.
	total, firstIndex, index, read atomic.Int64
	cancelled                      atomic.Bool
}

func (s *Stage) read(ctx context.Context, in *stage.Input, req *messages.IngestRequest) error {
	r := &run{s: s, in: in, req: req, log: s.cfg.Logger.With("stage", StageName, "source", req.Source),
		owner: s.id + "/" + randomHex(4), quality: req.Sampling.JPEGQuality, started: time.Now()}
	if r.quality == 0 {
		r.quality = s.cfg.JPEGQuality
	}
	prog, rev, err := LoadProgress(ctx, s.kv, req.Source)
	if err != nil {
		return err
	}
	if prog.Final() {
		// A finished source is never read twice; a repeated request is acknowledged and ignored.
		r.log.Info("source already finished; ignoring the request", "state", prog.State)
		r.prog = *prog
		return r.status(ctx, prog.State, fmt.Sprintf("already %s (%s); request ignored: ingest under a new --source id to read it again", prog.State, prog.Reason))
	}
	if prog == nil {
		prog = &Progress{URI: req.URI, StartedMs: time.Now().UnixMilli()}
	} else {
		r.log.Info("resuming source", "next_seq", prog.NextSeq, "next_index", prog.NextIndex, "previous_owner", prog.Owner)
	}
	prog.State, prog.Owner = messages.StateReading, r.owner
	if prog.URI == "" {
		prog.URI = req.URI
	}
	if prog.StartedMs == 0 {
		prog.StartedMs = time.Now().UnixMilli()
	}
	// Claim the source. Losing this race means another reader has just claimed it.
	if rev, err = storeProgress(ctx, s.kv, req.Source, prog, rev); err != nil {
		return err
	}
	r.prog, r.rev = *prog, rev
	// Heartbeats and checkpoints run beside the reading, which may block on a full stream or
	// wait for a live source to come back, until the end of stream is stored.
	hbCtx, cancelHB := context.WithCancel(ctx)
	readCtx, stopRead := context.WithCancelCause(ctx)
	defer stopRead(nil)
	go func() {
		select {
		case <-in.Stopping(): // SIGTERM: save progress below; the next reader continues
			stopRead(errShuttingDown)
		case <-readCtx.Done():
		}
	}()
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		r.heartbeat(hbCtx, stopRead)
	}()
	stopHB := func() {
		cancelHB()
		<-hbDone
	}
	defer stopHB()
	if prog.Cancel {
		return r.finish(ctx, "cancelled", nil, nil, stopHB)
	}
	reason, src, readErr := r.readAll(readCtx)
	if cause := context.Cause(readCtx); cause != nil && !errors.Is(readErr, cause) {
		// A stopped read (the heartbeat found the source taken over, or the stage is stopping)
		// ends with whatever it was doing then: "cancelled" from a reconnect wait, or nothing
		// after its last frame was queued, its frames still waiting for acks abandoned. It is
		// no end of the source: the cause is what counts.
		readErr = cause
	}

	switch {
	case errors.Is(readErr, errLostOwnership):
		// The request is the new owner's delivery now: acking or naking it here would settle
		// that one (stage.ErrHandedOver leaves it alone).
		r.log.Warn("another reader has taken this source over; stopping", "err", readErr)
		return fmt.Errorf("%w: %w", readErr, stage.ErrHandedOver)
	case readErr == nil || isSourceError(readErr):
		return r.finish(ctx, reason, src, readErr, stopHB)
	default:
		stopHB()
		// Shutting down, or NATS trouble: save what is stored, leave the request unacked
		// (the stage loop retries it) and let the next reader continue from here.
		saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.checkpoint(saveCtx); err != nil {
			r.log.Warn("saving progress on the way out failed", "err", err)
		}
		return readErr
	}
}

// finish ends the source: EndOfStream after the last frame (heartbeats go on while it waits
// for room in the stream), then the final state and a status event.
func (r *run) finish(ctx context.Context, reason string, src *source, readErr error, stopHB func()) error {
	state := messages.StateDone
	detail := reason
	switch {
	case readErr != nil:
		state, reason, detail = messages.StateFailed, "error: "+readErr.Error(), readErr.Error()
		r.log.Warn("source failed", "reason", detail)
	case reason == "cancelled":
		state = messages.StateCancelled
	case reason == "truncated":
		detail = fmt.Sprintf("truncated: the file ended after %d of the %d frames it declares", src.index, src.total)
	}
	if src != nil && src.corrupt > 0 && readErr == nil {
		detail += fmt.Sprintf(" (%d undecodable frames skipped)", src.corrupt)
	}
	r.mu.Lock()
	if src != nil && readErr == nil {
		// Everything read was published and acknowledged: the counters are final.
		r.prog.NextIndex, r.prog.FramesRead, r.prog.Corrupt = src.index, src.framesRead, src.corrupt
	}
	eos := &messages.EndOfStream{Source: r.req.Source, Frames: r.prog.NextSeq, FramesRead: r.prog.FramesRead,
		Corrupt: r.prog.Corrupt, Reason: reason, Params: r.req.Params}
	r.mu.Unlock()
	if err := r.in.Publish(ctx, stage.ForwardEOS(framesOut, eos)); err != nil {
		return fmt.Errorf("reader: publishing the end of %s: %w", r.req.Source, err)
	}
	stopHB()
	r.mu.Lock()
	r.prog.State, r.prog.Reason = state, detail
	r.mu.Unlock()
	if err := r.checkpoint(ctx); err != nil {
		if errors.Is(err, errLostOwnership) {
			r.log.Warn("another reader has taken this source over at its end", "err", err)
			return fmt.Errorf("%w: %w", err, stage.ErrHandedOver)
		}
		return err
	}
	r.log.Info("source finished", "state", state, "reason", detail, "frames", eos.Frames, "read", eos.FramesRead, "corrupt", eos.Corrupt)
	return r.status(ctx, state, detail)
}

// heartbeat keeps the ingest request alive, saves progress, notices cancellation and reports
// status every ProgressEvery until ctx ends. Losing the source to another reader stops the read.
func (r *run) heartbeat(ctx context.Context, stopRead context.CancelCauseFunc) {
	t := time.NewTicker(r.s.cfg.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := r.in.InProgress(); err != nil {
			r.log.Debug("ack heartbeat failed", "err", err)
		}
		if err := r.checkpoint(ctx); err != nil {
			if errors.Is(err, errLostOwnership) {
				stopRead(err)
				return
			}
			if ctx.Err() == nil {
				r.log.Warn("saving progress failed; will retry", "err", err)
			}
			continue
		}
		if err := r.status(ctx, messages.StateProgress, ""); err != nil && ctx.Err() == nil {
			r.log.Warn("status event failed", "err", err)
		}
	}
}

// checkpoint writes the progress by compare-and-set. A conflict means someone else wrote the
// key: `ingest --cancel` (the cancel flag is taken over and the write retried) or another reader
// (errLostOwnership).
func (r *run) checkpoint(ctx context.Context) error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	for attempt := 0; ; attempt++ {
		r.mu.Lock()
		p, rev := r.prog, r.rev
		r.mu.Unlock()
		newRev, err := storeProgress(ctx, r.s.kv, r.req.Source, &p, rev)
		if err == nil {
			r.mu.Lock()
			r.rev = newRev
			r.mu.Unlock()
			return nil
		}
		if !errors.Is(err, errConflict) || attempt >= 10 {
			return err
		}
		saved, savedRev, err := LoadProgress(ctx, r.s.kv, r.req.Source)
		if err != nil {
			return err
		}
		if saved == nil || saved.Owner != r.owner {
			owner := "nobody"
			if saved != nil {
				owner = saved.Owner
			}
			return fmt.Errorf("%w (%s holds it)", errLostOwnership, owner)
		}
		r.mu.Lock()
		if saved.Cancel && !r.prog.Cancel {
			r.prog.Cancel = true
			r.cancelled.Store(true)
			r.log.Info("cancel requested")
		}
		r.rev = savedRev
		r.mu.Unlock()
	}
}

// status publishes a state or progress event on status.<source>.
func (r *run) status(ctx context.Context, state, reason string) error {
	r.mu.Lock()
	st := &messages.Status{Source: r.req.Source, Stage: StageName, State: state, Reason: messages.Redacted(reason),
		FramesRead: r.prog.FramesRead, FramesPublished: r.prog.NextSeq, FramesTotal: r.total.Load(), AtMillis: time.Now().UnixMilli()}
	r.mu.Unlock()
	if state == messages.StateProgress || state == messages.StateReading {
		if read := r.read.Load(); read > st.FramesRead {
			st.FramesRead = read
		}
		index, first := r.index.Load(), r.firstIndex.Load()
		if st.FramesTotal > 0 && index > first {
			elapsed := time.Since(r.started).Seconds()
			st.ETASeconds = math.Max(0, elapsed/float64(index-first)*float64(st.FramesTotal-index))
		}
	}
	return r.in.Publish(ctx, stage.Output{Subject: messages.Subject(messages.SubjectStatus, r.req.Source), Message: st})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
