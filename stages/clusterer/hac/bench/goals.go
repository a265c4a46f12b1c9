package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
	"github.com/personcluster/personcluster/stages/clusterer/hac/benchgoal"
	"github.com/personcluster/personcluster/stages/clusterer/hac/internal/synth"
)

// goals gathers the figures the speed goals are about, printed side by
// side at the end.
type goals struct {
	peak, peakCPU, theoretical float64
	peakHow                    string
	distN                      int
	distGFLOPS, distPerCPU     float64
	distCPU, distSys           float64 // CPU-seconds, of which in the kernel
	linkN                      int
	linkRatio                  float64
	whole                      []wholeRow
	mem                        *memRow
}

type wholeRow struct {
	n                   int
	format              string // "JSON" or ".npy"
	goS, scipyS         float64
	goCPU, scipyCPU     float64
	scipyLoadS          float64
	goRSS, scipyRSS     int64
	same, scipyMeasured bool
}

type memRow struct {
	n         int
	seconds   float64
	rss       int64
	condensed int64
}

// runWholeTasks times `personcluster cluster` and scipy's whole task on a
// JSON case and on .npy + sidecar of n synthetic fingerprints each.
func runWholeTasks(ns []int, seed uint64, method string, sim float64, bin, python, script string, reps int, noScipy bool) []wholeRow {
	dir, err := os.MkdirTemp("", "hac-bench-*")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	var rows []wholeRow
	for _, n := range ns {
		jsonPath, npyPath, err := writeCases(dir, synth.Fingerprints(n, seed), method, sim)
		if err != nil {
			fail(err)
		}
		for _, c := range []struct{ format, path string }{{"JSON", jsonPath}, {".npy", npyPath}} {
			gr, err := runGoCluster(bin, c.path, reps)
			if err != nil {
				fail(err)
			}
			row := wholeRow{n: n, format: c.format, goS: gr.seconds, goCPU: gr.cpu, goRSS: gr.maxRSS}
			if !noScipy {
				sr, err := runScipyWhole(python, script, c.path, reps)
				if err != nil {
					fail(err)
				}
				row.scipyMeasured, row.scipyS, row.scipyLoadS, row.scipyRSS = true, sr.seconds, sr.loadSecs, sr.maxRSS
				row.scipyCPU = sr.cpu
				row.same = sameOutput(gr.output, sr.output)
				if !row.same {
					fmt.Fprintf(os.Stderr, "n=%d %s: personcluster cluster and scipy disagree (threshold %v vs %v, %d vs %d clusters)\n",
						n, c.format, gr.output.Threshold, sr.output.Threshold, len(gr.output.Clusters), len(sr.output.Clusters))
				}
			}
			rows = append(rows, row)
		}
		os.Remove(jsonPath)
		os.Remove(npyPath)
		os.Remove(hac.SidecarPath(npyPath))
	}
	fmt.Fprintf(stdout, "Whole task, reading included (personcluster cluster FILE vs scipy's load + pdist + linkage + fcluster), each process after a %v pause:\n", settle)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "n\tfile\tscipy s\tof which load s\tgo s\tspeedup\tscipy CPU-s\tgo CPU-s\tCPU ratio\tgo peak RSS MB\tscipy peak RSS MB\tsame clusters\t")
	for _, r := range rows {
		sp, load, same, srss := "-", "-", "-", "-"
		if r.scipyMeasured {
			sp, load, same, srss = secs(r.scipyS), secs(r.scipyLoadS), fmt.Sprint(r.same), fmt.Sprintf("%.0f", float64(r.scipyRSS)/1e6)
		}
		speed, scpu, cratio := "-", "-", "-"
		if r.scipyMeasured {
			speed = fmt.Sprintf("%.1fx", r.scipyS/r.goS)
			scpu, cratio = secs(r.scipyCPU), fmt.Sprintf("%.1fx", r.scipyCPU/r.goCPU)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t\n", r.n, r.format, sp, load, secs(r.goS), speed,
			scpu, secs(r.goCPU), cratio, float64(r.goRSS)/1e6, srss, same)
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	return rows
}

