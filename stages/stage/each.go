package stage

import (
	"context"
	"fmt"

	"github.com/personcluster/personcluster/messages"
)

// Route names a stage and where its outputs go, for the per-input adapter (Each, Split).
type Route struct {
	// Stage is the stage's name: its errors' prefix and the last token of its message ids.
	Stage string
	// Next is the subject prefix the stage publishes on: end-of-stream markers are forwarded
	// there unchanged. Empty: the stage takes no markers (the reader) or handles them itself
	// (the clusterer), and they reach its function like any other input of its type.
	Next string
}

// Item is an input of a batch that carries the message type T a stage works on.
type Item[T messages.Message] struct {
	Index   int // the input's place in the batch, and its Result's
	Input   *Input
	Message T
}

// Each is the per-input processor adapter: the whole of Process for a stage that turns one
// input of message type T at a time into outputs. It forwards end-of-stream markers to
// Route.Next, refuses any other message type as bad input, and calls fn on the rest, in order.
func Each[T messages.Message](ctx context.Context, batch []*Input, r Route, fn func(context.Context, *Input, T) ([]Output, error)) []Result {
	out, items := Split[T](batch, r)
	for _, it := range items {
		out[it.Index].Outputs, out[it.Index].Err = fn(ctx, it.Input, it.Message)
	}
	return out
}

// Split is Each's first half, for stages that work on a batch as a whole (one inference for
// the inputs of several messages): it returns one Result per input, with end-of-stream markers
// forwarded and other message types failed, and the inputs of type T, whose Results the stage
// fills.
func Split[T messages.Message](batch []*Input, r Route) ([]Result, []Item[T]) {
	out := make([]Result, len(batch))
	items := make([]Item[T], 0, len(batch))
	for i, in := range batch {
		if eos, ok := in.Message.(*messages.EndOfStream); ok && r.Next != "" {
			out[i].Outputs = []Output{ForwardEOS(r, eos)}
			continue
		}
		m, ok := in.Message.(T)
		if !ok {
			out[i].Err = Unexpected(r.Stage, in)
			continue
		}
		items = append(items, Item[T]{Index: i, Input: in, Message: m})
	}
	return out, items
}

// Output is the stage's output for input seq of a source, on Route.Next.
func (r Route) Output(source string, seq int64, m messages.Message) Output {
	return Output{Subject: messages.Subject(r.Next, source), MsgID: messages.MsgID(source, seq, r.Stage), Message: m}
}

// ForwardEOS is the output that passes a source's end-of-stream marker on to Route.Next.
func ForwardEOS(r Route, eos *messages.EndOfStream) Output {
	return Output{Subject: messages.Subject(r.Next, eos.Source), MsgID: messages.EOSMsgID(eos.Source, r.Stage), Message: eos}
}

// PassOn is the usual body of a DeadLetterHandler: for a dead-lettered input of type T, the
// placeholder output that tells later stages of it; for other inputs, nothing.
func PassOn[T messages.Message](in *Input, placeholder func(T) Output) []Output {
	m, ok := in.Message.(T)
	if !ok {
		return nil
	}
	return []Output{placeholder(m)}
}

// Unexpected is the error of an input whose message type the stage does not take: bad input,
// dead-lettered.
func Unexpected(stageName string, in *Input) error {
	typ := "nil message"
	if in.Message != nil {
		typ = string(in.Message.MessageType())
	}
	return Permanent(fmt.Errorf("%s: unexpected %s on %s", stageName, typ, in.Subject))
}
