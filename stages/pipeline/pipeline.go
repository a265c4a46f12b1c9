// Package pipeline wires the stages together: it opens models, builds each stage's processor
// and runs it on its durable consumer. The one binary uses it both for a single stage per
// process and for the whole pipeline in one process.
package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/dlibface"
	"github.com/personcluster/personcluster/stages/embedder"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/reader"
	"github.com/personcluster/personcluster/stages/stage"
)

// Stage names (messages.Stage*: they are in message ids and dead-letter subjects).
const (
	Reader    = messages.StageReader
	Detector  = messages.StageDetector
	Encoder   = messages.StageEncoder
	Embedder  = messages.StageEmbedder
	Clusterer = messages.StageClusterer
)

// All lists the stages in pipeline order.
var All = []string{Reader, Detector, Encoder, Embedder, Clusterer}

// ErrSetup wraps every failure to prepare a stage (missing model or library, bad flags).
var ErrSetup = errors.New("pipeline: setup failed")

// Models says where models and the onnxruntime library are and how to run them.
type Models struct {
	Dir     string // models folder (make deps fills models/data)
	ORTLib  string // libonnxruntime.so; default Dir/lib/libonnxruntime.so
	Threads int    // intra-op threads per ONNX session
	// EmbedderThreads is the clothing embedder's intra-op threads (0: Threads). The embedder is
	// the heaviest model per face; it runs EmbedderLanes inferences at once. With more than one
	// thread a session's idle pool threads sleep instead of spinning (onnx.Open), so an
	// embedder inference never holds a core the other stages need.
	EmbedderThreads int
	// FaceBackend picks the face encoder (FaceBackends): "dlib-resnet" (default: the original's
	// 128-d dlib ResNet descriptor with the network on onnxruntime), "dlib" (the same through
	// dlib's own network) or "mobilefacenet" (fr_landmark and fr_feature, 512-d).
	FaceBackend string
	// Detector names the face detector, the same for both backends: retinaface (the default:
	// RetinaFace-MobileNet0.25 with a second, enlarged look at its doubtful finds, for small and
	// partly covered faces), ultraface-320, ultraface-640, or dlib-hog (the original's).
	Detector       string
	DetectorScore  float64 // score a face needs (0: the detector's default, 0.5 RetinaFace, 0.7 UltraFace); dlib HOG keeps dlib's 0
	DetectorNoZoom bool    // retinaface: the frame's scale only, no second look
	DetectorTiles  int     // also detect in N×N overlapping tiles of the frame, for small faces (0 or 1: whole frame only)
	// Gate is the face-quality gate between detection and encoding (detector.GateConfig; on by
	// default).
	Gate          detector.GateConfig
	DlibUpsample  int          // dlib HOG upsampling, face_recognition's number_of_times_to_upsample (0 = 1, -1 = none)
	Device        string       // the onnxruntime models' device: auto ("", CUDA where it runs), cpu or cuda (onnx.Device)
	Logger        *slog.Logger // where a CUDA fallback is reported (Build sets it)
	ClothManifest string       // JSON manifest of another clothing model
	// ClothMaxBatch and ClothMaxWait group the embedder's crops into inferences (embedder.Config;
	// ClothMaxBatch 0: ClothBatch's default).
	ClothMaxBatch int
	ClothMaxWait  time.Duration
	// EmbedderInferences is how many embedder inferences run at once (embedder.Config.Inferences;
	// 0: EmbedderLanes's default, 2 on the CPU of a machine with 2 cores or more).
	EmbedderInferences int
}

// DefaultModelsDir finds models/data: $PERSONCLUSTER_MODELS, ./models/data, or beside the binary.
func DefaultModelsDir() string {
	if d := os.Getenv("PERSONCLUSTER_MODELS"); d != "" {
		return d
	}
	candidates := []string{"models/data"}
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), "..", "models", "data"))
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c
		}
	}
	return "models/data"
}

// Lib is the onnxruntime library the models load.
func (m Models) Lib() string {
	if m.ORTLib != "" {
		return m.ORTLib
	}
	return filepath.Join(m.Dir, "lib", "libonnxruntime.so")
}

// EmbedderIntraOp is the embedder's intra-op thread count, defaults applied: Threads.
func (m Models) EmbedderIntraOp() int {
	if m.EmbedderThreads > 0 {
		return m.EmbedderThreads
	}
	return m.Threads
}

// CPUClothBatch is the embedder's largest batch on the CPU: one intra-op thread embeds crops
// in batches of 8 as fast as in batches of 32 (a little faster: the activations stay in the
// caches), and two inferences of 32 grew onnxruntime's arenas to a peak RSS of 1264 MiB for
// the pipeline on cast_public against 936 MiB with 8, at the same frame rate (2026-12-06).
const CPUClothBatch = 8

