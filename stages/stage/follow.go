package stage

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
)

// Event is one message that can end a wait for a source: a *messages.ClusterResult or a
// *messages.DeadLetter (Err: the stored bytes did not decode).
type Event struct {
	Subject string
	Message messages.Message
	Err     error
}

// Follower reads a source's results and dead letters from their streams (see Follow).
type Follower struct {
	events chan Event
	done   chan struct{}
	stops  []jetstream.ConsumeContext
}

// Follow reads the results (results.<source>) and dead letters (dead.*.<source>) of a source
// (">": every source), each stream in order and without gaps: with stored, from the first one
// the streams keep, so a final result stored before the call is not missed; else only those
// stored from now on. Stop ends it.
func Follow(ctx context.Context, js jetstream.JetStream, source string, stored bool) (*Follower, error) {
	policy := jetstream.DeliverNewPolicy
	if stored {
		policy = jetstream.DeliverAllPolicy
	}
	f := &Follower{events: make(chan Event, 64), done: make(chan struct{})}
	for _, s := range []struct{ stream, filter string }{
		{StreamResults, messages.SubjectResults + "." + source},
		{StreamDead, messages.SubjectDead + ".*." + source},
	} {
		cons, err := js.OrderedConsumer(ctx, s.stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{s.filter}, DeliverPolicy: policy})
		if err != nil {
			f.Stop()
			return nil, fmt.Errorf("stage: following %s: %w", s.filter, err)
		}
		cc, err := cons.Consume(func(msg jetstream.Msg) {
			ev := Event{Subject: msg.Subject()}
			ev.Message, ev.Err = messages.Decode(msg.Data())
			select {
			case f.events <- ev:
			case <-f.done:
			}
		})
		if err != nil {
			f.Stop()
			return nil, fmt.Errorf("stage: following %s: %w", s.filter, err)
		}
		f.stops = append(f.stops, cc)
	}
	return f, nil
}

// Events delivers what Follow reads.
func (f *Follower) Events() <-chan Event { return f.events }

// Stop ends the follower. Safe to call twice.
func (f *Follower) Stop() {
	select {
	case <-f.done:
		return
	default:
	}
	close(f.done)
	for _, cc := range f.stops {
		cc.Stop()
	}
}

// SourceFailedError is the end of a wait for a source that will not get its final result: a
// stage dead-lettered one of its inputs and no stage downstream heard of it.
type SourceFailedError struct {
	Source, Stage, Subject, Reason string
}

func (e *SourceFailedError) Error() string {
	return fmt.Sprintf("stage: source %s cannot finish: the %s stage dead-lettered an input (%s): %s", e.Source, e.Stage, e.Subject, e.Reason)
}

// ErrSourceFailed matches every *SourceFailedError with errors.Is.
var ErrSourceFailed = errors.New("stage: source cannot finish")

func (e *SourceFailedError) Is(target error) bool { return target == ErrSourceFailed }

// SourceFailed is the error a dead letter ends its source's wait with, or nil when the source
// goes on without the input (see messages.DeadLetter.EndsSource).
func SourceFailed(dl *messages.DeadLetter) error {
	if !dl.EndsSource() {
		return nil
	}
	return &SourceFailedError{Source: dl.Source, Stage: dl.Stage, Subject: dl.Subject, Reason: dl.Reason}
}

// StoredFinal returns the source's final result when PC_RESULTS holds it, else nil. A wait
// that meets a dead letter ending the source asks it first: the dead letter may be of an input
// that arrived after the source was done (a replay, a stray message), and the streams of
// results and dead letters are not ordered with each other.
func StoredFinal(ctx context.Context, js jetstream.JetStream, source string) (*messages.ClusterResult, error) {
	results, err := js.Stream(ctx, StreamResults)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	raw, err := results.GetLastMsgForSubject(ctx, messages.Subject(messages.SubjectResults, source))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stage: reading the results of %s: %w", source, err)
	}
	r, err := messages.DecodeAs[*messages.ClusterResult](raw.Data)
	if err != nil || !r.Final {
		return nil, err
	}
	return r, nil
}
