// Package encoder is the face encoder stage: faces.<source> → facevec.<source>. It describes
// each face of an accepted frame by a face-recognition vector and forwards the boxes and
// upper-body crops, so the clusterer can build results from vectors alone.
package encoder

import (
	"context"
	"fmt"
	"image"
	"image/color"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// StageName names the stage in message ids, dead-letter subjects and metrics.
const StageName = "encoder"

var blackRGBA = color.RGBA{}

func imagePt(w, h int) image.Point { return image.Pt(w, h) }

// Stage is the encoder's stage.Processor.
type Stage struct {
	enc FaceEncoder
}

// New wraps an encoder; the stage owns it and closes it.
func New(enc FaceEncoder) *Stage { return &Stage{enc: enc} }

// Process encodes the faces of each FrameFaces and forwards end-of-stream markers.
func (s *Stage) Process(ctx context.Context, batch []*stage.Input) []stage.Result {
	out := make([]stage.Result, len(batch))
	for i, in := range batch {
		switch m := in.Message.(type) {
		case *messages.FrameFaces:
			fv, err := s.Frame(m)
			if err != nil {
				out[i].Err = err
				continue
			}
			out[i].Outputs = []stage.Output{{Subject: messages.Subject(messages.SubjectFaceVec, m.Source),
				MsgID: messages.MsgID(m.Source, m.Seq, StageName), Message: fv}}
		case *messages.EndOfStream:
			out[i].Outputs = []stage.Output{{Subject: messages.Subject(messages.SubjectFaceVec, m.Source),
				MsgID: m.Source + ".eos." + StageName, Message: m}}
		default:
			out[i].Err = stage.Permanent(fmt.Errorf("encoder: unexpected %s on %s", in.Message.MessageType(), in.Subject))
		}
	}
	return out
}

// Frame encodes the faces of one frame.
func (s *Stage) Frame(ff *messages.FrameFaces) (*messages.FaceVectors, error) {
	fv := &messages.FaceVectors{Source: ff.Source, Seq: ff.Seq, Index: ff.Index, PTSMillis: ff.PTSMillis,
		Accepted: ff.Accepted, Model: s.enc.Name(), Params: ff.Params}
	for j, face := range ff.Faces {
		crop, err := vision.DecodeJPEG(face.FaceJPEG, messages.MaxFrameSide)
		if err != nil {
			return nil, stage.Permanent(fmt.Errorf("encoder: frame %d face %d of %s: %w", ff.Index, j, ff.Source, err))
		}
		if face.FaceBox.Width() <= 0 || face.FaceBox.Height() <= 0 || face.FaceBox.Left() < 0 || face.FaceBox.Top() < 0 ||
			face.FaceBox.Right() > crop.Cols() || face.FaceBox.Bottom() > crop.Rows() {
			crop.Close()
			return nil, stage.Permanent(fmt.Errorf("encoder: frame %d face %d of %s: box %v outside its %dx%d crop",
				ff.Index, j, ff.Source, face.FaceBox, crop.Cols(), crop.Rows()))
		}
		vec, err := s.enc.Encode(crop, face.FaceBox)
		crop.Close()
		if err != nil {
			return nil, fmt.Errorf("encoder: frame %d face %d of %s: %w", ff.Index, j, ff.Source, err)
		}
		fv.Vectors = append(fv.Vectors, vec)
		fv.Boxes = append(fv.Boxes, face.Box)
		fv.Bodies = append(fv.Bodies, face.BodyJPEG)
	}
	return fv, nil
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
