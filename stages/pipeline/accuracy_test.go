package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/evaluate"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/pipeline"
)

// The accuracy goal of the default settings (the tuned profile: cannot-links and the face
// model's calibrated cut) with both face backends: on the labelled cast video the people found
// are the people there (BCubed F ≥ 0.95) and the faces are found (recall ≥ 0.9).
func TestDefaultsClusterTheCastVideo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every model over a 240-frame video, twice")
	}
	video := testenv.Shared(t, "video/cast_public.mp4")
	truth, err := evaluate.LoadTruth(video + ".truth.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range []string{"onnx", "dlib"} {
		t.Run(backend, func(t *testing.T) {
			params := messages.DefaultParams()
			params.CannotLink, params.Cut = true, messages.CutCalibrated
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			_, err := pipeline.RunLocal(ctx, pipeline.LocalOptions{
				Options:  pipeline.Options{Models: pipeline.Models{Dir: testenv.ModelsDir(t), Threads: 1, FaceBackend: backend}},
				StoreDir: t.TempDir(), Out: out,
				Request: messages.IngestRequest{Source: "cast-" + backend, URI: video, Params: params},
			})
			if err != nil {
				t.Fatal(err)
			}
			faces, err := evaluate.LoadResults(filepath.Join(out, "cast-"+backend))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := evaluate.Evaluate(truth, faces, evaluate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			c := rep.Clustering
			t.Logf("%s: detection recall %.3f precision %.3f; %d clusters for %d identities, BCubed P %.3f R %.3f F %.3f",
				backend, rep.All.Recall, rep.All.Precision, c.Clusters, c.Identities, c.BCubed.Precision, c.BCubed.Recall, c.BCubed.F)
			if c.BCubed.F < 0.95 {
				t.Errorf("BCubed F %.3f < 0.95", c.BCubed.F)
			}
			if rep.All.Recall < 0.9 || rep.All.Precision < 0.9 {
				t.Errorf("detection recall %.3f, precision %.3f; want ≥ 0.9", rep.All.Recall, rep.All.Precision)
			}
		})
	}
}
