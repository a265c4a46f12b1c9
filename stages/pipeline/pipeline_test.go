package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
)

// The whole pipeline in one process, on a real video, through a real in-process JetStream
// server: every stage runs its real model.
func TestRunLocalOnRealVideo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every model over a 275-frame clip")
	}
	video := testenv.Shared(t, "video/short_hamilton_clip.mp4")
	out := t.TempDir()
	req := messages.IngestRequest{Source: "hamilton", URI: video, Params: messages.DefaultParams()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	reg := stage.NewRegistry()
	res, err := pipeline.RunLocal(ctx, pipeline.LocalOptions{
		Options:  pipeline.Options{Models: pipeline.Models{Dir: testenv.ModelsDir(t), Threads: 1}, Metrics: reg},
		StoreDir: t.TempDir(), Out: out, Request: req,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Result
	var metrics strings.Builder
	if err := reg.WriteText(&metrics); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf(`personcluster_detector_frames_total{stage="detector",verdict="accepted"} %d`, r.FramesAccepted); !strings.Contains(metrics.String(), want) {
		t.Errorf("/metrics lacks %q:\n%s", want, metrics.String())
	}
	if !r.Final || r.Partial {
		t.Errorf("final=%v partial=%v, want a final, complete result", r.Final, r.Partial)
	}
	if r.FramesSeen != 275 {
		t.Errorf("frames seen %d, want all 275", r.FramesSeen)
	}
	// The clip opens on one performer, then shows the audience with 2–4 faces per frame.
	if r.FramesAccepted < int64(r.Params.Quota) || r.FramesAccepted > 200 {
		t.Errorf("accepted %d frames, want between the quota (%d) and 200", r.FramesAccepted, r.Params.Quota)
	}
	members := len(r.Dropped)
	for _, c := range r.Clusters {
		if len(c.Members) < r.Params.MinCSize {
			t.Errorf("cluster %d has %d members, fewer than min_csize", c.ID, len(c.Members))
		}
		for _, m := range c.Members {
			if m.Box.Width() <= 0 || m.Box.Bottom() > 360 || m.Box.Right() > 640 || m.Frame < 0 || m.Frame >= 275 {
				t.Errorf("member %+v has an impossible frame or box", m)
			}
		}
		members += len(c.Members)
	}
	if members != r.Faces || r.Faces < 2*int(r.FramesAccepted) {
		t.Errorf("%d faces in clusters and dropped, result says %d, accepted frames %d", members, r.Faces, r.FramesAccepted)
	}
	if len(r.Clusters) < 2 {
		t.Errorf("%d clusters; the clip shows several people", len(r.Clusters))
	}
	if r.Threshold <= 0 || r.FaceModel == "" || r.ClothModel == "" {
		t.Errorf("threshold %v, models %q %q", r.Threshold, r.FaceModel, r.ClothModel)
	}
	for _, f := range []string{"results.json", "montage.png", "index.html", "clusters/0"} {
		if _, err := os.Stat(filepath.Join(out, "hamilton", f)); err != nil {
			t.Errorf("output: %v", err)
		}
	}
	imgs, _ := filepath.Glob(filepath.Join(out, "hamilton", "clusters", "*", "*.jpg"))
	if len(imgs) != members-len(r.Dropped) {
		t.Errorf("%d upper-body images written, want %d", len(imgs), members-len(r.Dropped))
	}
}

// A file that is not a video fails with a clear reason, and the run still ends.
func TestRunLocalRefusesNonVideo(t *testing.T) {
	bogus := filepath.Join(t.TempDir(), "notes.mp4")
	if err := os.WriteFile(bogus, []byte("this is not a video"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := messages.IngestRequest{Source: "bogus", URI: bogus, Params: messages.DefaultParams()}
	res, err := pipeline.RunLocal(ctx, pipeline.LocalOptions{
		Options:  pipeline.Options{Models: pipeline.Models{Dir: testenv.ModelsDir(t), Threads: 1}},
		StoreDir: t.TempDir(), Request: req,
	})
	if err == nil || !strings.Contains(err.Error(), "could not be read") {
		t.Fatalf("err = %v, want a failure naming the unreadable source", err)
	}
	if res == nil || res.Result == nil || res.Result.Faces != 0 || !res.Result.Partial {
		t.Errorf("result %+v, want an empty partial result", res)
	}
}

func TestRunLocalMissingModels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req := messages.IngestRequest{Source: "x", URI: "x.mp4", Params: messages.DefaultParams()}
	_, err := pipeline.RunLocal(ctx, pipeline.LocalOptions{
		Options:  pipeline.Options{Models: pipeline.Models{Dir: t.TempDir()}},
		StoreDir: t.TempDir(), Request: req,
	})
	if !errors.Is(err, pipeline.ErrSetup) || !strings.Contains(err.Error(), "libonnxruntime.so") {
		t.Fatalf("err = %v, want ErrSetup naming the missing library", err)
	}
}
