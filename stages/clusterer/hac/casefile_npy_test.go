package hac

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestNPYCaseOracle: every SciPy oracle case saved as .npy + sidecar reads
// back equal and clusters to SciPy's answer.
func TestNPYCaseOracle(t *testing.T) {
	o := loadOracle(t)
	dir := t.TempDir()
	for i, c := range o.Cases {
		path := filepath.Join(dir, "case.npy")
		if err := WriteNPYCase(path, &c); err != nil {
			t.Fatal(err)
		}
		got, err := ReadCaseFile(path)
		if err != nil {
			t.Fatalf("case %d %s: %v", i, c.Name, err)
		}
		want := c
		want.Expected = nil
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("case %s: read back %+v", c.Name, got.Params())
		}
		r, err := got.Run()
		if err != nil {
			t.Fatalf("case %s: %v", c.Name, err)
		}
		if c.Expected != nil && !reflect.DeepEqual(r.Output().Clusters, nonNil(c.Expected.Clusters)) {
			t.Errorf("case %s: clusters %v, want %v", c.Name, r.Clusters, c.Expected.Clusters)
		}
	}
}

func nonNil(c [][]int) [][]int {
	if c == nil {
		return [][]int{}
	}
	return c
}

func TestNPYCaseSidecar(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.npy")
	c := &Case{Method: "single", Metric: "cosine", Sim: 0.3, MinCSize: 1, Points: [][]float64{{1, 0}, {0, 1}, {1, 1}}}
	if err := WriteNPYCase(path, c); err != nil {
		t.Fatal(err)
	}
	// No sidecar: the defaults.
	if err := os.Remove(SidecarPath(path)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCaseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Params() != DefaultParams() {
		t.Errorf("without sidecar: %+v, want the defaults", got.Params())
	}
	bad := map[string]string{
		`{"points": [[1, 2]]}`:       "points in the sidecar",
		`{"sim": 2}`:                 "bad sim",
		`{"timestamps": [1]}`:        "timestamps for 1 of 3 points",
		`{"method": "average"} junk`: "trailing text",
	}
	for text, why := range bad {
		if err := os.WriteFile(SidecarPath(path), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadCaseFile(path)
		if !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrBadParam) {
			t.Errorf("%s: %v", why, err)
		}
	}
	if err := os.WriteFile(path, []byte("\x93NUMPY\x01\x00garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCaseFile(path); !errors.Is(err, ErrBadInput) {
		t.Errorf("corrupt .npy: %v", err)
	}
}
