package reader_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/stage"
)

// detectorStandIn drains frames.> on the detector's durable consumer, one message every
// delay, recording what it got: a slow detector.
type detectorStandIn struct {
	mu     sync.Mutex
	seqs   map[int64]int // deliveries per seq
	hashes map[int64][32]byte
	eos    *messages.EndOfStream
	done   chan struct{}
}

func startDetector(t *testing.T, js jetstream.JetStream, delay time.Duration) *detectorStandIn {
	t.Helper()
	d := &detectorStandIn{seqs: map[int64]int{}, hashes: map[int64][32]byte{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := js.Consumer(ctx, stage.StreamFrames, stage.ConsumerDetector)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for ctx.Err() == nil {
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond))
			if err != nil {
				continue
			}
			for msg := range batch.Messages() {
				m, err := messages.Decode(msg.Data())
				if err != nil {
					t.Errorf("detector stand-in: %v", err)
					continue
				}
				time.Sleep(delay)
				d.mu.Lock()
				switch v := m.(type) {
				case *messages.Frame:
					d.seqs[v.Seq]++
					d.hashes[v.Seq] = sha256.Sum256(v.JPEG)
				case *messages.EndOfStream:
					if d.eos == nil {
						close(d.done)
					}
					d.eos = v
				}
				d.mu.Unlock()
				_ = msg.Ack()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-stopped })
	return d
}

