package reader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/stage"
)

// Progress is a source's reader state in the sources bucket (JSON, key = source id). Every
// write is a compare-and-set on the key's revision, so a cancel request is never lost and a
// reader notices when another one has taken its source over.
type Progress struct {
	State      string `json:"state"` // reading, done, failed, cancelled
	URI        string `json:"uri"`
	NextSeq    int64  `json:"next_seq"`   // seq of the next frame to publish: frames 0..NextSeq-1 are stored
	NextIndex  int64  `json:"next_index"` // source frame number to continue from
	FramesRead int64  `json:"frames_read"`
	Corrupt    int64  `json:"corrupt"`
	Cancel     bool   `json:"cancel,omitempty"` // set by `ingest --cancel`
	Reason     string `json:"reason,omitempty"`
	Owner      string `json:"owner,omitempty"`      // the reader holding the source
	StartedMs  int64  `json:"started_ms,omitempty"` // when reading first began (live sources' clock)
	UpdatedMs  int64  `json:"updated_ms"`
}

// Final reports whether the source has been read to an end (done, failed or cancelled): such a
// source is never read again.
func (p *Progress) Final() bool {
	return p != nil && p.State != "" && p.State != messages.StateReading
}

// LoadProgress returns a source's saved progress and its revision (nil, 0 when none).
func LoadProgress(ctx context.Context, kv jetstream.KeyValue, source string) (*Progress, uint64, error) {
	e, err := kv.Get(ctx, source)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reader: loading progress of %s: %w", source, err)
	}
	var p Progress
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return nil, 0, fmt.Errorf("reader: progress of %s is corrupt: %w", source, err)
	}
	return &p, e.Revision(), nil
}

// storeProgress writes p if the key is still at revision rev (0: the key must not exist) and
// returns the new revision. A lost race reports errConflict.
func storeProgress(ctx context.Context, kv jetstream.KeyValue, source string, p *Progress, rev uint64) (uint64, error) {
	p.UpdatedMs = time.Now().UnixMilli()
	data, err := json.Marshal(p)
	if err != nil {
		return 0, fmt.Errorf("reader: encoding progress of %s: %w", source, err)
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = kv.Create(ctx, source, data)
	} else {
		newRev, err = kv.Update(ctx, source, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("%w: %w", errConflict, err)
	}
	if err != nil {
		return 0, fmt.Errorf("reader: saving progress of %s: %w", source, err)
	}
	return newRev, nil
}

var errConflict = errors.New("reader: progress changed meanwhile")

// Errors of Cancel and CheckNew, matched with errors.Is.
var (
	ErrUnknownSource = errors.New("reader: no such source")
	ErrFinished      = errors.New("reader: source already finished")
	ErrSourceExists  = errors.New("reader: source id already in use")
)

// Cancel asks the reader of source to stop. It works before the reader has started (the
// request is then acknowledged without reading) and while it reads; the reader notices within
// its ProgressEvery and ends the source with state "cancelled". Cancelling again is no error
// (a command that lost the reply of its first try sends it again), whether the source is still
// being cancelled or already cancelled. It returns ErrFinished for a source that has ended
// otherwise and ErrUnknownSource for one that was never ingested.
func Cancel(ctx context.Context, js jetstream.JetStream, source string) error {
	if err := messages.ValidateSourceID(source); err != nil {
		return fmt.Errorf("reader: cancel: %w", err)
	}
	kv, err := js.KeyValue(ctx, stage.SourcesBucket)
	if err != nil {
		return fmt.Errorf("reader: cancel: opening %s: %w", stage.SourcesBucket, err)
	}
	for attempt := 0; attempt < 20; attempt++ {
		p, rev, err := LoadProgress(ctx, kv, source)
		if err != nil {
			return err
		}
		if p == nil {
			queued, err := Queued(ctx, js, source)
			if err != nil {
				return err
			}
			if !queued {
				return fmt.Errorf("%w %s (nothing ingested under this id)", ErrUnknownSource, source)
			}
			p = &Progress{State: messages.StateReading}
		}
		if p.State == messages.StateCancelled || (p.Cancel && !p.Final()) {
			return nil
		}
		if p.Final() {
			return fmt.Errorf("%w: %s is %s", ErrFinished, source, p.State)
		}
		p.Cancel = true
		if _, err = storeProgress(ctx, kv, source, p, rev); err == nil {
			return nil
		}
		if !errors.Is(err, errConflict) {
			return err
		}
	}
	return fmt.Errorf("reader: cancel %s: its progress kept changing; try again", source)
}

// Queued reports whether an ingest request for source waits in the INGEST work queue (or is
// being read: the queue keeps a request until its reader acknowledges it).
func Queued(ctx context.Context, js jetstream.JetStream, source string) (bool, error) {
	st, err := js.Stream(ctx, stage.StreamIngest)
	if err != nil {
		return false, fmt.Errorf("reader: opening %s: %w", stage.StreamIngest, err)
	}
	_, err = st.GetLastMsgForSubject(ctx, messages.Subject(messages.SubjectIngest, source))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reader: looking up the ingest request of %s: %w", source, err)
	}
	return true, nil
}

// CheckNew returns ErrSourceExists when source has been ingested before (finished, being read
// or queued), so `ingest` can refuse a reused id instead of the reader silently ignoring it.
func CheckNew(ctx context.Context, js jetstream.JetStream, source string) error {
	kv, err := js.KeyValue(ctx, stage.SourcesBucket)
	if err != nil {
		return fmt.Errorf("reader: opening %s: %w", stage.SourcesBucket, err)
	}
	p, _, err := LoadProgress(ctx, kv, source)
	if err != nil {
		return err
	}
	if p != nil {
		state := p.State
		if p.Cancel && !p.Final() {
			state = "being cancelled"
		}
		return fmt.Errorf("%w: %s is %s; choose another --source", ErrSourceExists, source, state)
	}
	queued, err := Queued(ctx, js, source)
	if err != nil {
		return err
	}
	if queued {
		return fmt.Errorf("%w: %s is queued; choose another --source", ErrSourceExists, source)
	}
	return nil
}
