package reader_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/vision"
)

// The shared clip, every frame: seq = index 0..274, times from the frame rate, 640×360 JPEGs
// identical to a bare decode + encode of the same file, then an EndOfStream and a done status.
func TestReadSharedClip(t *testing.T) {
	path := sharedClip(t)
	env := start(t, testTopology())
	startReader(t, env.JS, readerConfig(env.JS))
	ingest(t, env.JS, request("clip", path), "")

	st := finalStatus(t, env.JS, "clip", 60*time.Second)
	if st.State != messages.StateDone || st.Reason != "end" {
		t.Fatalf("final status %+v", st)
	}
	fs, eos := frames(t, env.JS, "clip", 5*time.Second)
	ref := referenceJPEGs(t, path, 90)
	if len(ref) != 275 || len(fs) != len(ref) {
		t.Fatalf("%d frames published, reference has %d", len(fs), len(ref))
	}
	for i, f := range fs {
		if f.Seq != int64(i) || f.Index != int64(i) {
			t.Fatalf("frame %d has seq %d index %d", i, f.Seq, f.Index)
		}
		if want := int64(math.Round(float64(i) * 1000 / 29.97)); f.PTSMillis != want {
			t.Errorf("frame %d pts %d, want %d", i, f.PTSMillis, want)
		}
		if f.Width != 640 || f.Height != 360 || f.Scale != 1 || f.Params != messages.DefaultParams() {
			t.Errorf("frame %d: %dx%d scale %v params %+v", i, f.Width, f.Height, f.Scale, f.Params)
		}
		if sha256.Sum256(f.JPEG) != ref[i] {
			t.Errorf("frame %d differs from the reference decode", i)
		}
		if err := f.Validate(); err != nil {
			t.Errorf("frame %d: %v", i, err)
		}
	}
	if eos.Frames != 275 || eos.FramesRead != 275 || eos.Corrupt != 0 || eos.Reason != "end" {
		t.Errorf("end of stream %+v", eos)
	}
	if st.FramesRead != 275 || st.FramesPublished != 275 || st.FramesTotal != 275 {
		t.Errorf("final status counts %+v", st)
	}
	p := progressOf(t, env.JS, "clip")
	if p.State != messages.StateDone || p.NextSeq != 275 || p.NextIndex != 275 || p.FramesRead != 275 {
		t.Errorf("progress %+v", p)
	}
	if n := ingestPending(t, env.JS); n != 0 {
		t.Errorf("%d ingest requests left in the work queue", n)
	}
	var sawReading bool
	for _, s := range statuses(t, env.JS, "clip") {
		sawReading = sawReading || s.State == messages.StateReading
		if s.Stage != reader.StageName {
			t.Errorf("status from stage %q", s.Stage)
		}
	}
	if !sawReading {
		t.Error("no reading status event")
	}
}

// A video written with gocv's VideoWriter, with every sampling option and a resize.
func TestSamplingAndResize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gen.avi")
	writeVideo(t, path, "MJPG", 100, 320, 240, 25)
	env := start(t, testTopology())
	startReader(t, env.JS, readerConfig(env.JS))

	req := request("sampled", path)
	req.Sampling = messages.Sampling{EveryN: 2, SkipSeconds: 1, StopSeconds: 3, MaxWidth: 160, JPEGQuality: 70}
	ingest(t, env.JS, req, "")
	limited := request("limited", path)
	limited.Sampling = messages.Sampling{TargetFPS: 5, MaxFrames: 4}
	ingest(t, env.JS, limited, "")

	st := finalStatus(t, env.JS, "sampled", 30*time.Second)
	if st.State != messages.StateDone || st.Reason != "stop" {
		t.Fatalf("final status %+v", st)
	}
	fs, eos := frames(t, env.JS, "sampled", 5*time.Second)
	var idx []int64
	for i, f := range fs {
		idx = append(idx, f.Index)
		if f.Seq != int64(i) || f.PTSMillis != f.Index*40 {
			t.Errorf("frame %d: seq %d pts %d index %d", i, f.Seq, f.PTSMillis, f.Index)
		}
		if f.Width != 160 || f.Height != 120 || f.Scale != 0.5 {
			t.Errorf("frame %d is %dx%d scale %v, want 160x120 scale 0.5", i, f.Width, f.Height, f.Scale)
		}
		if w, h, err := vision.JPEGSize(f.JPEG); err != nil || w != 160 || h != 120 {
			t.Errorf("frame %d JPEG: %dx%d %v", i, w, h, err)
		}
	}
	want := []int64{}
	for i := int64(26); i < 75; i += 2 {
		want = append(want, i)
	}
	if !equal(idx, want) {
		t.Errorf("indices %v, want %v", idx, want)
	}
	if eos.Frames != int64(len(want)) || eos.Reason != "stop" || eos.FramesRead != 75 {
		t.Errorf("end of stream %+v", eos)
	}

	st = finalStatus(t, env.JS, "limited", 30*time.Second)
	fs, eos = frames(t, env.JS, "limited", 5*time.Second)
	idx = idx[:0]
	for _, f := range fs {
		idx = append(idx, f.Index)
	}
	if st.State != messages.StateDone || eos.Reason != "max_frames" || !equal(idx, []int64{0, 5, 10, 15}) {
		t.Errorf("limited: status %+v, end %+v, indices %v", st, eos, idx)
	}
}

