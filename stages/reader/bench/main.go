// Command bench compares the reader stage's publish rate with a bare gocv decode loop over the
// same files, in one run on one machine, and prints a table. The reader's target: at least
// 0.6× the bare decode rate on the 640×360 H.264 sample.
//
//	go run ./stages/reader/bench                       # the shared clip, and vtest.avi if found
//	go run ./stages/reader/bench -rounds 9 a.mp4 b.avi
//
// vtest.avi ships in Debian's opencv-doc (`apt-get download opencv-doc; dpkg -x opencv-doc_*.deb x`);
// it is looked for in $VTEST_AVI, /usr/share/doc/opencv-doc/examples/data and /tmp.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"text/tabwriter"
	"time"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/stages/reader/readerbench"
)

func main() {
	rounds := flag.Int("rounds", 5, "timed passes per video and contender (the median is reported)")
	sync := flag.Bool("sync", true, "also time the reader publishing one frame at a time (no JetStream handle)")
	memory := flag.Bool("memory", false, "memory storage instead of file storage")
	encoders := flag.Int("encoders", 0, "reader JPEG encoders (0: its default)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	videos := flag.Args()
	if len(videos) == 0 {
		videos = defaultVideos()
	}
	if err := run(videos, *rounds, *sync, readerbench.Options{Memory: *memory, Encoders: *encoders}); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func defaultVideos() []string {
	var out []string
	for _, p := range []string{"../shared/testdata/video/short_hamilton_clip.mp4", "../../../shared/testdata/video/short_hamilton_clip.mp4"} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
			break
		}
	}
	for _, p := range []string{os.Getenv("VTEST_AVI"), "/usr/share/doc/opencv-doc/examples/data/vtest.avi", "/tmp/vtest.avi"} {
		if _, err := os.Stat(p); p != "" && err == nil {
			return append(out, p)
		}
	}
	fmt.Fprintln(os.Stderr, "bench: vtest.avi not found (set VTEST_AVI); skipping it")
	return out
}

func run(videos []string, rounds int, sync bool, o readerbench.Options) error {
	ctx := context.Background()
	async, err := readerbench.Start(o)
	if err != nil {
		return err
	}
	defer async.Close()
	var syncEnv *readerbench.Env
	if sync {
		so := o
		so.Sync = true
		if syncEnv, err = readerbench.Start(so); err != nil {
			return err
		}
		defer syncEnv.Close()
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "video\tsize\tframes\tbare decode fps\treader fps\tratio\tCPU ms/frame bare\treader\t")
	if sync {
		fmt.Fprintf(tw, "reader sync fps\tratio\t")
	}
	fmt.Fprintln(tw)
	for _, v := range videos {
		var bare, rd, rs, cb, cr []float64
		var frames int64
		// Warm up (file cache, codec init), then interleave the contenders round by round so
		// that load from elsewhere on the machine hits them alike.
		if _, err := readerbench.Bare(v); err != nil {
			return err
		}
		if _, err := async.Read(ctx, v); err != nil {
			return err
		}
		for r := 0; r < rounds; r++ {
			b, err := readerbench.Bare(v)
			if err != nil {
				return err
			}
			a, err := async.Read(ctx, v)
			if err != nil {
				return err
			}
			if a.Frames != b.Frames {
				return fmt.Errorf("%s: the reader published %d frames, the bare loop decoded %d", v, a.Frames, b.Frames)
			}
			frames = b.Frames
			bare, rd = append(bare, b.FPS()), append(rd, a.FPS())
			cb, cr = append(cb, ms(b.CPUPerFrame())), append(cr, ms(a.CPUPerFrame()))
			if sync {
				s, err := syncEnv.Read(ctx, v)
				if err != nil {
					return err
				}
				rs = append(rs, s.FPS())
			}
		}
		mb, mr := readerbench.Median(bare), readerbench.Median(rd)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t", filepath.Base(v), size(v), frames, mb, mr, mr/mb, readerbench.Median(cb), readerbench.Median(cr))
		if sync {
			fmt.Fprintf(tw, "%.0f\t%.2f\t", readerbench.Median(rs), readerbench.Median(rs)/mb)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func size(path string) string {
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		return "?"
	}
	defer vc.Close()
	return fmt.Sprintf("%.0fx%.0f", vc.Get(gocv.VideoCaptureFrameWidth), vc.Get(gocv.VideoCaptureFrameHeight))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