// runMemory runs `personcluster cluster` on a .npy case of n points and
// compares its peak RSS with the condensed matrix's size.
func runMemory(n int, seed uint64, method string, sim float64, bin string) *memRow {
	dir, err := os.MkdirTemp("", "hac-bench-mem-*")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "case.npy")
	c := &hac.Case{Method: method, Metric: hac.MetricEuclidean, Sim: sim, MinCSize: hac.DefaultMinCSize, Points: synth.Fingerprints(n, seed)}
	if err := hac.WriteNPYCase(path, c); err != nil {
		fail(err)
	}
	dim := len(c.Points[0])
	c = nil
	runtime.GC()
	debug.FreeOSMemory()
	r, err := runGoCluster(bin, path, 1)
	if err != nil {
		fail(err)
	}
	m := &memRow{n: n, seconds: r.seconds, rss: r.maxRSS, condensed: int64(hac.CondensedLen(n)) * 8}
	fmt.Fprintf(stdout, "Memory: personcluster cluster on %d × %d .npy points: %.1f s, peak RSS %.0f MB = %.3f × the condensed matrix (%.0f MB)\n\n",
		n, dim, m.seconds, float64(m.rss)/1e6, float64(m.rss)/float64(m.condensed), float64(m.condensed)/1e6)
	return m
}

func (g *goals) print() {
	fmt.Fprintln(stdout, "Goals (issue 17), side by side:")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "goal\tmeasured\ttarget\tmet\t")
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	for _, w := range g.whole {
		if !w.scipyMeasured {
			continue
		}
		sp := w.scipyS / w.goS
		fmt.Fprintf(tw, "personcluster cluster, %s, n=%d, vs scipy's whole task\t%.1fx (%.2f s vs %.2f s; CPU-seconds %.1fx)\t≥ 10x\t%s\t\n",
			w.format, w.n, sp, w.goS, w.scipyS, w.scipyCPU/w.goCPU, met(sp >= 10 && w.same))
	}
	if g.linkN > 0 {
		fmt.Fprintf(tw, "linkage vs fastcluster, n=%d\t%.2f×\t≤ 0.8×\t%s\t\n", g.linkN, g.linkRatio, met(g.linkRatio <= 0.8))
	}
	if g.distN > 0 {
		f := g.distPerCPU / g.peakCPU
		fmt.Fprintf(tw, "distances, n=%d, of float64 peak (OpenBLAS DGEMM, per CPU-second)\t%.0f%% (%.1f of %.1f GFLOP/CPU-s, %.2f CPU-s of which %.2f in the kernel faulting in the condensed matrix; wall: %.1f of %.1f GFLOP/s, %.0f%% of theoretical %.1f)\t≥ 60%%\t%s\t\n",
			g.distN, 100*f, g.distPerCPU, g.peakCPU, g.distCPU, g.distSys, g.distGFLOPS, g.peak, 100*g.distGFLOPS/g.theoretical, g.theoretical, met(f >= 0.6))
	}
	if g.mem != nil {
		r := float64(g.mem.rss) / float64(g.mem.condensed)
		fmt.Fprintf(tw, "memory, n=%d, peak RSS / condensed matrix\t%.3f×\t≤ 1.2×\t%s\t\n", g.mem.n, r, met(r <= 1.2))
	}
	tw.Flush()
}

// GoalRow is one goal's figure for other benches (-json).
type GoalRow = benchgoal.Row

func (g *goals) rows() []GoalRow {
	var out []GoalRow
	for _, w := range g.whole {
		if !w.scipyMeasured {
			continue
		}
		sp := w.scipyS / w.goS
		ref := "scipy json.load+pdist+linkage+fcluster"
		if w.format == ".npy" {
			ref = "scipy np.load+pdist+linkage+fcluster"
		}
		out = append(out, GoalRow{Goal: fmt.Sprintf("personcluster cluster %s n=%d", w.format, w.n), Unit: "s", Go: w.goS,
			Ref: ref, RefVal: w.scipyS, Ratio: sp, Target: "scipy/go ≥ 10", Met: sp >= 10 && w.same})
	}
	if g.linkN > 0 {
		out = append(out, GoalRow{Goal: fmt.Sprintf("linkage n=%d", g.linkN), Unit: "go/fastcluster time", Go: g.linkRatio,
			Ref: "fastcluster.linkage", RefVal: 1, Ratio: g.linkRatio, Target: "≤ 0.8", Met: g.linkRatio <= 0.8})
	}
	if g.distN > 0 {
		f := g.distPerCPU / g.peakCPU
		out = append(out, GoalRow{Goal: fmt.Sprintf("distances n=%d", g.distN), Unit: "GFLOP/CPU-s", Go: g.distPerCPU,
			Ref: "OpenBLAS DGEMM 2000³", RefVal: g.peakCPU, Ratio: f, Target: "≥ 0.6", Met: f >= 0.6})
	}
	if g.mem != nil {
		r := float64(g.mem.rss) / float64(g.mem.condensed)
		out = append(out, GoalRow{Goal: fmt.Sprintf("memory n=%d", g.mem.n), Unit: "bytes", Go: float64(g.mem.rss),
			Ref: "condensed matrix", RefVal: float64(g.mem.condensed), Ratio: r, Target: "≤ 1.2", Met: r <= 1.2})
	}
	return out
}
