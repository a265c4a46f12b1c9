//go:build !lean

package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/clusterer"
	"github.com/personcluster/personcluster/stages/clusterer/hac"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/embedder"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

func clientFlags(fs *flag.FlagSet, name string) *broker.ClientConfig {
	c := &broker.ClientConfig{Name: name}
	fs.StringVar(&c.URL, "nats", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	clientAuthFlags(fs, c)
	return c
}

// clientAuthFlags are the credentials and TLS settings of a NATS client.
func clientAuthFlags(fs *flag.FlagSet, c *broker.ClientConfig) {
	fs.StringVar(&c.Creds, "nats-creds", "", "NATS credentials file (JWT + nkey)")
	fs.StringVar(&c.NKeySeed, "nats-nkey", "", "NATS nkey seed file")
	fs.StringVar(&c.User, "nats-user", "", "NATS user")
	fs.StringVar(&c.Password, "nats-password", "", "NATS password")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "CA certificate to verify the NATS server")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "client certificate for NATS TLS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "client key for NATS TLS")
}

func modelFlags(fs *flag.FlagSet) *pipeline.Models {
	m := &pipeline.Models{}
	fs.StringVar(&m.Dir, "models", pipeline.DefaultModelsDir(), "models folder (make deps fills models/data)")
	fs.StringVar(&m.ORTLib, "ort-lib", "", "libonnxruntime.so (default: MODELS/lib/libonnxruntime.so)")
	fs.IntVar(&m.Threads, "threads", 1, "onnxruntime intra-op threads per model")
	fs.IntVar(&m.EmbedderThreads, "embedder-threads", 0, "the clothing embedder's intra-op threads (0: --threads)")
	fs.IntVar(&m.EmbedderInferences, "embedder-inferences", 0, "clothing embedder inferences at once (0: 1 on a GPU; on the CPU 2 where there are cores for 2 of --embedder-threads each, else 1)")
	fs.StringVar(&m.FaceBackend, "face-backend", pipeline.BackendDlibResNet, "face descriptor: dlib-resnet (the original's 128-d dlib ResNet, network on onnxruntime), dlib (the same through dlib's own CPU network, slower) or mobilefacenet (512-d; 'onnx' is its earlier name)")
	fs.StringVar(&m.Detector, "detector", pipeline.DetectorRetinaFace, "face detector: retinaface (finds small and partly covered faces), ultraface-320, ultraface-640 or dlib-hog (the original's)")
	fs.Float64Var(&m.DetectorScore, "detector-score", 0, "score a face needs (0: the detector's default, 0.5 for retinaface, 0.7 for ultraface)")
	fs.BoolFunc("detector-zoom", "retinaface: give doubtful faces a second, enlarged look (default true; =false: the frame's scale only)", func(v string) error {
		on, err := strconv.ParseBool(v)
		m.DetectorNoZoom = !on
		return err
	})
	fs.BoolFunc("gate", "face-quality gate: keep hands, ears and hair beside a larger face out of clustering (default true)", func(v string) error {
		on, err := strconv.ParseBool(v)
		m.Gate.Off = !on
		return err
	})
	fs.Func("gate-min-sharpness", fmt.Sprintf("face-quality gate: faces less sharp than this are too blurred to describe (Laplacian std on the face at 64×64 grey: a dim audience 1–2.7, clear faces 3–40; default %v; 0: keep them)", detector.DefaultMinSharpness), func(v string) error {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x < 0 {
			return fmt.Errorf("want a number ≥ 0, got %q", v)
		}
		if x == 0 {
			x = -1 // detector.GateConfig: negative is off, 0 the default
		}
		m.Gate.MinSharpness = x
		return nil
	})
	fs.IntVar(&m.DetectorTiles, "detector-tiles", 0, "also detect faces in N×N overlapping tiles of each frame (2: small faces, about 5× the detector's time; 0: whole frame only)")
	fs.Func("dlib-upsample", "dlib HOG: times the frame is doubled before detection, 0..3 (default 1, the original's)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 3 {
			return fmt.Errorf("want 0..3, got %q", v)
		}
		if n == 0 {
			n = -1 // pipeline.Models: negative is none, 0 the default
		}
		m.DlibUpsample = n
		return nil
	})
	fs.Func("device", "where the onnxruntime models (detector, face network, clothing embedder) run: auto (CUDA where onnxruntime's CUDA provider, CUDA 12 and a GPU are present, see make deps-cuda; else the CPU), cpu, or cuda (the CPU with a warning where CUDA cannot run) (default auto)", func(v string) error {
		d, err := onnx.ParseDevice(v)
		m.Device = string(d)
		return err
	})
	fs.StringVar(&m.ClothManifest, "cloth-model", "", "JSON manifest of another clothing model (default: MobileNet v1)")
	fs.IntVar(&m.ClothMaxBatch, "cloth-batch", 0, fmt.Sprintf("most clothing crops in one inference (0: %d on a GPU, %d on the CPU)", embedder.DefaultMaxBatch, pipeline.CPUClothBatch))
	fs.DurationVar(&m.ClothMaxWait, "cloth-wait", embedder.DefaultMaxWait, "longest wait for a fuller clothing batch")
	return m
}