// A reader killed mid-video (its connection dropped: no ack, no nak, publishes in flight) is
// replaced by another after AckWait, which continues from the last stored frame. A slow
// detector behind a small stream throttles both readers. The detector sees every frame
// exactly once, identical to a bare decode of the file, then the end of stream.
func TestResumeAfterKilledReader(t *testing.T) {
	path := sharedClip(t)
	ref := referenceJPEGs(t, path, 90)
	topo := testTopology()
	topo.MaxBytes = 1 << 20 // about 35 of the clip's frames
	env := start(t, topo)
	det := startDetector(t, env.JS, 4*time.Millisecond)

	nc1, err := env.Server.Connect("reader-1")
	if err != nil {
		t.Fatal(err)
	}
	js1, err := broker.JetStream(nc1)
	if err != nil {
		t.Fatal(err)
	}
	cfg1 := readerConfig(js1)
	cfg1.AckTimeout = time.Second
	stop1 := startReader(t, js1, cfg1)
	ingest(t, env.JS, request("resumed", path), "")

	// Kill reader 1 once it has checkpointed a good part of the video.
	var killedAt *int64
	deadline := time.Now().Add(30 * time.Second)
	for killedAt == nil {
		if p := progressOf(t, env.JS, "resumed"); p != nil && p.NextSeq >= 100 {
			nc1.Close()
			killedAt = &p.NextSeq
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("reader 1 made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	first := progressOf(t, env.JS, "resumed")
	if first.NextSeq >= 275 || first.State != messages.StateReading {
		t.Fatalf("reader 1 was not killed mid-video: %+v", first)
	}
	stop1()
	t.Logf("reader 1 killed after %d checkpointed frames", *killedAt)

	startReader(t, env.JS, readerConfig(env.JS))
	select {
	case <-det.done:
	case <-time.After(60 * time.Second):
		t.Fatal("no end of stream after the second reader took over")
	}
	st := finalStatus(t, env.JS, "resumed", 10*time.Second)
	if st.State != messages.StateDone || st.FramesPublished != 275 || st.FramesRead != 275 {
		t.Errorf("final status %+v", st)
	}
	det.mu.Lock()
	defer det.mu.Unlock()
	if len(det.seqs) != 275 {
		t.Errorf("detector got %d distinct frames, want 275", len(det.seqs))
	}
	for seq := int64(0); seq < 275; seq++ {
		if n := det.seqs[seq]; n != 1 {
			t.Errorf("frame %d delivered %d times", seq, n)
		}
		if det.hashes[seq] != ref[seq] {
			t.Errorf("frame %d differs from the reference decode", seq)
		}
	}
	if det.eos.Frames != 275 || det.eos.Reason != "end" {
		t.Errorf("end of stream %+v", det.eos)
	}
	p := progressOf(t, env.JS, "resumed")
	if p.State != messages.StateDone || p.Owner == first.Owner {
		t.Errorf("final progress %+v (reader 1 was %s)", p, first.Owner)
	}
	if n := ingestPending(t, env.JS); n != 0 {
		t.Errorf("%d requests left in the work queue", n)
	}
}

// With nobody consuming, the reader fills the stream up to its byte limit and waits: memory
// and stream stay bounded, and its ack heartbeats keep the request from being redelivered to
// another reader meanwhile. Once a detector drains the stream the reader finishes.
func TestBackpressure(t *testing.T) {
	path := sharedClip(t)
	topo := testTopology()
	topo.MaxBytes = 1 << 20
	env := start(t, topo)
	startReader(t, env.JS, readerConfig(env.JS))
	startReader(t, env.JS, readerConfig(env.JS)) // a second reader that must not get the source
	ingest(t, env.JS, request("bounded", path), "")

	ctx := context.Background()
	frames, err := env.JS.Stream(ctx, stage.StreamFrames)
	if err != nil {
		t.Fatal(err)
	}
	var stalled uint64
	for end := time.Now().Add(3 * topo.AckWait); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		info, err := frames.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Bytes > uint64(topo.MaxBytes) {
			t.Fatalf("stream holds %d bytes, limit %d", info.State.Bytes, topo.MaxBytes)
		}
		stalled = info.State.Msgs
	}
	if stalled == 0 || stalled >= 275 {
		t.Fatalf("%d frames in the stream while nobody consumes: want the stream full and the reader waiting", stalled)
	}
	ingestCons, err := env.JS.Consumer(ctx, stage.StreamIngest, stage.ConsumerReader)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := ingestCons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ci.NumRedelivered != 0 || ci.NumAckPending != 1 {
		t.Errorf("request redelivered %d times (%d pending) while the reader waited for room", ci.NumRedelivered, ci.NumAckPending)
	}
	p := progressOf(t, env.JS, "bounded")
	if p.State != messages.StateReading || p.NextSeq == 0 || p.NextSeq > int64(stalled) {
		t.Errorf("progress while stalled %+v (%d frames stored)", p, stalled)
	}

	det := startDetector(t, env.JS, 0)
	select {
	case <-det.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the reader did not finish once the stream drained")
	}
	det.mu.Lock()
	defer det.mu.Unlock()
	if len(det.seqs) != 275 || det.eos.Frames != 275 {
		t.Errorf("detector got %d frames, end %+v", len(det.seqs), det.eos)
	}
}

// Without a JetStream handle the reader publishes through the stage's publisher, one frame at
// a time: same frames, same order.
func TestSyncPublishPath(t *testing.T) {
	path := sharedClip(t)
	env := start(t, testTopology())
	startReader(t, env.JS, readerConfig(nil))
	req := request("sync", path)
	req.Sampling.MaxFrames = 40
	ingest(t, env.JS, req, "")
	st := finalStatus(t, env.JS, "sync", 30*time.Second)
	fs, eos := frames(t, env.JS, "sync", 5*time.Second)
	ref := referenceJPEGs(t, path, 90)
	if st.State != messages.StateDone || len(fs) != 40 || eos.Frames != 40 || eos.Reason != "max_frames" {
		t.Fatalf("status %+v, end %+v, %d frames", st, eos, len(fs))
	}
	for i, f := range fs {
		if f.Seq != int64(i) || sha256.Sum256(f.JPEG) != ref[i] {
			t.Errorf("frame %d: seq %d or JPEG differs", i, f.Seq)
		}
	}
}

// A reader whose source has been claimed by another reader (its request lease ran out and the
// request went elsewhere) stops at its next checkpoint without ending the source.
func TestLostOwnershipStops(t *testing.T) {
	path := sharedClip(t)
	topo := testTopology()
	topo.MaxBytes = 1 << 20 // nobody consumes: the reader stalls with the stream full
	env := start(t, topo)
	startReader(t, env.JS, readerConfig(env.JS))
	ingest(t, env.JS, request("stolen", path), "")
	steal(t, env.JS, "stolen", func(p *reader.Progress) bool { return p.NextSeq > 0 })
	handedOver(t, env.JS, "stolen")
	if ok := readStream(t, env.JS, stage.StreamFrames, "frames.stolen", 300*time.Millisecond, func(m messages.Message) bool {
		_, eos := m.(*messages.EndOfStream)
		return eos
	}); ok {
		t.Error("the old reader ended a source it no longer owns")
	}
}

// steal makes "another-reader" the owner of source's progress once ready says it is time, as a
// reader that took the source over would: the reader holding it loses it at its next checkpoint.
func steal(t *testing.T, js jetstream.JetStream, source string, ready func(*reader.Progress) bool) {
	t.Helper()
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, stage.SourcesBucket)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p, rev, err := reader.LoadProgress(ctx, kv, source)
		if err != nil {
			t.Fatal(err)
		}
		if p != nil && ready(p) {
			p.Owner = "another-reader"
			data, _ := json.Marshal(p)
			if _, err := kv.Update(ctx, source, data, rev); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never got ready to be taken over: progress %+v", source, p)
		}
	}
}

