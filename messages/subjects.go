package messages

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
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
		if !isIDChar(rune(c)) {
			return fmt.Errorf("%w %q: character %q not allowed (use letters, digits, '_' and '-')", ErrBadSourceID, truncate(id, 64), c)
		}
	}
	return nil
}

// NewSourceID makes an id like "src-20261125-214100-a1b2".
func NewSourceID(now time.Time) string {
	return fmt.Sprintf("src-%s-%04x", now.UTC().Format("20060102-150405"), rand.IntN(1<<16))
}

// SourceIDFor makes an id that names what it reads, like "cast_public-20261125-214100-a1b2" for
// .../cast_public.mp4: the last path element of uri without its extension, characters an id
// cannot hold as '_', at most 32 of them; NewSourceID's where nothing usable is left (a camera
// index, a bare stream address).
func SourceIDFor(uri string, now time.Time) string {
	base := uri
	if i := strings.IndexAny(base, "?#"); i >= 0 && strings.Contains(uri, "://") {
		base = base[:i]
	}
	base = strings.TrimRight(base, "/")
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	if i := strings.LastIndexByte(base, '.'); i > 0 && isExtension(base[i+1:]) {
		base = base[:i]
	}
	var b strings.Builder
	for _, c := range base {
		if b.Len() == 32 {
			break
		}
		if isIDChar(c) {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	name := strings.Trim(b.String(), "_-")
	if strings.Trim(name, "0123456789") == "" { // nothing, or a camera index
		return NewSourceID(now)
	}
	return fmt.Sprintf("%s-%s-%04x", name, now.UTC().Format("20060102-150405"), rand.IntN(1<<16))
}

// isExtension: a file name extension such as mp4 or m3u8 (not ":554" of a host and port).
func isExtension(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for _, c := range s {
		if !isAlnum(c) {
			return false
		}
	}
	return true
}

// isIDChar: a character a source id may hold (ASCII letters, digits, '_' and '-').
func isIDChar(c rune) bool { return isAlnum(c) || c == '_' || c == '-' }

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
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

// StageStatusSubject is where a stage other than the reader reports a source's progress
// (status.<stage>.<source>): apart from the reader's status.<source>, so the stream's
// per-subject limit never lets one push out the other, and subscribers of status.<source>
// (run, watch) see the reader's events only.
func StageStatusSubject(stage, source string) string {
	return SubjectStatus + "." + stage + "." + source
}

// Stage names: the stages' metric labels, durable consumers, dead-letter subject tokens and
// the last token of the message ids they publish (MsgID, EOSMsgID).
const (
	StageReader    = "reader"
	StageDetector  = "detector"
	StageEncoder   = "encoder"
	StageEmbedder  = "embedder"
	StageClusterer = "clusterer"
)

// MsgID is the deterministic Nats-Msg-Id of the message a stage publishes for input seq of a
// source: a redelivered input republishes the same id, and JetStream drops the duplicate.
func MsgID(source string, seq int64, stage string) string {
	return source + "." + strconv.FormatInt(seq, 10) + "." + stage
}

// EOSMsgID is the Nats-Msg-Id of the end-of-stream marker a stage publishes for a source.
func EOSMsgID(source, stage string) string { return source + ".eos." + stage }

// ResultMsgID is the Nats-Msg-Id of a source's result; name tells its results apart
// ("quota", "final", a window's "w0"…), so a redelivered input never stores one twice.
func ResultMsgID(source, name string) string { return source + ".result." + name }

// IngestMsgID is the Nats-Msg-Id of a source's ingest request: the same source is requested once.
func IngestMsgID(source string) string { return source + ".ingest" }

// DeadLetterMsgID is the Nats-Msg-Id of the dead letter of the input at seq in stream: a
// redelivered input that fails again is stored once.
func DeadLetterMsgID(stage, stream string, seq uint64) string {
	return "dead." + stage + "." + stream + "." + strconv.FormatUint(seq, 10)
}

// Skip reasons of FrameFaces (why a frame was not accepted).
const (
	SkipTooFew  = "too_few_faces"
	SkipTooMany = "too_many_faces"
	// SkipDeadLetter: the frame was dead-lettered; it is passed on so counts stay complete.
	SkipDeadLetter = "dead_letter"
)

// ModelDeadLetter is the Model of the vectors a stage passes on for a dead-lettered frame:
// none, so the clusterer counts the frame and leaves it out.
const ModelDeadLetter = "dead_letter"
