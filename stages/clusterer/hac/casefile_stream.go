package hac

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
)

// A case file read whole costs its size in fresh memory (134 MB for a
// 10k × 640 case, faulted in at the same price as the condensed matrix on a
// VM whose balloon reports free memory) and a read on one core before any
// parsing starts. streamCase reads it a chunk at a time into a few reused
// buffers instead and parses each chunk's complete rows on every core while
// the next chunk is read, so the text is never held whole. Like
// decodeCaseFast, it only takes the plain form — an object whose "points"
// member, found before the first streamHeadMax bytes, is an array of arrays
// of numbers — and reports false for anything else; ReadCaseFile then reads
// the file again the ordinary way, which also gives the ordinary errors.

const (
	// streamChunk is the size of each read. While a chunk is read the one
	// before it is parsed; the buffer of the one before that is waited for
	// and reused, so streamBuffers exist at most.
	streamChunk   = 4 << 20
	streamBuffers = 3
	// streamMin: smaller files are read whole (a chunk or two gains nothing).
	streamMin = 4 * streamChunk
	// streamHeadMax: members before "points" larger than this are not
	// streamed (the head is held in memory like the ordinary path would).
	streamHeadMax = 64 << 20
)

// streamCase decodes the case text read from r into cj. ok is false where
// the text is not in the plain form (cj is then untouched); err is a read
// error, which a second read would meet again.
func streamCase(r io.Reader, workers int) (cj caseJSON, ok bool, err error) {
	return streamCaseChunks(r, workers, streamChunk)
}

// streamCaseChunks is streamCase with reads of chunk bytes.
func streamCaseChunks(r io.Reader, workers, chunk int) (cj caseJSON, ok bool, err error) {
	s := &caseStream{r: r, workers: max(workers, 1), chunk: max(chunk, 1)}
	defer s.wait()
	head, at, ok, err := s.readHead()
	if !ok || err != nil {
		return caseJSON{}, false, err
	}
	prefix := bytes.Clone(head[:at]) // head's buffer is reused for rows
	suffix, ok, err := s.readRows(head[at+1:])
	if !ok || err != nil {
		return caseJSON{}, false, err
	}
	// The rest, with an empty array where the rows were, must hold exactly
	// one "points" member, there (findPoints rejects a repeated key).
	rest := make([]byte, 0, at+len("[]")+len(suffix))
	rest = append(append(append(rest, prefix...), "[]"...), suffix...)
	if start, _, found := findPoints(rest); !found || start != at {
		return caseJSON{}, false, nil
	}
	var other caseJSON
	if decodeJSONText(rest, &other) != nil {
		return caseJSON{}, false, nil
	}
	s.wait()
	if s.failed.Load() {
		return caseJSON{}, false, nil
	}
	other.Points = s.rows()
	return other, true, nil
}

// caseStream is the state of one streamCase.
type caseStream struct {
	r       io.Reader
	workers int
	chunk   int
	eof     bool

	free    [][]byte          // buffers not being parsed
	busy    []*sync.WaitGroup // per buffer in flight, in the order sent
	busyBuf [][]byte
	parts   []*[][]float64 // parsed rows, in the text's order
	all     sync.WaitGroup
	failed  atomic.Bool
}

