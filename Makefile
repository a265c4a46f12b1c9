# personcluster — see README.md. `make demo` runs the main job, `make test` the tests.
SHELL := /bin/bash
GO ?= go
MODELS_MIRROR ?= $(abspath ../shared/models)
SAMPLE ?= ../shared/testdata/video/short_hamilton_clip.mp4
export MODELS_MIRROR

.PHONY: all deps deps-cuda system-deps models build demo test test-short fuzz vet bench bench-cluster soak clean

all: build

## deps: Debian packages (OpenCV, dlib, BLAS/LAPACK, jpeg/png), onnxruntime and models. Idempotent.
deps: system-deps models

system-deps:
	@bash deploy/install-deps.sh

models:
	@bash models/fetch.sh

## deps-cuda: onnxruntime's CUDA provider beside models/data/lib/libonnxruntime.so (from NuGet, or
## ORT_CUDA_NUPKG offline) for --device auto/cuda; checks that CUDA 12 and cuDNN 9 load.
deps-cuda: models
	@bash models/fetch-cuda.sh

## build: bin/personcluster, which runs `cluster` and `eval` itself and starts in ~10 ms (the lean
## tag: no OpenCV, dlib or onnxruntime), and bin/personcluster-media beside it, the plain build,
## which it hands every other command to. `make build TAGS=avx2` compiles the dlib shim for
## AVX2/FMA CPUs (faster, but it will not run on CPUs without them).
build:
	$(GO) build -tags "$(TAGS)" -o bin/personcluster-media ./cmd/personcluster
	$(GO) build -tags "lean $(TAGS)" -o bin/personcluster ./cmd/personcluster

## demo: the whole pipeline in one process on the bundled sample clip.
demo: deps build
	./bin/personcluster run --out out $(SAMPLE)

vet:
	$(GO) vet ./...
	$(GO) vet -tags lean ./cmd/personcluster
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

## test: everything CI runs.
test: deps vet
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) fuzz FUZZTIME=50000x

test-short:
	$(GO) test -short ./...

FUZZTIME ?= 30s
FUZZ_PKGS ?= ./messages ./stages/clusterer/hac ./stages/clusterer/hac/npy ./stages/vision ./stages/output ./stages/evaluate ./stages/onnx
fuzz:
	@for p in $(FUZZ_PKGS); do \
		for t in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; done; done

## bench-cluster: the clusterer against scipy and fastcluster, side by side: in process, the whole
## `personcluster cluster` task on JSON and .npy (reading included), memory at n=50,000 (~11 GB).
bench-cluster: build
	$(GO) run ./stages/clusterer/hac/bench -n 1000,4000,10000 -whole 10000 -mem 50000 -python /usr/bin/python3

## bench: one table, every figure measured in the same run: each stage against the bare rate of
## what it wraps, the clusterer against scipy, embedder replicas as separate processes, and the
## whole pipeline on cast_public.mp4. BENCH_FLAGS=--json for machines; -soak 10m for memory.
## The clusterer section includes `personcluster cluster` at n=50,000 (~11 GB; BENCH_CLUSTER_MEM=0 skips it).
BENCH_FLAGS ?=
bench: build
	$(GO) run ./stages/pipeline/bench -video $(abspath ../shared/testdata/video/cast_public.mp4) $(BENCH_FLAGS)

## soak: one live source (cast_public.mp4 looped) in windows linked to the people gallery;
## prints RSS, the gallery's size and results.json's every SOAK_EVERY for SOAK.
SOAK ?= 10m
SOAK_EVERY ?= 30s
soak: build
	$(GO) run ./stages/pipeline/bench -video $(abspath ../shared/testdata/video/cast_public.mp4) -soak-live $(SOAK) -soak-every $(SOAK_EVERY)

clean:
	rm -rf bin out

## models-internet: the ResNet18/ResNet50 clothing models no registry ships (needs internet and
## Python 3.9–3.11; see models/manifests/README.md). Select one with
## `--cloth-model models/manifests/resnet18.json` (or resnet50.json).
.PHONY: models-internet bench-embedder
models-internet:
	@bash models/manifests/fetch-internet.sh

## bench-embedder: bare onnxruntime vs the clothing embedder stage on real crops: images/s at
## batch 1, 8, 32 with 1 and 2 threads, the ratio, and the stage's peak RSS.
BENCH_EMBEDDER_FLAGS ?=
bench-embedder:
	$(GO) run ./stages/embedder/bench -threads 1,2 -batches 1,8,32 $(BENCH_EMBEDDER_FLAGS)

## ablation: what face and clothing each contribute, with and without cannot-links, over a sim
## sweep, per face backend, on the labelled videos: a table and out/ablation/ablation.png.
## Runs the pipeline once per video and backend (kept in out/ablation for the next sweep).
.PHONY: ablation
ablation: build
	$(GO) run ./stages/evaluate/ablation -bin bin/personcluster -videos $(dir $(SAMPLE)) -work out/ablation -png out/ablation/ablation.png
