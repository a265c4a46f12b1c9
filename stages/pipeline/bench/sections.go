package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/clusterer/hac"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/embedder"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/reader/readerbench"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

const benchSource = "bench"

func runSection(ctx context.Context, o options, name string) ([]StageRow, error) {
	switch name {
	case "reader":
		return benchReader(ctx, o)
	case "detector", "encoder", "embedder":
		return benchModelStage(ctx, o, name)
	case "clusterer":
		return benchClusterer(o)
	case "scaling":
		return benchScaling(ctx, o)
	}
	return nil, fmt.Errorf("bench: unknown section %q", name)
}

// benchReader: the reader stage (decode, JPEG, publish to a file-store JetStream, as in `run`)
// against a bare gocv decode loop over the same file, interleaved, median of 3.
func benchReader(ctx context.Context, o options) ([]StageRow, error) {
	env, err := readerbench.Start(readerbench.Options{})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	if _, err := readerbench.Bare(o.video); err != nil {
		return nil, err
	}
	if _, err := env.Read(ctx, o.video); err != nil {
		return nil, err
	}
	// The stage decodes each frame and encodes it as JPEG (quality 90, the default): the bare
	// loop does both, one after the other; decoding alone is the detail.
	var bare, decode, rd []float64
	for range 3 {
		b, err := readerbench.BareEncode(o.video, 90)
		if err != nil {
			return nil, err
		}
		d, err := readerbench.Bare(o.video)
		if err != nil {
			return nil, err
		}
		a, err := env.Read(ctx, o.video)
		if err != nil {
			return nil, err
		}
		bare, decode, rd = append(bare, b.FPS()), append(decode, d.FPS()), append(rd, a.FPS())
	}
	b, r := readerbench.Median(bare), readerbench.Median(rd)
	return []StageRow{{Stage: "reader", Unit: "frames/s", Rate: r, Bare: "gocv decode + JPEG 90 encode loop", BareR: b, Ratio: r / b,
		Detail: fmt.Sprintf("decode alone %.0f frames/s", readerbench.Median(decode))}}, nil
}

// env is an embedded JetStream server (memory storage) with the personcluster topology.
type env struct {
	*broker.Embedded
	dir string
}

