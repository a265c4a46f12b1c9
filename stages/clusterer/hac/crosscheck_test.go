package hac

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"testing"
)

// TestScipyCrosscheck compares against a live SciPy on random cases built
// to have many exact ties (integer grids, duplicated points, small integer
// distances), where only SciPy's exact order of operations gives the same
// Z. Opt-in: HAC_CROSSCHECK=1 (HAC_PYTHON names the interpreter,
// HAC_CROSSCHECK_SEEDS how many seeds to try).
func TestScipyCrosscheck(t *testing.T) {
	if os.Getenv("HAC_CROSSCHECK") == "" {
		t.Skip("set HAC_CROSSCHECK=1 to compare against a live SciPy (bench/scipy_crosscheck.py)")
	}
	py := os.Getenv("HAC_PYTHON")
	if py == "" {
		py = "python3"
	}
	seeds := 3
	if s, err := strconv.Atoi(os.Getenv("HAC_CROSSCHECK_SEEDS")); err == nil {
		seeds = s
	}
	for seed := range seeds {
		out, err := exec.Command(py, "bench/scipy_crosscheck.py", strconv.Itoa(seed)).Output()
		if err != nil {
			t.Fatalf("scipy_crosscheck.py: %v", err)
		}
		var cc struct {
			Oracle
			LinkageCases []struct {
				N      int           `json:"n"`
				Method string        `json:"method"`
				D      []float64     `json:"d"`
				Z      LinkageMatrix `json:"Z"`
				T      float64       `json:"t"`
				Labels []int         `json:"labels"`
			} `json:"linkage_cases"`
		}
		if err := json.Unmarshal(out, &cc); err != nil {
			t.Fatal(err)
		}
		o, err := DecodeOracle(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range o.Cases {
			res, err := c.Run()
			if err != nil {
				t.Errorf("seed %d %s: %v", seed, c.Name, err)
				continue
			}
			if !reflect.DeepEqual(res.Clusters, c.Expected.Clusters) {
				t.Errorf("seed %d %s: clusters\n got %v\nwant %v", seed, c.Name, res.Clusters, c.Expected.Clusters)
			}
			if relDiff(res.Threshold, c.Expected.Threshold) > 1e-9 {
				t.Errorf("seed %d %s: threshold %v want %v", seed, c.Name, res.Threshold, c.Expected.Threshold)
			}
			if msg := compareZ(res.Linkage, c.Expected.Linkage); msg != "" {
				t.Errorf("seed %d %s: %s", seed, c.Name, msg)
			}
		}
		for k, lc := range cc.LinkageCases {
			z, err := Linkage(lc.D, lc.N, lc.Method)
			if err != nil {
				t.Errorf("seed %d linkage case %d (%s n=%d): %v", seed, k, lc.Method, lc.N, err)
				continue
			}
			if msg := compareZ(z, lc.Z); msg != "" {
				t.Errorf("seed %d linkage case %d (%s n=%d): %s", seed, k, lc.Method, lc.N, msg)
				continue
			}
			labels, err := Fcluster(lc.Z, lc.T)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(labels, lc.Labels) {
				t.Errorf("seed %d linkage case %d: fcluster labels\n got %v\nwant %v", seed, k, labels, lc.Labels)
			}
		}
		t.Logf("seed %d: %d point cases, %d linkage cases", seed, len(o.Cases), len(cc.LinkageCases))
	}
}

// compareZ: ids and counts exact, heights within 1e-9 relative.
func compareZ(got, want LinkageMatrix) string {
	if len(got) != len(want) {
		return "linkage length " + strconv.Itoa(len(got)) + " want " + strconv.Itoa(len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g[0] != w[0] || g[1] != w[1] || g[3] != w[3] || relDiff(g[2], w[2]) > 1e-9 {
			b, _ := json.Marshal(map[string]any{"row": i, "got": g, "want": w})
			return "linkage differs: " + string(b)
		}
	}
	return ""
}
