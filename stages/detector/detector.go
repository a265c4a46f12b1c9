// Package detector is the face detector stage: frames.<source> → faces.<source>. It finds the
// faces of each frame, keeps frames showing MinFaces..MaxFaces faces (the original's 2 to 4),
// and cuts, per face, the crops the later stages need (DESIGN step 4).
package detector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// StageName names the stage in message ids, dead-letter subjects and metrics.
const StageName = messages.StageDetector

// Config configures the stage.
type Config struct {
	JPEGQuality int     // of the crops
	FaceMargin  float64 // margin around the face crop for the encoder, relative to the box size
	// Gate is the face-quality gate between detection and encoding; the 2–4 faces rule
	// counts the faces it keeps.
	Gate   GateConfig
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	c.JPEGQuality = cmp.Or(c.JPEGQuality, 92)
	c.FaceMargin = cmp.Or(c.FaceMargin, 0.25)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Gate.setDefaults()
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	if c.JPEGQuality < 0 || c.JPEGQuality > 100 {
		return fmt.Errorf("detector: JPEG quality %d outside 1..100", c.JPEGQuality)
	}
	if c.FaceMargin < 0 || c.FaceMargin > 2 {
		return fmt.Errorf("detector: face margin %v outside [0,2]", c.FaceMargin)
	}
	return c.Gate.Validate()
}

// Counters of frames by verdict. Frames counts every frame detected; TooFew and TooMany are
// the frames skipped for showing fewer than MinFaces or more than MaxFaces faces; Bad counts
// frames refused as bad input (dead letters): undecodable JPEG, zero or disagreeing size.
type Counters struct {
	Frames, Accepted, TooFew, TooMany, Faces, Bad atomic.Int64
	// PartOfPerson and Blurred count the detections the gate refused, by reason.
	PartOfPerson, Blurred atomic.Int64
}

// Rejected returns the detections the gate refused, by reason.
func (c *Counters) Rejected() map[string]int64 {
	return map[string]int64{RejectPartOfPerson: c.PartOfPerson.Load(), RejectBlurred: c.Blurred.Load()}
}

// Skipped returns the skipped frames by reason, as FrameFaces.SkipReason names them.
func (c *Counters) Skipped() map[string]int64 {
	return map[string]int64{SkipTooFew: c.TooFew.Load(), SkipTooMany: c.TooMany.Load()}
}

// Skip reasons of FrameFaces (defined with the message).
const (
	SkipTooFew     = messages.SkipTooFew
	SkipTooMany    = messages.SkipTooMany
	SkipDeadLetter = messages.SkipDeadLetter
)

// Stage is the detector's stage.Processor.
type Stage struct {
	cfg    Config
	det    FaceDetector
	gate   *Gate
	Counts Counters
}

// New wraps a detector; the stage owns it and closes it.
func New(cfg Config, det FaceDetector) (*Stage, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if det == nil {
		return nil, errors.New("detector: no face detector")
	}
	gate, err := NewGate(cfg.Gate)
	if err != nil {
		return nil, err
	}
	return &Stage{cfg: cfg, det: det, gate: gate}, nil
}

// Detector is the face detector the stage runs.
func (s *Stage) Detector() FaceDetector { return s.det }

// Process handles frames and forwards end-of-stream markers.
func (s *Stage) Process(ctx context.Context, batch []*stage.Input) []stage.Result {
	return stage.Each(ctx, batch, route, func(_ context.Context, _ *stage.Input, f *messages.Frame) ([]stage.Output, error) {
		ff, err := s.Frame(f)
		if err != nil {
			return nil, err
		}
		return []stage.Output{route.Output(f.Source, f.Seq, ff)}, nil
	})
}

// route: frames in, FrameFaces and end-of-stream markers out on faces.<source>.
var route = stage.Route{Stage: StageName, Next: messages.SubjectFaces}

// bad counts and marks a bad-input error: the message is dead-lettered, never retried.
func (s *Stage) bad(err error) error {
	s.Counts.Bad.Add(1)
	return stage.Permanent(err)
}

