package proctest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/output"
	"github.com/personcluster/personcluster/stages/stage"
)

var (
	baselineMu sync.Mutex
	baselines  = map[string]*messages.ClusterResult{}
)

// Baseline is the one-process `run --json` result of VIDEO with the request flags args
// (cached per test binary: every deployment test compares with it).
func (h *Harness) Baseline(ctx context.Context, video string, args ...string) (*messages.ClusterResult, error) {
	key := video + "\x00" + strings.Join(args, "\x00")
	baselineMu.Lock()
	defer baselineMu.Unlock()
	if r, ok := baselines[key]; ok {
		return r, nil
	}
	cmd := append([]string{"run", "--out", "", "--json", "--source", "baseline"}, args...)
	out, err := h.Run(ctx, "baseline", append(cmd, video)...)
	if err != nil {
		return nil, err
	}
	// `run --json` writes output.Results: the result and its face list.
	r := output.Results{ClusterResult: &messages.ClusterResult{}}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("proctest: decoding the baseline of %s %v: %w", video, args, err)
	}
	baselines[key] = r.ClusterResult
	return r.ClusterResult, nil
}

// Key names a face: frame number and index in its frame.
func Key(m messages.Member) string { return fmt.Sprintf("%d/%d", m.Frame, m.Face) }

// Partition is a result's clusters as sorted member keys, clusters in order of their first
// key; dropped faces are the last group (prefixed "dropped:").
func Partition(r *messages.ClusterResult) []string {
	var groups []string
	for _, c := range r.Clusters {
		keys := make([]string, len(c.Members))
		for i, m := range c.Members {
			keys[i] = Key(m)
		}
		sort.Strings(keys)
		groups = append(groups, strings.Join(keys, " "))
	}
	sort.Strings(groups)
	var dropped []string
	for _, m := range r.Dropped {
		dropped = append(dropped, Key(m))
	}
	sort.Strings(dropped)
	return append(groups, "dropped: "+strings.Join(dropped, " "))
}

// Compare reports how got differs from want: partition, face and frame counts, and faces
// that appear twice.
func Compare(want, got *messages.ClusterResult) error {
	var errs []error
	if got.Faces != want.Faces {
		errs = append(errs, fmt.Errorf("%d faces, want %d", got.Faces, want.Faces))
	}
	if got.FramesSeen != want.FramesSeen || got.FramesAccepted != want.FramesAccepted {
		errs = append(errs, fmt.Errorf("frames seen/accepted %d/%d, want %d/%d", got.FramesSeen, got.FramesAccepted, want.FramesSeen, want.FramesAccepted))
	}
	if got.Final != want.Final || got.Partial != want.Partial {
		errs = append(errs, fmt.Errorf("final/partial %v/%v, want %v/%v", got.Final, got.Partial, want.Final, want.Partial))
	}
	if err := Duplicates(got); err != nil {
		errs = append(errs, err)
	}
	if err := samePeople(want, got); err != nil {
		errs = append(errs, err)
	}
	gp, wp := Partition(got), Partition(want)
	if !slices.Equal(gp, wp) {
		errs = append(errs, fmt.Errorf("partition differs:\n got  %d groups %q\n want %d groups %q", len(gp)-1, gp, len(wp)-1, wp))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("result of %s: %w", got.Source, err)
	}
	return nil
}

// Duplicates reports a face that is in the result twice, or a face count that does not match
// the members.
func Duplicates(r *messages.ClusterResult) error {
	seen := map[string]bool{}
	n := 0
	for _, c := range r.Clusters {
		for _, m := range c.Members {
			if seen[Key(m)] {
				return fmt.Errorf("face %s is in the result twice", Key(m))
			}
			seen[Key(m)] = true
			n++
		}
	}
	for _, m := range r.Dropped {
		if seen[Key(m)] {
			return fmt.Errorf("face %s is in the result twice", Key(m))
		}
		seen[Key(m)] = true
		n++
	}
	if n != r.Faces {
		return fmt.Errorf("%d members and dropped faces, but the result counts %d faces", n, r.Faces)
	}
	return nil
}