func startEnv(ctx context.Context) (*env, error) {
	dir, err := os.MkdirTemp("", "pcbench-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir}
	if e.Embedded, err = broker.StartEmbedded(broker.ServerConfig{StoreDir: dir, InProcessOnly: true}, "pcbench"); err != nil {
		e.close()
		return nil, err
	}
	if err := (stage.Topology{Memory: true}).Ensure(ctx, e.JS); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.Embedded != nil {
		e.Embedded.Close()
	}
	os.RemoveAll(e.dir)
}

func (e *env) publish(ctx context.Context, subject string, seq int64, stageName string, m messages.Message) error {
	msg, err := stage.EncodeMsg(stage.Output{Subject: subject, MsgID: messages.MsgID(benchSource, seq, stageName), Message: m})
	if err != nil {
		return err
	}
	_, err = e.JS.PublishMsg(ctx, msg)
	return err
}

// frames decodes the video and returns its frames as the reader publishes them (JPEG 90).
func frames(path string) ([]*messages.Frame, error) {
	v, err := vision.OpenVideo(path)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	m := gocv.NewMat()
	defer m.Close()
	var out []*messages.Frame
	for i := int64(0); v.Read(&m); i++ {
		data, err := vision.EncodeJPEG(m, 90)
		if err != nil {
			return nil, err
		}
		out = append(out, &messages.Frame{Source: benchSource, Seq: i, Index: i, Width: m.Cols(), Height: m.Rows(), Scale: 1,
			JPEG: data, Params: messages.DefaultParams()})
	}
	return out, nil
}

// detectAndPublish runs the configured detector over the frames as the detector stage does and
// publishes its verdicts to the bench source's faces subject, for the stages after it; it
// returns the number of faces found.
func detectAndPublish(ctx context.Context, e *env, m pipeline.Models, fs []*messages.Frame) (int, error) {
	det, err := m.OpenDetector()
	if err != nil {
		return 0, err
	}
	ds, err := detector.New(detector.Config{}, det)
	if err != nil {
		return 0, err
	}
	defer ds.Close(ctx)
	faces := 0
	for _, f := range fs {
		ff, err := ds.Frame(f)
		if err != nil {
			return 0, err
		}
		if err := e.publish(ctx, messages.Subject(messages.SubjectFaces, benchSource), f.Seq, "detector", ff); err != nil {
			return 0, err
		}
		faces += len(ff.Faces)
	}
	return faces, nil
}

func models(o options) pipeline.Models {
	return pipeline.Models{Dir: o.models, ORTLib: o.ortLib, Threads: o.threads, EmbedderThreads: o.embThreads, Device: o.device,
		ClothMaxBatch: o.clothBatch}
}

// benchModelStage fills the stage's input stream (frames for the detector, the detector's
// FrameFaces for the encoder and the embedder), runs the stage as `run` builds it (its batch
// size, workers and threads) until every input is acked, and times the bare inference of its
// models on the same number of frames or faces at the same batch size and thread count, before
// and after the stage.
func benchModelStage(ctx context.Context, o options, name string) ([]StageRow, error) {
	fs, err := frames(o.video)
	if err != nil {
		return nil, err
	}
	e, err := startEnv(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	m := models(o)
	n, faces := 0, 0
	if name == pipeline.Detector {
		for _, f := range fs {
			if err := e.publish(ctx, messages.Subject(messages.SubjectFrames, benchSource), f.Seq, "reader", f); err != nil {
				return nil, err
			}
		}
		n = len(fs)
	} else {
		var err error
		if faces, err = detectAndPublish(ctx, e, m, fs); err != nil {
			return nil, err
		}
		n = len(fs)
	}
	fs = fs[:min(len(fs), 40)] // enough distinct frames for the bare detector

	// Bare inference, timed before and after the stage.
	var bare func() (float64, error)
	var bareWhat string
	var closeBare func()
	reg := stage.NewRegistry()
	spec, err := pipeline.Build(ctx, name, e.JS, pipeline.Options{Models: m, Logger: quiet(), Metrics: reg})
	if err != nil {
		return nil, err
	}
	unit := "frames/s"
	switch name {
	case pipeline.Detector:
		det, err := m.OpenDetector()
		if err != nil {
			return nil, err
		}
		u, ok := det.(*detector.UltraFace)
		if !ok {
			// Another detector (the default RetinaFace with its second look does more than one
			// inference a frame): the bare rate is its Detect on frames decoded beforehand.
			bare, bareWhat, closeBare, err = bareDetect(det, fs, n, o.threads)
			if err != nil {
				return nil, err
			}
			break
		}
		closeBare = func() { u.Close() }
		var blobs [][]float32
		for _, f := range fs {
			img, err := vision.DecodeJPEG(f.JPEG, messages.MaxFrameSide)
			if err != nil {
				return nil, err
			}
			b, err := u.Prepare(nil, img)
			img.Close()
			if err != nil {
				return nil, err
			}
			blobs = append(blobs, b)
		}
		bareWhat = fmt.Sprintf("ORT %s, batch 1, %d thread(s)%s", u.Name(), max(1, o.threads), onDevice(u))
		bare = func() (float64, error) {
			t0 := time.Now()
			for i := range n {
				if _, _, err := u.Infer(blobs[i%len(blobs)]); err != nil {
					return 0, err
				}
			}
			return float64(n) / time.Since(t0).Seconds(), nil
		}
	case pipeline.Encoder:
		unit = "faces/s"
		enc, err := m.OpenEncoder()
		if err != nil {
			return nil, err
		}
		// Both onnxruntime face encoders can run their networks alone on zeros.
		oe, ok := enc.(interface{ BareRun(n, batch int) error })
		if !ok {
			enc.Close()
			return nil, fmt.Errorf("bench: encoder %s does not run on onnxruntime (use --face-backend dlib-resnet or mobilefacenet)", enc.Name())
		}
		closeBare = func() { enc.Close() }
		// The stage encodes the faces of one pulled batch of messages together.
		batch := int(math.Round(float64(faces) / float64(n) * float64(spec.Config.BatchSize)))
		what := "fr_landmark + fr_feature"
		if _, ok := enc.(*encoder.ONNXEncoder); !ok {
			what = enc.Name() + " network"
		}
		bareWhat = fmt.Sprintf("ORT %s, batch %d, %d thread(s)%s", what, batch, max(1, o.threads), onDevice(enc))
		bare = func() (float64, error) {
			t0 := time.Now()
			for done := 0; done < faces; done += batch {
				if err := oe.BareRun(min(batch, faces-done), batch); err != nil {
					return 0, err
				}
			}
			return float64(faces) / time.Since(t0).Seconds(), nil
		}
	case pipeline.Embedder:
		unit = "faces/s"
		es, ok := spec.Processor.(*embedder.Stage)
		if !ok {
			return nil, fmt.Errorf("bench: embedder stage of type %T", spec.Processor)
		}
		if err := onnx.Init(m.Lib()); err != nil {
			return nil, err
		}
		th := m.EmbedderIntraOp()
		model, err := embedder.OpenModel(embedder.MobileNetV1, m.Dir, onnx.Options{Threads: th, Device: m.ONNXDevice(), Logger: quiet()})
		if err != nil {
			return nil, err
		}
		closeBare = func() { model.Close() }
		batch, lanes := es.Config().MaxBatch, es.Config().Inferences
		bareWhat = fmt.Sprintf("ORT %s, batch %d, %d thread(s), %d at once%s", model.Name(), batch, max(1, th), lanes, onDevice(model))
		blob := make([]float32, batch*model.ImageLen())
		bare = func() (float64, error) {
			// As the stage runs them: lanes inferences at once, over the same faces.
			t0 := time.Now()
			var next atomic.Int64
			errs := make([]error, lanes)
			var wg sync.WaitGroup
			for l := range lanes {
				wg.Go(func() {
					for {
						done := int(next.Add(int64(batch))) - batch
						if done >= faces {
							return
						}
						k := min(batch, faces-done)
						if _, err := model.Infer(blob[:k*model.ImageLen()], k); err != nil {
							errs[l] = err
							return
						}
					}
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return 0, err
			}
			return float64(faces) / time.Since(t0).Seconds(), nil
		}
	}
	defer closeBare()
	if _, err := bare(); err != nil { // warm-up
		return nil, err
	}
	b1, err := bare()
	if err != nil {
		return nil, err
	}
	if err := o.startProfiles(); err != nil {
		return nil, err
	}
	rate, err := runStage(ctx, e, name, spec, reg, n)
	if perr := o.stopProfiles(); perr != nil && err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	b2, err := bare()
	if err != nil {
		return nil, err
	}
	bareRate := (b1 + b2) / 2
	if unit == "faces/s" {
		rate *= float64(faces) / float64(n)
	}
	detail := fmt.Sprintf("%d workers, fetch batch %d", max(1, spec.Config.Concurrency), max(1, spec.Config.BatchSize))
	if es, ok := spec.Processor.(*embedder.Stage); ok {
		st := es.Stats()
		if st.Inferences > 0 {
			detail += fmt.Sprintf(", mean inference batch %.1f", float64(st.Images)/float64(st.Inferences))
		}
	}
	return []StageRow{{Stage: name, Unit: unit, Rate: rate, Bare: bareWhat, BareR: bareRate, Ratio: rate / bareRate, Detail: detail}}, nil
}

// runStage runs the built stage until n inputs are acked and returns inputs/s from its first
// ack to its last (model loading and the first batch are not throughput).
func runStage(ctx context.Context, e *env, name string, spec *pipeline.Spec, reg *stage.Registry, n int) (float64, error) {
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- stage.Run(sctx, e.JS, spec.Config, spec.Processor) }()
	defer func() {
		cancel()
		<-done
	}()
	m := reg.Stage(name)
	var t0 time.Time
	var a0 int64
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		a := m.Acked.Load() + m.Dead.Load()
		if a > 0 && t0.IsZero() {
			t0, a0 = time.Now(), a
		}
		if a >= int64(n) {
			if a == a0 {
				return 0, fmt.Errorf("bench: %s: every input acked in its first batch; not enough inputs to time", name)
			}
			return float64(a-a0) / time.Since(t0).Seconds(), nil
		}
		select {
		case err := <-done:
			return 0, fmt.Errorf("bench: %s stopped: %v", name, err)
		case <-time.After(time.Millisecond):
		}
	}
	return 0, fmt.Errorf("bench: %s: %d of %d inputs acked after 10 minutes", name, m.Acked.Load(), n)
}

// benchClusterer: hac (pdist, linkage, cut) against scipy on the same synthetic fingerprints
// (clusters of 512+512-d points, the ONNX face and MobileNet clothing vectors' sizes).
func benchClusterer(o options) ([]StageRow, error) {
	var rows []StageRow
	for _, n := range []int{1000, 4000} {
		pts := synthPoints(n, 512+512, 1)
		var goT []float64
		for range 3 {
			t0 := time.Now()
			d, err := hac.Pdist(pts, hac.MetricEuclidean)
			if err != nil {
				return nil, err
			}
			thr := hac.Threshold(d, hac.DefaultSim)
			z, err := hac.LinkageInPlace(d, n, "average")
			if err != nil {
				return nil, err
			}
			if _, err := hac.Fcluster(z, thr); err != nil {
				return nil, err
			}
			goT = append(goT, time.Since(t0).Seconds())
		}
		sp, err := scipyTime(o.python, pts)
		if err != nil {
			return nil, err
		}
		g := readerbench.Median(goT)
		rows = append(rows, StageRow{Stage: fmt.Sprintf("clusterer n=%d", n), Unit: "clusterings/s", Rate: 1 / g,
			Bare: "scipy pdist+linkage+fcluster", BareR: 1 / sp, Ratio: sp / g})
	}
	goals, err := clusterGoalRows(o)
	if err != nil {
		return nil, err
	}
	return append(rows, goals...), nil
}

func synthPoints(n, dim int, seed uint64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 2))
	k := max(2, n/30)
	centres := make([][]float64, k)
	for i := range centres {
		centres[i] = make([]float64, dim)
		for j := range centres[i] {
			centres[i][j] = r.NormFloat64()
		}
	}
	pts := make([][]float64, n)
	for i := range pts {
		c := centres[r.IntN(k)]
		pts[i] = make([]float64, dim)
		for j := range pts[i] {
			pts[i][j] = c[j] + 0.4*r.NormFloat64()
		}
	}
	return pts
}

