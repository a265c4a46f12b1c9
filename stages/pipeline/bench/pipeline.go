package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/pipeline"
)

// PipelineResult is the whole pipeline in one process on one video.
type PipelineResult struct {
	Video          string                `json:"video"`
	Frames         int64                 `json:"frames"`
	Accepted       int64                 `json:"accepted_frames"`
	Faces          int                   `json:"faces"`
	Seconds        float64               `json:"seconds"` // ingest to final result
	AcceptedPerSec float64               `json:"accepted_frames_per_s"`
	FramesPerSec   float64               `json:"frames_per_s"`
	FacesPerSec    float64               `json:"faces_per_s"`
	LatencyP50ms   float64               `json:"latency_p50_ms"` // frame published by the reader → both vector messages published
	LatencyP95ms   float64               `json:"latency_p95_ms"`
	PeakRSSMiB     float64               `json:"peak_rss_mib"`
	Timeline       map[string][2]float64 `json:"timeline_s"`  // first and last message of each subject, seconds after ingest
	CPUUtil        float64               `json:"cpu_util"`    // process CPU time / (wall × cores)
	CPUSeconds     float64               `json:"cpu_seconds"` // process user+system CPU during the run
	SysSeconds     float64               `json:"sys_seconds"` // of which in the kernel (mostly page faults)
	MinorFaults    int64                 `json:"minor_faults"`
	Cores          int                   `json:"cores"`
	RunSeconds     []float64             `json:"run_seconds"` // every timed run, in order; the rest is the median run's
}

// tap records when each frame, face-vector and cloth-vector message of a source is published
// (a core subscription on the stages' own in-process connection; only headers are read).
type tap struct {
	mu                 sync.Mutex
	frame, face, cloth map[int64]time.Time
	faces              map[int64]time.Time
	subs               []*nats.Subscription
}

func newTap(nc *nats.Conn, src string) (*tap, error) {
	t := &tap{frame: map[int64]time.Time{}, face: map[int64]time.Time{}, cloth: map[int64]time.Time{}, faces: map[int64]time.Time{}}
	for subj, m := range map[string]map[int64]time.Time{
		messages.Subject(messages.SubjectFrames, src):   t.frame,
		messages.Subject(messages.SubjectFaces, src):    t.faces,
		messages.Subject(messages.SubjectFaceVec, src):  t.face,
		messages.Subject(messages.SubjectClothVec, src): t.cloth,
	} {
		sub, err := nc.Subscribe(subj, func(msg *nats.Msg) {
			now := time.Now()
			seq, ok := seqOf(msg.Header.Get(jetstream.MsgIDHeader))
			if !ok {
				return
			}
			t.mu.Lock()
			if _, seen := m[seq]; !seen {
				m[seq] = now
			}
			t.mu.Unlock()
		})
		if err != nil {
			t.close()
			return nil, fmt.Errorf("bench: %w", err)
		}
		t.subs = append(t.subs, sub)
	}
	return t, nil
}

// seqOf parses <source>.<seq>.<stage>.
func seqOf(id string) (int64, bool) {
	parts := strings.Split(id, ".")
	if len(parts) < 3 {
		return 0, false
	}
	n, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
	return n, err == nil
}

func (t *tap) close() {
	for _, s := range t.subs {
		_ = s.Unsubscribe()
	}
}

// latencies returns, per frame with both vector messages, the time from its frame message to
// the later of the two.
func (t *tap) latencies() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Duration
	for seq, f := range t.frame {
		a, ok1 := t.face[seq]
		b, ok2 := t.cloth[seq]
		if ok1 && ok2 {
			out = append(out, later(a, b).Sub(f))
		}
	}
	slices.Sort(out)
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	i := min(len(ds)-1, int(q*float64(len(ds))))
	return float64(ds[i]) / float64(time.Millisecond)
}

// usage is the process's CPU time and page faults so far.
type usage struct {
	user, sys   time.Duration
	minorFaults int64
}

