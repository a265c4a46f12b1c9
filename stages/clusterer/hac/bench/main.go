// Command bench compares hac with SciPy (and fastcluster) on synthetic
// person fingerprints: the original cluster() step -- euclidean pdist,
// linkage, fcluster at max(d)·(1−sim) -- timed in-process on the Go side and
// by bench/scipy_cluster.py on the same points, checking that both give the
// same flat clusters.
//
//	go run ./stages/clusterer/hac/bench -n 1000,4000,10000 -python /usr/bin/python3
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
	"github.com/personcluster/personcluster/stages/clusterer/hac/internal/synth"
)

type scipyResult struct {
	PdistS                   float64  `json:"pdist_s"`
	LinkageS                 float64  `json:"linkage_s"`
	FclusterS                float64  `json:"fcluster_s"`
	TotalS                   float64  `json:"total_s"`
	Threshold                float64  `json:"threshold"`
	Labels                   []int    `json:"labels"`
	MaxRSSScipy              int64    `json:"maxrss_scipy_bytes"`
	FastclusterLinkageS      *float64 `json:"fastcluster_linkage_s"`
	FastclusterSamePartition *bool    `json:"fastcluster_same_partition"`
}

type goResult struct {
	pdist, linkage, cut, total time.Duration
	pdistCPU                   float64 // CPU-seconds
	pdistSys                   float64 // of which in the kernel (first touch of the condensed matrix)
	peakExtra                  uint64  // heap above the pre-run baseline
	threshold                  float64
	labels                     []int
	clusters                   int
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == launchArg {
		os.Exit(launch(os.Args[2:]))
	}
	ns := flag.String("n", "1000,4000", "comma-separated numbers of points (in-process steps against scipy's)")
	seed := flag.Uint64("seed", 1, "data seed")
	method := flag.String("method", "average", "linkage method")
	sim := flag.Float64("sim", hac.DefaultSim, "similarity of the cut")
	python := flag.String("python", envOr("HAC_PYTHON", "python3"), "python with scipy (and fastcluster)")
	noScipy := flag.Bool("no-scipy", false, "time the Go side only")
	whole := flag.String("whole", "", "comma-separated numbers of points for the whole task, reading included: `personcluster cluster` on a JSON case and on .npy against scipy's")
	memN := flag.Int("mem", 0, "number of points for the memory goal: `personcluster cluster` on a .npy case, peak RSS against the condensed matrix (0: skip)")
	bin := flag.String("bin", "bin/personcluster", "the personcluster binary, for -whole and -mem")
	reps := flag.Int("reps", 1, "runs of each whole task (the fastest counts)")
	pureGo := flag.Bool("pure-go", false, "also time the distances with gonum's pure-Go BLAS")
	flag.DurationVar(&settle, "settle", 10*time.Second, "pause before the in-process runs of n ≥ 4000 and each timed process of the whole task and the memory run (see settle in whole.go; 0: none)")
	jsonOut := flag.Bool("json", false, "print the goal rows as JSON on stdout (the tables go to stderr)")
	flag.Parse()
	if *jsonOut {
		stdout = os.Stderr
	}
	script, err := scriptPath()
	if err != nil {
		fail(err)
	}
	var g goals
	g.peak, g.peakCPU, g.theoretical, g.peakHow = peakGFLOPS()
	if ct := os.Getenv("OPENBLAS_CORETYPE"); ct != "" {
		fmt.Fprintf(stdout, "OPENBLAS_CORETYPE=%s in the environment: OpenBLAS runs that core's kernels (peak included), not the ones it would pick for this CPU\n", ct)
	}
	fmt.Fprintf(stdout, "BLAS: %s\nfloat64 peak: OpenBLAS DGEMM 2000³ %.1f GFLOP/s (%.1f per CPU-second) here now; theoretical %.1f (%s)\n\n",
		hac.BLAS(), g.peak, g.peakCPU, g.theoretical, g.peakHow)
	var rows [][]string
	for _, f := range splitInts(*ns) {
		n := f
		pts := synth.Fingerprints(n, *seed)
		if n >= 4000 { // matrices of 64 MB and more: see settle
			pause()
		}
		gr, err := runGo(pts, *method, *sim)
		if err != nil {
			fail(err)
		}
		dim := len(pts[0])
		gflops := float64(n) * float64(n-1) * float64(dim) / gr.pdist.Seconds() / 1e9
		g.distN, g.distGFLOPS = n, gflops
		g.distPerCPU = float64(n) * float64(n-1) * float64(dim) / gr.pdistCPU / 1e9
		g.distCPU, g.distSys = gr.pdistCPU, gr.pdistSys
		condensed := float64(hac.CondensedLen(n) * 8)
		row := []string{strconv.Itoa(n), "-", secs(gr.total.Seconds()), "-", "-", secs(gr.linkage.Seconds()), "-",
			fmt.Sprintf("%.3f", float64(gr.peakExtra)/condensed), secs(gr.pdist.Seconds()), fmt.Sprintf("%.1f", gflops),
			fmt.Sprintf("%.0f%%", 100*gflops/g.peak), fmt.Sprintf("%.0f%%", 100*g.distPerCPU/g.peakCPU), "-", "-", "-"}
		if *pureGo {
			was := hac.UseNativeBLAS(false)
			t0 := time.Now()
			if _, err := hac.Pdist(pts, hac.MetricEuclidean); err != nil {
				fail(err)
			}
			row[12] = secs(time.Since(t0).Seconds())
			hac.UseNativeBLAS(was)
		}
		if !*noScipy {
			s, err := runScipy(*python, script, pts, *method, *sim)
			if err != nil {
				fail(err)
			}
			row[1] = secs(s.TotalS)
			row[3] = fmt.Sprintf("%.1fx", s.TotalS/gr.total.Seconds())
			if s.FastclusterLinkageS != nil {
				row[4] = secs(*s.FastclusterLinkageS)
				ratio := gr.linkage.Seconds() / *s.FastclusterLinkageS
				row[6] = fmt.Sprintf("%.2f", ratio)
				g.linkN, g.linkRatio = n, ratio
			}
			row[13] = secs(s.PdistS)
			same := slices.Equal(s.Labels, gr.labels)
			row[14] = strconv.FormatBool(same)
			if !same {
				fmt.Fprintf(os.Stderr, "n=%d: partitions differ (go %d clusters)\n", n, gr.clusters)
			}
			if r := math.Abs(s.Threshold-gr.threshold) / s.Threshold; r > 1e-9 {
				fmt.Fprintf(os.Stderr, "n=%d: thresholds differ: scipy %v go %v\n", n, s.Threshold, gr.threshold)
			}
			fmt.Fprintf(os.Stderr, "n=%d: scipy pdist %.2fs linkage %.2fs fcluster %.3fs, peak RSS %.0f MB; go pdist %.2fs linkage %.2fs cut %.3fs, peak heap above input %.0f MB (condensed %.0f MB)\n",
				n, s.PdistS, s.LinkageS, s.FclusterS, float64(s.MaxRSSScipy)/1e6,
				gr.pdist.Seconds(), gr.linkage.Seconds(), gr.cut.Seconds(), float64(gr.peakExtra)/1e6, condensed/1e6)
		}
		rows = append(rows, row)
	}
	if len(rows) > 0 {
		fmt.Fprintln(stdout, "In process (the points already in memory):")
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "n\tscipy s\tgo s\tspeedup\tfastcluster linkage s\tgo linkage s\tratio\tgo peak heap / condensed\tgo pdist s\tGFLOP/s\tof peak\tof peak per CPU-s\tpure-Go pdist s\tscipy pdist s\tsame partition\t")
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
		}
		tw.Flush()
		fmt.Fprintln(stdout)
	}
	if *whole != "" {
		g.whole = runWholeTasks(splitInts(*whole), *seed, *method, *sim, *bin, *python, script, *reps, *noScipy)
	}
	if *memN > 0 {
		g.mem = runMemory(*memN, *seed, *method, *sim, *bin)
	}
	g.print()
	if *jsonOut {
		if err := json.NewEncoder(os.Stdout).Encode(g.rows()); err != nil {
			fail(err)
		}
	}
}

