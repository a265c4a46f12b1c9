package pipeline_test

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
)

// peakRSS returns this process's peak resident set size in bytes (VmHWM).
func peakRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc/self/status")
	return 0
}

// Eight sources at once through one process (every stage, one embedded server): each gets its
// final result, all eight equal (same clip, same parameters), nothing dead-lettered or left
// pending. Logs the peak RSS. LOAD_FRAMES sets the frames per source (default 120; 0 = the
// whole 275-frame clip), LOAD_SOURCES the number of sources.
func TestLoadEightSourcesOneProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every model over 8 sources")
	}
	frames, sources := 120, 8
	if v := os.Getenv("LOAD_FRAMES"); v != "" {
		frames, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("LOAD_SOURCES"); v != "" {
		sources, _ = strconv.Atoi(v)
	}
	// Reset the peak RSS so it measures this test only (Linux: "5" to clear_refs).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	before := peakRSS(t)
	// The reader reads every source at once (its default is 4 at a time).
	c := startCluster(t, 0, map[string]pipeline.Tuning{pipeline.Reader: {Concurrency: sources}})
	started := time.Now()
	for i := 0; i < sources; i++ {
		c.ingest(t, fmt.Sprintf("load-%d", i), frames, 20)
	}
	results := make([]*messages.ClusterResult, sources)
	for i := range results {
		results[i] = c.final(t, fmt.Sprintf("load-%d", i))
	}
	elapsed := time.Since(started)
	c.drained(t)
	peak := peakRSS(t)

	ref := signature(results[0])
	total := int64(0)
	for i, r := range results {
		total += r.FramesSeen
		if r.Partial || (frames > 0 && r.FramesSeen != int64(frames)) || len(r.Clusters) == 0 {
			t.Errorf("load-%d: partial %v, %d frames seen, %d clusters", i, r.Partial, r.FramesSeen, len(r.Clusters))
		}
		if sig := signature(r); sig != ref {
			t.Errorf("load-%d differs from load-0:\n%s\nload-0:\n%s", i, sig, ref)
		}
	}
	dead, err := stage.ListDeadLetters(t.Context(), c.js, "dead.>")
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 0 {
		t.Errorf("%d dead letters, first: %+v", len(dead), dead[0])
	}
	t.Logf("%d sources × %d frames: %d frames in %s (%.1f frames/s), every result received and equal (%d accepted, %d faces, %d clusters each); peak RSS %.0f MiB (%.0f MiB before the stages started)",
		sources, results[0].FramesSeen, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(),
		results[0].FramesAccepted, results[0].Faces, len(results[0].Clusters), float64(peak)/(1<<20), float64(before)/(1<<20))
}
