package hac

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/bytedance/sonic"
	"github.com/klauspost/compress/gzip"
)

// Case is one clustering problem in the JSON format of the SciPy oracle
// (../shared/testdata/hac/scipy_cases.json.gz): the points, the optional
// timestamps and blend weight, the original's parameters and, in the oracle,
// SciPy's answer.
type Case struct {
	Name       string      `json:"name,omitempty"`
	Method     string      `json:"method"`
	Metric     string      `json:"metric"`
	Sim        float64     `json:"sim"`
	MinCSize   int         `json:"min_csize"`
	Points     [][]float64 `json:"points"`
	Timestamps []float64   `json:"timestamps,omitempty"`
	Alpha      float64     `json:"alpha,omitempty"`
	Expected   *Expected   `json:"expected,omitempty"`
	TruePerson []int       `json:"true_person,omitempty"`
}

// Expected is SciPy's answer to a case.
type Expected struct {
	Threshold float64       `json:"threshold"`
	Linkage   LinkageMatrix `json:"linkage"`
	Clusters  [][]int       `json:"clusters"`
}

// Output is the JSON answer to a case: {"threshold": t, "clusters": [...]}.
type Output struct {
	Threshold float64 `json:"threshold"`
	Clusters  [][]int `json:"clusters"`
}

// Oracle is the oracle file: the generator's description and its cases.
type Oracle struct {
	Generator string `json:"generator"`
	Cases     []Case `json:"cases"`
}

// Params are the case's parameters.
func (c *Case) Params() Params {
	return Params{Method: c.Method, Metric: c.Metric, Sim: c.Sim, MinCSize: c.MinCSize, Alpha: c.Alpha}
}

// Run clusters the case.
func (c *Case) Run() (*Result, error) {
	return c.RunProgress(nil)
}

// RunProgress is Run counting its distances and linkage in prog.
func (c *Case) RunProgress(prog *Progress) (*Result, error) {
	return ClusterProgress(c.Points, c.Timestamps, c.Params(), prog)
}

// Output is the case answer of r.
func (r *Result) Output() Output {
	cl := r.Clusters
	if cl == nil {
		cl = [][]int{}
	}
	return Output{Threshold: r.Threshold, Clusters: cl}
}

// jsonEncode writes v as one line of JSON.
func jsonEncode(w io.Writer, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("hac: encode JSON: %w", err)
	}
	return nil
}

// WriteOutput writes r's answer as one JSON object and a newline.
func WriteOutput(w io.Writer, r *Result) error {
	if err := json.NewEncoder(w).Encode(r.Output()); err != nil {
		return fmt.Errorf("hac: write output: %w", err)
	}
	return nil
}

// caseJSON tells absent fields from zero values, for the defaults.
type caseJSON struct {
	Name       string     `json:"name"`
	Method     *string    `json:"method"`
	Metric     *string    `json:"metric"`
	Sim        *float64   `json:"sim"`
	MinCSize   *int       `json:"min_csize"`
	Points     pointsJSON `json:"points"`
	Timestamps []float64  `json:"timestamps"`
	Alpha      float64    `json:"alpha"`
	Expected   *Expected  `json:"expected"`
	TruePerson []int      `json:"true_person"`
}

func (cj *caseJSON) toCase() Case {
	c := Case{Name: cj.Name, Method: DefaultMethod, Metric: DefaultMetric, Sim: DefaultSim, MinCSize: DefaultMinCSize,
		Points: [][]float64(cj.Points), Timestamps: cj.Timestamps, Alpha: cj.Alpha, Expected: cj.Expected, TruePerson: cj.TruePerson}
	if cj.Method != nil {
		c.Method = *cj.Method
	}
	if cj.Metric != nil {
		c.Metric = *cj.Metric
	}
	if cj.Sim != nil {
		c.Sim = *cj.Sim
	}
	if cj.MinCSize != nil {
		c.MinCSize = *cj.MinCSize
	}
	return c
}