// handedOver checks what a reader that lost source to "another-reader" leaves behind: it never
// writes over the new owner's progress, and it neither acks nor naks the request, which is the
// new owner's delivery now (an ack would take it from the work queue while the new owner
// reads). This test's "another-reader" holds no delivery, so once the ack wait runs out the
// request comes to the stage again and a reader takes the source back.
func handedOver(t *testing.T, js jetstream.JetStream, source string) {
	t.Helper()
	time.Sleep(500 * time.Millisecond) // ten progress periods: the old reader has stopped
	if p := progressOf(t, js, source); p.Owner != "another-reader" || p.State != messages.StateReading {
		t.Fatalf("the old reader wrote over the new owner's progress: %+v", p)
	}
	if n := ingestPending(t, js); n != 1 {
		t.Fatalf("%d requests in the work queue after the handover, want 1: the old reader settled the new owner's delivery", n)
	}
	for deadline := time.Now().Add(3 * testTopology().AckWait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p := progressOf(t, js, source); p.Owner != "another-reader" {
			return
		}
	}
	t.Errorf("the request did not come back after the ack wait: progress %+v", progressOf(t, js, source))
}

// A reader told to stop (SIGTERM) stops reading at once rather than after its drain timeout,
// saves its progress and leaves the request for the next reader, which finishes the source with
// every frame exactly once.
func TestShutdownHandsTheSourceOver(t *testing.T) {
	path := sharedClip(t)
	topo := testTopology()
	topo.MaxBytes = 1 << 20 // the reader waits on a full stream: a long read
	env := start(t, topo)
	det := startDetector(t, env.JS, 4*time.Millisecond)

	ctx, cancel := context.WithCancel(context.Background())
	kv, err := env.JS.KeyValue(ctx, stage.SourcesBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := loopConfig()
	cfg.DrainTimeout = 10 * time.Minute // without the stop signal the read would run on
	done := make(chan error, 1)
	go func() { done <- stage.Run(ctx, env.JS, cfg, reader.New(readerConfig(env.JS), kv)) }()
	ingest(t, env.JS, request("handover", path), "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p := progressOf(t, env.JS, "handover"); p != nil && p.NextSeq >= 60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("reader stage: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the reader kept reading after it was told to stop")
	}
	first := progressOf(t, env.JS, "handover")
	if first.State != messages.StateReading || first.NextSeq >= 275 {
		t.Fatalf("progress after the stop: %+v", first)
	}

	startReader(t, env.JS, readerConfig(env.JS))
	select {
	case <-det.done:
	case <-time.After(60 * time.Second):
		t.Fatal("no end of stream after the second reader took over")
	}
	det.mu.Lock()
	defer det.mu.Unlock()
	for seq := int64(0); seq < 275; seq++ {
		if n := det.seqs[seq]; n != 1 {
			t.Errorf("frame %d delivered %d times", seq, n)
		}
	}
	if st := finalStatus(t, env.JS, "handover", 10*time.Second); st.State != messages.StateDone || st.FramesPublished != 275 {
		t.Errorf("final status %+v", st)
	}
}

// stallingJetStream never acknowledges the frames of one source from seq stallFrom on: the
// publish reached a node that died, which no in-process server can do. Everything else is the
// real JetStream.
type stallingJetStream struct {
	jetstream.JetStream
	subject   string
	stallFrom int64
}

func (s stallingJetStream) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if msg.Subject == s.subject {
		if f, err := messages.Decode(msg.Data); err == nil {
			if fr, ok := f.(*messages.Frame); ok && fr.Seq >= s.stallFrom {
				return stalledAck{msg: msg}, nil
			}
		}
	}
	return s.JetStream.PublishMsgAsync(msg, opts...)
}

