package stage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
)

// Dead-letter tools (`personcluster dead`): list what PC_DEAD holds, re-inject it.

var (
	// ErrNotReplayable: a dead letter cannot be re-injected (truncated, unreadable, or its
	// subject is not a pipeline input).
	ErrNotReplayable = errors.New("stage: dead letter cannot be replayed")
	// ErrNoDeadLetter: no dead letter at that sequence.
	ErrNoDeadLetter = errors.New("stage: no such dead letter")
)

// ReplayHeader names, on a replayed message, the PC_DEAD sequence of the dead letter it came from.
const ReplayHeader = "Personcluster-Replay-Of"

// DeadEntry is one stored dead letter, described.
type DeadEntry struct {
	Seq        uint64              `json:"seq"` // in PC_DEAD
	Stage      string              `json:"stage"`
	Source     string              `json:"source"`
	Subject    string              `json:"subject"`        // where the input was
	Type       string              `json:"type,omitempty"` // the input's message type, when readable
	Reason     string              `json:"reason"`
	Deliveries uint64              `json:"deliveries"`
	Bytes      int                 `json:"bytes"` // the input's size
	Truncated  bool                `json:"truncated,omitempty"`
	Forwarded  bool                `json:"forwarded,omitempty"` // the stages downstream heard of it; its source went on
	AtMillis   int64               `json:"at_ms"`
	Headers    map[string][]string `json:"headers,omitempty"`
}

// DeadFilter is the PC_DEAD subject filter for a stage and a source ("" = any; source "_" =
// the dead letters whose source was unknown).
func DeadFilter(stageName, source string) (string, error) {
	st, src := "*", "*"
	if stageName != "" {
		if strings.ContainsAny(stageName, ".*> \t\r\n") {
			return "", fmt.Errorf("stage: %q is not a stage name", stageName)
		}
		st = stageName
	}
	if source != "" {
		if source != "_" {
			if err := messages.ValidateSourceID(source); err != nil {
				return "", fmt.Errorf("stage: dead letters of %w", err)
			}
		}
		src = source
	}
	return messages.SubjectDead + "." + st + "." + src, nil
}

// ListDeadLetters reads every dead letter on filter (see DeadFilter), oldest first.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, filter string) ([]DeadEntry, error) {
	cons, err := js.OrderedConsumer(ctx, StreamDead, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("stage: reading %s: %w", StreamDead, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stage: reading %s: %w", StreamDead, err)
	}
	var out []DeadEntry
	for pending := info.NumPending; pending > 0; {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			return out, fmt.Errorf("stage: reading %s after %d dead letters: %w", StreamDead, len(out), err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return out, fmt.Errorf("stage: reading %s: %w", StreamDead, err)
		}
		pending = md.NumPending
		out = append(out, deadEntryOf(md.Sequence.Stream, msg.Subject(), msg.Data()))
	}
	return out, nil
}

// deadEntryOf describes a stored dead letter; one that does not decode is listed with the reason.
func deadEntryOf(seq uint64, subject string, data []byte) DeadEntry {
	dl, err := messages.DecodeAs[*messages.DeadLetter](data)
	if err != nil {
		return DeadEntry{Seq: seq, Subject: subject, Reason: "unreadable dead letter: " + err.Error(), Bytes: len(data)}
	}
	e := DeadEntry{Seq: seq, Stage: dl.Stage, Source: dl.Source, Subject: dl.Subject, Reason: dl.Reason,
		Deliveries: dl.Deliveries, Bytes: len(dl.Data), Truncated: dl.Truncated, Forwarded: dl.Forwarded, AtMillis: dl.AtMillis, Headers: dl.Headers}
	if dl.Truncated {
		e.Bytes = int(dl.Size)
	}
	if t, v, err := messages.PeekType(dl.Data); err == nil {
		e.Type = fmt.Sprintf("%s.v%d", t, v)
	}
	return e
}

// Replayed is what ReplayDeadLetter did.
type Replayed struct {
	Subject string
	// Duplicate: JetStream had already stored this replay (the same letter replayed twice within
	// the dedupe window), so nothing new was stored.
	Duplicate bool
}

// ReplayDeadLetter re-publishes the input kept in the dead letter at seq to its original subject,
// with its original headers but a fresh Nats-Msg-Id (derived from seq: replaying one letter twice
// within the dedupe window stores it once), then deletes the dead letter unless keep.
func ReplayDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64, keep bool) (Replayed, error) {
	dead, err := js.Stream(ctx, StreamDead)
	if err != nil {
		return Replayed{}, fmt.Errorf("stage: opening %s: %w", StreamDead, err)
	}
	raw, err := dead.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Replayed{}, fmt.Errorf("%w at sequence %d", ErrNoDeadLetter, seq)
	}
	if err != nil {
		return Replayed{}, fmt.Errorf("stage: reading dead letter %d: %w", seq, err)
	}
	dl, err := messages.DecodeAs[*messages.DeadLetter](raw.Data)
	if err != nil {
		return Replayed{}, fmt.Errorf("%w: %d: %w", ErrNotReplayable, seq, err)
	}
	if dl.Truncated {
		return Replayed{}, fmt.Errorf("%w: %d keeps only %d of the input's %d bytes", ErrNotReplayable, seq, len(dl.Data), dl.Size)
	}
	if !replayableSubject(dl.Subject) {
		return Replayed{}, fmt.Errorf("%w: %d came from subject %q, not a pipeline input", ErrNotReplayable, seq, dl.Subject)
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
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("replay.%s.%d", StreamDead, seq))
	msg.Header.Set(ReplayHeader, strconv.FormatUint(seq, 10))
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return Replayed{}, fmt.Errorf("stage: replaying dead letter %d to %s: %w", seq, dl.Subject, err)
	}
	r := Replayed{Subject: dl.Subject, Duplicate: ack.Duplicate}
	if !keep {
		if err := dead.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return r, fmt.Errorf("stage: replayed dead letter %d, but deleting it failed: %w", seq, err)
		}
	}
	return r, nil
}

// replayable are the subjects a dead letter may be re-published to: the pipeline's inputs.
var replayable = []string{messages.SubjectIngest, messages.SubjectFrames, messages.SubjectFaces, messages.SubjectFaceVec, messages.SubjectClothVec}

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