// DecodeCase reads one case object, plain or gzip-compressed (told by its
// magic bytes). Absent fields take the original's defaults: method
// "average", metric "euclidean", sim 0.55, min_csize 3. The parameters are
// checked here; the points when the case is run.
func DecodeCase(r io.Reader) (*Case, error) {
	text, err := readMaybeGzip(r)
	if err != nil {
		return nil, err
	}
	var cj caseJSON
	if !decodeCaseFast(text, &cj) {
		if err := decodeJSONText(text, &cj); err != nil {
			return nil, err
		}
	}
	return caseFromJSON(&cj)
}

// caseFromJSON is the case of cj, with its parameters checked.
func caseFromJSON(cj *caseJSON) (*Case, error) {
	c := cj.toCase()
	if err := c.Params().Validate(); err != nil {
		return nil, fmt.Errorf("%w (case %q)", err, c.Name)
	}
	if len(c.Points) == 0 {
		return nil, fmt.Errorf("%w: case %q has no points", ErrTooFewPoints, c.Name)
	}
	return &c, nil
}

// collectAfterRead: after reading a case file this large, ReadCaseFile
// runs the garbage collector (see there).
const collectAfterRead = 64 << 20

// ReadCaseFile is DecodeCase on a file, or ReadNPYCase when the file is
// NumPy's .npy format (told by its magic bytes). A large file in the plain
// form is streamed (streamCase) rather than read whole.
func ReadCaseFile(path string) (*Case, error) {
	return ReadCaseFileProgress(path, nil)
}

// ReadCaseFileProgress is ReadCaseFile counting the bytes of a JSON case it
// has read in prog (a .npy file reads in a moment and is not counted).
func ReadCaseFileProgress(path string, prog *Progress) (*Case, error) {
	if ok, err := isNPY(path); err != nil {
		return nil, err
	} else if ok {
		return ReadNPYCase(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hac: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("hac: %w", err)
	}
	r := progressFile{f, prog}
	prog.begin(stepReading, fi.Size())
	var c *Case
	if fi.Mode().IsRegular() && fi.Size() >= streamMin {
		c, err = streamCaseFile(r)
		if err != nil {
			return nil, fmt.Errorf("%w (file %s)", err, path)
		}
		if c == nil { // not the plain form: read again, the ordinary way
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return nil, fmt.Errorf("hac: %w", err)
			}
			prog.begin(stepReading, fi.Size())
		}
	}
	if c == nil {
		if c, err = DecodeCase(r); err != nil {
			return nil, fmt.Errorf("%w (file %s)", err, path)
		}
	}
	if fi.Size() >= collectAfterRead {
		// The file's text (streamed: the read buffers and the parse's
		// scratch) is garbage now: collected at once, its pages go to what
		// clustering allocates next (the Gram copy of the points) instead
		// of fresh memory (10k × 640 case read whole: peak RSS 645 → 595 MB).
		runtime.GC()
	}
	return c, nil
}

// DecodeOracle reads an oracle file ({"generator": …, "cases": […]}),
// plain or gzip, with the same defaults as DecodeCase.
func DecodeOracle(r io.Reader) (*Oracle, error) {
	var raw struct {
		Generator string     `json:"generator"`
		Cases     []caseJSON `json:"cases"`
	}
	if err := decodeJSON(r, &raw); err != nil {
		return nil, err
	}
	o := &Oracle{Generator: raw.Generator, Cases: make([]Case, len(raw.Cases))}
	for i := range raw.Cases {
		o.Cases[i] = raw.Cases[i].toCase()
	}
	return o, nil
}

// ReadOracleFile is DecodeOracle on a file.
func ReadOracleFile(path string) (*Oracle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hac: %w", err)
	}
	defer f.Close()
	o, err := DecodeOracle(f)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return o, nil
}

