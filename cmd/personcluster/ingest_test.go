//go:build !lean

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// Source ids must be safe NATS tokens and folder names; an empty one is generated.
func TestIngestSourceIDs(t *testing.T) {
	cases := []struct {
		id string
		ok bool
	}{
		{"lobby", true},
		{"cam_2-B", true},
		{"0", true},
		{strings.Repeat("a", 64), true},
		{"", true}, // generated
		{strings.Repeat("a", 65), false},
		{"a.b", false},    // NATS token separator
		{"a*", false},     // wildcard
		{">", false},      // wildcard
		{"a b", false},    // space
		{"..", false},     // parent folder
		{"../etc", false}, // path escape
		{"a/b", false},    // path separator
		{`a\b`, false},
		{"-rf", false}, // looks like a flag
		{"café", false},
		{"a\tb", false},
		{"a\x00", false},
	}
	for _, c := range cases {
		fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		r := addRequestFlags(fs)
		if err := fs.Parse([]string{"--source", c.id}); err != nil {
			t.Fatal(err)
		}
		req, err := r.request("video.mp4")
		if (err == nil) != c.ok {
			t.Errorf("source %q: err %v, want ok=%v", c.id, err, c.ok)
			continue
		}
		if !c.ok && !errors.Is(err, messages.ErrBadSourceID) {
			t.Errorf("source %q: %v is not ErrBadSourceID", c.id, err)
		}
		if c.ok && c.id == "" {
			if err := messages.ValidateSourceID(req.Source); err != nil || !strings.HasPrefix(req.Source, "video-") {
				t.Errorf("generated id %q: %v", req.Source, err)
			}
		}
	}
}

func runIngest(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ierr := cmdIngest(ctx, args)
	os.Stdout = old
	w.Close()
	out, _ := io.ReadAll(r)
	return strings.TrimSpace(string(out)), ierr
}

