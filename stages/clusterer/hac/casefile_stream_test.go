package hac

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// streamChunkSizes cut texts everywhere: inside keys, numbers, rows and
// the space between them.
var streamChunkSizes = []int{1, 2, 3, 5, 8, 13, 64, 1 << 12}

// checkCaseStream: where streamCase takes a text (with any chunk size and
// number of workers: all must agree), the ordinary decoder accepts it too
// and decodes the same case, field for field.
func checkCaseStream(t *testing.T, text []byte) (taken bool) {
	t.Helper()
	var slow caseJSON
	errSlow := decodeJSONText(text, &slow)
	for k, chunk := range streamChunkSizes {
		workers := 1 + k%3
		got, ok, err := streamCaseChunks(bytes.NewReader(text), workers, chunk)
		if err != nil {
			t.Fatalf("streamCase(%q), chunk %d: %v", text, chunk, err)
		}
		if k > 0 && ok != taken {
			t.Fatalf("streamCase(%q): taken %v with chunk %d, %v with chunk %d", text, ok, chunk, taken, streamChunkSizes[0])
		}
		taken = ok
		if !ok {
			continue
		}
		if errSlow != nil {
			t.Fatalf("streamCase took %q, which the decoder rejects: %v", text, errSlow)
		}
		if !reflect.DeepEqual(got, slow) {
			t.Fatalf("streamCase(%q), chunk %d =\n%+v\nthe decoder gives\n%+v", text, chunk, got, slow)
		}
	}
	return taken
}

func TestStreamCase(t *testing.T) {
	long := strings.Repeat("x", 300)
	texts := append(caseFastTexts[:len(caseFastTexts):len(caseFastTexts)], []struct {
		text  string
		taken bool
	}{
		{`{"name": "` + long + `", "points": [[1.5, -2e-3], [3, 4], [5E+2, 0.0000001]], "expected": {"threshold": 1, "linkage": [], "clusters": []}}`, true},
		{` { "timestamps" : [ 1 , 2 ] , "points" : [ [ 1 ] , [ 2 ] ] , "alpha" : 0.25 } `, true},
		{`{"points": [[1], [2], [3], [4], [5], [6], [7], [8], [9], [10], [11], [12]]}`, true},
		{`{"points": [[1]],}`, false},
		{`{"points": [[1]] "sim": 1}`, false},
		{`{"points": [[1]], "a": [[2]], "Points": [[3]]}`, false},
		{`{"points": [[1],]}`, false},
		{`{"points": [[1]  [2]]}`, false},
		{`{"points": [[1],[2]`, false},
		{`{"points": ["1"]}`, false},
		{`{"points": [1, 2]}`, false},
		{`{"sim": 0.5, "method": "ward"`, false},
		{`{"name": "unterminated`, false},
	}...)
	for _, tc := range texts {
		if taken := checkCaseStream(t, []byte(tc.text)); taken != tc.taken {
			t.Errorf("streamCase(%q): taken %v, want %v", tc.text, taken, tc.taken)
		}
	}
}

// pointsOpen finds the points' '[' in a text's head, asks for more where
// the head may go on, and says no at once where the text cannot be a plain
// case (without reading 64 MB to find out).
func TestPointsOpen(t *testing.T) {
	for _, tc := range []struct {
		text string
		at   int
		more bool
	}{
		{`{"points": [[1]]}`, 11, false},
		{`{"name": "x", "POINTS":[`, 23, false},
		{`{"name": "x", "poi`, -1, true},
		{`{"name": "x`, -1, true},
		{`{"sim": 0.5`, -1, true},
		{`{"sim": 0.5,`, -1, true},
		{`  `, -1, true},
		{`{"a": 1 x`, -1, false},
		{`{a: 1}`, -1, false},
		{`{"points": null}`, -1, false},
		{`{"p\u006fints": [[1]]}`, -1, false},
		{`[[1, 2]]`, -1, false},
		{`{"name": "x"}`, -1, false},
	} {
		if at, more := pointsOpen([]byte(tc.text)); at != tc.at || more != tc.more {
			t.Errorf("pointsOpen(%q) = %d, %v; want %d, %v", tc.text, at, more, tc.at, tc.more)
		}
	}
}

// A read error is returned as it is (a second read would meet it again),
// not taken for text that is not in the plain form.
func TestStreamCaseReadError(t *testing.T) {
	errDisk := errors.New("disk on fire")
	for _, prefix := range []string{``, `{"na`, `{"points": [[1, 2], [3`, `{"points": [[1]], "sim": 0.`} {
		r := io.MultiReader(strings.NewReader(prefix), iotest.ErrReader(errDisk))
		if _, ok, err := streamCaseChunks(r, 2, 4); !errors.Is(err, errDisk) || ok {
			t.Errorf("streamCase after %q: ok %v, err %v; want %v", prefix, ok, err, errDisk)
		}
	}
}

