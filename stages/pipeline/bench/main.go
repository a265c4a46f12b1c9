// Command bench is `make bench`: one table of the pipeline's throughput, every figure measured
// in the same run on the same machine. Each stage's throughput stands next to the bare rate of
// what it wraps (gocv decode loop, onnxruntime inference of each model at the stage's batch
// size and thread count, go-face calls) as a ratio; the clusterer stands against scipy; the
// whole pipeline runs in one process on the video (accepted frames/s, faces/s, latency from
// frame read to vectors published, peak RSS, CPU utilisation). Timings on a shared machine
// are noisy: compare the ratios, which are measured side by side.
//
//	go run ./stages/pipeline/bench                 # the table
//	go run ./stages/pipeline/bench --json          # the same as JSON
//	go run ./stages/pipeline/bench -only pipeline -cpuprofile cpu.out -memprofile mem.out
//	go run ./stages/pipeline/bench -soak 10m       # memory over a long input (the clip looped)
//	go run ./stages/pipeline/bench -soak-live 10m  # one live source (the clip looped): RSS and gallery over time
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/personcluster/personcluster/stages/onnx"
)

type options struct {
	models, video, only    string
	threads, embThreads    int
	clothBatch             int
	runs                   int
	jsonOut                bool
	cpuprofile, memprofile string
	child                  string
	soak                   time.Duration
	soakLive, soakEvery    time.Duration
	python, bin            string
	device, ortLib         string
	cpuFile                *os.File
}

// Report is everything one run measured.
type Report struct {
	Machine  string          `json:"machine"`
	Cores    int             `json:"cores"`
	Threads  int             `json:"ort_threads"`
	Device   string          `json:"device"` // what -device asked for; each row says where its bare model ran
	Load     string          `json:"load_before"`
	Stages   []StageRow      `json:"stages"`
	Pipeline *PipelineResult `json:"pipeline,omitempty"`
	Soak     *SoakResult     `json:"soak,omitempty"`
	SoakLive *LiveSoakResult `json:"soak_live,omitempty"`
}