// ClothBatch is the most crops one embedder inference takes on a model on dev, defaults
// applied: ClothMaxBatch, else embedder.DefaultMaxBatch on a GPU and CPUClothBatch on the CPU.
func (m Models) ClothBatch(dev onnx.Device) int {
	switch {
	case m.ClothMaxBatch > 0:
		return m.ClothMaxBatch
	case dev == onnx.CUDA:
		return embedder.DefaultMaxBatch
	}
	return CPUClothBatch
}

// EmbedderLanes is how many embedder inferences run at once on a model on dev, defaults
// applied: one on a GPU (one large batch at a time); on the CPU as many inferences of
// EmbedderIntraOp threads as there are cores for, at most two: two inferences of one thread
// each embed more crops per CPU-second than one of two threads, and the pipeline ran 2–3%
// faster for it on cast_public (2 cores, 2026-12-06).
func (m Models) EmbedderLanes(dev onnx.Device) int {
	switch {
	case m.EmbedderInferences > 0:
		return m.EmbedderInferences
	case dev == onnx.CUDA:
		return 1
	}
	return max(1, min(2, runtime.NumCPU()/max(1, m.EmbedderIntraOp())))
}

// ONNXDevice is where the onnxruntime models are asked to run (auto by default).
func (m Models) ONNXDevice() onnx.Device {
	return cmp.Or(onnx.Device(m.Device), onnx.Auto)
}

func (m Models) init() error {
	if err := onnx.Init(m.Lib()); err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	return nil
}

// Tuning is per-stage loop settings.
type Tuning struct {
	Concurrency int
	BatchSize   int
	BatchWait   time.Duration
	MaxDeliver  int
}

// Spec is a runnable stage: its loop config and processor.
type Spec struct {
	Config    stage.Config
	Processor stage.Processor
}

// Options for building stages.
type Options struct {
	Models    Models
	Tuning    map[string]Tuning
	Logger    *slog.Logger
	Metrics   *stage.Registry
	Detector  detector.Config
	Clusterer clusterer.Config
}

func (o Options) loop(name, stream, consumer string, def Tuning) stage.Config {
	t := def
	if o.Tuning != nil {
		if u, ok := o.Tuning[name]; ok {
			if u.Concurrency > 0 {
				t.Concurrency = u.Concurrency
			}
			if u.BatchSize > 0 {
				t.BatchSize = u.BatchSize
			}
			if u.BatchWait > 0 {
				t.BatchWait = u.BatchWait
			}
			if u.MaxDeliver > 0 {
				t.MaxDeliver = u.MaxDeliver
			}
		}
	}
	return stage.Config{Name: name, Stream: stream, Consumer: consumer, Concurrency: t.Concurrency, BatchSize: t.BatchSize,
		BatchWait: t.BatchWait, MaxDeliver: t.MaxDeliver, Logger: o.Logger, Metrics: o.Metrics}
}

