// Package stage is the loop every personcluster stage runs, written once: pull a batch from a
// durable JetStream consumer, decode, let the stage's Processor turn inputs into outputs,
// publish the outputs with deterministic Nats-Msg-Ids and wait for their acks, then ack the
// inputs. Transient errors are retried with NakWithDelay a bounded number of times; bad input
// is terminated and copied with its reason to dead.<stage>.<source>. A cancelled context stops
// pulling, lets in-flight work finish within DrainTimeout, and returns.
package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
)

// Input is one decoded message handed to a Processor.
type Input struct {
	Subject    string
	Source     string // last subject token
	Message    messages.Message
	Deliveries uint64 // 1 on first delivery
	StreamSeq  uint64 // the message's sequence in its stream
	Received   time.Time
	msg        jetstream.Msg
	pub        *Publisher
	stopping   <-chan struct{}
}

// Stopping is closed when the stage begins to shut down (SIGTERM). Processors that work on one
// input for long (the reader reads a whole video) stop there, save their progress and return a
// transient error, so the input goes back to the queue instead of running on for DrainTimeout.
func (in *Input) Stopping() <-chan struct{} { return in.stopping }

// InProgress tells JetStream the input is still being worked on (resets its ack timer).
func (in *Input) InProgress() error {
	if in.msg == nil {
		return nil
	}
	return in.msg.InProgress()
}

// Publish stores one output now and waits for JetStream's ack. Long-running processors (the
// reader) stream outputs this way; the others return them in their Result.
func (in *Input) Publish(ctx context.Context, out Output) error {
	return in.pub.publish(ctx, []Output{out}, func() { _ = in.InProgress() })
}

// Output is a message a processor wants published.
type Output struct {
	Subject string
	MsgID   string // deterministic: messages.MsgID(source, seq, stage)
	Message messages.Message
}

// Result is a processor's answer for one input: its outputs, or an error. Wrap bad-input
// errors with Permanent; any other error is retried.
type Result struct {
	Outputs []Output
	Err     error
}

// Processor turns inputs into outputs. Process gets 1..BatchSize inputs and returns exactly one
// Result per input, in order: Each builds it from a function of one input, Split serves stages
// that batch their work. Close releases native resources; it is safe to call twice.
type Processor interface {
	Process(ctx context.Context, batch []*Input) []Result
	Close(ctx context.Context) error
}

// DeadLetterHandler is implemented by processors whose downstream must hear about every input,
// even one that was dead-lettered: the outputs it returns (e.g. "frame skipped") are published
// with the dead letter, so later stages that count frames do not wait for it forever.
type DeadLetterHandler interface {
	OnDeadLetter(in *Input, reason error) []Output
}

// ErrPermanent marks errors that retrying cannot fix; match with errors.Is.
var ErrPermanent = errors.New("permanent")

// ErrNotYet marks an input that came before what it needs (a source's end before its last
// vectors): it is retried like any transient failure, but expected, so the retry is logged at
// debug level, not as a warning. Wrap it: fmt.Errorf("...: %w", stage.ErrNotYet).
var ErrNotYet = errors.New("not yet")

// ErrHandedOver marks an input that another worker holds now (its lease ran out and it was
// delivered again): the loop neither acks nor naks it, because JetStream matches an ack to the
// message, not to the delivery, and either would settle the other worker's delivery. Wrap it:
// fmt.Errorf("...: %w", stage.ErrHandedOver).
var ErrHandedOver = errors.New("handed over")

// ErrTooLarge is the reason of an input refused for its size before decoding.
var ErrTooLarge = errors.New("stage: message too large")

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() []error      { return []error{e.err, ErrPermanent} }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// Permanent marks err as bad input: the message is terminated and dead-lettered, not retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// Config configures one stage's loop.
type Config struct {
	Name        string // stage name: metrics label, dead-letter subject, logs
	Stream      string
	Consumer    string // durable consumer (created by Topology.Ensure)
	Concurrency int    // parallel workers, each pulling its own batches
	BatchSize   int
	BatchWait   time.Duration // longest wait to fill a batch
	// Eager takes a batch as soon as one message is there (waiting up to BatchWait for it),
	// with whatever else is waiting, for stages whose batches save nothing (the clusterer
	// handles its inputs one by one): a last message is not held up to BatchWait for a batch
	// that never fills.
	Eager        bool
	MaxDeliver   int           // attempts before a failing input is dead-lettered (none where the consumer has no limit)
	RetryDelay   time.Duration // after the n-th failed attempt an input waits RetryDelay·2ⁿ (n ≤ 6)
	DrainTimeout time.Duration
	// MaxMessageBytes bounds an input's size; a larger one is dead-lettered before decoding
	// (default messages.MaxMessageBytes).
	MaxMessageBytes int
	// RoomWait bounds the wait for room in a full output stream (default DefaultRoomWait);
	// then the publish fails and the input is retried like any transient failure.
	RoomWait time.Duration
	Logger   *slog.Logger
	Metrics  *Registry
}

