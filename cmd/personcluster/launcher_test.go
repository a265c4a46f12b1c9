//go:build !lean

package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildBoth builds the lean launcher and the plain build into one folder,
// as `make build` does, and returns their paths.
func buildBoth(t *testing.T) (lean, media string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the command twice")
	}
	dir := t.TempDir()
	lean, media = filepath.Join(dir, "personcluster"), filepath.Join(dir, mediaBinaryName)
	for _, b := range []struct{ out, tags string }{{media, ""}, {lean, "lean"}} {
		cmd := exec.Command("go", "build", "-tags", b.tags, "-o", b.out, "./cmd/personcluster")
		cmd.Dir = filepath.Join("..", "..") // the module root
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build -tags %q: %v\n%s", b.tags, err, msg)
		}
	}
	return lean, media
}

// mediaBinaryName is launcher.go's; that file is in the lean build only.
const mediaBinaryName = "personcluster-media"

// run runs bin with args and returns its stdout, stderr and exit status.
func runBinary(t *testing.T, env []string, bin string, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		status = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return o.String(), e.String(), status
}

// TestLeanLauncher: the lean build links none of the media libraries, runs
// `cluster` itself with the plain build's answer, hands other commands to
// the plain build beside it (output and exit status are the plain
// build's), and without it says what is missing.
func TestLeanLauncher(t *testing.T) {
	lean, media := buildBoth(t)

	f, err := elf.Open(lean)
	if err != nil {
		t.Fatal(err)
	}
	libs, err := f.ImportedLibraries()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range libs {
		if strings.Contains(lib, "opencv") || strings.Contains(lib, "dlib") || strings.Contains(lib, "onnxruntime") {
			t.Errorf("the lean build links %s", lib)
		}
	}

	c := filepath.Join(t.TempDir(), "case.json")
	if err := os.WriteFile(c, []byte(`{"method":"average","metric":"euclidean","sim":0.5,"min_csize":1,
		"points":[[0,0],[0,1],[5,5],[5,6],[9,0]]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"cluster", c},
		{"cluster", "--sim", "0.9", c},
		{"detector", "-h"},       // handed over: the detector's flags
		{"ingest"},               // handed over: usage error, status 2
		{"cluster", c + ".none"}, // the lean build's own error
		{"help"},
	} {
		lo, le, ls := runBinary(t, nil, lean, args...)
		mo, me, ms := runBinary(t, nil, media, args...)
		if lo != mo || le != me || ls != ms {
			t.Errorf("%v: lean build (status %d)\n%s%s\nplain build (status %d)\n%s%s", args, ls, lo, le, ms, mo, me)
		}
	}

	if err := os.Remove(media); err != nil {
		t.Fatal(err)
	}
	_, stderr, status := runBinary(t, []string{"PATH=" + t.TempDir()}, lean, "run", "video.mp4")
	if status != 1 || !strings.Contains(stderr, mediaBinaryName) || !strings.Contains(stderr, "PERSONCLUSTER_MEDIA_BINARY") {
		t.Errorf("run without the plain build: status %d, %q", status, stderr)
	}
	if _, stderr, status := runBinary(t, nil, lean, "bogus"); status != 2 || !strings.Contains(stderr, `unknown command "bogus"`) {
		t.Errorf("unknown command: status %d, %q", status, stderr)
	}
}