// Build opens what stage name needs and returns it ready to run. On error nothing stays open.
func Build(ctx context.Context, name string, js jetstream.JetStream, o Options) (*Spec, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Models.Dir == "" {
		o.Models.Dir = DefaultModelsDir()
	}
	switch name {
	case Reader:
		kv, err := js.KeyValue(ctx, stage.SourcesBucket)
		if err != nil {
			return nil, fmt.Errorf("%w: opening %s: %w", ErrSetup, stage.SourcesBucket, err)
		}
		return &Spec{o.loop(name, stage.StreamIngest, stage.ConsumerReader, Tuning{Concurrency: 4, BatchWait: time.Second}),
			reader.New(reader.Config{Logger: o.Logger, JetStream: js}, kv)}, nil
	case Detector:
		det, err := o.Models.OpenDetector()
		if err != nil {
			return nil, err
		}
		o.Detector.Logger = o.Logger
		if o.Detector.Gate == (detector.GateConfig{}) {
			o.Detector.Gate = o.Models.Gate
		}
		proc, err := detector.New(o.Detector, det)
		if err != nil {
			det.Close()
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
		if o.Metrics != nil {
			registerDetectorCounters(o.Metrics, &proc.Counts)
		}
		// The ONNX detectors are safe for concurrent use: two workers overlap one frame's JPEG
		// decoding, crops and publishing with the other's inference.
		def := Tuning{Concurrency: 1}
		switch det.(type) {
		case *detector.UltraFace, *detector.RetinaFace, *detector.Zoom:
			def.Concurrency = 2
		}
		return &Spec{o.loop(name, stage.StreamFrames, stage.ConsumerDetector, def), proc}, nil
	case Encoder:
		o.Models.Logger = o.Logger
		enc, err := o.Models.OpenEncoder()
		if err != nil {
			return nil, err
		}
		def := Tuning{Concurrency: 1, BatchSize: 4, BatchWait: 20 * time.Millisecond}
		if _, ok := enc.(*dlibface.ResNetONNX); ok {
			// Two workers: one cuts the next batch's chips (landmarks, alignment: a third of
			// a face's time) while the other's batch is in the network.
			def.Concurrency = 2
		}
		return &Spec{o.loop(name, stage.StreamFaces, stage.ConsumerEncoder, def), encoder.New(enc)}, nil
	case Embedder:
		if err := o.Models.init(); err != nil {
			return nil, err
		}
		man := embedder.MobileNetV1
		if o.Models.ClothManifest != "" {
			var err error
			if man, err = embedder.LoadManifest(o.Models.ClothManifest); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrSetup, err)
			}
		}
		model, err := embedder.OpenModel(man, o.Models.Dir, onnx.Options{Threads: o.Models.EmbedderIntraOp(), Device: o.Models.ONNXDevice(), Logger: o.Logger})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
		proc, err := embedder.NewWithConfig(model, embedder.Config{MaxBatch: o.Models.ClothBatch(model.Device()), MaxWait: o.Models.ClothMaxWait,
			Inferences: o.Models.EmbedderLanes(model.Device())})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
		// Two workers: one decodes the next messages' crops while the other's batch is in inference.
		return &Spec{o.loop(name, stage.StreamFaces, stage.ConsumerEmbedder, Tuning{Concurrency: 2, BatchSize: 16, BatchWait: 20 * time.Millisecond}), proc}, nil
	case Clusterer:
		images, err := js.ObjectStore(ctx, stage.ImagesBucket)
		if err != nil {
			return nil, fmt.Errorf("%w: opening %s: %w", ErrSetup, stage.ImagesBucket, err)
		}
		o.Clusterer.Logger = o.Logger
		proc, err := clusterer.New(o.Clusterer, js, images)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
		// One worker: the clusterer's per-source state is not shared between goroutines.
		cfg := o.loop(name, stage.StreamVectors, stage.ConsumerClusterer, Tuning{Concurrency: 1, BatchSize: 64, BatchWait: 50 * time.Millisecond})
		cfg.Concurrency = 1
		cfg.Eager = true
		return &Spec{cfg, proc}, nil
	}
	return nil, fmt.Errorf("%w: unknown stage %q (one of %v)", ErrSetup, name, All)
}

// Face backends: what describes a face.
const (
	// BackendDlibResNet is dlib's 128-d ResNet (the original's descriptor, 68-point alignment)
	// with the network run by onnxruntime: the default, dlib's numbers about 8× faster.
	BackendDlibResNet = "dlib-resnet"
	// BackendDlib is the same descriptor computed by dlib's own CPU network (the original's code path).
	BackendDlib = "dlib"
	// BackendMobileFaceNet is faceplugin's 512-d MobileFaceNet (fr_landmark + fr_feature).
	BackendMobileFaceNet = "mobilefacenet"
	// BackendONNX is the earlier name of BackendMobileFaceNet, still accepted.
	BackendONNX = "onnx"
)

// FaceBackends lists the face backends, the default first.
var FaceBackends = []string{BackendDlibResNet, BackendDlib, BackendMobileFaceNet}

func (m Models) backend() (string, error) {
	switch m.FaceBackend {
	case "", BackendDlibResNet:
		return BackendDlibResNet, nil
	case BackendDlib:
		return BackendDlib, nil
	case BackendMobileFaceNet, BackendONNX:
		return BackendMobileFaceNet, nil
	}
	return "", fmt.Errorf("%w: unknown face backend %q (one of %v)", ErrSetup, m.FaceBackend, FaceBackends)
}

// OpenDetector opens the configured face detector.
func (m Models) OpenDetector() (detector.FaceDetector, error) {
	det, err := m.openDetector()
	if err != nil || m.DetectorTiles <= 1 {
		return det, err
	}
	tiled, err := detector.NewTiled(det, detector.TiledConfig{Cols: m.DetectorTiles, Rows: m.DetectorTiles})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	return tiled, nil
}

// Face detectors.
const (
	DetectorRetinaFace   = "retinaface"
	DetectorUltraFace320 = "ultraface-320"
	DetectorUltraFace640 = "ultraface-640"
	DetectorDlibHOG      = "dlib-hog"
)

