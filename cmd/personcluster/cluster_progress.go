package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
)

// clusterProgress shows a clustering's progress on w while it runs: on a terminal one line,
// rewritten every half second from the first second on (a short run shows nothing); elsewhere
// a line every ten seconds. The returned stop ends it, clearing a rewritten line; it may be
// called more than once.
func clusterProgress(w io.Writer, prog *hac.Progress, terminal bool) (stop func()) {
	if terminal {
		return reportProgress(w, prog, true, time.Second, 500*time.Millisecond)
	}
	return reportProgress(w, prog, false, 10*time.Second, 10*time.Second)
}

func reportProgress(w io.Writer, prog *hac.Progress, rewrite bool, first, every time.Duration) (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTimer(first)
		defer tick.Stop()
		width := 0
		for {
			select {
			case <-quit:
				if width > 0 {
					fmt.Fprint(w, "\r"+strings.Repeat(" ", width)+"\r")
				}
				return
			case <-tick.C:
			}
			line := progressText(prog.Snapshot(), time.Now())
			if line != "" {
				if rewrite {
					fmt.Fprint(w, "\r"+line+strings.Repeat(" ", max(0, width-len(line))))
					width = max(width, len(line))
				} else {
					fmt.Fprintln(w, line)
				}
			}
			tick.Reset(every)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-finished
	}
}

// progressText is one line on the state of a clustering: its step, the share done and, once
// the step is under way, the time it still needs at the rate so far.
func progressText(s hac.ProgressState, now time.Time) string {
	if s.Step == "" || s.Total <= 0 {
		return ""
	}
	done := min(s.Done, s.Total)
	line := fmt.Sprintf("cluster: %s %d%%", s.Step, done*100/s.Total)
	if s.Step == hac.StepReading {
		line += fmt.Sprintf(" of %.0f MB", float64(s.Total)/1e6)
	}
	if elapsed := now.Sub(s.Began); done > 0 && elapsed > 500*time.Millisecond {
		left := time.Duration(float64(elapsed) * float64(s.Total-done) / float64(done))
		line += fmt.Sprintf(", ETA %s", left.Round(time.Second))
	}
	return line
}
