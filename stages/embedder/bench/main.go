// Command bench measures the clothing embedder: onnxruntime's bare batched inference rate (a
// session Run on a prepared blob) against the stage's Process on FrameFaces messages carrying
// real clothing crops (JPEG decode + preprocessing + inference + splitting), at the same model,
// batch size and thread count, and the stage's peak RSS. Crops are cut from the labelled test
// video at its truth boxes.
//
//	go run ./stages/embedder/bench -threads 1,2 -batches 1,8,32
package main

import (
	"bufio"
	"context"
	"encoding/gob"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/embedder"
	"github.com/personcluster/personcluster/stages/embedder/internal/castcrops"
	"github.com/personcluster/personcluster/stages/onnx"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/vision"
)

type options struct {
	models, lib, manifest, device string
	duration                      time.Duration
	reps, concurrency             int
}

func main() {
	var o options
	var threads, batches, video string
	var rssChild string
	flag.StringVar(&o.models, "models", "models/data", "models folder")
	flag.StringVar(&o.lib, "ort-lib", "", "libonnxruntime.so (default MODELS/lib/libonnxruntime.so)")
	flag.StringVar(&o.manifest, "cloth-model", "", "manifest of the clothing model (default: MobileNet v1)")
	flag.StringVar(&o.device, "device", "auto", "auto (CUDA where it runs), cpu or cuda")
	flag.StringVar(&threads, "threads", "1,2", "onnxruntime intra-op thread counts")
	flag.StringVar(&batches, "batches", "1,8,32", "batch sizes (crops per inference)")
	flag.StringVar(&video, "video", "../shared/testdata/video/cast_public.mp4", "labelled video (with VIDEO.truth.json) to cut crops from")
	flag.DurationVar(&o.duration, "duration", 2*time.Second, "time per measurement")
	flag.IntVar(&o.reps, "reps", 3, "interleaved repetitions; the best of each is reported")
	flag.IntVar(&o.concurrency, "concurrency", 1, "concurrent Process callers (stage workers) in the stage runs")
	flag.StringVar(&rssChild, "rss-child", "", "internal: measure the stage's peak RSS on the crops in this file")
	flag.Parse()
	if err := run(o, threads, batches, video, rssChild); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(o options, threadList, batchList, video, rssChild string) error {
	lib := o.lib
	if lib == "" {
		lib = filepath.Join(o.models, "lib", "libonnxruntime.so")
	}
	if err := onnx.Init(lib); err != nil {
		return err
	}
	man := embedder.MobileNetV1
	if o.manifest != "" {
		var err error
		if man, err = embedder.LoadManifest(o.manifest); err != nil {
			return err
		}
	}
	if rssChild != "" {
		return measureRSS(o, man, rssChild)
	}
	threads, err := ints(threadList)
	if err != nil {
		return err
	}
	batches, err := ints(batchList)
	if err != nil {
		return err
	}
	crops, err := castcrops.Load(video, video+".truth.json", 1, 90)
	if err != nil {
		return err
	}
	fmt.Printf("model %s, device %s, %d clothing crops from %s, %v per measurement, best of %d, %d stage worker(s)\n",
		man.Name, o.device, len(crops), filepath.Base(video), o.duration, o.reps, o.concurrency)
	fmt.Printf("%7s %5s %12s %12s %6s %10s\n", "threads", "batch", "bare img/s", "stage img/s", "ratio", "mean batch")
	for _, th := range threads {
		for _, b := range batches {
			r, err := measure(o, man, th, b, crops)
			if err != nil {
				return err
			}
			fmt.Printf("%7d %5d %12.1f %12.1f %6.2f %10.1f\n", th, b, r.bare, r.stage, r.stage/r.bare, r.meanBatch)
		}
	}
	// Peak RSS of a process that runs only the stage (the first thread count), one process per
	// batch size, so the video decoder and the bare session of this process do not count.
	f, err := os.CreateTemp("", "embedder-crops-*.gob")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := gob.NewEncoder(f).Encode(crops); err != nil {
		return err
	}
	f.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	for _, b := range batches {
		args := []string{"-rss-child", f.Name(), "-models", o.models, "-device", o.device, "-threads", strconv.Itoa(threads[0]),
			"-batches", strconv.Itoa(b), "-duration", o.duration.String(), "-concurrency", strconv.Itoa(o.concurrency)}
		if o.lib != "" {
			args = append(args, "-ort-lib", o.lib)
		}
		if o.manifest != "" {
			args = append(args, "-cloth-model", o.manifest)
		}
		out, err := exec.Command(exe, args...).Output()
		fmt.Print(string(out))
		if err != nil {
			return fmt.Errorf("peak RSS run: %w", err)
		}
	}
	return nil
}

type result struct{ bare, stage, meanBatch float64 }

// batchOf builds Process inputs holding exactly b crops (messages of up to 4 faces, as the
// detector's frames carry 2 to 4), starting at crop k of the pool.
func batchOf(crops []castcrops.Crop, b, k int) []*stage.Input {
	var ins []*stage.Input
	seq := int64(k)
	for left := b; left > 0; {
		n := min(4, left)
		ff := &messages.FrameFaces{Source: "bench", Seq: seq, Index: seq, Width: 960, Height: 540, Accepted: true, Params: messages.DefaultParams()}
		for i := 0; i < n; i++ {
			c := crops[(k+i)%len(crops)]
			ff.Faces = append(ff.Faces, messages.Face{Box: c.Box, ClothJPEG: c.JPEG, FaceJPEG: c.JPEG})
		}
		ins = append(ins, &stage.Input{Subject: "faces.bench", Source: "bench", Message: ff, Deliveries: 1})
		k += n
		left -= n
		seq++
	}
	return ins
}

func measure(o options, man embedder.Manifest, threads, b int, crops []castcrops.Crop) (result, error) {
	opts := onnx.Options{Threads: threads, Device: onnx.Device(o.device), Logger: slog.New(slog.DiscardHandler)}
	model, err := embedder.OpenModel(man, o.models, opts)
	if err != nil {
		return result{}, err
	}
	st, err := embedder.NewWithConfig(model, embedder.Config{MaxBatch: b})
	if err != nil {
		return result{}, err
	}
	defer st.Close(context.Background())
	mf := model.Manifest()
	size := int64(mf.Size)
	shape := []int64{int64(b), 3, size, size}
	if mf.Layout == embedder.NHWC {
		shape = []int64{int64(b), size, size, 3}
	}
	bare, err := onnx.Open(onnx.Spec{Path: mf.File, Input: mf.Input, Shape: append([]int64{-1}, shape[1:]...), Outputs: []string{mf.Output}}, opts)
	if err != nil {
		return result{}, err
	}
	defer bare.Close()
	// The bare blob: the first b crops, preprocessed by the model's own code.
	blob := make([]float32, 0, b*model.ImageLen())
	for i := 0; i < b; i++ {
		img, err := vision.DecodeJPEG(crops[i%len(crops)].JPEG, messages.MaxFrameSide)
		if err != nil {
			return result{}, err
		}
		blob, err = model.AppendInput(blob, img)
		img.Close()
		if err != nil {
			return result{}, err
		}
	}
	var r result
	for rep := 0; rep < o.reps; rep++ {
		n, el := 0, time.Duration(0)
		for start := time.Now(); el < o.duration || n == 0; el = time.Since(start) {
			if _, _, err := bare.Run(shape, blob); err != nil {
				return r, err
			}
			n += b
		}
		r.bare = max(r.bare, float64(n)/el.Seconds())
		before := st.Stats()
		rate, err := runStage(st, crops, b, o.concurrency, o.duration)
		if err != nil {
			return r, err
		}
		after := st.Stats()
		r.stage = max(r.stage, rate)
		r.meanBatch = float64(after.Images-before.Images) / float64(after.Inferences-before.Inferences)
	}
	return r, nil
}

// runStage calls Process from concurrency goroutines for d and returns crops per second.
func runStage(st *embedder.Stage, crops []castcrops.Crop, b, concurrency int, d time.Duration) (float64, error) {
	type out struct {
		n   int
		err error
	}
	done := make(chan out, concurrency)
	start := time.Now()
	for w := 0; w < concurrency; w++ {
		go func() {
			n, k := 0, w*b*7
			for time.Since(start) < d || n == 0 {
				for _, r := range st.Process(context.Background(), batchOf(crops, b, k)) {
					if r.Err != nil {
						done <- out{n, r.Err}
						return
					}
				}
				n += b
				k += b
			}
			done <- out{n, nil}
		}()
	}
	total := 0
	for w := 0; w < concurrency; w++ {
		o := <-done
		if o.err != nil {
			return 0, o.err
		}
		total += o.n
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

func measureRSS(o options, man embedder.Manifest, cropFile string) error {
	f, err := os.Open(cropFile)
	if err != nil {
		return err
	}
	var crops []castcrops.Crop
	err = gob.NewDecoder(f).Decode(&crops)
	f.Close()
	if err != nil {
		return err
	}
	th, _ := strconv.Atoi(flag.Lookup("threads").Value.String())
	b, _ := strconv.Atoi(flag.Lookup("batches").Value.String())
	model, err := embedder.OpenModel(man, o.models, onnx.Options{Threads: th, Device: onnx.Device(o.device), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	st, err := embedder.NewWithConfig(model, embedder.Config{MaxBatch: b})
	if err != nil {
		return err
	}
	defer st.Close(context.Background())
	rate, err := runStage(st, crops, b, o.concurrency, o.duration)
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("stage alone, threads %d, batch %2d, %d worker(s), %6.1f img/s: peak RSS %s (Go heap %.0f MiB of it at most)\n",
		th, b, o.concurrency, rate, procStatus("VmHWM"), float64(ms.HeapSys)/(1<<20))
	return nil
}

func procStatus(key string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == key {
			fields := strings.Fields(v)
			if len(fields) == 2 && fields[1] == "kB" {
				kb, _ := strconv.Atoi(fields[0])
				return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
			}
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
