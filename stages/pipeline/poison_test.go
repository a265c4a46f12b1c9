package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// cluster is a running deployment in this process: a real JetStream server and every stage
// built by pipeline.Build with its real models.
type cluster struct {
	srv  *broker.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	stop func()
}

const testMaxDeliver = 3

// startCluster starts a server whose max payload is maxPayload (0: the default) and every stage.
func startCluster(t *testing.T, maxPayload int32, tuning map[string]pipeline.Tuning) *cluster {
	t.Helper()
	env := stagetest.StartServer(t, broker.ServerConfig{MaxPayload: maxPayload}, stage.Topology{MaxDeliver: testMaxDeliver})
	srv, nc, js := env.Server, env.NC, env.JS
	ctx := context.Background()
	if tuning == nil {
		tuning = map[string]pipeline.Tuning{}
	}
	for _, name := range pipeline.All {
		tu := tuning[name]
		tu.MaxDeliver = testMaxDeliver
		tuning[name] = tu
	}
	opts := pipeline.Options{Models: pipeline.Models{Dir: testenv.ModelsDir(t), Threads: 1}, Tuning: tuning}
	var specs []*pipeline.Spec
	for _, name := range pipeline.All {
		sp, err := pipeline.Build(ctx, name, js, opts)
		if err != nil {
			pipeline.CloseAll(specs)
			t.Fatal(err)
		}
		specs = append(specs, sp)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- pipeline.Run(runCtx, js, specs) }()
	c := &cluster{srv: srv, nc: nc, js: js}
	stopped := false
	c.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stages: %v", err)
		}
	}
	t.Cleanup(c.stop)
	return c
}

// ingest queues a source: the test clip, at most maxFrames frames, quota accepted frames.
func (c *cluster) ingest(t *testing.T, source string, maxFrames, quota int) {
	t.Helper()
	p := messages.DefaultParams()
	p.Quota = quota
	req := &messages.IngestRequest{Source: source, URI: testenv.Shared(t, "video/short_hamilton_clip.mp4"),
		Sampling: messages.Sampling{MaxFrames: maxFrames}, Params: p}
	if err := pipeline.Ingest(context.Background(), c.js, req); err != nil {
		t.Fatal(err)
	}
}