// setDefaults fills zero values; Validate then refuses what is left out of range (negative
// counts).
func (c *Config) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 1
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1
	}
	if c.BatchWait <= 0 {
		c.BatchWait = 500 * time.Millisecond
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 500 * time.Millisecond
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = messages.MaxMessageBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = NewRegistry()
	}
}

// Validate reports configuration errors.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" || strings.ContainsAny(c.Name, ".*> ") {
		errs = append(errs, fmt.Errorf("stage name %q must be a plain NATS token", c.Name))
	}
	if c.Stream == "" || c.Consumer == "" {
		errs = append(errs, errors.New("stream and consumer are required"))
	}
	if c.Concurrency < 0 || c.BatchSize < 0 || c.MaxDeliver < 0 {
		errs = append(errs, errors.New("concurrency, batch size and max deliver must not be negative"))
	}
	if c.BatchSize > 4096 {
		errs = append(errs, fmt.Errorf("batch size %d above 4096", c.BatchSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stage: config: %w", err)
	}
	return nil
}

// Run runs proc until ctx is cancelled, then drains. It owns proc: it closes it before
// returning, also when it cannot start. It returns nil after a clean drain.
func Run(ctx context.Context, js jetstream.JetStream, cfg Config, proc Processor) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return errors.Join(err, closeProcessor(cfg.Name, proc))
	}
	log := cfg.Logger.With("stage", cfg.Name)
	cons, err := js.Consumer(ctx, cfg.Stream, cfg.Consumer)
	if err != nil {
		err = fmt.Errorf("stage %s: opening consumer %s/%s (run Topology.Ensure first): %w", cfg.Name, cfg.Stream, cfg.Consumer, err)
		return errors.Join(err, closeProcessor(cfg.Name, proc))
	}
	m := cfg.Metrics.Stage(cfg.Name)
	pub := &Publisher{js: js, metrics: m, RoomWait: cfg.RoomWait}
	// In-flight work runs on a context that outlives ctx by DrainTimeout, so a SIGTERM lets
	// the current batch finish and be acked instead of being redelivered.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopDrain := context.AfterFunc(ctx, func() {
		time.AfterFunc(cfg.DrainTimeout, cancelWork)
	})
	defer stopDrain()

	l := &loop{cfg: cfg, log: log, cons: cons, proc: proc, pub: pub, m: m, stopping: ctx.Done(), maxDeliver: cfg.MaxDeliver}
	if info := cons.CachedInfo(); info != nil {
		l.ackWait = info.Config.AckWait
		if info.Config.MaxDeliver < 0 {
			// A consumer without a delivery limit (the reader's: a source's request comes again
			// whenever its reader stops) has inputs whose redeliveries are not failures.
			l.maxDeliver = 0
		}
	}
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(ctx, work)
		}()
	}
	log.Info("stage running", "consumer", cfg.Consumer, "concurrency", cfg.Concurrency, "batch", cfg.BatchSize)
	wg.Wait()
	if err := closeProcessor(cfg.Name, proc); err != nil {
		return err
	}
	log.Info("stage stopped")
	return nil
}

// closeProcessor closes proc within 10 s.
func closeProcessor(name string, proc Processor) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := proc.Close(ctx); err != nil {
		return fmt.Errorf("stage %s: closing: %w", name, err)
	}
	return nil
}