// scipyTime runs stages/clusterer/hac/bench/scipy_cluster.py on the points and returns its
// pdist+linkage+fcluster seconds.
func scipyTime(python string, pts [][]float64) (float64, error) {
	f, err := os.CreateTemp("", "pcbench-points-*.f64")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	if err := binary.Write(w, binary.LittleEndian, slices.Concat(pts...)); err != nil {
		return 0, err
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	f.Close()
	var best float64
	for range 3 {
		cmd := exec.Command(python, "stages/clusterer/hac/bench/scipy_cluster.py", f.Name(), strconv.Itoa(len(pts)), strconv.Itoa(len(pts[0])), "average",
			strconv.FormatFloat(hac.DefaultSim, 'g', -1, 64))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return 0, fmt.Errorf("bench: scipy (run from the repository root, with python3-scipy): %w", err)
		}
		var s struct {
			Total float64 `json:"total_s"`
		}
		if err := json.Unmarshal(out, &s); err != nil {
			return 0, fmt.Errorf("bench: scipy output: %w", err)
		}
		if best == 0 || s.Total < best {
			best = s.Total
		}
	}
	return best, nil
}

// bareDetect times det.Detect over the frames, decoded beforehand, cycling to n calls.
func bareDetect(det detector.FaceDetector, fs []*messages.Frame, n, threads int) (func() (float64, error), string, func(), error) {
	var imgs []gocv.Mat
	closeAll := func() {
		for _, m := range imgs {
			m.Close()
		}
		det.Close()
	}
	for _, f := range fs {
		img, err := vision.DecodeJPEG(f.JPEG, messages.MaxFrameSide)
		if err != nil {
			closeAll()
			return nil, "", nil, err
		}
		imgs = append(imgs, img)
	}
	run := func() (float64, error) {
		t0 := time.Now()
		for i := range n {
			if _, err := det.Detect(imgs[i%len(imgs)]); err != nil {
				return 0, err
			}
		}
		return float64(n) / time.Since(t0).Seconds(), nil
	}
	return run, fmt.Sprintf("%s Detect on decoded frames, %d thread(s)%s", det.Name(), max(1, threads), onDevice(det)), closeAll, nil
}

// onDevice says where an onnxruntime model runs, for a row's bare column ("" for others): the
// stage and its bare model open the same way, so both run there.
func onDevice(model any) string {
	if d, ok := model.(interface{ Device() onnx.Device }); ok && d.Device() != "" {
		return ", on " + string(d.Device())
	}
	return ""
}
