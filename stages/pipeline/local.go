package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/output"
	"github.com/personcluster/personcluster/stages/stage"
)

// LocalOptions configure a one-process run.
type LocalOptions struct {
	Options
	StoreDir string // JetStream store; a temporary folder when empty
	Listen   string // also listen on host:port for watchers on other processes ("" = in-process only)
	Out      string // output folder ("" = none)
	Request  messages.IngestRequest
	Progress io.Writer // progress lines (nil = none)
	// ProgressLines prints a new line every few seconds instead of rewriting one line (for
	// logs and pipes, where a carriage return does not rewrite anything).
	ProgressLines bool
	// Started, when set, is called once the server and the stages run, before the source is
	// ingested (the live UI follows the run from there).
	Started func(*Local)
}

// LocalResult is what a one-process run produced.
type LocalResult struct {
	Result    *messages.ClusterResult
	OutDir    string
	Failure   string // the reader's failure reason, if the source could not be read
	Frames    int64  // frames read
	Published int64
	Elapsed   time.Duration
}

// RunLocal starts an embedded JetStream server and every stage in this process, ingests one
// source, waits for its final result, writes the output folder, and shuts everything down.
func RunLocal(ctx context.Context, lo LocalOptions) (*LocalResult, error) {
	started := time.Now()
	if err := lo.Request.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	l, err := StartLocal(ctx, lo)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	if lo.Started != nil {
		lo.Started(l)
	}
	out, err := l.Process(ctx, lo.Request)
	if out != nil {
		out.Elapsed = time.Since(started)
	}
	return out, err
}

// Local is an embedded JetStream server with every stage running on it, in this process. It
// processes sources one after another (Process) until Close.
type Local struct {
	lo         LocalOptions
	srv        *broker.Server
	nc         *nats.Conn
	js         jetstream.JetStream
	det        *detector.Stage
	stagesDone chan error
	stopStages context.CancelFunc
	cleanup    []func()
}

// Conn is the in-process connection the stages use (for taps: benchmarks, watchers).
func (l *Local) Conn() *nats.Conn { return l.nc }

// JetStream is the stages' JetStream handle.
func (l *Local) JetStream() jetstream.JetStream { return l.js }