// final waits for the final result of source (the test's timeout bounds the wait).
func (c *cluster) final(t *testing.T, source string) *messages.ClusterResult {
	t.Helper()
	results, err := c.js.Stream(context.Background(), stage.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	for {
		raw, err := results.GetLastMsgForSubject(context.Background(), messages.Subject(messages.SubjectResults, source))
		if err == nil {
			r, err := messages.DecodeAs[*messages.ClusterResult](raw.Data)
			if err != nil {
				t.Fatalf("result of %s: %v", source, err)
			}
			if r.Final {
				return r
			}
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publish stores raw bytes on subject under a unique message id.
func (c *cluster) publish(t *testing.T, subject string, data []byte) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("poison.%s.%d", subject, time.Now().UnixNano()))
	if _, err := c.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatalf("publishing %d bytes to %s: %v", len(data), subject, err)
	}
}

// drained waits until every stage's consumer has nothing pending and nothing awaiting an ack:
// each input was either processed or dead-lettered, none is left behind.
func (c *cluster) drained(t *testing.T) {
	t.Helper()
	for _, sc := range (stage.Topology{}).Consumers() {
		cons, err := c.js.Consumer(context.Background(), sc.Stream, sc.Config.Durable)
		if err != nil {
			t.Fatal(err)
		}
		for {
			ci, err := cons.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if ci.NumPending == 0 && ci.NumAckPending == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// deadLetters waits until PC_DEAD holds at least n dead letters and returns them.
func (c *cluster) deadLetters(t *testing.T, n int) []stage.DeadEntry {
	t.Helper()
	for {
		got, err := stage.ListDeadLetters(context.Background(), c.js, "dead.>")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= n {
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 5), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bombJPEG is a JPEG header declaring 60000×60000 pixels (10.8 GB decoded) in 30 bytes.
func bombJPEG() []byte {
	return []byte{0xFF, 0xD8, // SOI
		0xFF, 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xEA, 0x60, 0x03, // SOF0: 8 bits, 60000×60000, 3 components
		0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01,
		0xFF, 0xD9} // EOI
}

func enc(t *testing.T, m messages.Message) []byte {
	t.Helper()
	data, err := messages.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// envelope writes a message envelope by hand: any type name and version.
func envelope(t *testing.T, typ string, version int, body any) []byte {
	t.Helper()
	data, err := msgpack.Marshal([]any{typ, version, body})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// poison is one bad input and what must become of it.
type poison struct {
	name    string // also the source id, "p-"+name, unless subject says otherwise
	subject string
	data    []byte
	stages  []string // stages that must dead-letter it (faces.* reaches encoder and embedder)
	reason  string   // in every dead letter's reason
}

func poisons(t *testing.T, good string) []poison {
	p := messages.DefaultParams()
	small := testJPEG(t, 64, 48)
	corrupt := append([]byte(nil), small[:len(small)/2]...)
	frame := func(src string, jpegData []byte, w, h int) []byte {
		return enc(t, &messages.Frame{Source: src, Seq: 0, Index: 0, Width: w, Height: h, Scale: 1, JPEG: jpegData, Params: p})
	}
	faces := func(src string, crop []byte) []byte {
		ff := &messages.FrameFaces{Source: src, Seq: 0, Index: 0, Width: 640, Height: 360, Accepted: true, Detected: 2, Params: p}
		for i := 0; i < 2; i++ {
			ff.Faces = append(ff.Faces, messages.Face{Box: messages.Box{10, 40 + 40*i, 40, 10 + 40*i}, Score: 0.9,
				FaceJPEG: crop, FaceBox: messages.Box{2, 30, 30, 2}, ClothJPEG: crop, BodyJPEG: crop})
		}
		return enc(t, ff)
	}
	vec := func(n int, v float32) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = v + float32(i)/100
		}
		return out
	}
	facevec := func(src string, seq int64, vectors ...[]float32) []byte {
		fv := &messages.FaceVectors{Source: src, Seq: seq, Index: seq, Accepted: true, Model: "test", Params: p}
		for range vectors {
			fv.Boxes = append(fv.Boxes, messages.Box{10, 40, 40, 10})
		}
		fv.Vectors = vectors
		return enc(t, fv)
	}
	nan := vec(512, 0.1)
	nan[7] = float32(math.NaN())
	garbage := []byte("\x93garbage\xc1") // an envelope whose type is not a string
	version := func(typ messages.Type) []byte {
		return envelope(t, string(typ), messages.Version+98, map[string]any{"source": "x"})
	}
	// A raw ClothVectors with vectors of different lengths (Encode would not refuse it, but be clear).
	ragged := enc(t, &messages.ClothVectors{Source: "p-ragged", Seq: 0, Accepted: true, Model: "test", Params: p,
		Vectors: [][]float32{vec(512, 0.1), vec(511, 0.1)}})
	escape := &messages.IngestRequest{Source: "p-escape", URI: "/etc/passwd", Params: p}
	escapeData, err := msgpack.Marshal([]any{string(messages.TypeIngestRequest), messages.Version,
		map[string]any{"source": "../../etc", "uri": "/etc/passwd", "params": escape.Params, "sampling": map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	return []poison{
		// reader: ingest.*
		{"ingest-garbage", "ingest.p-ingest-garbage", garbage, []string{"reader"}, "malformed"},
		{"ingest-type", "ingest.p-ingest-type", envelope(t, "personcluster.bogus", 1, map[string]any{}), []string{"reader"}, "unknown message type"},
		{"ingest-version", "ingest.p-ingest-version", version(messages.TypeIngestRequest), []string{"reader"}, "unsupported schema version"},
		{"ingest-wrongtype", "ingest.p-ingest-wrongtype", frame("p-ingest-wrongtype", small, 64, 48), []string{"reader"}, "unexpected"},
		{"ingest-escape", "ingest.p-escape", escapeData, []string{"reader"}, "bad source id"},
		// detector: frames.*
		{"frame-garbage", "frames.p-frame-garbage", garbage, []string{"detector"}, "malformed"},
		{"frame-good-garbage", "frames." + good, garbage, []string{"detector"}, "malformed"},
		{"frame-type", "frames.p-frame-type", envelope(t, "personcluster.frame.v2", 1, map[string]any{}), []string{"detector"}, "unknown message type"},
		{"frame-version", "frames.p-frame-version", version(messages.TypeFrame), []string{"detector"}, "unsupported schema version"},
		{"frame-corrupt-jpeg", "frames.p-frame-corrupt-jpeg", frame("p-frame-corrupt-jpeg", corrupt, 64, 48), []string{"detector"}, "corrupt or truncated JPEG"},
		{"frame-not-jpeg", "frames.p-frame-not-jpeg", frame("p-frame-not-jpeg", []byte("GIF89a...."), 64, 48), []string{"detector"}, "not a JPEG"},
		{"frame-bomb", "frames.p-frame-bomb", frame("p-frame-bomb", bombJPEG(), 640, 480), []string{"detector"}, "60000x60000, at most 16384"},
		{"frame-huge-size", "frames.p-frame-huge-size", frame("p-frame-huge-size", small, 60000, 60000), []string{"detector"}, "frame size 60000x60000"},
		{"frame-size-mismatch", "frames.p-frame-size-mismatch", frame("p-frame-size-mismatch", small, 640, 480), []string{"detector"}, "JPEG is 64x48, message says 640x480"},
		{"frame-wrongtype", "frames.p-frame-wrongtype", enc(t, &messages.Status{Source: "p-frame-wrongtype", Stage: "x", State: "y"}), []string{"detector"}, "unexpected"},
		// 9 MiB: over the stages' 8 MiB bound, under this server's max payload; kept whole.
		{"frame-oversized", "frames.p-frame-oversized", append(frame("p-frame-oversized", small, 64, 48), make([]byte, 9<<20)...), []string{"detector"}, "message too large"},
		// Just under the server's max payload: its dead letter could not hold it, so it is truncated.
		{"frame-max-payload", "frames.p-frame-max-payload", make([]byte, 16<<20-4096), []string{"detector"}, "message too large"},
		// encoder and embedder: faces.*
		{"faces-garbage", "faces.p-faces-garbage", garbage, []string{"encoder", "embedder"}, "malformed"},
		{"faces-version", "faces.p-faces-version", version(messages.TypeFrameFaces), []string{"encoder", "embedder"}, "unsupported schema version"},
		{"faces-corrupt-jpeg", "faces.p-faces-corrupt-jpeg", faces("p-faces-corrupt-jpeg", corrupt), []string{"encoder", "embedder"}, "corrupt or truncated JPEG"},
		{"faces-bomb", "faces.p-faces-bomb", faces("p-faces-bomb", bombJPEG()), []string{"encoder", "embedder"}, "60000x60000, at most 16384"},
		{"faces-wrongtype", "faces.p-faces-wrongtype", frame("p-faces-wrongtype", small, 64, 48), []string{"encoder", "embedder"}, "unexpected"},
		// clusterer: facevec.*, clothvec.*
		{"facevec-garbage", "facevec.p-facevec-garbage", garbage, []string{"clusterer"}, "malformed"},
		{"facevec-nan", "facevec.p-facevec-nan", facevec("p-facevec-nan", 0, nan, vec(512, 0.2)), []string{"clusterer"}, "not finite"},
		{"clothvec-ragged", "clothvec.p-ragged", ragged, []string{"clusterer"}, "has length 511"},
		{"clothvec-type", "clothvec.p-clothvec-type", envelope(t, "personcluster.bogus", 1, nil), []string{"clusterer"}, "unknown message type"},
		{"clothvec-version", "clothvec.p-clothvec-version", version(messages.TypeClothVectors), []string{"clusterer"}, "unsupported schema version"},
		{"facevec-too-long", "facevec.p-facevec-too-long", facevec("p-facevec-too-long", 0, vec(messages.MaxVectorDim+1, 0.1)), []string{"clusterer"}, "max 8192"},
		// The source's first face vectors are 512-d; a later frame's 3-d ones are refused.
		{"facevec-dim", "facevec.p-facevec-dim", facevec("p-facevec-dim", 1, vec(3, 0.1), vec(3, 0.2)), []string{"clusterer"}, "face vectors of length 3, the source's have 512"},
	}
}

// Every kind of bad input, published to the subject its stage consumes while a good source is
// processed, ends as a dead letter with its reason and its original bytes; the stages keep
// serving, the good source's result equals a clean run's, and nothing is left unprocessed.
func TestPoisonInputsAreDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every model")
	}
	started := time.Now()
	c := startCluster(t, 16<<20, nil)

	// A clean run first: the reference result.
	c.ingest(t, "clean", 80, 20)
	clean := c.final(t, "clean")

	const good = "good"
	ps := poisons(t, good)
	// The first 512-d face vectors of p-facevec-dim, which its bad frame must match.
	first := enc(t, &messages.FaceVectors{Source: "p-facevec-dim", Seq: 0, Accepted: true, Model: "test",
		Vectors: [][]float32{make([]float32, 512), make([]float32, 512)}, Boxes: []messages.Box{{1, 2, 2, 1}, {1, 2, 2, 1}}, Params: messages.DefaultParams()})
	c.publish(t, "facevec.p-facevec-dim", first)
	c.ingest(t, good, 80, 20)
	for i, p := range ps {
		c.publish(t, p.subject, p.data)
		if i == len(ps)/2 {
			c.ingest(t, "good2", 40, 10) // a second good source starts while poison is in flight
		}
	}
	want := 0
	for _, p := range ps {
		want += len(p.stages)
	}
	dead := c.deadLetters(t, want)
	res := c.final(t, good)
	res2 := c.final(t, "good2")
	c.drained(t)
	// Nothing more arrived while draining.
	dead = c.deadLetters(t, want)
	if len(dead) != want {
		t.Errorf("%d dead letters, want %d", len(dead), want)
	}

	// Each poison input: one dead letter per consuming stage, on dead.<stage>.<source>, with the
	// reason, after at most MaxDeliver attempts, holding the original bytes.
	deadStream, err := c.js.Stream(context.Background(), stage.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	bySubject := map[string][]stage.DeadEntry{}
	for _, d := range dead {
		bySubject[d.Subject] = append(bySubject[d.Subject], d)
	}
	var table strings.Builder
	for _, p := range ps {
		got := bySubject[p.subject]
		var stages []string
		for _, d := range got {
			stages = append(stages, d.Stage)
			source := p.subject[strings.IndexByte(p.subject, '.')+1:]
			if d.Source != source || !strings.Contains(d.Reason, p.reason) || d.Deliveries < 1 || d.Deliveries > testMaxDeliver {
				t.Errorf("%s: dead letter at %s: source %q, %d deliveries, reason %q (want %q)", p.name, d.Stage, d.Source, d.Deliveries, d.Reason, p.reason)
			}
			raw, err := deadStream.GetMsg(context.Background(), d.Seq)
			if err != nil {
				t.Fatal(err)
			}
			if raw.Subject != messages.DeadSubject(d.Stage, source) {
				t.Errorf("%s: dead letter on %s", p.name, raw.Subject)
			}
			dl, err := messages.DecodeAs[*messages.DeadLetter](raw.Data)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case dl.Truncated:
				if p.name != "frame-max-payload" || dl.Size != int64(len(p.data)) || !bytes.HasPrefix(p.data, dl.Data) {
					t.Errorf("%s: truncated dead letter (size %d, %d bytes kept)", p.name, dl.Size, len(dl.Data))
				}
			case !bytes.Equal(dl.Data, p.data):
				t.Errorf("%s: the dead letter does not hold the original %d bytes (%d)", p.name, len(p.data), len(dl.Data))
			}
			fmt.Fprintf(&table, "  %-20s %-9s %-10s %8d B  %s\n", p.name, d.Stage, p.subject[:strings.IndexByte(p.subject, '.')], len(p.data), firstLine(d.Reason, 110))
		}
		slices.Sort(stages)
		if wantStages := slices.Sorted(slices.Values(p.stages)); !reflect.DeepEqual(stages, wantStages) {
			t.Errorf("%s: dead-lettered by %v, want %v", p.name, stages, wantStages)
		}
	}
	t.Logf("%d poison inputs, %d dead letters:\n%s", len(ps), len(dead), table.String())

	// The good sources processed around the poison got their results, equal to the clean run's.
	if sig, want := signature(res), signature(clean); sig != want {
		t.Errorf("good source result differs from the clean run:\n%s\nclean:\n%s", sig, want)
	}
	if res.Partial || res.FramesSeen != 80 || res.FramesAccepted < 20 || len(res.Clusters) == 0 {
		t.Errorf("good: partial %v, %d frames seen, %d accepted, %d clusters", res.Partial, res.FramesSeen, res.FramesAccepted, len(res.Clusters))
	}
	if res2.Partial || res2.FramesSeen != 40 || len(res2.Clusters) == 0 {
		t.Errorf("good2: partial %v, %d frames seen, %d clusters", res2.Partial, res2.FramesSeen, len(res2.Clusters))
	}
	t.Logf("good: %d frames, %d accepted, %d faces, %d clusters (clean run identical); good2: %d frames, %d clusters",
		res.FramesSeen, res.FramesAccepted, res.Faces, len(res.Clusters), res2.FramesSeen, len(res2.Clusters))

	// Replay re-injects a dead letter: the stage gets it again (and, still bad, dead-letters it
	// again, marked as a replay); the replayed letter is gone.
	var corrupt stage.DeadEntry
	for _, d := range dead {
		if d.Subject == "frames.p-frame-corrupt-jpeg" {
			corrupt = d
		}
	}
	r, err := stage.ReplayDeadLetter(context.Background(), c.js, corrupt.Seq, false)
	if err != nil || r.Subject != corrupt.Subject || r.Duplicate {
		t.Fatalf("replay: %+v, %v", r, err)
	}
	again := c.deadLetters(t, want)
	c.drained(t)
	var replayed *stage.DeadEntry
	for i, d := range again {
		if d.Seq == corrupt.Seq {
			t.Errorf("the replayed dead letter %d is still stored", d.Seq)
		}
		if d.Subject == corrupt.Subject {
			replayed = &again[i]
		}
	}
	if replayed == nil || replayed.Deliveries != 1 || !strings.Contains(replayed.Reason, "corrupt or truncated JPEG") ||
		len(replayed.Headers[stage.ReplayHeader]) != 1 || replayed.Headers[stage.ReplayHeader][0] != strconv.FormatUint(corrupt.Seq, 10) {
		t.Errorf("after replay: %+v", replayed)
	}
	t.Logf("poison test: %d inputs, %d dead letters, 3 good sources, 1 replay in %s", len(ps), len(dead), time.Since(started).Round(time.Millisecond))
}

func firstLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// signature is a result's counts and partition (frame, face) per cluster, for comparing runs.
func signature(r *messages.ClusterResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frames %d accepted %d faces %d dropped %d threshold %.6f\n", r.FramesSeen, r.FramesAccepted, r.Faces, len(r.Dropped), r.Threshold)
	var clusters []string
	for _, c := range r.Clusters {
		var ms []string
		for _, m := range c.Members {
			ms = append(ms, fmt.Sprintf("%d/%d", m.Frame, m.Face))
		}
		clusters = append(clusters, strings.Join(ms, " "))
	}
	sort.Strings(clusters)
	b.WriteString(strings.Join(clusters, "\n"))
	return b.String()
}
