//go:build !lean

package main

import (
	"context"
	"encoding/json"
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

// watch --out writes every window of a live source as it comes: results.json accumulates the
// windows (read again from the stream when watch starts, each counted once) up to the final.
func TestWatchOutAccumulatesLiveWindows(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	box := messages.Box{10, 40, 50, 10}
	for w := 1; w <= 3; w++ {
		storeResult(t, env.JS, &messages.ClusterResult{Source: "cam", Window: w, Final: w == 3, FramesSeen: 10, FramesAccepted: 2, Faces: 2,
			Params: messages.DefaultParams(), Clusters: []messages.Cluster{{ID: 0, Person: "pa", Members: []messages.Member{
				{Frame: int64(10 * w), Box: box}, {Frame: int64(10*w + 1), Box: box}}}}})
	}
	out := t.TempDir()
	for range 2 { // a second watch reads the same stored windows again
		if _, err, timedOut := runWatch(t, 10*time.Second, "--nats", env.Server.ClientURL(), "--until-final", "--out", out, "cam"); err != nil || timedOut {
			t.Fatalf("watch: %v (still waiting: %v)", err, timedOut)
		}
	}
	data, err := os.ReadFile(out + "/cam/results.json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Windows  int `json:"windows"`
		FaceList []struct {
			Frame  int64  `json:"frame"`
			Window int    `json:"window"`
			Person string `json:"person"`
		} `json:"face_list"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Windows != 3 || len(got.FaceList) != 6 || got.FaceList[0].Window != 1 || got.FaceList[5].Window != 3 || got.FaceList[5].Person != "pa" {
		t.Errorf("results.json: %s", data)
	}
}