// StartLocal starts the embedded server and every stage. lo.Request is not used.
func StartLocal(ctx context.Context, lo LocalOptions) (_ *Local, err error) {
	l := &Local{lo: lo}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	store := lo.StoreDir
	if store == "" {
		tmp, err := os.MkdirTemp("", "personcluster-js-")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
		l.cleanup = append(l.cleanup, func() { os.RemoveAll(tmp) })
		store = tmp
	}
	scfg := broker.ServerConfig{StoreDir: store, InProcessOnly: lo.Listen == ""}
	if lo.Listen != "" {
		host, port, err := broker.SplitHostPort(lo.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: --listen: %w", ErrSetup, err)
		}
		scfg.Host, scfg.Port = host, port
	}
	srv, err := broker.StartServer(scfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	l.srv = srv
	l.cleanup = append(l.cleanup, srv.Stop)
	if l.nc, err = srv.Connect("personcluster-run"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	l.cleanup = append(l.cleanup, l.nc.Close)
	if l.js, err = broker.JetStream(l.nc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	if err := (stage.Topology{}).Ensure(ctx, l.js); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	if lo.Metrics == nil {
		lo.Metrics = stage.NewRegistry()
		l.lo.Metrics = lo.Metrics
	}
	var specs []*Spec
	for _, name := range All {
		sp, err := Build(ctx, name, l.js, lo.Options)
		if err != nil {
			CloseAll(specs)
			return nil, err
		}
		specs = append(specs, sp)
	}
	for _, sp := range specs {
		if d, ok := sp.Processor.(*detector.Stage); ok {
			l.det = d
		}
	}
	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	l.stopStages = stopStages
	l.stagesDone = make(chan error, 1)
	go func() { l.stagesDone <- Run(stageCtx, l.js, specs) }()
	return l, nil
}

// Close stops the stages (letting in-flight work finish) and the server. Safe to call twice.
func (l *Local) Close() {
	if l.stopStages != nil {
		l.stopStages()
		<-l.stagesDone
		l.stopStages = nil
	}
	for i := len(l.cleanup) - 1; i >= 0; i-- {
		l.cleanup[i]()
	}
	l.cleanup = nil
}

// Process ingests one source (a new source id each time), waits for its final result and
// writes the output folder.
func (l *Local) Process(ctx context.Context, req messages.IngestRequest) (*LocalResult, error) {
	started := time.Now()
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	lo, nc, js, det := l.lo, l.nc, l.js, l.det
	src := req.Source
	statuses := make(chan *messages.Status, 64)
	// The source's results, and its dead letters: one that no later stage heard of means the
	// final result will not come, and the run ends with its reason instead of waiting.
	follow, err := stage.Follow(ctx, js, src, true)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	defer follow.Stop()
	stSub, err := nc.Subscribe(messages.Subject(messages.SubjectStatus, src), func(m *nats.Msg) {
		if s, err := messages.DecodeAs[*messages.Status](m.Data); err == nil {
			select {
			case statuses <- s:
			default: // progress only; never block the connection
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	defer stSub.Unsubscribe()

	if err := Ingest(ctx, js, &req); err != nil {
		return nil, err
	}
	out := &LocalResult{}
	every, cr, nl := 500*time.Millisecond, "\r", ""
	if lo.ProgressLines {
		every, cr, nl = 5*time.Second, "", "\n"
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last messages.Status
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-l.stagesDone:
			l.stagesDone <- err
			return nil, fmt.Errorf("pipeline: a stage stopped early: %w", err)
		case s := <-statuses:
			last = *s
			if s.State == messages.StateFailed {
				out.Failure = s.Reason
			}
		case ev := <-follow.Events():
			var r *messages.ClusterResult
			switch m := ev.Message.(type) {
			case *messages.ClusterResult:
				r = m
			case *messages.DeadLetter:
				failed := stage.SourceFailed(m)
				if failed == nil {
					continue
				}
				final, err := stage.StoredFinal(ctx, js, src)
				if err != nil || final == nil {
					if lo.Progress != nil {
						fmt.Fprintf(lo.Progress, "%s%s\n", cr, progressLine(&last, det, -1))
					}
					return out, fmt.Errorf("pipeline: %w", errors.Join(failed, err))
				}
				r = final // the source was done before the input was dead-lettered
			default:
				continue
			}
			if lo.Progress != nil && !r.Final {
				fmt.Fprintf(lo.Progress, "%squota reached: %d accepted frames, %d faces, %d clusters%s\n", cr, r.FramesAccepted, r.Faces, len(r.Clusters), pad)
			}
			if !r.Final {
				if r.Window > 0 && lo.Out != "" {
					// A live source's window: results.json accumulates the windows.
					if _, err := l.writeOut(ctx, r); err != nil {
						return out, err
					}
				}
				continue
			}
			out.Result, out.Frames, out.Published, out.Elapsed = r, last.FramesRead, last.FramesPublished, time.Since(started)
			if lo.Progress != nil {
				fmt.Fprintf(lo.Progress, "%s%s\n", cr, progressLine(&last, det, len(r.Clusters)))
			}
			if lo.Out != "" {
				if out.OutDir, err = l.writeOut(ctx, r); err != nil {
					return out, err
				}
			}
			if out.Failure != "" {
				return out, fmt.Errorf("pipeline: source %s could not be read: %s", src, out.Failure)
			}
			return out, nil
		case <-tick.C:
			if lo.Progress != nil {
				fmt.Fprintf(lo.Progress, "%s%s%s", cr, progressLine(&last, det, -1), nl)
			}
		}
	}
}

// writeOut writes a result's folder under the output folder. A folder begun is finished even
// when the run is cancelled (Ctrl-C during a live source's window), so it is never left half
// of one window and half of the one before.
func (l *Local) writeOut(ctx context.Context, r *messages.ClusterResult) (string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	obj, err := l.js.ObjectStore(ctx, stage.ImagesBucket)
	if err != nil {
		return "", fmt.Errorf("pipeline: %w", err)
	}
	return output.Write(l.lo.Out, r, ObjectFetcher(ctx, obj))
}

const pad = "          "

func progressLine(s *messages.Status, det *detector.Stage, clusters int) string {
	line := fmt.Sprintf("frames read %d", s.FramesRead)
	if s.FramesTotal > 0 {
		line += fmt.Sprintf("/%d", s.FramesTotal)
	}
	line += fmt.Sprintf(" | published %d", s.FramesPublished)
	if det != nil {
		line += fmt.Sprintf(" | detected %d | accepted %d | faces %d", det.Counts.Frames.Load(), det.Counts.Accepted.Load(), det.Counts.Faces.Load())
		if n := det.Counts.PartOfPerson.Load() + det.Counts.Blurred.Load(); n > 0 {
			line += fmt.Sprintf(" | refused %d", n)
		}
	}
	if clusters >= 0 {
		line += fmt.Sprintf(" | clusters %d", clusters)
	} else if s.ETASeconds > 0 {
		line += fmt.Sprintf(" | ETA %.0fs", s.ETASeconds)
	}
	return line + pad
}

// ObjectFetcher reads result objects (crops, fingerprints) from the object store.
func ObjectFetcher(ctx context.Context, obj jetstream.ObjectStore) output.Fetcher {
	return func(key string) ([]byte, error) {
		data, err := obj.GetBytes(ctx, key)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, nil
		}
		return data, err
	}
}

// Ingest publishes an ingest request (deduplicated by source id).
func Ingest(ctx context.Context, js jetstream.JetStream, req *messages.IngestRequest) error {
	if req.AtMillis == 0 {
		req.AtMillis = time.Now().UnixMilli()
	}
	if err := req.Validate(); err != nil {
		return fmt.Errorf("pipeline: ingest request: %w", err)
	}
	msg, err := stage.EncodeMsg(stage.Output{Subject: messages.Subject(messages.SubjectIngest, req.Source), MsgID: messages.IngestMsgID(req.Source), Message: req})
	if err != nil {
		return err
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("pipeline: publishing the ingest request of %s: %w", req.Source, err)
	}
	return nil
}