// Frame detects the faces of one frame and builds its FrameFaces. Bad input (an invalid
// message, an undecodable JPEG, a JPEG whose size disagrees with the message) returns an
// error matching stage.ErrPermanent; a failing detector returns a retryable error.
func (s *Stage) Frame(f *messages.Frame) (*messages.FrameFaces, error) {
	if s.det == nil {
		return nil, errors.New("detector: stage closed")
	}
	if err := f.Validate(); err != nil {
		return nil, s.bad(fmt.Errorf("detector: frame %d of %s: %w", f.Index, f.Source, err))
	}
	img, err := vision.DecodeJPEG(f.JPEG, messages.MaxFrameSide)
	if err != nil {
		return nil, s.bad(fmt.Errorf("detector: frame %d of %s: %w", f.Index, f.Source, err))
	}
	defer img.Close()
	if img.Cols() != f.Width || img.Rows() != f.Height {
		return nil, s.bad(fmt.Errorf("detector: frame %d of %s: JPEG is %dx%d, message says %dx%d",
			f.Index, f.Source, img.Cols(), img.Rows(), f.Width, f.Height))
	}
	found, err := s.det.Detect(img)
	if err != nil {
		return nil, fmt.Errorf("detector: frame %d of %s: %w", f.Index, f.Source, err)
	}
	// Whatever the detector, a box must lie in the frame: trim it, drop what is left empty.
	dets := found[:0]
	for _, d := range found {
		d.Box = messages.Box{max(0, d.Box.Top()), min(f.Width, d.Box.Right()), min(f.Height, d.Box.Bottom()), max(0, d.Box.Left())}
		if d.Box.Width() > 0 && d.Box.Height() > 0 {
			dets = append(dets, d)
		}
	}
	s.Counts.Frames.Add(1)
	ff := &messages.FrameFaces{Source: f.Source, Seq: f.Seq, Index: f.Index, PTSMillis: f.PTSMillis,
		Width: fullSize(f.Width, f.Scale), Height: fullSize(f.Height, f.Scale), Params: f.Params}
	dets, rejected := s.gate.Judge(img, dets)
	ff.Detected = len(dets)
	for _, r := range rejected {
		switch r.Reason {
		case RejectPartOfPerson:
			s.Counts.PartOfPerson.Add(1)
		case RejectBlurred:
			s.Counts.Blurred.Add(1)
		}
		ff.Rejected = append(ff.Rejected, messages.RejectedFace{Frame: f.Index, PTSMillis: f.PTSMillis,
			Box: scaleBox(r.Box, f.Scale, ff.Width, ff.Height), Score: r.Score, Reason: r.Reason})
	}
	switch {
	case len(dets) < f.Params.MinFaces:
		ff.SkipReason = SkipTooFew
		s.Counts.TooFew.Add(1)
		return ff, nil
	case len(dets) > f.Params.MaxFaces:
		ff.SkipReason = SkipTooMany
		s.Counts.TooMany.Add(1)
		return ff, nil
	}
	ff.Faces = make([]messages.Face, 0, len(dets))
	for _, d := range dets {
		face, err := s.crops(img, d)
		if err != nil {
			return nil, fmt.Errorf("detector: frame %d of %s: %w", f.Index, f.Source, err)
		}
		face.Box = scaleBox(d.Box, f.Scale, ff.Width, ff.Height)
		ff.Faces = append(ff.Faces, face)
	}
	ff.Accepted = true
	s.Counts.Accepted.Add(1)
	s.Counts.Faces.Add(int64(len(dets)))
	return ff, nil
}

// crops cuts the encoder's face crop, the embedder's clothing crop and the upper-body crop.
func (s *Stage) crops(img gocv.Mat, d Detection) (messages.Face, error) {
	face := messages.Face{Score: d.Score}
	faceRegion := vision.FaceWithMargin(d.Box, s.cfg.FaceMargin)
	face.FaceBox = messages.Box{d.Box.Top() - faceRegion.Y1, d.Box.Right() - faceRegion.X1, d.Box.Bottom() - faceRegion.Y1, d.Box.Left() - faceRegion.X1}
	var err error
	if face.FaceJPEG, err = s.cropJPEG(img, faceRegion); err != nil {
		return face, err
	}
	if face.ClothJPEG, err = s.cropJPEG(img, vision.Clothing(d.Box)); err != nil {
		return face, err
	}
	if face.BodyJPEG, err = s.cropJPEG(img, vision.UpperBody(d.Box)); err != nil {
		return face, err
	}
	return face, nil
}

func (s *Stage) cropJPEG(img gocv.Mat, r vision.Region) ([]byte, error) {
	m, err := vision.Crop(img, r)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	return vision.EncodeJPEG(m, s.cfg.JPEGQuality)
}

func fullSize(side int, scale float64) int {
	if scale <= 0 || scale == 1 {
		return side
	}
	return int(float64(side)/scale + 0.5)
}

// scaleBox maps a box found in a resized frame back to the full frame.
func scaleBox(b messages.Box, scale float64, width, height int) messages.Box {
	if scale <= 0 || scale == 1 {
		return b
	}
	f := func(v int) int { return int(float64(v)/scale + 0.5) }
	return messages.Box{max(0, f(b[0])), min(width, f(b[1])), min(height, f(b[2])), max(0, f(b[3]))}
}

// Close closes the detector; safe to call twice.
func (s *Stage) Close(context.Context) error {
	if s.det == nil {
		return nil
	}
	err := s.det.Close()
	s.det = nil
	return errors.Join(err)
}
