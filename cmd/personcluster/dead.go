package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
)

// Errors of `personcluster dead`, matched with errors.Is.
var (
	// ErrNotReplayable: the dead letter cannot be re-injected (truncated, or its subject is not
	// a pipeline input).
	ErrNotReplayable = errors.New("dead: dead letter cannot be replayed")
	// ErrNoDeadLetter: no dead letter at that sequence.
	ErrNoDeadLetter = errors.New("dead: no such dead letter")
)

// ReplayHeader names, on a replayed message, the PC_DEAD sequence of the dead letter it came from.
const ReplayHeader = "Personcluster-Replay-Of"

const deadUsage = `usage: personcluster dead list   [--nats URL] [--stage S] [--source ID] [--json]
       personcluster dead replay [--nats URL] [--keep] SEQ...
       personcluster dead replay [--nats URL] [--stage S] [--source ID] [--keep] --all

list prints the dead letters kept in stream PC_DEAD (inputs a stage could not process, with
the reason); replay re-publishes each one's original bytes to its original subject under a
fresh Nats-Msg-Id, then deletes the dead letter (--keep leaves it).
`

// deadEntry is one dead letter as list prints it.
type deadEntry struct {
	Seq        uint64              `json:"seq"`
	Stage      string              `json:"stage"`
	Source     string              `json:"source"`
	Subject    string              `json:"subject"`
	Type       string              `json:"type,omitempty"` // the input's message type, when readable
	Reason     string              `json:"reason"`
	Deliveries uint64              `json:"deliveries"`
	Bytes      int                 `json:"bytes"`
	Truncated  bool                `json:"truncated,omitempty"`
	AtMillis   int64               `json:"at_ms"`
	Headers    map[string][]string `json:"headers,omitempty"`
}

func cmdDead(ctx context.Context, args []string) error {
	return runDead(ctx, args, os.Stdout)
}

func runDead(ctx context.Context, args []string, w io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprint(os.Stderr, deadUsage)
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("dead "+sub, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), deadUsage)
		fs.PrintDefaults()
	}
	client := clientFlags(fs, "personcluster-dead")
	stageName := fs.String("stage", "", "only this stage's dead letters (reader, detector, encoder, embedder, clusterer)")
	source := fs.String("source", "", "only this source's dead letters (\"_\": those whose source was unknown)")
	jsonOut := fs.Bool("json", false, "list: one JSON object per dead letter and line")
	all := fs.Bool("all", false, "replay: every dead letter matching --stage and --source")
	keep := fs.Bool("keep", false, "replay: keep the dead letters after re-publishing them")
	if err := parse(fs, args); err != nil {
		return err
	}
	filter, err := deadFilter(*stageName, *source)
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, a := range fs.Args() {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 || sub == "list" {
			fs.Usage()
			return errUsage
		}
		seqs = append(seqs, n)
	}
	if sub == "replay" && (len(seqs) > 0) == *all {
		fmt.Fprintln(os.Stderr, "dead replay: give the sequences to replay (from `dead list`) or --all")
		return errUsage
	}
	nc, js, err := connect(ctx, client, nil)
	if err != nil {
		return err
	}
	defer nc.Close()
	dead, err := js.Stream(ctx, stage.StreamDead)
	if err != nil {
		return fmt.Errorf("dead: opening %s: %w", stage.StreamDead, err)
	}
	if sub == "list" {
		entries, err := listDead(ctx, js, filter)
		if err != nil {
			return err
		}
		return printDead(w, entries, *jsonOut)
	}
	if *all {
		entries, err := listDead(ctx, js, filter)
		if err != nil {
			return err
		}
		for _, e := range entries {
			seqs = append(seqs, e.Seq)
		}
	}
	var errs []error
	for _, seq := range seqs {
		subject, err := replayDead(ctx, js, dead, seq, *keep)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(w, "replayed %d to %s\n", seq, subject)
	}
	return errors.Join(errs...)
}

// deadFilter is the PC_DEAD subject filter for a stage and a source ("" = any).
func deadFilter(stageName, source string) (string, error) {
	st, src := "*", "*"
	if stageName != "" {
		if strings.ContainsAny(stageName, ".*> \t") {
			return "", fmt.Errorf("dead: --stage %q is not a stage name", stageName)
		}
		st = stageName
	}
	if source != "" {
		if source != "_" {
			if err := messages.ValidateSourceID(source); err != nil {
				return "", fmt.Errorf("dead: --source: %w", err)
			}
		}
		src = source
	}
	return messages.SubjectDead + "." + st + "." + src, nil
}

