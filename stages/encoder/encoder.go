// Package encoder is the face encoder stage: faces.<source> → facevec.<source>. It describes
// each face of an accepted frame by a face-recognition vector and forwards the boxes and
// upper-body crops, so the clusterer can build results from vectors alone.
//
// The faces of all the frames of a pulled batch are described together when the encoder is a
// BatchEncoder (both shipped encoders are). Bad input (an invalid message, an undecodable
// face crop, a face box outside its crop) is a dead letter for its frame only.
package encoder

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"sync/atomic"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// StageName names the stage in message ids, dead-letter subjects and metrics.
const StageName = messages.StageEncoder

var blackRGBA = color.RGBA{}

func imagePt(w, h int) image.Point { return image.Pt(w, h) }

// Counters of the stage's work.
type Counters struct {
	Frames, Faces, Bad atomic.Int64
	Batches            atomic.Int64 // encoder calls (one per pulled batch with a BatchEncoder)
}

// Stage is the encoder's stage.Processor.
type Stage struct {
	enc    FaceEncoder
	Counts Counters
}

// New wraps an encoder; the stage owns it and closes it.
func New(enc FaceEncoder) *Stage { return &Stage{enc: enc} }

// Encoder is the face encoder the stage runs.
func (s *Stage) Encoder() FaceEncoder { return s.enc }

// pending is one FrameFaces of a batch on its way through Process.
type pending struct {
	idx   int // position in the batch
	ff    *messages.FrameFaces
	faces []Face
}

func (p *pending) close() {
	for _, f := range p.faces {
		_ = f.Crop.Close()
	}
	p.faces = nil
}

// Process encodes the faces of every FrameFaces of the batch (in one encoder call when it can)
// and forwards end-of-stream markers.
func (s *Stage) Process(ctx context.Context, batch []*stage.Input) []stage.Result {
	out, items := stage.Split[*messages.FrameFaces](batch, route)
	var work []*pending
	defer func() {
		for _, p := range work {
			p.close()
		}
	}()
	for _, it := range items {
		p, err := s.prepare(it.Message)
		if err != nil {
			out[it.Index].Err = err
			continue
		}
		p.idx = it.Index
		work = append(work, p)
	}
	if len(work) == 0 {
		return out
	}
	var vecs [][][]float32
	if be, ok := s.enc.(BatchEncoder); ok && len(work) > 1 {
		var all []Face
		for _, p := range work {
			all = append(all, p.faces...)
		}
		if len(all) > 0 {
			s.Counts.Batches.Add(1)
			if flat, err := be.EncodeBatch(all); err == nil && len(flat) == len(all) {
				for _, p := range work {
					vecs = append(vecs, flat[:len(p.faces):len(p.faces)])
					flat = flat[len(p.faces):]
				}
			}
		}
	}
	for k, p := range work {
		var v [][]float32
		var err error
		if vecs != nil {
			v = vecs[k]
		} else if v, err = s.encode(p); err != nil { // one frame at a time: an error stays with its frame
			out[p.idx].Err = fmt.Errorf("encoder: frame %d of %s: %w", p.ff.Index, p.ff.Source, err)
			continue
		}
		out[p.idx].Outputs = []stage.Output{route.Output(p.ff.Source, p.ff.Seq, s.vectors(p.ff, v))}
	}
	return out
}

// route: FrameFaces in, FaceVectors and end-of-stream markers out on facevec.<source>.
var route = stage.Route{Stage: StageName, Next: messages.SubjectFaceVec}

// Frame encodes the faces of one frame.
func (s *Stage) Frame(ff *messages.FrameFaces) (*messages.FaceVectors, error) {
	p, err := s.prepare(ff)
	if err != nil {
		return nil, err
	}
	defer p.close()
	v, err := s.encode(p)
	if err != nil {
		return nil, fmt.Errorf("encoder: frame %d of %s: %w", ff.Index, ff.Source, err)
	}
	return s.vectors(ff, v), nil
}

// prepare checks a FrameFaces and decodes its face crops; bad input is a permanent error.
func (s *Stage) prepare(ff *messages.FrameFaces) (*pending, error) {
	if s.enc == nil {
		return nil, errors.New("encoder: stage closed")
	}
	if err := ff.Validate(); err != nil {
		s.Counts.Bad.Add(1)
		return nil, stage.Permanent(fmt.Errorf("encoder: frame %d of %s: %w", ff.Index, ff.Source, err))
	}
	p := &pending{ff: ff}
	for j, face := range ff.Faces {
		crop, err := vision.DecodeJPEG(face.FaceJPEG, messages.MaxFrameSide)
		if err != nil {
			p.close()
			s.Counts.Bad.Add(1)
			return nil, stage.Permanent(fmt.Errorf("encoder: frame %d face %d of %s: %w", ff.Index, j, ff.Source, err))
		}
		b, w, h := face.FaceBox, crop.Cols(), crop.Rows()
		if b.Width() <= 0 || b.Height() <= 0 || b.Left() < 0 || b.Top() < 0 || b.Right() > w || b.Bottom() > h {
			crop.Close()
			p.close()
			s.Counts.Bad.Add(1)
			return nil, stage.Permanent(fmt.Errorf("encoder: frame %d face %d of %s: box %v outside its %dx%d crop",
				ff.Index, j, ff.Source, b, w, h))
		}
		p.faces = append(p.faces, Face{Crop: crop, Box: b})
	}
	return p, nil
}

// encode describes the faces of one frame.
func (s *Stage) encode(p *pending) ([][]float32, error) {
	if len(p.faces) == 0 {
		return nil, nil
	}
	if be, ok := s.enc.(BatchEncoder); ok {
		v, err := be.EncodeBatch(p.faces)
		if err == nil && len(v) != len(p.faces) {
			err = fmt.Errorf("%d vectors for %d faces", len(v), len(p.faces))
		}
		return v, err
	}
	out := make([][]float32, len(p.faces))
	for j, f := range p.faces {
		v, err := s.enc.Encode(f.Crop, f.Box)
		if err != nil {
			return nil, fmt.Errorf("face %d: %w", j, err)
		}
		out[j] = v
	}
	return out, nil
}

func (s *Stage) vectors(ff *messages.FrameFaces, vecs [][]float32) *messages.FaceVectors {
	s.Counts.Frames.Add(1)
	s.Counts.Faces.Add(int64(len(vecs)))
	fv := &messages.FaceVectors{Source: ff.Source, Seq: ff.Seq, Index: ff.Index, PTSMillis: ff.PTSMillis,
		Accepted: ff.Accepted, Model: s.enc.Name(), Params: ff.Params, Rejected: ff.Rejected}
	for j, face := range ff.Faces {
		fv.Vectors = append(fv.Vectors, vecs[j])
		fv.Boxes = append(fv.Boxes, face.Box)
		fv.Bodies = append(fv.Bodies, face.BodyJPEG)
	}
	return fv
}

// Close closes the encoder; safe to call twice.
func (s *Stage) Close(context.Context) error {
	if s.enc == nil {
		return nil
	}
	err := s.enc.Close()
	s.enc = nil
	return err
}
