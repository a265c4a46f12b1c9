package messages

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// ErrBadSourceID reports a source id that is not a safe NATS token and folder name.
var ErrBadSourceID = errors.New("messages: bad source id")

// MaxSourceIDLen bounds source ids (they become subject tokens, folder and object names).
const MaxSourceIDLen = 64

// ValidateSourceID accepts 1..64 characters of [A-Za-z0-9_-], not starting with '-'. That
// excludes NATS separators and wildcards ('.', '*', '>'), spaces, path separators and "..",
// so an id can never escape an output folder or widen a subscription.
func ValidateSourceID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrBadSourceID)
	}
	if len(id) > MaxSourceIDLen {
		return fmt.Errorf("%w: %d characters, at most %d", ErrBadSourceID, len(id), MaxSourceIDLen)
	}
	if id[0] == '-' {
		return fmt.Errorf("%w %q: starts with '-'", ErrBadSourceID, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w %q: character %q not allowed (use letters, digits, '_' and '-')", ErrBadSourceID, truncate(id, 64), c)
		}
	}
	return nil
}

// NewSourceID makes an id like "src-20261125-214100-a1b2".
func NewSourceID(now time.Time) string {
	return fmt.Sprintf("src-%s-%04x", now.UTC().Format("20060102-150405"), rand.IntN(1<<16))
}

// Subject prefixes; the source id is the last token.
const (
	SubjectIngest   = "ingest"
	SubjectFrames   = "frames"
	SubjectFaces    = "faces"
	SubjectFaceVec  = "facevec"
	SubjectClothVec = "clothvec"
	SubjectResults  = "results"
	SubjectStatus   = "status"
	SubjectDead     = "dead"
	SubjectControl  = "control"
)

// Subject joins a prefix and a source id.
func Subject(prefix, source string) string { return prefix + "." + source }

// DeadSubject is where a stage's dead letters for a source go.
func DeadSubject(stage, source string) string {
	if ValidateSourceID(source) != nil {
		source = "_"
	}
	return SubjectDead + "." + stage + "." + source
}

// MsgID is the deterministic Nats-Msg-Id of the message a stage publishes for input seq of a
// source: a redelivered input republishes the same id, and JetStream drops the duplicate.
func MsgID(source string, seq int64, stage string) string {
	return source + "." + strconv.FormatInt(seq, 10) + "." + stage
}