func (m Models) openDetector() (detector.FaceDetector, error) {
	if _, err := m.backend(); err != nil {
		return nil, err
	}
	name := m.Detector
	if name == "" {
		name = DetectorRetinaFace
	}
	cfg := detector.UltraFaceConfig{Threads: m.Threads, Threshold: float32(m.DetectorScore), Device: m.ONNXDevice(), Logger: m.Logger}
	switch name {
	case DetectorRetinaFace:
		if err := m.init(); err != nil {
			return nil, err
		}
		rcfg := detector.RetinaFaceConfig{Path: filepath.Join(m.Dir, "face", "retinaface-mnet025-640.onnx"), Threads: m.Threads, Threshold: float32(m.DetectorScore),
			Device: m.ONNXDevice(), Logger: m.Logger}
		if !m.DetectorNoZoom {
			rcfg.Threshold = detector.RetinaFaceProposalScore
		}
		det, err := detector.NewRetinaFace(rcfg)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
		if m.DetectorNoZoom {
			return det, nil
		}
		zoom, err := detector.NewZoom(det, detector.ZoomConfig{Accept: float32(m.DetectorScore), Confirm: float32(m.DetectorScore)})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
		return zoom, nil
	case DetectorUltraFace320:
		cfg.Path, cfg.Width, cfg.Height = filepath.Join(m.Dir, "face", "fr_detect.onnx"), 320, 240
	case DetectorUltraFace640:
		cfg.Path, cfg.Width, cfg.Height, cfg.RGB = filepath.Join(m.Dir, "face", "version-RFB-640.onnx"), 640, 480, true
	case DetectorDlibHOG:
		up := m.DlibUpsample
		switch {
		case up == 0:
			up = 1
		case up < 0:
			up = 0
		}
		det, err := dlibface.NewDetector(dlibface.DetectorConfig{Upsample: up})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSetup, err)
		}
		return det, nil
	default:
		return nil, fmt.Errorf("%w: unknown detector %q (retinaface, ultraface-320, ultraface-640 or dlib-hog)", ErrSetup, m.Detector)
	}
	if err := m.init(); err != nil {
		return nil, err
	}
	det, err := detector.NewUltraFace(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	return det, nil
}

// OpenEncoder opens the configured face encoder.
func (m Models) OpenEncoder() (encoder.FaceEncoder, error) {
	backend, err := m.backend()
	if err != nil {
		return nil, err
	}
	var enc encoder.FaceEncoder
	switch backend {
	case BackendDlib:
		enc, err = dlibface.NewEncoder(dlibface.EncoderConfig{Dir: filepath.Join(m.Dir, "dlib")})
	case BackendDlibResNet:
		if err := m.init(); err != nil {
			return nil, err
		}
		sp, _ := dlibface.EncoderConfig{Dir: filepath.Join(m.Dir, "dlib")}.Paths()
		enc, err = dlibface.NewResNetONNX(dlibface.ResNetConfig{ShapePredictor: sp, Model: filepath.Join(m.Dir, "face", dlibface.ResNetONNXFile),
			Threads: m.Threads, Device: m.ONNXDevice(), Logger: m.Logger})
	default:
		if err := m.init(); err != nil {
			return nil, err
		}
		enc, err = encoder.NewONNX(encoder.ONNXConfig{LandmarkPath: filepath.Join(m.Dir, "face", "fr_landmark.onnx"),
			FeaturePath: filepath.Join(m.Dir, "face", "fr_feature.onnx"), Threads: m.Threads, Device: m.ONNXDevice(), Logger: m.Logger})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	return enc, nil
}

// Run runs the built stages until ctx ends; it returns the first stage error.
func Run(ctx context.Context, js jetstream.JetStream, specs []*Spec) error {
	errs := make(chan error, len(specs))
	for _, sp := range specs {
		go func() { errs <- stage.Run(ctx, js, sp.Config, sp.Processor) }()
	}
	var first error
	for range specs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// CloseAll closes processors that were built but will not run.
func CloseAll(specs []*Spec) {
	for _, sp := range specs {
		_ = sp.Processor.Close(context.Background())
	}
}

// registerDetectorCounters exports the detector's frame verdicts and face count.
func registerDetectorCounters(reg *stage.Registry, c *detector.Counters) {
	const frames = "personcluster_detector_frames_total"
	const help = "Frames the detector judged, by verdict: accepted, too_few_faces, too_many_faces (skipped) or bad (dead letter)."
	for verdict, get := range map[string]func() int64{
		"accepted": c.Accepted.Load, detector.SkipTooFew: c.TooFew.Load, detector.SkipTooMany: c.TooMany.Load, "bad": c.Bad.Load,
	} {
		reg.AddCounterFunc(frames, help, "counter", map[string]string{"stage": Detector, "verdict": verdict}, get)
	}
	reg.AddCounterFunc("personcluster_detector_faces_total", "Faces found in accepted frames.", "counter",
		map[string]string{"stage": Detector}, c.Faces.Load)
	const rejected = "personcluster_detector_rejected_faces_total"
	const rhelp = "Detections the face-quality gate kept out of clustering, by reason."
	for reason, get := range map[string]func() int64{detector.RejectPartOfPerson: c.PartOfPerson.Load, detector.RejectBlurred: c.Blurred.Load} {
		reg.AddCounterFunc(rejected, rhelp, "counter", map[string]string{"stage": Detector, "reason": reason}, get)
	}
}