// maxSourceFacesFlag bounds the faces one result clusters (the clusterer's memory).
func maxSourceFacesFlag(fs *flag.FlagSet) *int {
	return fs.Int("max-source-faces", clusterer.DefaultMaxFaces,
		"most faces one result clusters (memory: n²/2 distances); a source with more ends with a partial final result of its first frames that fit")
}

func topologyFlags(fs *flag.FlagSet) *stage.Topology {
	t := &stage.Topology{}
	fs.IntVar(&t.Replicas, "replicas", 1, "stream replicas (3 in a NATS cluster)")
	fs.Int64Var(&t.MaxBytes, "stream-max-bytes", 1<<30, "size bound of each work stream; a full stream slows its producer")
	fs.IntVar(&t.MaxDeliver, "max-deliver", 5, "attempts before a failing input is dead-lettered")
	fs.DurationVar(&t.AckWait, "ack-wait", 60*time.Second, "redeliver an input whose stage died after this long without an ack")
	return t
}

// isSet reports whether flag name was given (on the command line or by its variable).
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// ensureFlag: whether a process creates or updates the topology at start.
func ensureFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("ensure", true, "create or update the streams, consumers and buckets at start (false where an admin made them: least-privilege users may not)")
}

// requestFlags are the per-source parameters of `run` and `ingest`.
type requestFlags struct {
	source, uri string
	live        bool
	s           messages.Sampling
	p           messages.Params
	fs          *flag.FlagSet
	profile     *profileFlags
}

func addRequestFlags(fs *flag.FlagSet) *requestFlags {
	r := &requestFlags{p: messages.DefaultParams(), fs: fs, profile: addProfileFlags(fs)}
	fs.StringVar(&r.source, "source", "", "source id (letters, digits, '_' and '-'; default: the video's name and the time, like cast_public-20261205-225500-a1b2)")
	fs.BoolVar(&r.live, "live", false, "the source is live (stream or camera)")
	fs.IntVar(&r.s.EveryN, "every", 1, "read every N-th frame")
	fs.Float64Var(&r.s.TargetFPS, "fps", 0, "sample about this many frames per second (0: use --every)")
	fs.Float64Var(&r.s.SkipSeconds, "skip", 0, "skip the first S seconds")
	fs.Float64Var(&r.s.StopSeconds, "stop", 0, "stop at T seconds into the video (0: the end)")
	fs.IntVar(&r.s.MaxWidth, "max-width", 0, "shrink wider frames to this width (0: keep)")
	fs.IntVar(&r.s.JPEGQuality, "jpeg-quality", 90, "JPEG quality of frames between stages")
	fs.IntVar(&r.s.MaxFrames, "max-frames", 0, "stop after publishing this many frames (0: no limit)")
	fs.IntVar(&r.p.MinFaces, "min-faces", r.p.MinFaces, "keep frames showing at least this many faces")
	fs.IntVar(&r.p.MaxFaces, "max-faces", r.p.MaxFaces, "keep frames showing at most this many faces")
	fs.IntVar(&r.p.Quota, "quota", r.p.Quota, "accepted frames before the first clustering")
	// A Func flag: the flag package would add "(default 0.55)", which the tuned profile ignores.
	fs.Func("sim", "similarity: cut the dendrogram at max(d)·(1−`sim`) (default: the tuned profile's calibrated cut; 0.55 in the original profile)", func(v string) error {
		sim, err := strconv.ParseFloat(v, 64)
		r.p.Sim = sim
		return err
	})
	fs.IntVar(&r.p.MinCSize, "min-csize", r.p.MinCSize, "drop clusters smaller than this")
	fs.StringVar(&r.p.Method, "method", r.p.Method, "linkage: "+strings.Join(hac.Methods, ", "))
	fs.Float64Var(&r.p.FaceWeight, "face-weight", r.p.FaceWeight, "weight of the face part of a fingerprint (0: clothing only)")
	fs.Float64Var(&r.p.ClothWeight, "cloth-weight", r.p.ClothWeight, "weight of the clothing part of a fingerprint (0: face only)")
	fs.BoolFunc("people", "link each cluster to a person of the people gallery (default true; =false: results carry no person)", func(v string) error {
		on, err := strconv.ParseBool(v)
		r.p.NoPeople = !on
		return err
	})
	return r
}

func (r *requestFlags) request(uri string) (messages.IngestRequest, error) {
	source := r.source
	if source == "" {
		source = messages.SourceIDFor(uri, time.Now())
	}
	live := r.live || vision.IsLiveURI(uri)
	req := messages.IngestRequest{Source: source, URI: uri, Live: live, Sampling: r.s, Params: r.p, AtMillis: time.Now().UnixMilli()}
	req.Params.Live = live
	if err := r.profile.apply(r.fs, &req.Params); err != nil {
		return req, err
	}
	if err := req.Validate(); err != nil {
		return req, err
	}
	return req, nil
}

func tuningFlags(fs *flag.FlagSet, name string) *pipeline.Tuning {
	t := &pipeline.Tuning{}
	fs.IntVar(&t.Concurrency, "concurrency", 0, "parallel workers of "+name+" (0: the stage's default)")
	fs.IntVar(&t.BatchSize, "batch", 0, "inputs pulled per batch (0: the stage's default)")
	fs.DurationVar(&t.BatchWait, "batch-wait", 0, "longest wait to fill a batch (0: the stage's default)")
	return t
}
