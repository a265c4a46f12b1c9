package main

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == launchArg {
		os.Exit(launch(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// A launched command's peak RSS is its own, however large this process has
// grown: a child started straight from it reports at least this process's
// peak (vfork shares its memory map until exec).
func TestLaunchedReportsTheCommandsOwnRSS(t *testing.T) {
	big := make([]byte, 300<<20)
	for i := range big {
		big[i] = 1
	}
	out, l, err := runLaunched("/bin/sh", "-c", "echo hello")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "hello\n" {
		t.Errorf("stdout %q, want the command's", out)
	}
	if l.MaxRSS <= 0 || l.MaxRSS > 100<<20 {
		t.Errorf("peak RSS %d MB, want the shell's few (this process holds %d MB)", l.MaxRSS>>20, len(big)>>20)
	}
	if l.Status != 0 || l.Seconds <= 0 {
		t.Errorf("status %d after %.3f s", l.Status, l.Seconds)
	}
	big[len(big)-1] = 2 // keep it

	if _, l, err := runLaunched("/bin/sh", "-c", "exit 3"); err == nil || l.Status != 3 {
		t.Errorf("exit 3: status %v, error %v; want 3 and an error", l, err)
	}
	if _, _, err := runLaunched("/nonexistent/command"); err == nil {
		t.Error("a missing command gave no error")
	}
}