type loop struct {
	cfg  Config
	log  *slog.Logger
	cons jetstream.Consumer
	proc Processor
	pub  *Publisher
	m    *StageMetrics
	// stopping is the outer context's Done: the stage is shutting down.
	stopping <-chan struct{}
	// backlog: the last pull returned messages, so the next one does not wait for a batch.
	backlog atomic.Bool
	// ackWait is the consumer's: how long an input held by a stage that died stays away.
	ackWait time.Duration
	// maxDeliver is cfg.MaxDeliver, or 0 (no limit) where the consumer has none.
	maxDeliver int
}

func (l *loop) worker(ctx, work context.Context) {
	for ctx.Err() == nil {
		batch, err := l.fetch()
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("fetch failed", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		var inputs []*Input
		got := 0
		for msg := range batch.Messages() {
			got++
			if in := l.decode(work, msg); in != nil {
				inputs = append(inputs, in)
			}
		}
		l.backlog.Store(got > 0)
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.Canceled) &&
			!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			l.log.Warn("fetch ended with an error", "err", err)
			if got == 0 {
				// The consumer cannot be reached (its leader is being elected after a NATS
				// node died, say): back off instead of spinning on "no responders".
				sleep(ctx, 500*time.Millisecond)
			}
		}
		if len(inputs) > 0 {
			l.handle(work, inputs)
		}
	}
}

// fetch pulls up to BatchSize messages. When the last pull brought messages, more are likely
// waiting: it takes those at once instead of waiting up to BatchWait for a full batch.
func (l *loop) fetch() (jetstream.MessageBatch, error) {
	if l.cfg.BatchSize > 1 && l.backlog.Load() {
		return l.cons.FetchNoWait(l.cfg.BatchSize)
	}
	if l.cfg.Eager {
		// The first message ends the wait; the next pull takes the rest without waiting.
		return l.cons.Fetch(1, jetstream.FetchMaxWait(l.cfg.BatchWait))
	}
	return l.cons.Fetch(l.cfg.BatchSize, jetstream.FetchMaxWait(l.cfg.BatchWait))
}

// decode turns a raw message into an Input, or dead-letters it and returns nil.
func (l *loop) decode(ctx context.Context, msg jetstream.Msg) *Input {
	l.m.In.Add(1)
	in := &Input{Subject: msg.Subject(), Source: lastToken(msg.Subject()), Received: time.Now(), msg: msg, pub: l.pub, stopping: l.stopping}
	if md, err := msg.Metadata(); err == nil {
		in.Deliveries = md.NumDelivered
		in.StreamSeq = md.Sequence.Stream
	}
	if n := len(msg.Data()); n > l.cfg.MaxMessageBytes {
		l.deadLetter(ctx, in, fmt.Errorf("%w: %s: %d bytes, at most %d", ErrTooLarge, msg.Subject(), n, l.cfg.MaxMessageBytes))
		return nil
	}
	m, err := messages.Decode(msg.Data())
	if err != nil {
		l.deadLetter(ctx, in, fmt.Errorf("decoding %s: %w", msg.Subject(), err))
		return nil
	}
	// A message names its source twice, in the subject and in the body; a publisher allowed
	// on one source's subject must not reach another source's state through the body.
	if src, ok := sourceOf(m); ok && src != in.Source {
		l.deadLetter(ctx, in, fmt.Errorf("%w: %s for source %q on %s", ErrWrongSource, m.MessageType(), src, msg.Subject()))
		return nil
	}
	in.Message = m
	return in
}

// ErrWrongSource: a message's body names another source than its subject.
var ErrWrongSource = errors.New("stage: message for another source")

// sourceOf is the source a data message names in its body.
func sourceOf(m messages.Message) (string, bool) {
	switch v := m.(type) {
	case *messages.IngestRequest:
		return v.Source, true
	case *messages.Frame:
		return v.Source, true
	case *messages.EndOfStream:
		return v.Source, true
	case *messages.FrameFaces:
		return v.Source, true
	case *messages.FaceVectors:
		return v.Source, true
	case *messages.ClothVectors:
		return v.Source, true
	case *messages.ClusterResult:
		return v.Source, true
	}
	return "", false
}

