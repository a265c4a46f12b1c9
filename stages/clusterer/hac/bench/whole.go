package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	gblas "gonum.org/v1/gonum/blas"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
	"github.com/personcluster/personcluster/stages/clusterer/hac/blas"
)

// The whole task, reading included: `personcluster cluster FILE` (a fresh
// process, timed from start to exit) against scipy_cluster.py --case FILE
// (json.load or np.load + pdist + linkage + fcluster, timed inside Python,
// so its interpreter start and imports are not counted).

type wholeRun struct {
	seconds  float64
	cpu      float64 // CPU-seconds (user + system)
	maxRSS   int64   // bytes
	output   hac.Output
	loadSecs float64 // scipy only: json.load / np.load
}

// writeCases saves the points as a JSON case and as .npy + sidecar in dir.
func writeCases(dir string, pts [][]float64, method string, sim float64) (jsonPath, npyPath string, err error) {
	c := &hac.Case{Method: method, Metric: hac.MetricEuclidean, Sim: sim, MinCSize: hac.DefaultMinCSize, Points: pts}
	jsonPath = filepath.Join(dir, fmt.Sprintf("case-%d.json", len(pts)))
	f, err := os.Create(jsonPath)
	if err != nil {
		return "", "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := json.NewEncoder(w).Encode(c); err != nil {
		f.Close()
		return "", "", err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", "", err
	}
	if err := f.Close(); err != nil {
		return "", "", err
	}
	npyPath = filepath.Join(dir, fmt.Sprintf("case-%d.npy", len(pts)))
	return jsonPath, npyPath, hac.WriteNPYCase(npyPath, c)
}

// settle is the pause before each timed process. On a VM whose balloon
// reports free memory to the host, memory a process freed stays backed for
// a few seconds, and the next process's first touches of it are ~5× as
// cheap: `personcluster cluster` on the 10k JSON case spent 0.76–1.35 s in
// the kernel two seconds after another run and 1.37–1.45 s after eight. A
// pause gives every process memory as cold as a single run's.
var settle time.Duration

func pause() { time.Sleep(settle) }

// runGoCluster runs `bin cluster path` reps times: the fastest wall time,
// its peak RSS and its answer.
func runGoCluster(bin, path string, reps int) (*wholeRun, error) {
	var best *wholeRun
	for range max(1, reps) {
		pause()
		out, l, err := runLaunched(bin, "cluster", path)
		if err != nil {
			return nil, fmt.Errorf("%s cluster %s: %w", bin, path, err)
		}
		r := &wholeRun{seconds: l.Seconds, cpu: l.CPU, maxRSS: l.MaxRSS}
		if err := json.Unmarshal(out, &r.output); err != nil {
			return nil, fmt.Errorf("personcluster cluster output: %w", err)
		}
		if best == nil || r.seconds < best.seconds {
			best = r
		}
	}
	return best, nil
}

// runScipyWhole runs scipy_cluster.py --case path reps times, the fastest.
func runScipyWhole(python, script, path string, reps int) (*wholeRun, error) {
	var best *wholeRun
	for range max(1, reps) {
		pause()
		out, _, err := runLaunched(python, script, "--case", path)
		if err != nil {
			return nil, fmt.Errorf("%s %s --case %s: %w", python, script, path, err)
		}
		var s struct {
			Load      float64 `json:"load_s"`
			CPU       float64 `json:"cpu_s"`
			Total     float64 `json:"total_s"`
			Threshold float64 `json:"threshold"`
			Clusters  [][]int `json:"clusters"`
			MaxRSS    int64   `json:"maxrss_scipy_bytes"`
		}
		if err := json.Unmarshal(out, &s); err != nil {
			return nil, fmt.Errorf("scipy output: %w", err)
		}
		r := &wholeRun{seconds: s.Total, cpu: s.CPU, loadSecs: s.Load, maxRSS: s.MaxRSS, output: hac.Output{Threshold: s.Threshold, Clusters: s.Clusters}}
		if best == nil || r.seconds < best.seconds {
			best = r
		}
	}
	return best, nil
}

func sameOutput(a, b hac.Output) bool {
	if a.Threshold != b.Threshold && relDiff(a.Threshold, b.Threshold) > 1e-9 {
		return false
	}
	if len(a.Clusters) == 0 && len(b.Clusters) == 0 {
		return true
	}
	return reflect.DeepEqual(a.Clusters, b.Clusters)
}

func relDiff(a, b float64) float64 {
	d := a - b
	if d < 0 {
		d = -d
	}
	m := max(a, b, -a, -b)
	return d / m
}

// peakGFLOPS is the machine's float64 rate as OpenBLAS's own square DGEMM
// reaches it here and now (best of three, m = 2000), per second of wall
// time and per CPU-second (which other load on a shared machine disturbs
// less), and the theoretical peak from the clock and the vector width of
// the kernel OpenBLAS picked.
func peakGFLOPS() (wall, perCPU, theoretical float64, how string) {
	const m = 2000
	a := make([]float64, m*m)
	for i := range a {
		a[i] = float64(i%101) / 101
	}
	c := make([]float64, m*m)
	impl := blas.Float64()
	defer blas.SetThreads(blas.SetThreads(runtime.NumCPU()))
	for range 3 {
		c0, t0 := cpuSeconds(), time.Now()
		impl.Dgemm(gblas.NoTrans, gblas.Trans, m, m, m, 1, a, m, a, m, 0, c, m)
		flops := 2.0 * m * m * m / 1e9
		wall = max(wall, flops/time.Since(t0).Seconds())
		perCPU = max(perCPU, flops/(cpuSeconds()-c0))
	}
	mhz := cpuMHz()
	// Two FMA pipes of the kernels' vector width: 256-bit for Haswell/Zen,
	// 512-bit for SkylakeX and later; SSE kernels do 2 × 2 (no FMA).
	flopsPerCycle := 16.0
	switch name := blas.Name(); {
	case strings.Contains(name, "SkylakeX") || strings.Contains(name, "Cooperlake") || strings.Contains(name, "SapphireRapids"):
		flopsPerCycle = 32
	case strings.Contains(name, "Sandybridge"):
		flopsPerCycle = 8
	case !strings.Contains(name, "Haswell") && !strings.Contains(name, "Zen") && !strings.Contains(name, "Excavator"):
		flopsPerCycle = 4
	}
	theoretical = float64(runtime.NumCPU()) * mhz / 1000 * flopsPerCycle
	how = fmt.Sprintf("%d cores × %.0f MHz × %.0f flop/cycle", runtime.NumCPU(), mhz, flopsPerCycle)
	return wall, perCPU, theoretical, how
}

// cpuSeconds is the user+system CPU time of this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// sysSeconds is the system (kernel) CPU time of this process so far.
func sysSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Stime.Nano()) / 1e9
}

func cpuMHz() float64 {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
