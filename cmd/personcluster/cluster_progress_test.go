package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
)

func TestProgressText(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		s    hac.ProgressState
		want string
	}{
		{hac.ProgressState{}, ""},
		{hac.ProgressState{Step: hac.StepReading, Done: 0, Total: 134e6, Began: now}, "cluster: reading 0% of 134 MB"},
		{hac.ProgressState{Step: hac.StepDistances, Done: 25, Total: 100, Began: now.Add(-3 * time.Second)}, "cluster: distances 25%, ETA 9s"},
		{hac.ProgressState{Step: hac.StepLinkage, Done: 50, Total: 100, Began: now.Add(-100 * time.Millisecond)}, "cluster: linkage 50%"},
		{hac.ProgressState{Step: hac.StepLinkage, Done: 120, Total: 100, Began: now.Add(-time.Second)}, "cluster: linkage 100%, ETA 0s"},
	} {
		if got := progressText(tc.s, now); got != tc.want {
			t.Errorf("progressText(%+v) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer written by the reporter's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// On a terminal the line is rewritten and cleared at the end; elsewhere each report is a line.
// A run that ends before the first report prints nothing.
func TestReportProgress(t *testing.T) {
	var prog hac.Progress
	if _, err := hac.ClusterProgress([][]float64{{0}, {1}, {5}}, nil, hac.DefaultParams(), &prog); err != nil {
		t.Fatal(err)
	}
	for _, rewrite := range []bool{true, false} {
		var out syncBuffer
		stop := reportProgress(&out, &prog, rewrite, time.Millisecond, time.Millisecond)
		time.Sleep(30 * time.Millisecond)
		stop()
		stop() // twice is fine
		got := out.String()
		if !strings.Contains(got, "cluster: linkage 100%") {
			t.Errorf("rewrite %v: %q", rewrite, got)
		}
		if rewrite && (!strings.HasPrefix(got, "\r") || !strings.HasSuffix(got, "\r") || strings.Contains(got, "\n")) {
			t.Errorf("rewritten line not cleared: %q", got)
		}
		if !rewrite && (strings.Contains(got, "\r") || !strings.HasSuffix(got, "\n")) {
			t.Errorf("lines: %q", got)
		}
	}
	var quiet syncBuffer
	clusterProgress(&quiet, &prog, true)()
	if quiet.String() != "" {
		t.Errorf("a short run printed %q", quiet.String())
	}
}