func (l *loop) handle(ctx context.Context, inputs []*Input) {
	l.m.InFlight.Add(int64(len(inputs)))
	defer l.m.InFlight.Add(-int64(len(inputs)))
	results := l.process(ctx, inputs)
	if len(results) != len(inputs) {
		err := fmt.Errorf("stage %s: processor returned %d results for %d inputs", l.cfg.Name, len(results), len(inputs))
		results = make([]Result, len(inputs))
		for i := range results {
			results[i].Err = err
		}
	}
	// The outputs of the whole batch go out together: one wait for their acks, not one per input.
	groups := make([][]Output, len(inputs))
	for i := range inputs {
		if results[i].Err == nil {
			groups[i] = results[i].Outputs
		}
	}
	// While a full stream holds the outputs back, JetStream hears that the inputs are still
	// being worked on, so their ack timers do not run out and redeliver them.
	alive := func(group int) { _ = inputs[group].InProgress() }
	pubErrs := l.pub.publishGroups(ctx, groups, alive)
	// A failed publish is the server's trouble (a stream leader being elected after a node
	// died, a restart), not the input's: retry it here a few times, keeping the inputs alive,
	// rather than spending the inputs' redeliveries and dead-lettering good input.
	for attempt, delay := 0, publishRetryDelay; attempt < publishRetries && ctx.Err() == nil; attempt, delay = attempt+1, delay*2 {
		retry := make([][]Output, len(groups))
		failed := false
		for i, err := range pubErrs {
			// A stream still full after the publisher's RoomWait is not retried here again.
			if err != nil && !errors.Is(err, ErrStreamFull) && results[i].Err == nil && len(groups[i]) > 0 {
				retry[i], failed = groups[i], true
				_ = inputs[i].InProgress()
			}
		}
		if !failed {
			break
		}
		l.log.Warn("publishing outputs failed; retrying", "attempt", attempt+1, "delay", delay, "err", firstErr(pubErrs))
		sleep(ctx, delay)
		again := l.pub.publishGroups(ctx, retry, alive)
		for i := range retry {
			if retry[i] != nil {
				pubErrs[i] = again[i]
			}
		}
	}
	for i, in := range inputs {
		err := results[i].Err
		if err == nil {
			err = pubErrs[i]
		}
		l.settle(ctx, in, err)
	}
}

// process runs the processor on a batch. A panic in Process becomes an error of the input that
// caused it (a bug meets that input: it is dead-lettered with the panic as its reason) instead
// of ending the process and every source it serves. A batch that panics is processed again one
// input at a time, so the other inputs of the batch are not blamed.
func (l *loop) process(ctx context.Context, inputs []*Input) []Result {
	results, err := l.processRecovered(ctx, inputs)
	if err == nil {
		return results
	}
	if len(inputs) == 1 {
		return []Result{{Err: Permanent(err)}}
	}
	results = make([]Result, len(inputs))
	for i, in := range inputs {
		one, err := l.processRecovered(ctx, []*Input{in})
		switch {
		case err != nil:
			results[i].Err = Permanent(err)
		case len(one) == 1:
			results[i] = one[0]
		default:
			results[i].Err = fmt.Errorf("stage %s: processor returned %d results for 1 input", l.cfg.Name, len(one))
		}
	}
	return results
}

// ErrPanic is the reason of an input whose processing panicked; match with errors.Is.
var ErrPanic = errors.New("stage: processor panicked")

// processRecovered calls Process, turning a panic into an error (logged with its stack).
func (l *loop) processRecovered(ctx context.Context, inputs []*Input) (results []Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			subjects := make([]string, len(inputs))
			for i, in := range inputs {
				subjects[i] = in.Subject
			}
			l.log.Error("processor panicked", "inputs", subjects, "panic", v, "stack", string(debug.Stack()))
			results, err = nil, fmt.Errorf("%w: %v", ErrPanic, v)
		}
	}()
	return l.proc.Process(ctx, inputs), nil
}

