package stage

import (
	"context"
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
}

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
// makes Publish wait and retry (backpressure) until ctx ends.
func (p *Publisher) Publish(ctx context.Context, outs []Output) error {
	if len(outs) == 0 {
		return nil
	}
	msgs := make([]*nats.Msg, len(outs))
	for i, out := range outs {
		msg, err := EncodeMsg(out)
		if err != nil {
			return err
		}
		msgs[i] = msg
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, msg := range msgs {
		f, err := p.js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("publishing to %s: %w", msg.Subject, err)
		}
		futures[i] = f
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if !IsStreamFull(err) {
				return fmt.Errorf("publishing to %s: %w", msgs[i].Subject, err)
			}
			if err := p.publishWhenRoom(ctx, msgs[i]); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for the ack of %s: %w", msgs[i].Subject, ctx.Err())
		}
		p.metrics.Out.Add(1)
	}
	return nil
}

// publishWhenRoom retries a publish refused by a full stream, backing off up to a second.
func (p *Publisher) publishWhenRoom(ctx context.Context, msg *nats.Msg) error {
	delay := 10 * time.Millisecond
	for {
		sleep(ctx, delay)
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for room in the stream of %s: %w", msg.Subject, ctx.Err())
		}
		_, err := p.js.PublishMsg(ctx, msg)
		if err == nil {
			return nil
		}
		if !IsStreamFull(err) {
			return fmt.Errorf("publishing to %s: %w", msg.Subject, err)
		}
		delay = min(2*delay, time.Second)
	}
}