// Bad input fails the source with a clear reason, acknowledges the request (no retries) and
// leaves the reader serving the next source.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.avi")
	writeVideo(t, empty, "MJPG", 0, 160, 120, 25)
	cases := []struct {
		source, uri, reason string
	}{
		{"missing", filepath.Join(dir, "missing.mp4"), "no such file"},
		{"notvideo", tempFile(t, "notes.mp4", []byte("this is not a video\n")), "not a readable video"},
		{"folder", dir, "is a directory"},
		{"zero", empty, "has no readable frames"},
		{"silent-url", "http://127.0.0.1:1/stream.mjpg", "http://127.0.0.1:1/stream.mjpg did not answer after 4 attempts"},
		{"no-camera", "97", "did not answer"},
	}
	if clip, err := os.ReadFile(clip); err == nil {
		// An MP4 cut in half loses its index (the moov atom is at the end).
		cases = append(cases, struct{ source, uri, reason string }{"halfmp4", tempFile(t, "half.mp4", clip[:len(clip)/2]), "not a readable video"})
	}
	env := start(t, testTopology())
	startReader(t, env.JS, readerConfig(env.JS))
	for _, c := range cases {
		ingest(t, env.JS, request(c.source, c.uri), "")
	}
	good := filepath.Join(dir, "good.avi")
	writeVideo(t, good, "MJPG", 10, 160, 120, 25)
	ingest(t, env.JS, request("good", good), "")

	for _, c := range cases {
		st := finalStatus(t, env.JS, c.source, 30*time.Second)
		if st.State != messages.StateFailed || !strings.HasPrefix(st.Reason, "reader: ") || !strings.Contains(st.Reason, c.reason) {
			t.Errorf("%s: status %s %q, want failed with %q", c.source, st.State, st.Reason, c.reason)
		}
		fs, eos := frames(t, env.JS, c.source, 5*time.Second)
		if len(fs) != 0 || eos.Frames != 0 || !strings.HasPrefix(eos.Reason, "error: ") {
			t.Errorf("%s: %d frames, end %+v", c.source, len(fs), eos)
		}
		if p := progressOf(t, env.JS, c.source); p.State != messages.StateFailed || p.Reason != st.Reason {
			t.Errorf("%s: progress %+v", c.source, p)
		}
	}
	st := finalStatus(t, env.JS, "good", 30*time.Second)
	if fs, _ := frames(t, env.JS, "good", 5*time.Second); st.State != messages.StateDone || len(fs) != 10 {
		t.Errorf("good source after the bad ones: %+v, %d frames", st, len(fs))
	}
	if n := ingestPending(t, env.JS); n != 0 {
		t.Errorf("%d requests left in the work queue: failed sources must be acknowledged", n)
	}
}