// publishRetries and publishRetryDelay bound the in-place retries of failed publishes: about
// 8 s in all, doubling from 250 ms, enough for a JetStream leader election.
const (
	publishRetries    = 5
	publishRetryDelay = 250 * time.Millisecond
)

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// settle acks, retries or dead-letters one input according to err.
func (l *loop) settle(ctx context.Context, in *Input, err error) {
	defer func() { l.m.Observe(time.Since(in.Received)) }()
	switch {
	case errors.Is(err, ErrHandedOver):
		l.log.Debug("input handed over to another worker; leaving it to that one", "subject", in.Subject, "err", err)
	case err == nil:
		if ackErr := in.msg.Ack(); ackErr != nil {
			l.log.Warn("ack failed; the input will be redelivered and its outputs deduplicated", "subject", in.Subject, "err", ackErr)
			return
		}
		l.m.Acked.Add(1)
	case errors.Is(err, ErrPermanent):
		l.deadLetter(ctx, in, err)
	case l.maxDeliver > 0 && in.Deliveries >= uint64(l.maxDeliver):
		l.deadLetter(ctx, in, fmt.Errorf("giving up after %d attempts: %w", in.Deliveries, err))
	default:
		delay := l.cfg.RetryDelay << min(in.Deliveries, 6)
		if errors.Is(err, ErrNotYet) && in.Deliveries >= 2 {
			// What an early input waits for may sit unacked with a stage that died (a source's
			// last frames, when its end is here): it comes back only after the ack wait. The
			// later retries wait twice that in all before the input is given up.
			delay = max(delay, 2*l.ackWait/time.Duration(max(1, l.maxDeliver-2)))
		}
		l.m.Retried.Add(1)
		level := slog.LevelWarn
		if errors.Is(err, ErrNotYet) {
			level = slog.LevelDebug
		}
		l.log.Log(ctx, level, "retrying input", "subject", in.Subject, "attempt", in.Deliveries, "delay", delay, "err", err)
		if nakErr := in.msg.NakWithDelay(delay); nakErr != nil {
			l.log.Warn("nak failed; the input will be redelivered after AckWait", "err", nakErr)
		}
	}
}

// deadLetter copies the input with its reason to dead.<stage>.<source>, then terminates it. If
// the dead letter cannot be stored, the input is left for redelivery: nothing is dropped silently.
func (l *loop) deadLetter(ctx context.Context, in *Input, reason error) {
	dl := &messages.DeadLetter{
		Stage: l.cfg.Name, Source: in.Source, Subject: in.Subject, Reason: reason.Error(),
		Deliveries: in.Deliveries, Headers: in.msg.Headers(), Data: in.msg.Data(), AtMillis: time.Now().UnixMilli(),
	}
	if dl.Headers == nil {
		dl.Headers = map[string][]string{}
	}
	// A dead letter must fit the server's max payload, or it could never be stored and the
	// input would be redelivered until the server gives up on it: keep only the data's head.
	if limit := int(l.pub.js.Conn().MaxPayload()) - deadLetterOverhead; limit > 0 && len(dl.Data) > limit {
		dl.Size, dl.Truncated = int64(len(dl.Data)), true
		dl.Data = dl.Data[:min(len(dl.Data), truncatedDataBytes)]
	}
	id := ""
	if md, err := in.msg.Metadata(); err == nil {
		id = messages.DeadLetterMsgID(l.cfg.Name, md.Stream, md.Sequence.Stream)
	}
	var told []Output
	if h, ok := l.proc.(DeadLetterHandler); ok && in.Message != nil {
		told = h.OnDeadLetter(in, reason)
	}
	// Forwarded: the stages downstream hear of the input (a skipped frame), so its source goes
	// on; a dead letter without it ends the source, and whoever waits for it stops waiting.
	dl.Forwarded = len(told) > 0
	outs := append([]Output{{Subject: messages.DeadSubject(l.cfg.Name, in.Source), MsgID: id, Message: dl}}, told...)
	if err := l.pub.publish(ctx, outs, func() { _ = in.InProgress() }); err != nil {
		l.log.Error("storing a dead letter failed; leaving the input for redelivery", "subject", in.Subject, "err", err)
		_ = in.msg.NakWithDelay(l.cfg.RetryDelay)
		return
	}
	l.m.Dead.Add(1)
	l.log.Warn("dead-lettered input", "subject", in.Subject, "reason", dl.Reason)
	if err := in.msg.TermWithReason(truncateReason(dl.Reason)); err != nil {
		l.log.Warn("term failed", "err", err)
	}
}

// deadLetterOverhead is room left in a dead letter for its other fields and headers.
const deadLetterOverhead = 64 << 10

// truncatedDataBytes is how much of an input too large to keep a dead letter holds.
const truncatedDataBytes = 4 << 10

func truncateReason(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

func lastToken(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return subject
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