// writeBigCase writes a case of n × dim random points (plus extra members
// after them) to a file, plain or gzip; the file is past streamMin where n·dim
// is large enough.
func writeBigCase(t *testing.T, name string, n, dim int, extra string, zip bool) string {
	t.Helper()
	var text bytes.Buffer
	rng := rand.New(rand.NewPCG(1, 2))
	text.WriteString(`{"method": "average", "points": [`)
	for i := range n {
		if i > 0 {
			text.WriteString(",\n")
		}
		text.WriteByte('[')
		for k := range dim {
			if k > 0 {
				text.WriteByte(',')
			}
			fmt.Fprint(&text, rng.NormFloat64()/10)
		}
		text.WriteByte(']')
	}
	text.WriteString("]" + extra + "}")
	path := filepath.Join(t.TempDir(), name)
	data := text.Bytes()
	if zip {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(data)
		zw.Close()
		data = z.Bytes()
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ReadCaseFile streams a big case file, plain or gzip, into the case the
// ordinary decoder reads, and reads a big one that is not in the plain form
// (a repeated key) the ordinary way.
func TestReadCaseFileStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("writes case files of ~20 MB")
	}
	const n, dim = 1000, 1000 // ~20 MB of text
	for _, tc := range []struct {
		name   string
		extra  string
		zip    bool
		stream bool
	}{
		{"plain.json", `, "sim": 0.5, "timestamps": [` + strings.Repeat("1,", n-1) + `1]`, false, true},
		{"plain.json.gz", `, "min_csize": 2`, true, true},
		{"repeated.json", `, "points": [[1, 2]]`, false, false},
	} {
		path := writeBigCase(t, tc.name, n, dim, tc.extra, tc.zip)
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		streamed, err := streamCaseFile(f)
		f.Close()
		if err != nil || (streamed != nil) != tc.stream || fi.Size() < streamMin && !tc.zip {
			t.Fatalf("%s (%d bytes): streamed %v, err %v; want streamed %v", tc.name, fi.Size(), streamed != nil, err, tc.stream)
		}
		got, err := ReadCaseFile(path)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		f, _ = os.Open(path)
		want, err := DecodeCase(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: DecodeCase: %v", tc.name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ReadCaseFile and DecodeCase differ", tc.name)
		}
		if streamed != nil && !reflect.DeepEqual(streamed, want) {
			t.Errorf("%s: the streamed case and DecodeCase's differ", tc.name)
		}
		if len(got.Points) != n && tc.stream {
			t.Errorf("%s: %d points, want %d", tc.name, len(got.Points), n)
		}
	}
}

// A gzip file cut short is bad input, streamed or not.
func TestReadCaseFileTruncatedGzip(t *testing.T) {
	if testing.Short() {
		t.Skip("writes case files of ~20 MB")
	}
	path := writeBigCase(t, "cut.json.gz", 1000, 1000, "", true)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := streamCaseFile(f); !errors.Is(err, ErrBadInput) {
		t.Errorf("truncated gzip, streamed: %v, want %v", err, ErrBadInput)
	}
	if _, err := ReadCaseFile(path); !errors.Is(err, ErrBadInput) {
		t.Errorf("truncated gzip: %v, want %v", err, ErrBadInput)
	}
}

func FuzzStreamCase(f *testing.F) {
	for _, tc := range caseFastTexts {
		f.Add([]byte(tc.text))
	}
	f.Fuzz(func(t *testing.T, text []byte) { checkCaseStream(t, text) })
}

// A case file cut short, streamed or read whole, is bad input with a short
// message: sonic's own quotes the text around the error, which at the end
// of the text is all of it.
func TestReadCaseFileCutShort(t *testing.T) {
	if testing.Short() {
		t.Skip("writes case files of ~20 MB")
	}
	big := writeBigCase(t, "big.json", 1000, 1000, "", false)
	text, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, cut := range []int{len(text) - 1, len(text) / 2, 100} {
		path := filepath.Join(dir, fmt.Sprintf("cut%d.json", cut))
		if err := os.WriteFile(path, text[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadCaseFile(path)
		if !errors.Is(err, ErrBadInput) {
			t.Fatalf("cut at %d: %v, want %v", cut, err, ErrBadInput)
		}
		if msg := err.Error(); len(msg) > 500 || strings.Contains(msg, "\n") {
			t.Errorf("cut at %d: a message of %d bytes: %.300s", cut, len(msg), msg)
		}
	}
}
