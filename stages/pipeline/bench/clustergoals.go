package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"github.com/personcluster/personcluster/stages/clusterer/hac/benchgoal"
)

// clusterGoalRows runs the clusterer's own bench (stages/clusterer/hac/bench) for the speed
// goals of `personcluster cluster` — the whole task on the 10k × 640 JSON case and on .npy
// against scipy's, the linkage against fastcluster, the distances against OpenBLAS's DGEMM,
// and peak memory at n = 50,000 against the condensed matrix — and turns them into rows.
// BENCH_CLUSTER_MEM sets the memory run's n (0 skips it; 50,000 needs about 11 GB).
func clusterGoalRows(o options) ([]StageRow, error) {
	memN := 50000
	if v := os.Getenv("BENCH_CLUSTER_MEM"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("bench: BENCH_CLUSTER_MEM=%q: %w", v, err)
		}
		memN = n
	}
	goTool := os.Getenv("GO")
	if goTool == "" {
		goTool = "go"
	}
	cmd := exec.Command(goTool, "run", "./stages/clusterer/hac/bench", "-n", "10000", "-whole", "10000", "-reps", "3",
		"-mem", strconv.Itoa(memN), "-json", "-python", o.python, "-bin", o.bin)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("bench: clusterer goals (stages/clusterer/hac/bench, run from the repository root): %w", err)
	}
	var goals []benchgoal.Row
	if err := json.Unmarshal(out, &goals); err != nil {
		return nil, fmt.Errorf("bench: clusterer goals output: %w", err)
	}
	var rows []StageRow
	for _, g := range goals {
		met := "goal " + g.Target + ": met"
		if !g.Met {
			met = "goal " + g.Target + ": NOT met"
		}
		r := StageRow{Stage: g.Goal, Bare: g.Ref, Ratio: g.Ratio, Detail: met}
		switch g.Unit {
		case "s": // the ratio is scipy's time over Go's
			r.Unit, r.Rate, r.BareR = "runs/min", 60/g.Go, 60/g.RefVal
		case "bytes":
			r.Unit, r.Rate, r.BareR = "GB (ratio: go/ref)", g.Go/1e9, g.RefVal/1e9
		default:
			r.Unit, r.Rate, r.BareR = g.Unit, g.Go, g.RefVal
		}
		rows = append(rows, r)
	}
	return rows, nil
}
