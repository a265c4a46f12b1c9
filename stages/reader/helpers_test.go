package reader_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
	"github.com/personcluster/personcluster/stages/vision"
)

// clip is the shared 640×360 H.264 sample (275 frames at 29.97 fps).
const clip = "../../../shared/testdata/video/short_hamilton_clip.mp4"

func sharedClip(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(clip); err != nil {
		t.Skipf("shared clip not available: %v", err)
	}
	return clip
}

func quietLogger() *slog.Logger {
	if os.Getenv("READER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testTopology has a short AckWait so a killed reader's request comes back quickly.
func testTopology() stage.Topology {
	return stage.Topology{AckWait: 2 * time.Second, MaxDeliver: 3}
}

func loopConfig() stage.Config {
	return stage.Config{Name: reader.StageName, Stream: stage.StreamIngest, Consumer: stage.ConsumerReader,
		BatchWait: 100 * time.Millisecond, RetryDelay: 100 * time.Millisecond, DrainTimeout: 2 * time.Second, Logger: quietLogger()}
}

func readerConfig(js jetstream.JetStream) reader.Config {
	return reader.Config{JetStream: js, AckTimeout: 5 * time.Second, ProgressEvery: 50 * time.Millisecond, ReconnectBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Reconnects: 3, Logger: quietLogger()}
}

// startReader runs a reader stage on js until the test ends (or stop is called).
func startReader(t *testing.T, js jetstream.JetStream, cfg reader.Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	kv, err := js.KeyValue(ctx, stage.SourcesBucket)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- stage.Run(ctx, js, loopConfig(), reader.New(cfg, kv)) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("reader stage: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("reader stage did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

func request(source, uri string) *messages.IngestRequest {
	return &messages.IngestRequest{Source: source, URI: uri, Params: messages.DefaultParams(), AtMillis: time.Now().UnixMilli()}
}

// ingest publishes req (msgID "" → the usual <source>.ingest).
func ingest(t *testing.T, js jetstream.JetStream, req *messages.IngestRequest, msgID string) {
	t.Helper()
	if msgID == "" {
		msgID = req.Source + ".ingest"
	}
	msg, err := stage.EncodeMsg(stage.Output{Subject: messages.Subject(messages.SubjectIngest, req.Source), MsgID: msgID, Message: req})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// finalStatus waits for the reader's done/failed/cancelled status event of source.
func finalStatus(t *testing.T, js jetstream.JetStream, source string, timeout time.Duration) *messages.Status {
	t.Helper()
	var last *messages.Status
	ok := readStream(t, js, stage.StreamStatus, messages.Subject(messages.SubjectStatus, source), timeout, func(m messages.Message) bool {
		st := m.(*messages.Status)
		last = st
		return st.State == messages.StateDone || st.State == messages.StateFailed || st.State == messages.StateCancelled
	})
	if !ok {
		t.Fatalf("no final status for %s within %v (last %+v)", source, timeout, last)
	}
	return last
}

// statuses returns every status event of source stored so far.
func statuses(t *testing.T, js jetstream.JetStream, source string) []*messages.Status {
	t.Helper()
	var out []*messages.Status
	readStream(t, js, stage.StreamStatus, messages.Subject(messages.SubjectStatus, source), 300*time.Millisecond, func(m messages.Message) bool {
		out = append(out, m.(*messages.Status))
		return false
	})
	return out
}

// frames reads frames.<source> from the start up to its EndOfStream.
func frames(t *testing.T, js jetstream.JetStream, source string, timeout time.Duration) ([]*messages.Frame, *messages.EndOfStream) {
	t.Helper()
	var fs []*messages.Frame
	var eos *messages.EndOfStream
	ok := readStream(t, js, stage.StreamFrames, messages.Subject(messages.SubjectFrames, source), timeout, func(m messages.Message) bool {
		switch v := m.(type) {
		case *messages.Frame:
			fs = append(fs, v)
		case *messages.EndOfStream:
			eos = v
			return true
		}
		return false
	})
	if !ok {
		t.Fatalf("no end of stream on frames.%s within %v (%d frames)", source, timeout, len(fs))
	}
	return fs, eos
}

// readStream feeds the messages of subject in stream to f with an ordered consumer until f
// returns true (→ true) or nothing arrives for timeout (→ false).
func readStream(t *testing.T, js jetstream.JetStream, stream, subject string, timeout time.Duration, f func(messages.Message) bool) bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(timeout))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			return false
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				continue
			}
			t.Fatalf("reading %s: %v", subject, err)
		}
		m, err := messages.Decode(msg.Data())
		if err != nil {
			t.Fatalf("undecodable message on %s: %v", msg.Subject(), err)
		}
		if f(m) {
			return true
		}
	}
}

func progressOf(t *testing.T, js jetstream.JetStream, source string) *reader.Progress {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), stage.SourcesBucket)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := reader.LoadProgress(context.Background(), kv, source)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ingestPending is the number of requests left in the INGEST work queue.
func ingestPending(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), stage.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// writeVideo writes n frames of w×h at fps with codec (e.g. "MJPG" in .avi); frame i is a flat
// colour that changes with i and carries its number.
func writeVideo(t testing.TB, path, codec string, n, w, h int, fps float64) {
	t.Helper()
	vw, err := gocv.VideoWriterFile(path, codec, fps, w, h, true)
	if err != nil || !vw.IsOpened() {
		t.Skipf("OpenCV cannot write %s with %s: %v", path, codec, err)
	}
	defer vw.Close()
	for i := 0; i < n; i++ {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(float64(i*7%256), float64(i*3%256), 128, 0), h, w, gocv.MatTypeCV8UC3)
		gocv.PutText(&m, fmt.Sprint(i), image.Pt(w/8, h/2), gocv.FontHersheyPlain, float64(h)/40, color.RGBA{255, 255, 255, 0}, 2)
		err := vw.Write(m)
		m.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// referenceJPEGs decodes path with a bare gocv loop and JPEG-encodes every frame as the reader
// does: what the reader must publish, frame by frame.
func referenceJPEGs(t testing.TB, path string, quality int) [][32]byte {
	t.Helper()
	vc, err := gocv.VideoCaptureFileWithAPI(path, gocv.VideoCaptureFFmpeg)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	m := gocv.NewMat()
	defer m.Close()
	var out [][32]byte
	for vc.Read(&m) {
		data, err := vision.EncodeJPEG(m, quality)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sha256.Sum256(data))
	}
	return out
}

func tempFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func start(t *testing.T, topo stage.Topology) *stagetest.Env {
	t.Helper()
	return stagetest.Start(t, topo)
}
