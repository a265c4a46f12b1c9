// Package reader is the frame reader stage: ingest.<source> → frames.<source>. It opens a
// source (file, stream URL or camera) with OpenCV's FFmpeg backend, samples frames, and
// publishes them as JPEG, ending with an EndOfStream. One reader owns one source at a time
// (INGEST is a work queue); its progress lives in a key-value bucket, so a reader that dies
// mid-video is replaced by another that continues where it stopped.
package reader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// StageName names the stage in message ids, dead-letter subjects and metrics.
const StageName = "reader"

// Config configures the stage.
type Config struct {
	JPEGQuality   int           // default quality when the request has none
	ProgressEvery time.Duration // status events, progress saves and ack heartbeats
	MaxCorruptRun int           // consecutive unreadable frames that end a file
	Reconnects    int           // attempts to reopen a dropped live source
	Logger        *slog.Logger
}

func (c *Config) setDefaults() {
	if c.JPEGQuality == 0 {
		c.JPEGQuality = 90
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	if c.MaxCorruptRun == 0 {
		c.MaxCorruptRun = 25
	}
	if c.Reconnects == 0 {
		c.Reconnects = 8
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Progress is a source's reader state in the sources bucket (JSON, key = source id).
type Progress struct {
	State      string `json:"state"` // reading, done, failed, cancelled
	URI        string `json:"uri"`
	NextSeq    int64  `json:"next_seq"`   // seq of the next frame to publish
	NextIndex  int64  `json:"next_index"` // source frame number to continue from
	FramesRead int64  `json:"frames_read"`
	Corrupt    int64  `json:"corrupt"`
	Cancel     bool   `json:"cancel,omitempty"` // set by `ingest --cancel`
	Reason     string `json:"reason,omitempty"`
	UpdatedMs  int64  `json:"updated_ms"`
}

// Stage is the reader's stage.Processor.
type Stage struct {
	cfg Config
	kv  jetstream.KeyValue
}

// New returns a reader that keeps progress in kv (the SourcesBucket).
func New(cfg Config, kv jetstream.KeyValue) *Stage {
	cfg.setDefaults()
	return &Stage{cfg: cfg, kv: kv}
}

// Process reads each requested source to its end.
func (s *Stage) Process(ctx context.Context, batch []*stage.Input) []stage.Result {
	out := make([]stage.Result, len(batch))
	for i, in := range batch {
		req, ok := in.Message.(*messages.IngestRequest)
		if !ok {
			out[i].Err = stage.Permanent(fmt.Errorf("reader: unexpected %s on %s", in.Message.MessageType(), in.Subject))
			continue
		}
		out[i].Err = s.read(ctx, in, req)
	}
	return out
}

// LoadProgress returns a source's saved progress (nil when none).
func LoadProgress(ctx context.Context, kv jetstream.KeyValue, source string) (*Progress, uint64, error) {
	e, err := kv.Get(ctx, source)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reader: loading progress of %s: %w", source, err)
	}
	var p Progress
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return nil, 0, fmt.Errorf("reader: progress of %s is corrupt: %w", source, err)
	}
	return &p, e.Revision(), nil
}

func (s *Stage) save(ctx context.Context, source string, p *Progress) error {
	p.UpdatedMs = time.Now().UnixMilli()
	data, _ := json.Marshal(p)
	if _, err := s.kv.Put(ctx, source, data); err != nil {
		return fmt.Errorf("reader: saving progress of %s: %w", source, err)
	}
	return nil
}

// run is the state of one source being read.
type run struct {
	s        *Stage
	in       *stage.Input
	req      *messages.IngestRequest
	prog     *Progress
	quality  int
	total    int64
	started  time.Time
	lastTick time.Time
	log      *slog.Logger
}

func (s *Stage) read(ctx context.Context, in *stage.Input, req *messages.IngestRequest) error {
	log := s.cfg.Logger.With("stage", StageName, "source", req.Source)
	prog, _, err := LoadProgress(ctx, s.kv, req.Source)
	if err != nil {
		return err
	}
	if prog != nil && prog.State != "reading" {
		// A finished source is never read twice; a repeated request is acknowledged and ignored.
		log.Info("source already finished; ignoring the request", "state", prog.State)
		return nil
	}
	if prog == nil {
		prog = &Progress{State: "reading", URI: req.URI}
	} else {
		log.Info("resuming source", "next_seq", prog.NextSeq, "next_index", prog.NextIndex)
	}
	r := &run{s: s, in: in, req: req, prog: prog, quality: req.Sampling.JPEGQuality, started: time.Now(), log: log}
	if r.quality == 0 {
		r.quality = s.cfg.JPEGQuality
	}
	reason, readErr := r.loop(ctx)
	if readErr != nil && ctx.Err() != nil {
		// Shutting down: leave the request unacked; another reader resumes it.
		return readErr
	}
	state := messages.StateDone
	switch {
	case readErr != nil:
		state, reason = messages.StateFailed, readErr.Error()
		log.Warn("source failed", "reason", reason)
	case reason == "cancelled":
		state = messages.StateCancelled
	}
	eos := &messages.EndOfStream{Source: req.Source, Frames: prog.NextSeq, FramesRead: prog.FramesRead, Corrupt: prog.Corrupt, Reason: reason, Params: req.Params}
	if readErr != nil {
		eos.Reason = "error: " + reason
	}
	if err := in.Publish(ctx, stage.Output{Subject: messages.Subject(messages.SubjectFrames, req.Source), MsgID: req.Source + ".eos." + StageName, Message: eos}); err != nil {
		return err
	}
	prog.State, prog.Reason = state, reason
	if err := s.save(ctx, req.Source, prog); err != nil {
		return err
	}
	return r.status(ctx, state, reason)
}

func (r *run) status(ctx context.Context, state, reason string) error {
	st := &messages.Status{Source: r.req.Source, Stage: StageName, State: state, Reason: reason, FramesRead: r.prog.FramesRead,
		FramesPublished: r.prog.NextSeq, FramesTotal: r.total, AtMillis: time.Now().UnixMilli()}
	if state == messages.StateProgress && r.total > 0 && r.prog.FramesRead > 0 {
		elapsed := time.Since(r.started).Seconds()
		st.ETASeconds = math.Max(0, elapsed/float64(r.prog.FramesRead)*float64(r.total-r.prog.FramesRead))
	}
	return r.in.Publish(ctx, stage.Output{Subject: messages.Subject(messages.SubjectStatus, r.req.Source), Message: st})
}

// tick saves progress, keeps the ingest request alive and reports status; it returns true
// when the source was cancelled.
func (r *run) tick(ctx context.Context) (bool, error) {
	if time.Since(r.lastTick) < r.s.cfg.ProgressEvery {
		return false, nil
	}
	r.lastTick = time.Now()
	_ = r.in.InProgress()
	saved, _, err := LoadProgress(ctx, r.s.kv, r.req.Source)
	if err != nil {
		return false, err
	}
	if saved != nil && saved.Cancel {
		return true, nil
	}
	if err := r.s.save(ctx, r.req.Source, r.prog); err != nil {
		return false, err
	}
	return false, r.status(ctx, messages.StateProgress, "")
}

// loop reads frames until the end, a stop condition or cancellation; it returns the reason.
func (r *run) loop(ctx context.Context) (string, error) {
	v, err := vision.OpenVideo(r.req.URI)
	if err != nil {
		return "", err
	}
	defer func() { v.Close() }()
	r.total = v.FrameCount()
	fps := v.FPS()
	if err := r.status(ctx, messages.StateReading, ""); err != nil {
		return "", err
	}
	frame := gocv.NewMat()
	defer frame.Close()
	resized := gocv.NewMat()
	defer resized.Close()
	samp := r.req.Sampling
	var index, corruptRun int64
	lastBucket := int64(-1)
	reconnects := 0
	for {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if cancelled, err := r.tick(ctx); err != nil {
			return "", err
		} else if cancelled {
			return "cancelled", nil
		}
		if !v.Read(&frame) || frame.Empty() {
			if vision.IsLiveURI(r.req.URI) {
				if reconnects >= r.s.cfg.Reconnects {
					return "", fmt.Errorf("reader: %s dropped and did not come back after %d attempts", r.req.URI, reconnects)
				}
				reconnects++
				backoff := time.Duration(math.Min(float64(time.Second)*math.Pow(2, float64(reconnects-1)), float64(30*time.Second)))
				r.log.Warn("live source dropped; reconnecting", "attempt", reconnects, "backoff", backoff)
				v.Close()
				sleep(ctx, backoff)
				if v, err = vision.OpenVideo(r.req.URI); err != nil {
					v = &vision.Video{}
				}
				continue
			}
			// A file: a failed read before the declared end is a corrupt frame, skipped and
			// counted; a run of them (or the declared end) ends the file.
			if r.total > 0 && index < r.total-1 && corruptRun < int64(r.s.cfg.MaxCorruptRun) {
				corruptRun++
				r.prog.Corrupt++
				index++
				continue
			}
			if r.prog.FramesRead == 0 && r.prog.NextIndex == 0 {
				return "", fmt.Errorf("reader: %s has no readable frames", r.req.URI)
			}
			return "end", nil
		}
		reconnects, corruptRun = 0, 0
		i := index
		index++
		if i < r.prog.NextIndex { // resuming: these were read before
			continue
		}
		r.prog.FramesRead++
		r.prog.NextIndex = i + 1
		pts := int64(v.PosMillis())
		if fps > 0 {
			pts = int64(math.Round(float64(i) * 1000 / fps))
		}
		if samp.StopSeconds > 0 && float64(pts) >= samp.StopSeconds*1000 {
			return "stop", nil
		}
		if float64(pts) < samp.SkipSeconds*1000 {
			continue
		}
		if samp.EveryN > 1 && i%int64(samp.EveryN) != 0 {
			continue
		}
		if samp.TargetFPS > 0 {
			bucket := int64(float64(pts) * samp.TargetFPS / 1000)
			if bucket == lastBucket {
				continue
			}
			lastBucket = bucket
		}
		if err := r.publish(ctx, frame, &resized, i, pts); err != nil {
			return "", err
		}
		if samp.MaxFrames > 0 && r.prog.NextSeq >= int64(samp.MaxFrames) {
			return "max_frames", nil
		}
	}
}

func (r *run) publish(ctx context.Context, frame gocv.Mat, resized *gocv.Mat, index, pts int64) error {
	img, scale := frame, 1.0
	if mw := r.req.Sampling.MaxWidth; mw > 0 && frame.Cols() > mw {
		scale = float64(mw) / float64(frame.Cols())
		gocv.Resize(frame, resized, image.Pt(mw, int(math.Round(float64(frame.Rows())*scale))), 0, 0, gocv.InterpolationArea)
		img = *resized
	}
	if img.Cols() > messages.MaxFrameSide || img.Rows() > messages.MaxFrameSide {
		return fmt.Errorf("reader: frame %d is %dx%d; set a max width", index, img.Cols(), img.Rows())
	}
	data, err := vision.EncodeJPEG(img, r.quality)
	if err != nil {
		return fmt.Errorf("reader: frame %d: %w", index, err)
	}
	f := &messages.Frame{Source: r.req.Source, Seq: r.prog.NextSeq, Index: index, PTSMillis: pts, Width: img.Cols(), Height: img.Rows(),
		Scale: scale, JPEG: data, Params: r.req.Params}
	out := stage.Output{Subject: messages.Subject(messages.SubjectFrames, r.req.Source), MsgID: messages.MsgID(r.req.Source, f.Seq, StageName), Message: f}
	if err := r.in.Publish(ctx, out); err != nil {
		return err
	}
	r.prog.NextSeq++
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Close has nothing to free; it exists for stage.Processor.
func (s *Stage) Close(context.Context) error { return nil }
