package deploytest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/stages/internal/proctest"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/pipeline"
)

// loadRequest is a short slice of the Hamilton clip: its last 60 frames show 2–4 audience
// faces each, so every source reaches a final result with clusters quickly.
var loadRequest = []string{"--skip", "7", "--max-frames", "60", "--quota", "20"}

// Eight sources at once through a NATS server and one process per stage: every source gets
// its final result, all eight equal the one-process run's, and no process's memory grows with
// the number of sources beyond what its stage buffers (peak RSS logged).
func TestLoadEightSourcesAsProcesses(t *testing.T) {
	skipShort(t)
	video := testenv.Shared(t, hamiltonClip)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	d := startSingle(ctx, t)
	want, err := d.h.Baseline(ctx, video, loadRequest...)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	sources := make([]string, 8)
	for i := range sources {
		sources[i] = fmt.Sprintf("load%d", i)
		if err := ingest(ctx, d.h, []string{"--nats", d.url}, sources[i], video, loadRequest); err != nil {
			t.Fatal(err)
		}
	}
	for _, src := range sources {
		got, err := proctest.WaitFinal(ctx, d.js, src)
		if err != nil {
			t.Fatal(err)
		}
		if err := proctest.Compare(want, got); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
	var rss []string
	for _, name := range append([]string{"server"}, pipeline.All...) {
		p := d.server
		if name != "server" {
			p = d.stages[name]
		}
		kib, err := peakRSS(p.Pid())
		if err != nil {
			t.Fatal(err)
		}
		rss = append(rss, fmt.Sprintf("%s %d MiB", name, kib/1024))
	}
	t.Logf("8 sources × 60 frames (%d faces each) through 6 processes: all final and equal to the one-process run after %.1fs; peak RSS: %s",
		want.Faces, time.Since(started).Seconds(), strings.Join(rss, ", "))
}

// peakRSS reads a process's VmHWM (KiB) from /proc.
func peakRSS(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("deploytest: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
		}
	}
	return 0, fmt.Errorf("deploytest: no VmHWM for process %d", pid)
}
