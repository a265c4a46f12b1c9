// Package readerbench measures the reader stage against bare gocv loops over the same file, in
// the same process: decoding alone (the reader's first target: publishing at ≥ 0.6× of it) and
// decoding plus JPEG encoding, the native work the stage wraps (make bench: ≥ 0.8× of it).
package readerbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

// Result is one timed pass over a file.
type Result struct {
	Frames  int64
	Elapsed time.Duration
	CPU     time.Duration // user+system time of the whole process (server included) meanwhile
}

// CPUPerFrame is the process CPU time per frame.
func (r Result) CPUPerFrame() time.Duration {
	if r.Frames == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Frames)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// FPS is frames per second.
func (r Result) FPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Frames) / r.Elapsed.Seconds()
}

// Bare decodes every frame of path with gocv (FFmpeg backend) and nothing else. The clock
// starts after the file is open.
func Bare(path string) (Result, error) { return bare(path, 0) }

// BareEncode decodes every frame of path and encodes it as JPEG of the given quality, one frame
// after the other: the two native calls the reader stage wraps, without NATS.
func BareEncode(path string, quality int) (Result, error) { return bare(path, quality) }

// bare decodes path; with quality > 0 it also encodes each frame.
func bare(path string, quality int) (Result, error) {
	vc, err := gocv.VideoCaptureFileWithAPI(path, gocv.VideoCaptureFFmpeg)
	if err != nil {
		return Result{}, fmt.Errorf("readerbench: %w", err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	start, cpu := time.Now(), cpuTime()
	var n int64
	for vc.Read(&m) {
		if quality > 0 {
			if _, err := vision.EncodeJPEG(m, quality); err != nil {
				return Result{}, fmt.Errorf("readerbench: frame %d: %w", n, err)
			}
		}
		n++
	}
	return Result{Frames: n, Elapsed: time.Since(start), CPU: cpuTime() - cpu}, nil
}

// Env is an embedded JetStream server (file store, as in `personcluster run`) with the
// personcluster topology and a reader stage running on it.
type Env struct {
	b     *broker.Embedded
	dir   string
	stop  context.CancelFunc
	done  chan error
	round int
}

// Options of the reader under test.
type Options struct {
	Sync     bool // publish one frame at a time through the stage publisher (no JetStream handle)
	Encoders int  // 0: the reader's default
	Window   int
	Memory   bool // memory storage instead of file storage
}

// Start starts the server and a reader stage.
func Start(o Options) (*Env, error) {
	dir, err := os.MkdirTemp("", "readerbench-")
	if err != nil {
		return nil, err
	}
	e := &Env{dir: dir, done: make(chan error, 1)}
	if e.b, err = broker.StartEmbedded(broker.ServerConfig{StoreDir: dir, InProcessOnly: true}, "readerbench"); err != nil {
		e.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	if err := (stage.Topology{Memory: o.Memory}).Ensure(ctx, e.b.JS); err != nil {
		e.Close()
		return nil, err
	}
	kv, err := e.b.JS.KeyValue(ctx, stage.SourcesBucket)
	if err != nil {
		e.Close()
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := reader.Config{Encoders: o.Encoders, Window: o.Window, Logger: quiet}
	if !o.Sync {
		cfg.JetStream = e.b.JS
	}
	loop := stage.Config{Name: reader.StageName, Stream: stage.StreamIngest, Consumer: stage.ConsumerReader,
		BatchWait: 20 * time.Millisecond, Logger: quiet}
	go func() { e.done <- stage.Run(ctx, e.b.JS, loop, reader.New(cfg, kv)) }()
	return e, nil
}

// Close stops the reader and the server and removes the store.
func (e *Env) Close() {
	if e.stop != nil {
		e.stop()
		<-e.done
	}
	if e.b != nil {
		e.b.Close()
	}
	os.RemoveAll(e.dir)
}

// Read ingests path as a new source and times the reader from its "reading" event (the file
// is open) to its final event (every frame stored and acknowledged, end of stream published).
// The frames are purged afterwards.
func (e *Env) Read(ctx context.Context, path string) (Result, error) {
	e.round++
	source := fmt.Sprintf("bench-%d", e.round)
	events := make(chan *messages.Status, 64)
	sub, err := e.b.NC.Subscribe(messages.Subject(messages.SubjectStatus, source), func(m *nats.Msg) {
		if st, err := messages.DecodeAs[*messages.Status](m.Data); err == nil {
			events <- st
		}
	})
	if err != nil {
		return Result{}, err
	}
	defer sub.Unsubscribe()
	req := &messages.IngestRequest{Source: source, URI: path, Params: messages.DefaultParams(), AtMillis: time.Now().UnixMilli()}
	msg, err := stage.EncodeMsg(stage.Output{Subject: messages.Subject(messages.SubjectIngest, source), MsgID: messages.IngestMsgID(source), Message: req})
	if err != nil {
		return Result{}, err
	}
	if _, err := e.b.JS.PublishMsg(ctx, msg); err != nil {
		return Result{}, err
	}
	var started time.Time
	var cpu time.Duration
	timeout := time.After(5 * time.Minute)
	for {
		select {
		case st := <-events:
			switch st.State {
			case messages.StateReading:
				started, cpu = time.Now(), cpuTime()
			case messages.StateDone:
				if started.IsZero() {
					return Result{}, errors.New("readerbench: done before reading")
				}
				res := Result{Frames: st.FramesPublished, Elapsed: time.Since(started), CPU: cpuTime() - cpu}
				if frames, err := e.b.JS.Stream(ctx, stage.StreamFrames); err == nil {
					_ = frames.Purge(ctx)
				}
				return res, nil
			case messages.StateFailed, messages.StateCancelled:
				return Result{}, fmt.Errorf("readerbench: %s %s: %s", path, st.State, st.Reason)
			}
		case <-timeout:
			return Result{}, fmt.Errorf("readerbench: %s: no end after 5 minutes", path)
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
}

// Median is the middle of the figures of several rounds (the upper one of an even count; 0
// for none): what the bench tables report.
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
