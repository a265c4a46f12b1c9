package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/stages/broker"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/stage"
)

// benchScaling measures the slowest stage, the clothing embedder, as separate processes of
// bin/personcluster against a NATS server on localhost: its throughput over the same faces
// with one replica, then two (same consumer, fresh each time), with the default inferences at
// once (two of one intra-op thread each on 2 cores) and with one inference per replica.
func benchScaling(ctx context.Context, o options) ([]StageRow, error) {
	if _, err := os.Stat(o.bin); err != nil {
		return nil, fmt.Errorf("bench: scaling needs %s (make build): %w", o.bin, err)
	}
	dir, err := os.MkdirTemp("", "pcbench-scaling-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	// A TCP listener as well: the embedder replicas run as processes.
	b, err := broker.StartEmbedded(broker.ServerConfig{StoreDir: dir, Host: "127.0.0.1", Port: -1}, "pcbench")
	if err != nil {
		return nil, err
	}
	defer b.Close()
	js, topo := b.JS, stage.Topology{}
	if err := topo.Ensure(ctx, js); err != nil {
		return nil, err
	}
	e := &env{Embedded: b}
	fs, err := frames(o.video)
	if err != nil {
		return nil, err
	}
	faces, err := detectAndPublish(ctx, e, models(o), fs)
	if err != nil {
		return nil, err
	}
	n := len(fs)
	var rows []StageRow
	for _, lanes := range []int{0, 1} {
		var rates [2]float64
		for i, replicas := range []int{1, 2} {
			if err := js.DeleteConsumer(ctx, stage.StreamFaces, stage.ConsumerEmbedder); err != nil {
				return nil, err
			}
			if err := topo.Ensure(ctx, js); err != nil {
				return nil, err
			}
			r, err := runReplicas(ctx, o, js, b.Server.ClientURL(), lanes, replicas, n)
			if err != nil {
				return nil, err
			}
			rates[i] = r * float64(faces) / float64(n)
		}
		what := "default inferences at once (2 per replica on 2 cores)"
		if lanes == 1 {
			what = "1 inference at once per replica"
		}
		rows = append(rows, StageRow{Stage: "embedder ×2 processes", Unit: "faces/s", Rate: rates[1], Bare: "embedder ×1 process", BareR: rates[0],
			Ratio: rates[1] / rates[0], Detail: what})
	}
	return rows, nil
}

// runReplicas starts replicas embedder processes, each running lanes inferences at once (0:
// the default), and returns inputs/s from the first ack to
// the last.
func runReplicas(ctx context.Context, o options, js jetstream.JetStream, url string, lanes, replicas, n int) (float64, error) {
	var cmds []*exec.Cmd
	defer func() {
		for _, c := range cmds {
			_ = c.Process.Signal(syscall.SIGTERM)
			_ = c.Wait()
		}
	}()
	for range replicas {
		c := exec.Command(o.bin, pipeline.Embedder, "--nats", url, "--models", o.models, "--log-level", "error",
			"--threads", fmt.Sprint(max(1, o.threads)), "--embedder-threads", fmt.Sprint(o.embThreads), "--embedder-inferences", fmt.Sprint(lanes), "--device", o.device)
		if o.ortLib != "" {
			c.Args = append(c.Args, "--ort-lib", o.ortLib)
		}
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			return 0, fmt.Errorf("bench: %w", err)
		}
		cmds = append(cmds, c)
	}
	deadline := time.Now().Add(10 * time.Minute)
	var t0 time.Time
	var a0 uint64
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		cons, err := js.Consumer(ctx, stage.StreamFaces, stage.ConsumerEmbedder)
		if err != nil {
			return 0, err
		}
		info, err := cons.Info(ctx)
		if err != nil {
			return 0, err
		}
		acked := info.AckFloor.Consumer
		if acked > 0 && t0.IsZero() {
			t0, a0 = time.Now(), acked
		}
		if acked >= uint64(n) {
			return float64(acked-a0) / time.Since(t0).Seconds(), nil
		}
	}
	return 0, fmt.Errorf("bench: embedder replicas did not finish in 10 minutes")
}
