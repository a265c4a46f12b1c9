package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
)

// Every run ends with a result or an error that names the cause: a source with more faces
// than the clusterer takes ends with a partial final result saying why, and a source one of
// whose inputs is dead-lettered where no later stage hears of it ends with that reason.
func TestRunLocalEndsEverySource(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every model")
	}
	video := testenv.Shared(t, "video/short_hamilton_clip.mp4")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := pipeline.StartLocal(ctx, pipeline.LocalOptions{
		Options:  pipeline.Options{Models: pipeline.Models{Dir: testenv.ModelsDir(t), Threads: 1}, Clusterer: clusterer.Config{MaxFaces: 30}},
		StoreDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	t.Run("dead letter nobody downstream heard of", func(t *testing.T) {
		// Bytes that are no message, on the source's frames subject: the detector dead-letters
		// them, and no frame count downstream can account for them.
		if _, err := l.JetStream().Publish(ctx, "frames.stray", []byte("\x93garbage")); err != nil {
			t.Fatal(err)
		}
		req := messages.IngestRequest{Source: "stray", URI: video, Sampling: messages.Sampling{MaxFrames: 20}, Params: messages.DefaultParams()}
		_, err := l.Process(ctx, req)
		var failed *stage.SourceFailedError
		if !errors.As(err, &failed) || failed.Stage != "detector" || !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("err = %v, want the detector's dead letter", err)
		}
	})

	t.Run("more faces than --max-source-faces", func(t *testing.T) {
		// With the people gallery off: with it, such a source is clustered in linked windows
		// (TestLongSourceByPerson).
		params := messages.DefaultParams()
		params.NoPeople = true
		req := messages.IngestRequest{Source: "many", URI: video, Sampling: messages.Sampling{MaxFrames: 120}, Params: params}
		res, err := l.Process(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		r := res.Result
		if !r.Final || !r.Partial || r.Faces > 30 || r.Faces == 0 || !strings.Contains(r.Reason, "--max-source-faces 30") {
			t.Errorf("final %v partial %v, %d faces, reason %q; want a partial final result of at most 30 faces naming the limit", r.Final, r.Partial, r.Faces, r.Reason)
		}
	})
}
