// Package messages defines personcluster's wire types: one Go struct per message, encoded with
// msgpack inside a small envelope that names the message type and its schema version.
//
// The envelope is a msgpack array [type, version, body]. Decoding reads the type and version
// first, so an unknown type or a newer schema is refused with a clear error before the body is
// touched, and a body that does not match its type never panics (see the Fuzz tests).
package messages

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the schema version this package writes and the newest it reads.
const Version = 1

// Type names a message type on the wire. The NATS header TypeHeader carries it with its
// version (e.g. "personcluster.frame.v1"), so tools can route without decoding.
type Type string

const (
	TypeIngestRequest Type = "personcluster.ingest"
	TypeFrame         Type = "personcluster.frame"
	TypeEndOfStream   Type = "personcluster.eos"
	TypeFrameFaces    Type = "personcluster.faces"
	TypeFaceVectors   Type = "personcluster.facevec"
	TypeClothVectors  Type = "personcluster.clothvec"
	TypeClusterResult Type = "personcluster.result"
	TypeDeadLetter    Type = "personcluster.dead"
	TypeStatus        Type = "personcluster.status"
)

// TypeHeader is the NATS header that carries a message's versioned type.
const TypeHeader = "Personcluster-Type"

// Message is implemented by every wire type.
type Message interface {
	// MessageType names the wire type.
	MessageType() Type
	// Validate reports whether the message is well formed; Decode calls it.
	Validate() error
}

// Sentinel errors, matched with errors.Is.
var (
	ErrMalformed          = errors.New("messages: malformed message")
	ErrUnknownType        = errors.New("messages: unknown message type")
	ErrUnsupportedVersion = errors.New("messages: unsupported schema version")
	ErrInvalid            = errors.New("messages: invalid message")
	ErrWrongType          = errors.New("messages: unexpected message type")
)

// HeaderValue is the value of TypeHeader for t at the current version.
func HeaderValue(t Type) string { return fmt.Sprintf("%s.v%d", t, Version) }

// Encode writes m inside the versioned envelope.
func Encode(m Message) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil message", ErrInvalid)
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeArrayLen(3); err != nil {
		return nil, err
	}
	if err := enc.EncodeString(string(m.MessageType())); err != nil {
		return nil, err
	}
	if err := enc.EncodeInt(Version); err != nil {
		return nil, err
	}
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("messages: encoding %s: %w", m.MessageType(), err)
	}
	return buf.Bytes(), nil
}

// newMessage returns an empty message of type t, or nil when t is unknown.
func newMessage(t Type) Message {
	switch t {
	case TypeIngestRequest:
		return &IngestRequest{}
	case TypeFrame:
		return &Frame{}
	case TypeEndOfStream:
		return &EndOfStream{}
	case TypeFrameFaces:
		return &FrameFaces{}
	case TypeFaceVectors:
		return &FaceVectors{}
	case TypeClothVectors:
		return &ClothVectors{}
	case TypeClusterResult:
		return &ClusterResult{}
	case TypeDeadLetter:
		return &DeadLetter{}
	case TypeStatus:
		return &Status{}
	}
	return nil
}

// PeekType returns the type and version of an encoded message without decoding its body.
func PeekType(data []byte) (Type, int, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	return readEnvelope(dec)
}

func readEnvelope(dec *msgpack.Decoder) (Type, int, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return "", 0, fmt.Errorf("%w: reading envelope: %v", ErrMalformed, err)
	}
	if n != 3 {
		return "", 0, fmt.Errorf("%w: envelope has %d elements, want 3", ErrMalformed, n)
	}
	name, err := dec.DecodeString()
	if err != nil {
		return "", 0, fmt.Errorf("%w: reading type: %v", ErrMalformed, err)
	}
	version, err := dec.DecodeInt()
	if err != nil {
		return Type(name), 0, fmt.Errorf("%w: reading version of %q: %v", ErrMalformed, name, err)
	}
	return Type(name), version, nil
}

// Decode reads any personcluster message. Errors wrap ErrMalformed, ErrUnknownType,
// ErrUnsupportedVersion or ErrInvalid.
func Decode(data []byte) (Message, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	t, version, err := readEnvelope(dec)
	if err != nil {
		return nil, err
	}
	m := newMessage(t)
	if m == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, truncate(string(t), 64))
	}
	if version < 1 || version > Version {
		return nil, fmt.Errorf("%w: %s version %d (this build reads 1..%d)", ErrUnsupportedVersion, t, version, Version)
	}
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%w: decoding %s body: %v", ErrMalformed, t, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, t, err)
	}
	return m, nil
}

// DecodeAs decodes data and checks that it holds a T.
func DecodeAs[T Message](data []byte) (T, error) {
	var zero T
	m, err := Decode(data)
	if err != nil {
		return zero, err
	}
	v, ok := m.(T)
	if !ok {
		return zero, fmt.Errorf("%w: got %s, want %s", ErrWrongType, m.MessageType(), zero.MessageType())
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
