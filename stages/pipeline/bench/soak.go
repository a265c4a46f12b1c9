package main

import (
	"context"
	"fmt"
	"os"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/pipeline"
)

// runSoak runs every stage in this process on the video again and again (a new source each
// time, as a long-running deployment sees them) for o.soak, sampling RSS every second.
func runSoak(ctx context.Context, o options) (*SoakResult, error) {
	l, err := pipeline.StartLocal(ctx, pipeline.LocalOptions{Options: pipeline.Options{Models: models(o), Logger: quiet()}})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	start := time.Now()
	res := &SoakResult{Duration: o.soak.String()}
	var mu sync.Mutex
	var rss1 float64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if rss1 == 0 && time.Since(start) >= time.Minute {
				mu.Lock()
				rss1 = float64(rssKiB("VmRSS")) / 1024
				res.GoHeap1MinMiB = goHeapMiB()
				mu.Unlock()
				fmt.Fprintf(os.Stderr, "bench: soak: RSS after 1 minute %.0f MiB\n", rss1)
			}
		}
	})
	var accepted int64
	for i := 0; time.Since(start) < o.soak; i++ {
		r, err := l.Process(ctx, messages.IngestRequest{Source: fmt.Sprintf("soak-%d", i), URI: o.video, Params: messages.DefaultParams()})
		if err != nil {
			close(stop)
			wg.Wait()
			return nil, err
		}
		res.Sources++
		res.Frames += r.Result.FramesSeen
		accepted += r.Result.FramesAccepted
		if i%5 == 0 {
			fmt.Fprintf(os.Stderr, "bench: soak: %s, %d sources, RSS %.0f MiB, Go heap %.0f MiB\n", time.Since(start).Round(time.Second), res.Sources, float64(rssKiB("VmRSS"))/1024, goHeapMiB())
		}
	}
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	res.RSSEndMiB = float64(rssKiB("VmRSS")) / 1024
	res.GoHeapEndMiB = goHeapMiB()
	res.RSS1MinMiB = rss1
	if rss1 > 0 {
		res.GrowthPct = 100 * (res.RSSEndMiB - rss1) / rss1
	}
	res.PeakMiB = float64(rssKiB("VmHWM")) / 1024
	res.AcceptedPerSec = float64(accepted) / elapsed.Seconds()
	return res, nil
}

// goHeapMiB is the Go heap in use (objects, live or not yet swept): what of RSS is Go's.
func goHeapMiB() float64 {
	smp := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(smp)
	return float64(smp[0].Value.Uint64()) / (1 << 20)
}
