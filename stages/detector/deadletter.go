package detector

import (
	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
)

// OnDeadLetter publishes a dead-lettered frame as skipped, so the frame count downstream stays
// complete and the source's final result is not held up.
func (s *Stage) OnDeadLetter(in *stage.Input, _ error) []stage.Output {
	return stage.PassOn(in, func(f *messages.Frame) stage.Output {
		return route.Output(f.Source, f.Seq, &messages.FrameFaces{Source: f.Source, Seq: f.Seq, Index: f.Index, PTSMillis: f.PTSMillis,
			Width: fullSize(f.Width, f.Scale), Height: fullSize(f.Height, f.Scale), // FrameFaces holds the source size
			SkipReason: SkipDeadLetter, Params: f.Params})
	})
}