// stdout takes the tables: os.Stderr with -json.
var stdout io.Writer = os.Stdout

func splitInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			fail(fmt.Errorf("bad number of points %q", f))
		}
		out = append(out, n)
	}
	return out
}

// runGo times the steps of hac.Cluster (the same calls, one by one) and
// samples the heap while they run.
func runGo(pts [][]float64, method string, sim float64) (*goResult, error) {
	n := len(pts)
	runtime.GC()
	debug.FreeOSMemory()
	base := heapBytes()
	stop := make(chan struct{})
	var peak uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if h := heapBytes(); h > peak {
				peak = h
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	r := &goResult{}
	c0, s0, t0 := cpuSeconds(), sysSeconds(), time.Now()
	d, err := hac.Pdist(pts, hac.MetricEuclidean)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	r.pdistCPU, r.pdistSys = cpuSeconds()-c0, sysSeconds()-s0
	r.threshold = hac.Threshold(d, sim)
	z, err := hac.LinkageInPlace(d, n, method)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	r.labels, err = hac.Fcluster(z, r.threshold)
	if err != nil {
		return nil, err
	}
	r.clusters = len(hac.GroupLabels(r.labels, hac.DefaultMinCSize))
	t3 := time.Now()
	close(stop)
	wg.Wait()
	if h := heapBytes(); h > peak {
		peak = h
	}
	r.pdist, r.linkage, r.cut, r.total = t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t3.Sub(t0)
	if peak > base {
		r.peakExtra = peak - base
	}
	runtime.KeepAlive(d)
	return r, nil
}

// heapBytes is the heap memory occupied by objects (live or not yet swept).
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func runScipy(python, script string, pts [][]float64, method string, sim float64) (*scipyResult, error) {
	f, err := os.CreateTemp("", "hac-points-*.f64")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	if err := binary.Write(w, binary.LittleEndian, slices.Concat(pts...)); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	cmd := exec.Command(python, script, f.Name(), strconv.Itoa(len(pts)), strconv.Itoa(len(pts[0])),
		method, strconv.FormatFloat(sim, 'g', -1, 64))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", python, script, err)
	}
	var s scipyResult
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("scipy output: %w", err)
	}
	if s.FastclusterSamePartition != nil && !*s.FastclusterSamePartition {
		fmt.Fprintln(os.Stderr, "note: fastcluster's partition differs from scipy's")
	}
	return &s, nil
}

// scriptPath finds scipy_cluster.py next to this source file's package,
// from the repository root or from the bench folder.
func scriptPath() (string, error) {
	for _, p := range []string{"stages/clusterer/hac/bench/scipy_cluster.py", "bench/scipy_cluster.py", "scipy_cluster.py"} {
		if _, err := os.Stat(p); err == nil {
			return filepath.Abs(p)
		}
	}
	return "", fmt.Errorf("scipy_cluster.py not found; run from the repository root")
}

func secs(s float64) string { return fmt.Sprintf("%.3f", s) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