// fill reads into b[n:] until b is full or the text ends; it returns the
// new length.
func (s *caseStream) fill(b []byte, n int) (int, error) {
	if s.eof {
		return n, nil
	}
	// Not io.ReadFull: it reports a short read as io.ErrUnexpectedEOF,
	// which is also gzip's error for a stream cut short.
	for n < len(b) {
		k, err := s.r.Read(b[n:])
		n += k
		if err == io.EOF {
			s.eof = true
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// readHead reads until the "points" member's '[' is in head, at head[at].
func (s *caseStream) readHead() (head []byte, at int, ok bool, err error) {
	head = make([]byte, s.chunk)
	n := 0
	for {
		if n, err = s.fill(head, n); err != nil {
			return nil, 0, false, err
		}
		at, more := pointsOpen(head[:n])
		switch {
		case at >= 0:
			return head[:n], at, true, nil
		case !more || s.eof || n >= streamHeadMax:
			return nil, 0, false, nil
		}
		head = append(head[:n], make([]byte, len(head))...)[:2*len(head)]
	}
}

// readRows parses the points' rows, starting with data (the text after the
// array's '[') and reading on, and returns the text after the array.
func (s *caseStream) readRows(data []byte) (suffix []byte, ok bool, err error) {
	afterRow := false
	for {
		lo, hi, next, closed, ok := rowSpan(data, afterRow)
		if !ok || s.failed.Load() {
			return nil, false, nil
		}
		if lo < hi {
			s.parse(data, lo, hi)
			afterRow = true
		}
		if closed >= 0 {
			rest, err := io.ReadAll(s.r)
			if err != nil {
				return nil, false, err
			}
			return append(append([]byte(nil), data[closed:]...), rest...), true, nil
		}
		if s.eof {
			return nil, false, nil // the array never closes
		}
		carry := data[next:]
		buf := s.buffer(len(carry))
		n := copy(buf, carry)
		if n, err = s.fill(buf, n); err != nil {
			return nil, false, err
		}
		data = buf[:n]
	}
}

// buffer returns a buffer that is not being parsed, of at least a chunk
// and at least twice carry bytes.
func (s *caseStream) buffer(carry int) []byte {
	size := s.chunk
	for size < 2*carry {
		size *= 2 // a row longer than half a chunk
	}
	if len(s.free) == 0 && len(s.busy) >= streamBuffers-1 {
		// Wait for the oldest buffer sent: chunks are parsed roughly in
		// order. The newest is never waited for: the carry comes from it.
		s.busy[0].Wait()
		s.free = append(s.free, s.busyBuf[0])
		s.busy, s.busyBuf = s.busy[1:], s.busyBuf[1:]
	}
	for len(s.free) > 0 {
		b := s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
		if len(b) >= size {
			return b
		}
	}
	return make([]byte, size)
}

// parse parses the rows data[lo:hi] on up to s.workers goroutines; data's
// buffer is busy until they finish.
func (s *caseStream) parse(data []byte, lo, hi int) {
	wg := new(sync.WaitGroup)
	for _, piece := range splitRows(data[lo:hi], s.workers) {
		out := new([][]float64)
		s.parts = append(s.parts, out)
		wg.Add(1)
		s.all.Add(1)
		go func() {
			defer s.all.Done()
			defer wg.Done()
			rows, ok := parseRows(piece)
			if !ok {
				s.failed.Store(true)
			}
			*out = rows
		}()
	}
	s.busy = append(s.busy, wg)
	s.busyBuf = append(s.busyBuf, data[:cap(data)])
}

// wait waits for every parse sent.
func (s *caseStream) wait() { s.all.Wait() }

// rows are the parsed rows in order; every parse must have finished.
func (s *caseStream) rows() [][]float64 {
	total := 0
	for _, p := range s.parts {
		total += len(*p)
	}
	rows := make([][]float64, 0, total)
	for _, p := range s.parts {
		rows = append(rows, *p...)
	}
	return rows
}

// rowSpan finds the complete rows at the start of data, which is the text
// of an array of arrays after its '[' (afterRow false) or after one of its
// complete rows (afterRow true). data[lo:hi] are the complete rows found,
// separated by commas (lo == hi: none); data[next:] is the unread text to
// carry into the next call, which then has afterRow true if any row was
// found before; closed is the index after the array's ']' or −1. Rows are
// not looked into (parseRows checks them); ok is false where the text
// cannot be an array of arrays.
func rowSpan(data []byte, afterRow bool) (lo, hi, next, closed int, ok bool) {
	closed = -1
	i := 0
	for {
		i = skipSpace(data, i)
		if i == len(data) {
			return lo, hi, next, closed, true
		}
		if data[i] == ']' {
			return lo, hi, next, i + 1, true
		}
		if afterRow {
			if data[i] != ',' {
				return 0, 0, 0, -1, false
			}
			if i = skipSpace(data, i+1); i == len(data) {
				return lo, hi, next, closed, true
			}
		}
		if data[i] != '[' {
			return 0, 0, 0, -1, false
		}
		j := bytes.IndexByte(data[i:], ']')
		if j < 0 {
			return lo, hi, next, closed, true
		}
		if hi == 0 {
			lo = i
		}
		hi = i + j + 1
		next, i, afterRow = hi, hi, true
	}
}

// pointsOpen is the index of the '[' that opens the value of the object
// text's top-level "points" member (any case, as the decoder matches keys),
// or −1 with more true where text ends before it could be found, or −1 with
// more false where text is not an object of plain keys that has one.
func pointsOpen(text []byte) (at int, more bool) {
	i := skipSpace(text, 0)
	if i == len(text) {
		return -1, true
	}
	if text[i] != '{' {
		return -1, false
	}
	for i = skipSpace(text, i+1); ; {
		if i == len(text) {
			return -1, true
		}
		if text[i] == '}' {
			return -1, false
		}
		if text[i] != '"' {
			return -1, false
		}
		keyEnd, plain := stringEnd(text, i)
		if keyEnd < 0 {
			return -1, true // the key may end in the next chunk
		}
		if !plain {
			return -1, false
		}
		isPoints := bytes.EqualFold(text[i+1:keyEnd-1], []byte("points"))
		if i = skipSpace(text, keyEnd); i == len(text) {
			return -1, true
		}
		if text[i] != ':' {
			return -1, false
		}
		if i = skipSpace(text, i+1); i == len(text) {
			return -1, true
		}
		if isPoints {
			if text[i] != '[' {
				return -1, false
			}
			return i, false
		}
		end := valueEndAt(text, i)
		if end < 0 || end == len(text) {
			return -1, true // the value may go on in the next chunk
		}
		if i = skipSpace(text, end); i == len(text) {
			return -1, true
		}
		if text[i] == ',' {
			i = skipSpace(text, i+1)
		}
	}
}