func TestIngestCommand(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	url := env.Server.ClientURL()
	video := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(video, []byte("not really"), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := runIngest(t, "--nats", url, "--source", "lobby", "--every", "3", "--skip", "1.5", "--quota", "10", "--sim", "0.3", video)
	if err != nil || out != "lobby" {
		t.Fatalf("ingest: %q, %v", out, err)
	}
	req, err := messages.DecodeAs[*messages.IngestRequest](lastIngest(t, env, "lobby"))
	if err != nil {
		t.Fatal(err)
	}
	if req.URI != video || req.Sampling.EveryN != 3 || req.Sampling.SkipSeconds != 1.5 || req.Params.Quota != 10 || req.Params.Sim != 0.3 {
		t.Errorf("request %+v", req)
	}

	// A generated id is printed; the same id twice is refused.
	gen, err := runIngest(t, "--nats", url, video)
	if err != nil || messages.ValidateSourceID(gen) != nil {
		t.Errorf("generated: %q, %v", gen, err)
	}
	if _, err := runIngest(t, "--nats", url, "--source", "lobby", video); !errors.Is(err, reader.ErrSourceExists) {
		t.Errorf("reusing an id: %v", err)
	}
	// Bad ids and options fail before any connection is tried.
	for _, args := range [][]string{{"--source", "a.b", video}, {"--source", "../x", video}, {"--jpeg-quality", "200", video}} {
		if _, err := runIngest(t, append([]string{"--nats", "nats://127.0.0.1:1"}, args...)...); err == nil || strings.Contains(err.Error(), "connect") {
			t.Errorf("%v: %v", args, err)
		}
	}
	for _, args := range [][]string{{}, {"a.mp4", "b.mp4"}, {"--cancel", "lobby", "a.mp4"}} {
		if _, err := runIngest(t, append([]string{"--nats", url}, args...)...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}

	// Cancel: a queued source gets the flag; unknown and bad ids are refused.
	if _, err := runIngest(t, "--nats", url, "--cancel", "lobby"); err != nil {
		t.Fatal(err)
	}
	cancelFlagged(t, env, "lobby")
	if _, err := runIngest(t, "--nats", url, "--cancel", "nobody"); !errors.Is(err, reader.ErrUnknownSource) {
		t.Errorf("cancelling an unknown source: %v", err)
	}
	if _, err := runIngest(t, "--nats", url, "--cancel", "a>b"); !errors.Is(err, messages.ErrBadSourceID) {
		t.Errorf("cancelling a bad id: %v", err)
	}
}

// Ingest leaves an existing deployment's stream sizing alone.
func TestIngestKeepsTopology(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{MaxBytes: 64 << 20})
	video := filepath.Join(t.TempDir(), "v.mp4")
	if err := os.WriteFile(video, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runIngest(t, "--nats", env.Server.ClientURL(), "--source", "keep", video); err != nil {
		t.Fatal(err)
	}
	st, err := env.JS.Stream(context.Background(), stage.StreamFrames)
	if err != nil {
		t.Fatal(err)
	}
	if info := st.CachedInfo(); info.Config.MaxBytes != 64<<20 {
		t.Errorf("frames stream max bytes %d after ingest, want %d", info.Config.MaxBytes, 64<<20)
	}
}

// A JetStream that stops answering for a while, as a cluster does while it elects new leaders
// after losing a node, delays ingest and cancel instead of failing them; a request sent again
// is stored once; one that never comes back fails them after the retry wait, saying why.
// (The test changes the retry globals: it must not run in parallel.)
func TestIngestWaitsForJetStream(t *testing.T) {
	defer func(wait, try time.Duration) { jetStreamRetryWait, jetStreamTry = wait, try }(jetStreamRetryWait, jetStreamTry)
	jetStreamTry = 300 * time.Millisecond
	env := stagetest.Start(t, stage.Topology{})
	url := env.Server.ClientURL()
	video := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(video, []byte("not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	jsConfig := *env.Server.JetStreamConfig()
	// The config names the server's own folder in the store, which Enable adds (to the config
	// it is given) again.
	storeDir := filepath.Dir(jsConfig.StoreDir)
	outage := func(d time.Duration) <-chan error {
		if err := env.Server.DisableJetStream(); err != nil {
			t.Fatal(err)
		}
		back := make(chan error, 1)
		if d > 0 {
			time.AfterFunc(d, func() {
				cfg := jsConfig
				cfg.StoreDir = storeDir
				back <- env.Server.EnableJetStream(&cfg)
			})
		}
		return back
	}
	ctx := context.Background()
	stored := func(source string) uint64 {
		t.Helper()
		st, err := env.JS.Stream(ctx, stage.StreamIngest)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx, jetstream.WithSubjectFilter("ingest."+source))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects["ingest."+source]
	}

	back := outage(1500 * time.Millisecond)
	out, err := runIngest(t, "--nats", url, "--source", "late", video)
	if err != nil || out != "late" {
		t.Fatalf("ingest through a JetStream outage: %q, %v", out, err)
	}
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	if n := stored("late"); n != 1 {
		t.Fatalf("%d requests of late stored, want 1", n)
	}

	// The publish itself through an outage, sent again: deduplicated by its id.
	req, err := messages.DecodeAs[*messages.IngestRequest](lastIngest(t, env, "late"))
	if err != nil {
		t.Fatal(err)
	}
	back = outage(time.Second)
	if err := newJetStreamRetry("ingest").do(ctx, func(ctx context.Context) error { return pipeline.Ingest(ctx, env.JS, req) }); err != nil {
		t.Fatalf("publishing through an outage: %v", err)
	}
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	if n := stored("late"); n != 1 {
		t.Errorf("%d requests of late stored after sending it again, want 1", n)
	}

	back = outage(time.Second)
	if _, err := runIngest(t, "--nats", url, "--cancel", "late"); err != nil {
		t.Fatalf("cancel through a JetStream outage: %v", err)
	}
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	cancelFlagged(t, env, "late")
	if _, err := runIngest(t, "--nats", url, "--cancel", "late"); err != nil {
		t.Errorf("cancelling again: %v, want nil", err)
	}

	jetStreamRetryWait = time.Second
	outage(0)
	_, err = runIngest(t, "--nats", url, "--source", "never", video)
	if err == nil || !strings.HasPrefix(err.Error(), "ingest: ") || !broker.IsTransient(err) {
		t.Errorf("ingest with JetStream gone: %v, want an ingest error wrapping the outage's", err)
	}
}

// cancelFlagged checks that source's progress carries the cancel flag.
func cancelFlagged(t *testing.T, env *stagetest.Env, source string) {
	t.Helper()
	ctx := context.Background()
	kv, err := env.JS.KeyValue(ctx, stage.SourcesBucket)
	if err != nil {
		t.Fatal(err)
	}
	if p, _, err := reader.LoadProgress(ctx, kv, source); err != nil || p == nil || !p.Cancel {
		t.Errorf("progress of %s after cancel: %+v, %v", source, p, err)
	}
}

func lastIngest(t *testing.T, env *stagetest.Env, source string) []byte {
	t.Helper()
	st, err := env.JS.Stream(context.Background(), stage.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetLastMsgForSubject(context.Background(), "ingest."+source)
	if err != nil {
		t.Fatal(err)
	}
	return raw.Data
}

// jetStreamRetry tries again what an outage gives, within one deadline for all the steps, and
// returns a verdict at once.
func TestJetStreamRetry(t *testing.T) {
	defer func(wait, try time.Duration) { jetStreamRetryWait, jetStreamTry = wait, try }(jetStreamRetryWait, jetStreamTry)
	jetStreamRetryWait, jetStreamTry = 2*time.Second, 100*time.Millisecond
	ctx := context.Background()
	r := newJetStreamRetry("test")
	calls := 0
	err := r.do(ctx, func(ctx context.Context) error {
		if calls++; calls < 3 {
			<-ctx.Done() // unanswered
			return fmt.Errorf("reader: opening PC_INGEST: %w", ctx.Err())
		}
		return nil
	})
	if err != nil || calls != 3 || !r.said {
		t.Errorf("two timeouts, then an answer: %v after %d calls (said %v), want nil after 3", err, calls, r.said)
	}

	calls = 0
	verdict := fmt.Errorf("%w: lobby is queued", reader.ErrSourceExists)
	if err := r.do(ctx, func(context.Context) error { calls++; return verdict }); err != verdict || calls != 1 {
		t.Errorf("a verdict: %v after %d calls, want it after 1", err, calls)
	}

	calls = 0
	started := time.Now()
	err = r.do(ctx, func(context.Context) error { calls++; return nats.ErrNoResponders })
	if !errors.Is(err, nats.ErrNoResponders) || calls < 2 {
		t.Errorf("no answer at all: %v after %d calls", err, calls)
	}
	if time.Now().Before(r.deadline.Add(-time.Second)) || time.Since(started) > 3*time.Second {
		t.Errorf("gave up %v after starting, with the deadline %v away", time.Since(started), time.Until(r.deadline))
	}
}