// decodeJSON decodes exactly one JSON value from r, gunzipping first if r
// starts with the gzip magic bytes. The whole text is read into memory and
// parsed by sonic (SIMD, encoding/json's semantics with ConfigStd; exact
// float parsing): the 10k × 640 case takes a fraction of encoding/json's time.
func decodeJSON(r io.Reader, v any) error {
	text, err := readMaybeGzip(r)
	if err != nil {
		return err
	}
	return decodeJSONText(text, v)
}

// decodeJSONText is decodeJSON on text already read.
func decodeJSONText(text []byte, v any) error {
	// UnmarshalFromString over the bytes themselves: Unmarshal would copy
	// them into a string first. sonic only reads them, and with ConfigStd
	// (CopyString) nothing it returns refers to them.
	if err := sonic.ConfigStd.UnmarshalFromString(unsafe.String(unsafe.SliceData(text), len(text)), v); err != nil {
		return fmt.Errorf("%w: decode JSON: %s", ErrBadInput, shortMessage(err))
	}
	return nil
}

// maxMessage bounds a decoder message quoted in an error (runes).
const maxMessage = 200

// shortMessage is the first line of err's message, at most maxMessage
// runes. sonic quotes a syntax error's message (%q) with the text around
// the error on further lines, and at the end of the text "around" is all
// of it: a case file cut short gave a message of its whole size.
func shortMessage(err error) string {
	msg := strings.TrimSpace(err.Error())
	if strings.HasPrefix(msg, `"`) {
		if u, err := strconv.Unquote(msg); err == nil {
			msg = u
		}
	}
	msg, _, _ = strings.Cut(strings.TrimSpace(msg), "\n")
	if r := []rune(msg); len(r) > maxMessage {
		msg = string(r[:maxMessage]) + "…"
	}
	return msg
}

// readMaybeGzip reads all of r, gunzipped if it starts with gzip's magic.
func readMaybeGzip(r io.Reader) ([]byte, error) {
	src, zr, err := textReader(r)
	if err != nil {
		return nil, err
	}
	if zr != nil {
		defer zr.Close()
	}
	var text []byte
	if st, ok := r.(interface{ Stat() (os.FileInfo, error) }); ok && zr == nil {
		// A plain file: one buffer of its size (io.ReadAll would grow one
		// step by step, copying and zeroing several times the file).
		text, err = readSized(src, st)
	} else {
		text, err = io.ReadAll(src)
	}
	if err != nil {
		return nil, readError(err)
	}
	return text, nil
}

// readError wraps an error met reading a case's text: gzip's (a corrupt
// or truncated stream) as bad input, others as they are.
func readError(err error) error {
	if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: gzip: %w", ErrBadInput, err)
	}
	return fmt.Errorf("hac: read: %w", err)
}

// textReader is r buffered and, where it starts with gzip's magic bytes,
// gunzipped: zr is then the gzip reader (for Close), else nil.
func textReader(r io.Reader) (src io.Reader, zr *gzip.Reader, err error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %w", ErrBadInput, err)
		}
		return zr, zr, nil
	}
	return br, nil, nil
}

// streamCaseFile is streamCase on a case file, plain or gzip-compressed;
// c is nil where the text is not in the plain form.
func streamCaseFile(f io.Reader) (c *Case, err error) {
	src, zr, err := textReader(f)
	if err != nil {
		return nil, err
	}
	if zr != nil {
		defer zr.Close()
	}
	cj, ok, err := streamCase(src, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, readError(err)
	}
	if !ok {
		return nil, nil
	}
	return caseFromJSON(&cj)
}

// readSized reads all of r, the buffered start of a file whose Stat gives
// its size, into a buffer of that size (plus one byte to see its end).
func readSized(r io.Reader, st interface{ Stat() (os.FileInfo, error) }) ([]byte, error) {
	fi, err := st.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return io.ReadAll(r)
	}
	buf := bytes.NewBuffer(newReadBuffer(int(fi.Size()) + bytes.MinRead))
	_, err = buf.ReadFrom(r)
	return buf.Bytes(), err
}
