package stage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
)

// Publisher stores outputs in JetStream and waits for every ack. Outputs of one call go out
// together (asynchronously) so a stage pays one round trip per input, not one per output.
type Publisher struct {
	js      jetstream.JetStream
	metrics *StageMetrics
	// RoomWait bounds how long a publish refused by a full stream is repeated before it fails
	// with ErrStreamFull (0: DefaultRoomWait).
	RoomWait time.Duration
}

// DefaultRoomWait is how long a publisher waits for room in a full stream by default: long
// enough for a slow stage downstream to catch up, short enough that a stream nobody drains
// (its consumer gone) ends in an error instead of a wait without end.
const DefaultRoomWait = 2 * time.Minute

// ErrStreamFull: a stream stayed at its limit for the publisher's whole RoomWait.
var ErrStreamFull = errors.New("stage: stream full")

// NewPublisher returns a Publisher that counts into m (which may be nil).
func NewPublisher(js jetstream.JetStream, m *StageMetrics) *Publisher {
	if m == nil {
		m = &StageMetrics{}
	}
	return &Publisher{js: js, metrics: m}
}

// EncodeMsg builds the NATS message of an output: msgpack body, type header, Nats-Msg-Id.
func EncodeMsg(out Output) (*nats.Msg, error) {
	data, err := messages.Encode(out.Message)
	if err != nil {
		return nil, Permanent(fmt.Errorf("encoding output for %s: %w", out.Subject, err))
	}
	msg := nats.NewMsg(out.Subject)
	msg.Data = data
	msg.Header.Set(messages.TypeHeader, messages.HeaderValue(out.Message.MessageType()))
	if out.MsgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, out.MsgID)
	}
	return msg, nil
}

// Publish stores outs and returns when JetStream has acked all of them. A stream at its limit
// makes Publish wait and retry (backpressure) until ctx ends or RoomWait has passed.
func (p *Publisher) Publish(ctx context.Context, outs []Output) error {
	return p.publish(ctx, outs, nil)
}

// publish is Publish calling alive while it waits for room in a full stream.
func (p *Publisher) publish(ctx context.Context, outs []Output, alive func()) error {
	if len(outs) == 0 {
		return nil
	}
	var aliveGroup func(int)
	if alive != nil {
		aliveGroup = func(int) { alive() }
	}
	return p.publishGroups(ctx, [][]Output{outs}, aliveGroup)[0]
}

// PublishGroups stores the outputs of several inputs at once and waits for every ack. It
// returns one error per group: the first failure among that group's outputs (nil: all stored).
func (p *Publisher) PublishGroups(ctx context.Context, groups [][]Output) []error {
	return p.publishGroups(ctx, groups, nil)
}

// publishGroups is PublishGroups calling alive(group) while a group's output waits for room
// in a full stream (the stage loop tells JetStream that group's input is in progress).
func (p *Publisher) publishGroups(ctx context.Context, groups [][]Output, alive func(group int)) []error {
	errs := make([]error, len(groups))
	type sent struct {
		group int
		msg   *nats.Msg
		fut   jetstream.PubAckFuture
	}
	var pending []sent
	for g, outs := range groups {
		for _, out := range outs {
			msg, err := EncodeMsg(out)
			if err != nil {
				errs[g] = err
				break
			}
			f, err := p.js.PublishMsgAsync(msg)
			if err != nil {
				errs[g] = fmt.Errorf("publishing to %s: %w", msg.Subject, err)
				break
			}
			pending = append(pending, sent{g, msg, f})
		}
	}
	for _, s := range pending {
		select {
		case <-s.fut.Ok():
		case err := <-s.fut.Err():
			if !IsStreamFull(err) {
				err = fmt.Errorf("publishing to %s: %w", s.msg.Subject, err)
			} else {
				var keepAlive func()
				if alive != nil {
					keepAlive = func() { alive(s.group) }
				}
				err = p.publishWhenRoom(ctx, s.msg, keepAlive)
			}
			if err != nil {
				if errs[s.group] == nil {
					errs[s.group] = err
				}
				continue
			}
		case <-ctx.Done():
			if errs[s.group] == nil {
				errs[s.group] = fmt.Errorf("waiting for the ack of %s: %w", s.msg.Subject, ctx.Err())
			}
			continue
		}
		p.metrics.Out.Add(1)
	}
	return errs
}

// publishWhenRoom retries a publish refused by a full stream, backing off up to half a second, for
// at most RoomWait; alive (when not nil) is called before each attempt.
func (p *Publisher) publishWhenRoom(ctx context.Context, msg *nats.Msg, alive func()) error {
	wait := p.RoomWait
	if wait <= 0 {
		wait = DefaultRoomWait
	}
	deadline := time.Now().Add(wait)
	delay := 10 * time.Millisecond
	for {
		sleep(ctx, min(delay, max(time.Until(deadline), time.Millisecond)))
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for room in the stream of %s: %w", msg.Subject, ctx.Err())
		}
		if alive != nil {
			alive()
		}
		_, err := p.js.PublishMsg(ctx, msg)
		if err == nil {
			return nil
		}
		if !IsStreamFull(err) {
			return fmt.Errorf("publishing to %s: %w", msg.Subject, err)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w: %s: no room for %v (is the stage that reads it running?): %w", ErrStreamFull, msg.Subject, wait, err)
		}
		// At most half a second apart: alive keeps an input whose AckWait is 1 s alive.
		delay = min(2*delay, 500*time.Millisecond)
	}
}
