package embedder

import (
	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
)

// OnDeadLetter publishes a dead-lettered frame without vectors, so the clusterer counts the
// frame (and skips it) instead of waiting for it.
func (s *Stage) OnDeadLetter(in *stage.Input, _ error) []stage.Output {
	return stage.PassOn(in, func(ff *messages.FrameFaces) stage.Output {
		return route.Output(ff.Source, ff.Seq, &messages.ClothVectors{Source: ff.Source, Seq: ff.Seq, Index: ff.Index,
			Model: messages.ModelDeadLetter, Params: ff.Params})
	})
}
