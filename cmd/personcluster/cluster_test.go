//go:build !lean

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
)

// capture runs f with stdout redirected and returns what it printed.
func capture(t *testing.T, f func() error) ([]byte, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	ferr := f()
	os.Stdout = old
	w.Close()
	out, _ := io.ReadAll(r)
	return out, ferr
}

// `personcluster cluster` reproduces scipy on a case of the shared oracle, and flags override
// the file's parameters.
func TestClusterCommandReproducesOracle(t *testing.T) {
	path := filepath.Join("..", "..", "..", "shared", "testdata", "hac", "scipy_cases.json.gz")
	oracle, err := hac.ReadOracleFile(path)
	if err != nil {
		t.Skipf("oracle not available: %v", err)
	}
	c := oracle.Cases[1]
	file := filepath.Join(t.TempDir(), "case.json")
	data, _ := json.Marshal(map[string]any{"points": c.Points, "method": c.Method, "metric": c.Metric, "sim": c.Sim, "min_csize": c.MinCSize})
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := capture(t, func() error { return cmdCluster([]string{file}) })
	if err != nil {
		t.Fatal(err)
	}
	var got hac.Output
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if !reflect.DeepEqual(got.Clusters, c.Expected.Clusters) || math.Abs(got.Threshold-c.Expected.Threshold) > 1e-9*c.Expected.Threshold {
		t.Errorf("cluster %s: got %v at %v, scipy %v at %v", c.Name, got.Clusters, got.Threshold, c.Expected.Clusters, c.Expected.Threshold)
	}
	out, err = capture(t, func() error { return cmdCluster([]string{"--min-csize", "1000", file}) })
	if err != nil || !bytes.Contains(out, []byte(`"clusters":[]`)) {
		t.Errorf("--min-csize 1000 should drop every cluster: %s %v", out, err)
	}
	if _, err := capture(t, func() error { return cmdCluster([]string{"--sim", "2", file}) }); err == nil || !errors.Is(err, hac.ErrBadParam) {
		t.Errorf("--sim 2: err = %v, want ErrBadParam", err)
	}
}
