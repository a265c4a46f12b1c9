package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// runWatch runs `watch` with args for at most limit and returns what it printed and its error;
// timedOut says it was still waiting when limit ended.
func runWatch(t *testing.T, limit time.Duration, args ...string) (out string, err error, timedOut bool) {
	t.Helper()
	f, ferr := os.CreateTemp(t.TempDir(), "stdout")
	if ferr != nil {
		t.Fatal(ferr)
	}
	old := os.Stdout
	os.Stdout = f
	defer func() { os.Stdout = old }()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	err = cmdWatch(ctx, args)
	timedOut = ctx.Err() != nil
	data, ferr := os.ReadFile(f.Name())
	if ferr != nil {
		t.Fatal(ferr)
	}
	return string(data), err, timedOut
}

func storeResult(t *testing.T, js jetstream.JetStream, r *messages.ClusterResult) {
	t.Helper()
	msg, err := stage.EncodeMsg(stage.Output{Subject: messages.Subject(messages.SubjectResults, r.Source), Message: r})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// watch --until-final ends with a final result stored before it started (it used to listen to
// live messages only and wait for ever).
func TestWatchUntilFinalReadsStoredResult(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	storeResult(t, env.JS, &messages.ClusterResult{Source: "lobby", Final: true, FramesSeen: 40, FramesAccepted: 12, Faces: 30, Params: messages.DefaultParams()})
	out, err, timedOut := runWatch(t, 10*time.Second, "--nats", env.Server.ClientURL(), "--until-final", "lobby")
	if err != nil || timedOut {
		t.Fatalf("watch: %v (still waiting: %v)", err, timedOut)
	}
	if !strings.Contains(out, "source lobby: 40 frames read, 12 accepted, 30 faces") {
		t.Errorf("watch printed %q", out)
	}
}

// watch --until-final ends with an error naming the reason when an input of its source is
// dead-lettered and no later stage heard of it (the final result will not come); a dead letter
// whose frame went on as skipped does not end it.
func TestWatchUntilFinalEndsOnDeadLetter(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	url := env.Server.ClientURL()
	storeDead(t, env.JS, &messages.DeadLetter{Stage: "detector", Source: "lobby", Subject: "frames.lobby", Reason: "corrupt JPEG", Deliveries: 1, Data: []byte{1}, Forwarded: true})
	out, err, timedOut := runWatch(t, 1500*time.Millisecond, "--nats", url, "--until-final", "lobby")
	if err != nil || !timedOut || !strings.Contains(out, "lobby DEAD at detector: corrupt JPEG") {
		t.Fatalf("a forwarded dead letter: watch returned %v (still waiting: %v), printed %q; want it to print it and go on", err, timedOut, out)
	}

	storeDead(t, env.JS, &messages.DeadLetter{Stage: "clusterer", Source: "lobby", Subject: "facevec.lobby", Reason: "face vectors of length 3, the source's have 512", Deliveries: 1, Data: []byte{1}})
	_, err, timedOut = runWatch(t, 10*time.Second, "--nats", url, "--until-final", "lobby")
	if !errors.Is(err, stage.ErrSourceFailed) || timedOut || !strings.Contains(err.Error(), "the clusterer stage dead-lettered") || !strings.Contains(err.Error(), "length 3") {
		t.Fatalf("watch returned %v (still waiting: %v); want the dead letter's reason", err, timedOut)
	}

	// Once the source's final result is stored, a dead letter no longer ends the wait in error.
	storeResult(t, env.JS, &messages.ClusterResult{Source: "lobby", Final: true, FramesSeen: 4, Params: messages.DefaultParams()})
	if _, err, timedOut := runWatch(t, 10*time.Second, "--nats", url, "--until-final", "lobby"); err != nil || timedOut {
		t.Errorf("with the final result stored: watch returned %v (still waiting: %v)", err, timedOut)
	}
}