type stalledAck struct{ msg *nats.Msg }

func (stalledAck) Ok() <-chan *jetstream.PubAck { return nil }
func (stalledAck) Err() <-chan error            { return nil }
func (a stalledAck) Msg() *nats.Msg             { return a.msg }

// A reader that has queued its source's last frame and loses the source while some of those
// frames wait for acks that never come must not end the source: an end of stream counting
// only the acknowledged frames made the clusterer close the source early with a partial
// result, and the new owner's end came too late (seen in the 3-node test when a node died).
func TestLostOwnershipWithFramesInFlightEndsNothing(t *testing.T) {
	path := sharedClip(t)
	env := start(t, testTopology())
	cfg := readerConfig(stallingJetStream{JetStream: env.JS, subject: "frames.inflight", stallFrom: 10})
	cfg.AckTimeout = time.Minute // the stalled acks outlast the test
	startReader(t, env.JS, cfg)
	req := request("inflight", path)
	req.Sampling.MaxFrames = 20 // fewer than the publish window: every frame is queued at once
	ingest(t, env.JS, req, "")
	steal(t, env.JS, "inflight", func(p *reader.Progress) bool { return p.NextSeq == 10 })
	if ok := readStream(t, env.JS, stage.StreamFrames, "frames.inflight", 300*time.Millisecond, func(m messages.Message) bool {
		eos, ok := m.(*messages.EndOfStream)
		if ok {
			t.Logf("end of stream %+v", eos)
		}
		return ok
	}); ok {
		t.Error("the old reader ended a source it no longer owns, with frames unacknowledged")
	}
	handedOver(t, env.JS, "inflight")
}

// A source outlives any number of reader restarts: every stop hands the request back (one
// more delivery of it), so a limit on its deliveries would, after a few rolling restarts of
// the readers, leave a live camera unread for good with nothing said.
func TestManyHandoversKeepTheSource(t *testing.T) {
	path := sharedClip(t)
	topo := testTopology() // 3 deliveries before an input is given up
	topo.MaxBytes = 1 << 20
	env := start(t, topo)
	det := startDetector(t, env.JS, 4*time.Millisecond)
	kv, err := env.JS.KeyValue(context.Background(), stage.SourcesBucket)
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, env.JS, request("restarted", path), "")
	cfg := loopConfig()
	cfg.DrainTimeout = 10 * time.Minute
	for i := 1; i <= 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- stage.Run(ctx, env.JS, cfg, reader.New(readerConfig(env.JS), kv)) }()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if p := progressOf(t, env.JS, "restarted"); p != nil && p.NextSeq >= int64(30*i) {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("reader %d made no progress: %+v", i, progressOf(t, env.JS, "restarted"))
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
	}
	startReader(t, env.JS, readerConfig(env.JS))
	select {
	case <-det.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("no end of stream after 5 handovers: progress %+v", progressOf(t, env.JS, "restarted"))
	}
	det.mu.Lock()
	defer det.mu.Unlock()
	for seq := int64(0); seq < 275; seq++ {
		if n := det.seqs[seq]; n != 1 {
			t.Errorf("frame %d delivered %d times", seq, n)
		}
	}
}