// listDead reads every dead letter on filter, oldest first.
func listDead(ctx context.Context, js jetstream.JetStream, filter string) ([]deadEntry, error) {
	cons, err := js.OrderedConsumer(ctx, stage.StreamDead, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("dead: reading %s: %w", stage.StreamDead, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead: reading %s: %w", stage.StreamDead, err)
	}
	var out []deadEntry
	for pending := info.NumPending; pending > 0; {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return out, fmt.Errorf("dead: reading %s after %d dead letters: %w", stage.StreamDead, len(out), err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return out, fmt.Errorf("dead: %w", err)
		}
		pending = md.NumPending
		out = append(out, entryOf(md.Sequence.Stream, msg.Subject(), msg.Data()))
	}
	return out, nil
}

// entryOf describes a stored dead letter; one that does not decode is listed with the reason.
func entryOf(seq uint64, subject string, data []byte) deadEntry {
	dl, err := messages.DecodeAs[*messages.DeadLetter](data)
	if err != nil {
		return deadEntry{Seq: seq, Subject: subject, Reason: "unreadable dead letter: " + err.Error(), Bytes: len(data)}
	}
	e := deadEntry{Seq: seq, Stage: dl.Stage, Source: dl.Source, Subject: dl.Subject, Reason: dl.Reason,
		Deliveries: dl.Deliveries, Bytes: len(dl.Data), Truncated: dl.Truncated, AtMillis: dl.AtMillis, Headers: dl.Headers}
	if dl.Truncated {
		e.Bytes = int(dl.Size)
	}
	if t, v, err := messages.PeekType(dl.Data); err == nil {
		e.Type = fmt.Sprintf("%s.v%d", t, v)
	}
	return e
}

func printDead(w io.Writer, entries []deadEntry, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("dead: %w", err)
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSTAGE\tSOURCE\tSUBJECT\tTRIES\tBYTES\tREASON")
	for _, e := range entries {
		at := "-"
		if e.AtMillis > 0 {
			at = time.UnixMilli(e.AtMillis).UTC().Format("2006-01-02T15:04:05Z")
		}
		size := strconv.Itoa(e.Bytes)
		if e.Truncated {
			size += " (truncated)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Seq, at, e.Stage, e.Source, e.Subject, e.Deliveries, size,
			strings.ReplaceAll(e.Reason, "\n", " "))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("dead: %w", err)
	}
	fmt.Fprintf(w, "%d dead letters\n", len(entries))
	return nil
}

// replayable are the subjects a dead letter may be re-published to: the pipeline's inputs.
var replayable = []string{messages.SubjectIngest, messages.SubjectFrames, messages.SubjectFaces, messages.SubjectFaceVec, messages.SubjectClothVec}

// replayDead re-publishes the input kept in the dead letter at seq to its original subject, with
// its original headers but a fresh Nats-Msg-Id (derived from seq, so replaying the same letter
// twice within the dedupe window stores it once), then deletes the dead letter unless keep.
func replayDead(ctx context.Context, js jetstream.JetStream, dead jetstream.Stream, seq uint64, keep bool) (string, error) {
	raw, err := dead.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", fmt.Errorf("%w at sequence %d", ErrNoDeadLetter, seq)
	}
	if err != nil {
		return "", fmt.Errorf("dead: reading dead letter %d: %w", seq, err)
	}
	dl, err := messages.DecodeAs[*messages.DeadLetter](raw.Data)
	if err != nil {
		return "", fmt.Errorf("%w: %d: %w", ErrNotReplayable, seq, err)
	}
	if dl.Truncated {
		return "", fmt.Errorf("%w: %d keeps only %d of the input's %d bytes", ErrNotReplayable, seq, len(dl.Data), dl.Size)
	}
	if !replayableSubject(dl.Subject) {
		return "", fmt.Errorf("%w: %d came from subject %q, not a pipeline input", ErrNotReplayable, seq, dl.Subject)
	}
	msg := nats.NewMsg(dl.Subject)
	msg.Data = dl.Data
	for k, vs := range dl.Headers {
		if strings.HasPrefix(k, "Nats-") { // JetStream's own: message id, expectations, rollups
			continue
		}
		for _, v := range vs {
			msg.Header.Add(k, v)
		}
	}
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("replay.%s.%d", stage.StreamDead, seq))
	msg.Header.Set(ReplayHeader, strconv.FormatUint(seq, 10))
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return "", fmt.Errorf("dead: replaying %d to %s: %w", seq, dl.Subject, err)
	}
	if ack.Duplicate {
		fmt.Fprintf(os.Stderr, "dead letter %d was already replayed in the last minutes; not stored again\n", seq)
	}
	if !keep {
		if err := dead.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return dl.Subject, fmt.Errorf("dead: replayed %d, but deleting it failed: %w", seq, err)
		}
	}
	return dl.Subject, nil
}

func replayableSubject(subject string) bool {
	prefix, source, ok := strings.Cut(subject, ".")
	if !ok || messages.ValidateSourceID(source) != nil {
		return false
	}
	for _, p := range replayable {
		if prefix == p {
			return true
		}
	}
	return false
}
