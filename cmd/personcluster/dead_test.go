//go:build !lean

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// storeDead stores a dead letter as a stage does and returns its PC_DEAD sequence.
func storeDead(t *testing.T, js jetstream.JetStream, dl *messages.DeadLetter) uint64 {
	t.Helper()
	msg, err := stage.EncodeMsg(stage.Output{Subject: messages.DeadSubject(dl.Stage, dl.Source), Message: dl})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func dead(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := runDead(ctx, args, &out)
	return out.String(), err
}

func TestDeadListAndReplay(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	url := env.Server.ClientURL()
	ctx := context.Background()
	req := &messages.IngestRequest{Source: "lobby", URI: "/videos/lobby.mp4", Params: messages.DefaultParams()}
	reqData, err := messages.Encode(req)
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string][]string{messages.TypeHeader: {messages.HeaderValue(messages.TypeIngestRequest)}, jetstream.MsgIDHeader: {"lobby.ingest"}}
	// The original request was stored once under its id: a replay under the same id would be
	// dropped as a duplicate.
	if _, err := env.JS.Publish(ctx, "ingest.lobby", reqData, jetstream.WithMsgID("lobby.ingest")); err != nil {
		t.Fatal(err)
	}
	ingest, err := env.JS.Stream(ctx, stage.StreamIngest)
	if err != nil {
		t.Fatal(err)
	}
	if err := ingest.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	seqReader := storeDead(t, env.JS, &messages.DeadLetter{Stage: "reader", Source: "lobby", Subject: "ingest.lobby",
		Reason: "reader: model store down: giving up after 5 attempts", Deliveries: 5, Headers: headers, Data: reqData, AtMillis: 1})
	seqGarbage := storeDead(t, env.JS, &messages.DeadLetter{Stage: "detector", Source: "cam2", Subject: "frames.cam2",
		Reason: "decoding frames.cam2: messages: malformed message", Deliveries: 1, Headers: map[string][]string{}, Data: []byte("\x93garbage")})
	seqTrunc := storeDead(t, env.JS, &messages.DeadLetter{Stage: "detector", Source: "cam2", Subject: "frames.cam2",
		Reason: "stage: message too large", Deliveries: 1, Data: []byte{1, 2, 3}, Truncated: true, Size: 9 << 20})
	seqDead := storeDead(t, env.JS, &messages.DeadLetter{Stage: "encoder", Source: "cam2", Subject: "dead.x.cam2",
		Reason: "loop", Deliveries: 1, Data: []byte{1}})

	// list: all, filtered by stage and by source, as JSON.
	out, err := dead(t, "list", "--nats", url)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "4 dead letters") || !strings.Contains(out, "giving up after 5 attempts") || !strings.Contains(out, "(truncated)") {
		t.Errorf("list:\n%s", out)
	}
	out, err = dead(t, "list", "--nats", url, "--stage", "detector", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []stage.DeadEntry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e stage.DeadEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		entries = append(entries, e)
	}
	if len(entries) != 2 || entries[0].Seq != seqGarbage || entries[0].Stage != "detector" || entries[0].Source != "cam2" ||
		entries[0].Bytes != 8 || entries[1].Bytes != 9<<20 || !entries[1].Truncated {
		t.Errorf("detector entries %+v", entries)
	}
	out, err = dead(t, "list", "--nats", url, "--source", "lobby", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var e stage.DeadEntry
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Seq != seqReader || e.Type != "personcluster.ingest.v1" {
		t.Errorf("lobby: %+v, %v", e, err)
	}
	if out, err := dead(t, "list", "--nats", url, "--source", "nobody"); err != nil || !strings.Contains(out, "0 dead letters") {
		t.Errorf("no match: %q, %v", out, err)
	}

	// replay: the original bytes and headers go back to the original subject under a fresh id,
	// and the dead letter is gone.
	if out, err := dead(t, "replay", "--nats", url, itoa(seqReader)); err != nil || !strings.Contains(out, "replayed") {
		t.Fatalf("replay: %q, %v", out, err)
	}
	raw, err := ingest.GetLastMsgForSubject(ctx, "ingest.lobby")
	if err != nil {
		t.Fatalf("the replayed request is not in %s: %v", stage.StreamIngest, err)
	}
	if !bytes.Equal(raw.Data, reqData) || raw.Header.Get(messages.TypeHeader) != messages.HeaderValue(messages.TypeIngestRequest) ||
		raw.Header.Get(jetstream.MsgIDHeader) == "lobby.ingest" || raw.Header.Get(stage.ReplayHeader) != itoa(seqReader) {
		t.Errorf("replayed message: headers %v, %d bytes", raw.Header, len(raw.Data))
	}
	deadStream, err := env.JS.Stream(ctx, stage.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deadStream.GetMsg(ctx, seqReader); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("the replayed dead letter is still there: %v", err)
	}
	if _, err := dead(t, "replay", "--nats", url, itoa(seqReader)); !errors.Is(err, stage.ErrNoDeadLetter) {
		t.Errorf("replaying it again: %v", err)
	}

	// --keep leaves the dead letter; garbage bytes are replayed as they were.
	if _, err := dead(t, "replay", "--nats", url, "--keep", itoa(seqGarbage)); err != nil {
		t.Fatal(err)
	}
	if _, err := deadStream.GetMsg(ctx, seqGarbage); err != nil {
		t.Errorf("--keep: %v", err)
	}
	frames, err := env.JS.Stream(ctx, stage.StreamFrames)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := frames.GetLastMsgForSubject(ctx, "frames.cam2"); err != nil || string(raw.Data) != "\x93garbage" {
		t.Errorf("replayed garbage: %v", err)
	}

	// A truncated letter or one from a subject that is no pipeline input is refused, and --all
	// replays what it can and reports the rest.
	if _, err := dead(t, "replay", "--nats", url, itoa(seqTrunc)); !errors.Is(err, stage.ErrNotReplayable) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := dead(t, "replay", "--nats", url, itoa(seqDead)); !errors.Is(err, stage.ErrNotReplayable) {
		t.Errorf("dead subject: %v", err)
	}
	out, err = dead(t, "replay", "--nats", url, "--source", "cam2", "--all")
	// The garbage was replayed with --keep before: its second replay is a duplicate, not stored.
	if !errors.Is(err, stage.ErrNotReplayable) || strings.Count(out, "\n") != 1 || !strings.Contains(out, "replayed "+itoa(seqGarbage)+" to frames.cam2 (already replayed") {
		t.Errorf("--all: %q, %v", out, err)
	}
	if out, err := dead(t, "list", "--nats", url); err != nil || !strings.Contains(out, "2 dead letters") {
		t.Errorf("after --all: %q, %v", out, err)
	}

	// Usage errors.
	for _, args := range [][]string{{}, {"bogus"}, {"replay", "--nats", url}, {"replay", "--nats", url, "--all", "3"},
		{"replay", "--nats", url, "x"}, {"list", "--nats", url, "3"}} {
		if _, err := dead(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	for _, args := range [][]string{{"list", "--source", "a.b"}, {"list", "--stage", "x.>"}} {
		if _, err := dead(t, args...); err == nil || errors.Is(err, errUsage) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// watch prints a source's dead letters as they arrive.
func TestWatchShowsDeadLetters(t *testing.T) {
	env := stagetest.Start(t, stage.Topology{})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = old }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmdWatch(ctx, []string{"--nats", env.Server.ClientURL(), "lobby"}) }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	dl := &messages.DeadLetter{Stage: "detector", Source: "lobby", Subject: "frames.lobby", Reason: "vision: image too large: 60000x60000", Deliveries: 1, Data: []byte{1}}
	other := &messages.DeadLetter{Stage: "detector", Source: "other", Subject: "frames.other", Reason: "not for lobby", Deliveries: 1, Data: []byte{1}}
	// watch subscribes after it has connected: publish until it has seen one.
	var got string
	for got == "" {
		storeDead(t, env.JS, other)
		storeDead(t, env.JS, dl)
		select {
		case line := <-lines:
			got = line
		case <-time.After(200 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.Close()
	for line := range lines {
		if strings.Contains(line, "not for lobby") {
			got = line
		}
	}
	io.Copy(io.Discard, r)
	if !strings.Contains(got, "lobby DEAD at detector") || !strings.Contains(got, "60000x60000") {
		t.Errorf("watch printed %q", got)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