// StageRow is one stage against the bare rate of what it wraps.
type StageRow struct {
	Stage  string  `json:"stage"`
	Unit   string  `json:"unit"`
	Rate   float64 `json:"rate"`
	Bare   string  `json:"bare"` // what the bare rate measures
	BareR  float64 `json:"bare_rate"`
	Ratio  float64 `json:"ratio"` // rate / bare (for the clusterer: scipy time / Go time)
	Detail string  `json:"detail,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.models, "models", "models/data", "models folder")
	flag.StringVar(&o.video, "video", "../shared/testdata/video/cast_public.mp4", "video for the pipeline and the stages")
	flag.IntVar(&o.threads, "threads", 1, "onnxruntime intra-op threads per session (the binary's default --threads)")
	flag.IntVar(&o.embThreads, "embedder-threads", 0, "the clothing embedder's intra-op threads (0: -threads)")
	flag.IntVar(&o.clothBatch, "cloth-batch", 0, "most clothing crops in one inference (0: the binary's default)")
	flag.IntVar(&o.runs, "runs", 3, "timed pipeline runs (after one warm-up); the table shows the median run")
	flag.StringVar(&o.device, "device", "auto", "where the onnxruntime models run, as the binary's --device: auto (CUDA where it runs), cpu or cuda")
	flag.StringVar(&o.ortLib, "ort-lib", "", "libonnxruntime.so (default MODELS/lib/libonnxruntime.so; make deps-cuda puts the CUDA provider beside it)")
	flag.StringVar(&o.only, "only", "", "comma-separated sections: reader,detector,encoder,embedder,clusterer,scaling,pipeline (default all)")
	flag.BoolVar(&o.jsonOut, "json", false, "print JSON instead of a table")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "CPU profile of the timed pipeline run (with -only pipeline)")
	flag.StringVar(&o.memprofile, "memprofile", "", "allocation profile of the timed pipeline run (with -only pipeline)")
	flag.DurationVar(&o.soak, "soak", 0, "instead of the table: run the pipeline on the video looped for this long and report RSS after 1 minute and at the end")
	flag.DurationVar(&o.soakLive, "soak-live", 0, "instead of the table: read the video as one live source, looped, for this long, and print RSS and the people gallery's size over time")
	flag.DurationVar(&o.soakEvery, "soak-every", 30*time.Second, "with -soak-live: how often to sample")
	flag.StringVar(&o.python, "python", "/usr/bin/python3", "python with scipy, for the clusterer")
	flag.StringVar(&o.bin, "bin", "bin/personcluster", "the binary, for the scaling section (stages as separate processes)")
	flag.StringVar(&o.child, "child", "", "internal: run one section in this process and print its JSON")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (o options) want(section string) bool {
	return o.only == "" || slices.Contains(strings.Split(o.only, ","), section)
}

func run(ctx context.Context, o options) error {
	if o.child != "" {
		return runChild(ctx, o)
	}
	if _, err := onnx.ParseDevice(o.device); err != nil {
		return err
	}
	rep := &Report{Cores: runtime.NumCPU(), Threads: o.threads, Device: o.device, Load: loadavg(), Machine: cpuModel()}
	if o.soak > 0 {
		var s SoakResult
		if err := child(o, "soak", &s); err != nil {
			return err
		}
		rep.Soak = &s
		return print(o, rep)
	}
	if o.soakLive > 0 {
		var s LiveSoakResult
		if err := child(o, "soak-live", &s); err != nil {
			return err
		}
		rep.SoakLive = &s
		return print(o, rep)
	}
	// Each section runs in its own process: its peak RSS and CPU time are its own, and one
	// section's native allocations do not shape the next one's.
	for _, sec := range []string{"reader", "detector", "encoder", "embedder", "clusterer", "scaling"} {
		if !o.want(sec) {
			continue
		}
		var rows []StageRow
		if err := child(o, sec, &rows); err != nil {
			return err
		}
		rep.Stages = append(rep.Stages, rows...)
	}
	if o.want("pipeline") {
		var p PipelineResult
		if err := child(o, "pipeline", &p); err != nil {
			return err
		}
		rep.Pipeline = &p
	}
	return print(o, rep)
}

// child runs one section in a new process of this binary and decodes its JSON.
func child(o options, section string, v any) error {
	args := []string{"-child", section, "-models", o.models, "-video", o.video, "-threads", fmt.Sprint(o.threads), "-embedder-threads", fmt.Sprint(o.embThreads), "-cloth-batch", fmt.Sprint(o.clothBatch), "-runs", fmt.Sprint(o.runs),
		"-python", o.python, "-bin", o.bin, "-soak", o.soak.String(), "-device", o.device, "-ort-lib", o.ortLib,
		"-soak-live", o.soakLive.String(), "-soak-every", o.soakEvery.String()}
	if o.cpuprofile != "" {
		args = append(args, "-cpuprofile", o.cpuprofile)
	}
	if o.memprofile != "" {
		args = append(args, "-memprofile", o.memprofile)
	}
	fmt.Fprintf(os.Stderr, "bench: %s…\n", section)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("bench: %s: %w", section, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("bench: %s: reading its result: %w", section, err)
	}
	return nil
}

func runChild(ctx context.Context, o options) error {
	var v any
	var err error
	switch o.child {
	case "pipeline":
		v, err = runPipeline(ctx, o)
	case "soak":
		v, err = runSoak(ctx, o)
	case "soak-live":
		v, err = runSoakLive(ctx, o)
	default:
		v, err = runSection(ctx, o, o.child)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(v)
}

func (o *options) startProfiles() error {
	if o.cpuprofile == "" {
		return nil
	}
	f, err := os.Create(o.cpuprofile)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	o.cpuFile = f
	if o.memprofile != "" {
		runtime.MemProfileRate = 64 * 1024
	}
	return pprof.StartCPUProfile(f)
}

func (o *options) stopProfiles() error {
	if o.cpuFile != nil {
		pprof.StopCPUProfile()
		o.cpuFile.Close()
	}
	if o.memprofile != "" {
		f, err := os.Create(o.memprofile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		return pprof.Lookup("allocs").WriteTo(f, 0)
	}
	return nil
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func print(o options, rep *Report) error {
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Printf("%s, %d cores, onnxruntime %d thread(s) per session, device %s, load before: %s\n", rep.Machine, rep.Cores, rep.Threads, rep.Device, rep.Load)
	if s := rep.SoakLive; s != nil && len(s.Samples) > 0 {
		first, last := s.Samples[0], s.Samples[len(s.Samples)-1]
		fmt.Printf("soak-live %s: %d windows, %d frames; RSS %.0f → %.0f MiB (first and last sample), Go heap %.0f → %.0f MiB; %d people, at most %d exemplars each; gallery %.0f → %.0f KiB; results.json %.0f KiB\n",
			s.Duration, last.Windows, last.Frames, first.RSSMiB, last.RSSMiB, first.GoHeapMiB, last.GoHeapMiB, last.People, last.MaxExemplars, first.GalleryKiB, last.GalleryKiB, last.ResultsKiB)
		return nil
	}
	if s := rep.Soak; s != nil {
		fmt.Printf("soak %s: %d sources, %d frames, %.1f accepted frames/s; RSS after 1 min %.0f MiB, at the end %.0f MiB (%+.1f%%), peak %.0f MiB; Go heap %.0f → %.0f MiB\n",
			s.Duration, s.Sources, s.Frames, s.AcceptedPerSec, s.RSS1MinMiB, s.RSSEndMiB, s.GrowthPct, s.PeakMiB, s.GoHeap1MinMiB, s.GoHeapEndMiB)
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(rep.Stages) > 0 {
		fmt.Fprintln(tw, "stage\tunit\tstage rate\tbare rate\tratio\tbare =\tstage settings\t")
		for _, r := range rep.Stages {
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.2f\t%s\t%s\t\n", r.Stage, r.Unit, r.Rate, r.BareR, r.Ratio, r.Bare, r.Detail)
		}
		tw.Flush()
	}
	if p := rep.Pipeline; p != nil {
		fmt.Println()
		fmt.Fprintf(tw, "pipeline (one process, median of %d)\tframes\taccepted\tfaces\tseconds\taccepted/s\tfaces/s\tp50 ms\tp95 ms\tpeak RSS MiB\tCPU util\tCPU ms/accepted\tof which kernel\tpage faults\t\n", max(1, len(p.RunSeconds)))
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.1f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f%%\t%.1f\t%.0f%%\t%d\t\n", baseName(p.Video), p.Frames, p.Accepted, p.Faces,
			p.Seconds, p.AcceptedPerSec, p.FacesPerSec, p.LatencyP50ms, p.LatencyP95ms, p.PeakRSSMiB, 100*p.CPUUtil, 1000*p.CPUSeconds/float64(max(1, p.Accepted)),
			100*p.SysSeconds/max(p.CPUSeconds, 1e-9), p.MinorFaults)
		tw.Flush()
		if len(p.RunSeconds) > 1 {
			var runs []string
			for _, sec := range p.RunSeconds {
				runs = append(runs, fmt.Sprintf("%.2f s (%.1f/s)", sec, float64(p.Accepted)/sec))
			}
			fmt.Printf("runs: %s; peak RSS over all of them\n", strings.Join(runs, ", "))
		}
	}
	return nil
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// SoakResult is the memory of a long run.
type SoakResult struct {
	Duration       string  `json:"duration"`
	Sources        int     `json:"sources"`
	Frames         int64   `json:"frames"`
	AcceptedPerSec float64 `json:"accepted_frames_per_s"`
	RSS1MinMiB     float64 `json:"rss_1min_mib"`
	RSSEndMiB      float64 `json:"rss_end_mib"`
	GrowthPct      float64 `json:"growth_pct"`
	PeakMiB        float64 `json:"peak_rss_mib"`
	GoHeap1MinMiB  float64 `json:"go_heap_1min_mib"`
	GoHeapEndMiB   float64 `json:"go_heap_end_mib"`
}
