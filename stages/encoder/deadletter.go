package encoder

import (
	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
)

// OnDeadLetter publishes a dead-lettered frame without vectors, so the clusterer counts the
// frame (and skips it) instead of waiting for it.
func (s *Stage) OnDeadLetter(in *stage.Input, reason error) []stage.Output {
	ff, ok := in.Message.(*messages.FrameFaces)
	if !ok {
		return nil
	}
	fv := &messages.FaceVectors{Source: ff.Source, Seq: ff.Seq, Index: ff.Index, PTSMillis: ff.PTSMillis, Model: messages.ModelDeadLetter, Params: ff.Params}
	return []stage.Output{route.Output(ff.Source, ff.Seq, fv)}
}