// Results returns every result of source stored in PC_RESULTS, in order.
func Results(ctx context.Context, js jetstream.JetStream, source string) ([]*messages.ClusterResult, error) {
	subject := messages.Subject(messages.SubjectResults, source)
	msgs, err := StoredMessages(ctx, js, stage.StreamResults, subject)
	if err != nil {
		return nil, err
	}
	var out []*messages.ClusterResult
	for _, m := range msgs {
		r, err := messages.DecodeAs[*messages.ClusterResult](m.Data())
		if err != nil {
			return nil, fmt.Errorf("proctest: decoding a result on %s: %w", subject, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// StoredMessages reads every message of stream on subject (wildcards allowed).
func StoredMessages(ctx context.Context, js jetstream.JetStream, stream, subject string) ([]jetstream.Msg, error) {
	str, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("proctest: %s: %w", stream, err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, fmt.Errorf("proctest: %s info: %w", stream, err)
	}
	want := 0
	for _, n := range info.State.Subjects {
		want += int(n)
	}
	if want == 0 {
		return nil, nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, fmt.Errorf("proctest: reading %s: %w", stream, err)
	}
	var out []jetstream.Msg
	for len(out) < want {
		batch, err := cons.Fetch(want-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("proctest: reading %s: %w", stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			break
		}
	}
	return out, nil
}

// CountStored counts the messages of stream on subject (wildcards allowed).
func CountStored(ctx context.Context, js jetstream.JetStream, stream, subject string) (int, error) {
	str, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("proctest: %s: %w", stream, err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("proctest: %s info: %w", stream, err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n, nil
}

// WaitFinal waits for the final result of source to be stored, retrying through server
// restarts and leader changes until ctx ends.
func WaitFinal(ctx context.Context, js jetstream.JetStream, source string) (*messages.ClusterResult, error) {
	subject := messages.Subject(messages.SubjectResults, source)
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		str, err := js.Stream(attempt, stage.StreamResults)
		if err == nil {
			var raw *jetstream.RawStreamMsg
			if raw, err = str.GetLastMsgForSubject(attempt, subject); err == nil {
				var r *messages.ClusterResult
				if r, err = messages.DecodeAs[*messages.ClusterResult](raw.Data); err == nil && r.Final {
					cancel()
					return r, nil
				}
			}
		}
		cancel()
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("proctest: no final result of %s: %w (last error: %v)", source, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Trigger calls fire once, from the subscription's goroutine, when the n-th message on
// subject arrives: the way a test kills something mid-stream at a point of its own choosing,
// not after a guessed delay. Seen counts the messages up to then.
type Trigger struct {
	Fired chan struct{}
	mu    sync.Mutex
	seen  int
	sub   *nats.Subscription
}

// OnMessage subscribes nc to subject and fires at the n-th message.
func OnMessage(t testing.TB, nc *nats.Conn, subject string, n int, fire func(seen int)) *Trigger {
	t.Helper()
	tr := &Trigger{Fired: make(chan struct{})}
	sub, err := nc.Subscribe(subject, func(*nats.Msg) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.seen++
		if tr.seen == n {
			fire(tr.seen)
			close(tr.Fired)
		}
	})
	if err != nil {
		t.Fatalf("proctest: subscribing to %s: %v", subject, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("proctest: subscribing to %s: %v", subject, err)
	}
	tr.sub = sub
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return tr
}

// Wait waits for the trigger to fire.
func (tr *Trigger) Wait(ctx context.Context) error {
	select {
	case <-tr.Fired:
		return nil
	case <-ctx.Done():
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return fmt.Errorf("proctest: trigger on %s did not fire (%d messages seen): %w", tr.sub.Subject, tr.seen, ctx.Err())
	}
}

// samePeople checks the clusters' gallery people: where the baseline's clusters have people,
// every cluster has one and no two share one (a person neither lost nor made twice).
func samePeople(want, got *messages.ClusterResult) error {
	linked := false
	for _, c := range want.Clusters {
		linked = linked || c.Person != ""
	}
	if !linked {
		return nil
	}
	seen := map[string]int{}
	for _, c := range got.Clusters {
		if c.Person == "" {
			return fmt.Errorf("cluster %d has no person", c.ID)
		}
		if other, ok := seen[c.Person]; ok {
			return fmt.Errorf("clusters %d and %d are both person %s", other, c.ID, c.Person)
		}
		seen[c.Person] = c.ID
	}
	return nil
}
