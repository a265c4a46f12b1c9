// Package testenv finds the models and shared test data for tests.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// ModelsDir returns the models folder (PERSONCLUSTER_MODELS or models/data), failing the test
// with the command that fills it when it is missing.
func ModelsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PERSONCLUSTER_MODELS")
	if dir == "" {
		dir = filepath.Join(Root(), "models", "data")
	}
	if _, err := os.Stat(filepath.Join(dir, "lib", "libonnxruntime.so")); err != nil {
		t.Fatalf("models not found in %s: run `make deps` first (%v)", dir, err)
	}
	return dir
}

// Shared returns a path under ../shared/testdata, skipping the test when that folder is absent
// (it is beside the repository in CI and on development machines, never committed).
func Shared(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Root(), "..", "shared", "testdata", rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared test data %s not found: %v", rel, err)
	}
	return p
}