func usageNow() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	return usage{user: time.Duration(ru.Utime.Nano()), sys: time.Duration(ru.Stime.Nano()), minorFaults: ru.Minflt}
}

// rssKiB reads VmRSS or VmHWM (kB) from /proc/self/status.
func rssKiB(key string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runPipeline starts every stage in this process, warms it up on the first frames of the
// video (model loading and first inferences are not throughput), then times one full source.
// The warm-up is long enough for the stages' batches to reach their full size: onnxruntime
// grows its memory arena at the first inference of a larger batch (the embedder's first batch
// of 32 touches ~400 MB, 100,000 page faults), which a steady stream pays once.
func runPipeline(ctx context.Context, o options) (*PipelineResult, error) {
	l, err := pipeline.StartLocal(ctx, pipeline.LocalOptions{Options: pipeline.Options{
		Models: models(o), Logger: quiet()}})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	warm := messages.IngestRequest{Source: "warmup", URI: o.video, Params: messages.DefaultParams(),
		Sampling: messages.Sampling{MaxFrames: 64}}
	if _, err := l.Process(ctx, warm); err != nil {
		return nil, fmt.Errorf("bench: warm-up: %w", err)
	}
	if err := o.startProfiles(); err != nil {
		return nil, err
	}
	// The median of several runs: these machines are shared, and one run's time moves by 5%
	// with the neighbours' load.
	var results []*PipelineResult
	for run := range max(1, o.runs) {
		r, err := timePipeline(ctx, l, o, fmt.Sprintf("bench-%d", run+1))
		if err != nil {
			o.stopProfiles()
			return nil, err
		}
		results = append(results, r)
	}
	if err := o.stopProfiles(); err != nil {
		return nil, err
	}
	var seconds []float64
	for _, r := range results {
		seconds = append(seconds, r.Seconds)
	}
	slices.SortStableFunc(results, func(a, b *PipelineResult) int { return cmp.Compare(a.Seconds, b.Seconds) })
	median := results[(len(results)-1)/2]
	median.RunSeconds = seconds
	median.PeakRSSMiB = float64(rssKiB("VmHWM")) / 1024
	return median, nil
}

// timePipeline times one full source through the running pipeline.
func timePipeline(ctx context.Context, l *pipeline.Local, o options, src string) (*PipelineResult, error) {
	t, err := newTap(l.Conn(), src)
	if err != nil {
		return nil, err
	}
	defer t.close()
	start, u0 := time.Now(), usageNow()
	res, err := l.Process(ctx, messages.IngestRequest{Source: src, URI: o.video, Params: messages.DefaultParams()})
	wall, u1 := time.Since(start), usageNow()
	cpuUsed := u1.user + u1.sys - u0.user - u0.sys
	if err != nil {
		return nil, err
	}
	r := res.Result
	lat := t.latencies()
	timeline := map[string][2]float64{}
	for name, m := range map[string]map[int64]time.Time{"frames": t.frame, "faces": t.faces, "facevec": t.face, "clothvec": t.cloth} {
		var lo, hi float64
		for _, at := range m {
			d := at.Sub(start).Seconds()
			if lo == 0 || d < lo {
				lo = d
			}
			hi = max(hi, d)
		}
		timeline[name] = [2]float64{lo, hi}
	}
	cores := runtime.NumCPU()
	s := wall.Seconds()
	return &PipelineResult{Video: o.video, Frames: r.FramesSeen, Accepted: r.FramesAccepted, Faces: r.Faces, Seconds: s,
		AcceptedPerSec: float64(r.FramesAccepted) / s, FramesPerSec: float64(r.FramesSeen) / s, FacesPerSec: float64(r.Faces) / s,
		LatencyP50ms: quantile(lat, 0.5), LatencyP95ms: quantile(lat, 0.95),
		CPUUtil: cpuUsed.Seconds() / (s * float64(cores)), CPUSeconds: cpuUsed.Seconds(), Cores: cores, Timeline: timeline,
		SysSeconds: (u1.sys - u0.sys).Seconds(), MinorFaults: u1.minorFaults - u0.minorFaults}, nil
}