// A file cut short yields its readable frames and ends "truncated"; frames that cannot be
// decoded in the middle are skipped and counted, and the frame numbers stay those of the file.
func TestTruncatedAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full.avi")
	writeVideo(t, full, "MJPG", 100, 160, 120, 25)
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	half := tempFile(t, "half.avi", data[:len(data)/2])
	corrupt := append([]byte(nil), data...)
	// Wipe the JPEG start markers of 5 frames in the middle (MJPG frames are independent).
	wiped := 0
	for i := len(corrupt) / 3; i < 2*len(corrupt)/3 && wiped < 5; i++ {
		if corrupt[i] == 0xFF && corrupt[i+1] == 0xD8 {
			for j := i; j < i+400 && j < len(corrupt); j++ {
				corrupt[j] = 0
			}
			wiped++
			i += 500
		}
	}
	broken := tempFile(t, "broken.avi", corrupt)
	// Every frame wiped: the container is fine, nothing decodes.
	allBad := append([]byte(nil), data...)
	for i := 0; i+1 < len(allBad); i++ {
		if allBad[i] == 0xFF && allBad[i+1] == 0xD8 {
			for j := i; j < i+600 && j < len(allBad); j++ {
				allBad[j] = 0
			}
		}
	}
	nothing := tempFile(t, "nothing.avi", allBad)

	env := start(t, testTopology())
	startReader(t, env.JS, readerConfig(env.JS))
	ingest(t, env.JS, request("half", half), "")
	ingest(t, env.JS, request("broken", broken), "")
	ingest(t, env.JS, request("nothing", nothing), "")

	st := finalStatus(t, env.JS, "half", 30*time.Second)
	fs, eos := frames(t, env.JS, "half", 5*time.Second)
	if st.State != messages.StateDone || !strings.HasPrefix(st.Reason, "truncated: the file ended after") || eos.Reason != "truncated" {
		t.Errorf("half: status %+v end %+v", st, eos)
	}
	if len(fs) < 30 || len(fs) > 60 || eos.Frames != int64(len(fs)) || eos.Corrupt != 0 || eos.FramesRead != int64(len(fs)) {
		t.Errorf("half: %d frames, end %+v", len(fs), eos)
	}
	for i, f := range fs {
		if f.Index != int64(i) {
			t.Fatalf("half: frame %d has index %d", i, f.Index)
		}
	}

	st = finalStatus(t, env.JS, "broken", 30*time.Second)
	fs, eos = frames(t, env.JS, "broken", 5*time.Second)
	if st.State != messages.StateDone || st.Reason != "end (5 undecodable frames skipped)" || eos.Reason != "end" || eos.Corrupt != 5 || eos.FramesRead != 95 || len(fs) != 95 {
		t.Errorf("broken: status %+v, end %+v, %d frames", st, eos, len(fs))
	}
	// The frames after the hole keep their place in the file: the last one is frame 99 at 3.96 s.
	if len(fs) > 0 {
		last := fs[len(fs)-1]
		if last.Index != 99 || last.PTSMillis != 3960 {
			t.Errorf("broken: last frame index %d pts %d, want 99 and 3960", last.Index, last.PTSMillis)
		}
	}
	var gap []int64
	for i := 1; i < len(fs); i++ {
		for k := fs[i-1].Index + 1; k < fs[i].Index; k++ {
			gap = append(gap, k)
		}
	}
	if len(gap) != 5 {
		t.Errorf("broken: skipped indices %v, want 5", gap)
	}

	st = finalStatus(t, env.JS, "nothing", 30*time.Second)
	if st.State != messages.StateFailed || !strings.Contains(st.Reason, "has no readable frames") {
		fs, eos := frames(t, env.JS, "nothing", 5*time.Second)
		t.Errorf("nothing: status %s %q; %d frames, end %+v", st.State, st.Reason, len(fs), eos)
	}
}

// A source that has finished is never read again: a new request for it is acknowledged and
// ignored, with a status event saying so.
func TestFinishedSourceNotReadTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gen.avi")
	writeVideo(t, path, "MJPG", 20, 160, 120, 25)
	env := start(t, testTopology())
	startReader(t, env.JS, readerConfig(env.JS))
	ingest(t, env.JS, request("once", path), "")
	finalStatus(t, env.JS, "once", 30*time.Second)
	ingest(t, env.JS, request("once", path), "once.ingest-again") // a new id gets past deduplication

	deadline := time.Now().Add(20 * time.Second)
	for {
		var ignored bool
		for _, s := range statuses(t, env.JS, "once") {
			ignored = ignored || strings.Contains(s.Reason, "request ignored")
		}
		if ignored {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second request was not reported as ignored")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fs, _ := frames(t, env.JS, "once", 5*time.Second)
	if len(fs) != 20 {
		t.Errorf("%d frames after two requests, want 20", len(fs))
	}
	if n := ingestPending(t, env.JS); n != 0 {
		t.Errorf("%d requests left in the work queue", n)
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gen.avi")
	writeVideo(t, path, "MJPG", 50, 160, 120, 25)
	env := start(t, testTopology())

	// Before any reader has started: the request is acknowledged without reading.
	ingest(t, env.JS, request("early", path), "")
	if err := reader.Cancel(ctx, env.JS, "early"); err != nil {
		t.Fatal(err)
	}
	if err := reader.Cancel(ctx, env.JS, "nobody"); !errors.Is(err, reader.ErrUnknownSource) {
		t.Errorf("cancelling an unknown source: %v", err)
	}
	if err := reader.Cancel(ctx, env.JS, "bad id"); err == nil {
		t.Error("cancelling a bad id succeeded")
	}
	if err := reader.CheckNew(ctx, env.JS, "early"); !errors.Is(err, reader.ErrSourceExists) {
		t.Errorf("CheckNew on a source being cancelled: %v", err)
	}
	startReader(t, env.JS, readerConfig(env.JS))
	st := finalStatus(t, env.JS, "early", 30*time.Second)
	fs, eos := frames(t, env.JS, "early", 5*time.Second)
	if st.State != messages.StateCancelled || eos.Reason != "cancelled" || len(fs) != 0 {
		t.Errorf("early: status %+v end %+v, %d frames", st, eos, len(fs))
	}
	if err := reader.Cancel(ctx, env.JS, "early"); err != nil {
		t.Errorf("cancelling a cancelled source again: %v, want nil (a repeated cancel is no error)", err)
	}
	if err := reader.CheckNew(ctx, env.JS, "fresh"); err != nil {
		t.Errorf("CheckNew on a new id: %v", err)
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
