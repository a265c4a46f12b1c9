package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/output"
	"github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
)

// LiveSoakResult is the memory and the gallery of one long live source over time.
type LiveSoakResult struct {
	Duration string           `json:"duration"`
	Samples  []LiveSoakSample `json:"samples"`
}

// LiveSoakSample is one look at the process and the gallery.
type LiveSoakSample struct {
	Seconds      float64 `json:"s"`
	Windows      int     `json:"windows"`
	Frames       int64   `json:"frames"` // read so far (the video looped)
	RSSMiB       float64 `json:"rss_mib"`
	GoHeapMiB    float64 `json:"go_heap_mib"`
	People       int     `json:"people"`
	MaxExemplars int     `json:"max_exemplars_per_person"`
	MaxSources   int     `json:"max_sources_per_person"`
	GalleryKiB   float64 `json:"gallery_kib"` // the people bucket's stream
	GalleryMsgs  uint64  `json:"gallery_msgs"`
	ResultsKiB   float64 `json:"results_json_kib"`
}

// runSoakLive reads the video as one live source (the reader reopens a live file at its end,
// so it loops, its frames numbered on) in windows of 40 accepted frames linked to the people
// gallery, for o.soakLive, writing every window into results.json, and samples RSS, the
// gallery and results.json every o.soakEvery.
func runSoakLive(ctx context.Context, o options) (*LiveSoakResult, error) {
	out, err := os.MkdirTemp("", "personcluster-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	l, err := pipeline.StartLocal(ctx, pipeline.LocalOptions{Options: pipeline.Options{Models: models(o), Logger: quiet()}})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	js := l.JetStream()
	// A camera gives frames in real time; the looped file gives them as fast as they decode.
	// A small frames stream holds the reader back as a camera's pace would (it waits for room),
	// so the soak measures the pipeline's steady state, not a backlog of unread frames.
	for _, name := range []string{stage.StreamFrames, stage.StreamFaces} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return nil, err
		}
		info, err := st.Info(ctx)
		if err != nil {
			return nil, err
		}
		cfg := info.Config
		cfg.MaxBytes = 32 << 20
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("bench: soak-live: bounding %s: %w", name, err)
		}
	}
	const source = "soak-live"
	windows := make(chan *messages.ClusterResult, 64)
	sub, err := l.Conn().Subscribe(messages.Subject(messages.SubjectResults, source), func(m *nats.Msg) {
		if r, err := messages.DecodeAs[*messages.ClusterResult](m.Data); err == nil {
			windows <- r
		}
	})
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	var frames atomic.Int64
	stSub, err := l.Conn().Subscribe(messages.Subject(messages.SubjectStatus, source), func(m *nats.Msg) {
		if s, err := messages.DecodeAs[*messages.Status](m.Data); err == nil && s.FramesRead > 0 {
			frames.Store(s.FramesRead)
		}
	})
	if err != nil {
		return nil, err
	}
	defer stSub.Unsubscribe()
	params := messages.DefaultParams()
	params.CannotLink, params.Cut, params.Quota, params.Live = true, messages.CutCalibrated, 40, true
	if err := pipeline.Ingest(ctx, js, &messages.IngestRequest{Source: source, URI: o.video, Live: true, Params: params}); err != nil {
		return nil, err
	}
	obj, err := js.ObjectStore(ctx, stage.ImagesBucket)
	if err != nil {
		return nil, err
	}
	g, err := people.Open(ctx, js)
	if err != nil {
		return nil, err
	}
	kvStream, err := js.Stream(ctx, "KV_"+stage.PeopleBucket)
	if err != nil {
		return nil, err
	}
	res := &LiveSoakResult{Duration: o.soakLive.String()}
	start := time.Now()
	tick := time.NewTicker(o.soakEvery)
	defer tick.Stop()
	n := 0
	for time.Since(start) < o.soakLive {
		select {
		case r := <-windows:
			n++
			if _, err := output.Write(out, r, pipeline.ObjectFetcher(ctx, obj)); err != nil {
				return nil, err
			}
		case <-tick.C:
			s := LiveSoakSample{Seconds: time.Since(start).Seconds(), Windows: n, Frames: frames.Load(),
				RSSMiB: float64(rssKiB("VmRSS")) / 1024, GoHeapMiB: goHeapMiB()}
			ps, err := g.List(ctx)
			if err != nil {
				return nil, err
			}
			s.People = len(ps)
			for _, p := range ps {
				s.MaxExemplars = max(s.MaxExemplars, len(p.Exemplars))
				s.MaxSources = max(s.MaxSources, len(p.Sources))
			}
			if info, err := kvStream.Info(ctx); err == nil {
				s.GalleryKiB, s.GalleryMsgs = float64(info.State.Bytes)/1024, info.State.Msgs
			}
			if st, err := os.Stat(filepath.Join(out, source, "results.json")); err == nil {
				s.ResultsKiB = float64(st.Size()) / 1024
			}
			res.Samples = append(res.Samples, s)
			fmt.Fprintf(os.Stderr, "bench: soak-live %4.0fs: %3d windows, %6d frames, RSS %5.0f MiB, Go heap %4.0f MiB, %2d people (≤ %d exemplars, %d sources each), gallery %4.0f KiB in %d messages, results.json %5.0f KiB\n",
				s.Seconds, s.Windows, s.Frames, s.RSSMiB, s.GoHeapMiB, s.People, s.MaxExemplars, s.MaxSources, s.GalleryKiB, s.GalleryMsgs, s.ResultsKiB)
		}
	}
	return res, nil
}
