// Package npy reads and writes NumPy's .npy format (numpy.save / numpy.load)
// for float arrays: dtypes float32 and float64 of either byte order, C
// order, format versions 1.0, 2.0 and 3.0. It is how fingerprints are saved
// for fast reading and for Python users; pure Go.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

// ErrFormat is wrapped by every error about a malformed or unsupported file.
var ErrFormat = errors.New("npy: bad format")

// Magic starts every .npy file.
const Magic = "\x93NUMPY"

// maxHeader bounds the header a reader accepts; NumPy's own limit is 10,000
// bytes for untrusted files, far above any real float array's.
const maxHeader = 1 << 16

// Array is a decoded array: the values in C order, as float64 whatever the
// file's dtype, and the shape.
type Array struct {
	Shape []int
	Data  []float64
	// Float32 tells the file held float32 values (converted exactly).
	Float32 bool
}

// Rows views a 2-D array as rows sharing Data (no copy).
func (a *Array) Rows() ([][]float64, error) {
	if len(a.Shape) != 2 {
		return nil, fmt.Errorf("%w: want a 2-D array (points × coordinates), got shape %v", ErrFormat, a.Shape)
	}
	n, d := a.Shape[0], a.Shape[1]
	rows := make([][]float64, n)
	for i := range rows {
		rows[i] = a.Data[i*d : (i+1)*d : (i+1)*d]
	}
	return rows, nil
}

// header is the parsed header dictionary.
type header struct {
	descr   string
	fortran bool
	shape   []int
}

// Decode reads one array from r. Memory grows with the data actually read,
// so a header that declares a huge shape cannot make it allocate more than
// the input holds.
func Decode(r io.Reader) (*Array, error) {
	return decode(bufio.NewReaderSize(r, 1<<16), -1)
}

// ReadFile reads the array in a .npy file.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	defer f.Close()
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	a, err := decode(bufio.NewReaderSize(f, 1<<16), size)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return a, nil
}

// decode reads the header, then the data; size is the input's total length
// when known (a file), else -1.
func decode(br *bufio.Reader, size int64) (*Array, error) {
	pre := make([]byte, 8)
	if _, err := io.ReadFull(br, pre); err != nil {
		return nil, fmt.Errorf("%w: short file: %w", ErrFormat, err)
	}
	if string(pre[:6]) != Magic {
		return nil, fmt.Errorf("%w: not a .npy file (no \\x93NUMPY magic)", ErrFormat)
	}
	major, minor := pre[6], pre[7]
	var hlen int
	switch major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("%w: short header: %w", ErrFormat, err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(br, b[:]); err != nil {
			return nil, fmt.Errorf("%w: short header: %w", ErrFormat, err)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, fmt.Errorf("%w: format version %d.%d unsupported (want 1.0, 2.0 or 3.0)", ErrFormat, major, minor)
	}
	if hlen > maxHeader {
		return nil, fmt.Errorf("%w: header of %d bytes (more than %d)", ErrFormat, hlen, maxHeader)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(br, hb); err != nil {
		return nil, fmt.Errorf("%w: short header: %w", ErrFormat, err)
	}
	h, err := parseHeader(string(hb))
	if err != nil {
		return nil, err
	}
	if h.fortran {
		return nil, fmt.Errorf("%w: Fortran-order arrays unsupported (save with np.ascontiguousarray)", ErrFormat)
	}
	var order binary.ByteOrder
	var item int
	switch h.descr {
	case "<f8", "=f8":
		order, item = binary.LittleEndian, 8
	case ">f8":
		order, item = binary.BigEndian, 8
	case "<f4", "=f4":
		order, item = binary.LittleEndian, 4
	case ">f4":
		order, item = binary.BigEndian, 4
	default:
		return nil, fmt.Errorf("%w: dtype %q unsupported (want float32 or float64)", ErrFormat, h.descr)
	}
	count := 1
	for _, d := range h.shape {
		if d != 0 && count > math.MaxInt/8/d {
			return nil, fmt.Errorf("%w: shape %v too large", ErrFormat, h.shape)
		}
		count *= d
	}
	want := int64(count) * int64(item)
	if size >= 0 {
		if left := size - int64(len(pre)+hlen+hlenBytes(major)); left != want {
			return nil, fmt.Errorf("%w: shape %v of %s needs %d data bytes, the file has %d", ErrFormat, h.shape, h.descr, want, left)
		}
	}
	a := &Array{Shape: h.shape, Data: make([]float64, count), Float32: item == 4}
	if size >= 0 && item == 8 && order == binary.ByteOrder(binary.LittleEndian) && hostLittleEndian {
		// The file's bytes are the floats' own: read them in place.
		view := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(a.Data))), want)
		if err := readExactly(br, view); err != nil {
			return nil, err
		}
		return a, nil
	}
	raw, err := readData(br, want, size >= 0)
	if err != nil {
		return nil, err
	}
	if item == 8 {
		for i := range a.Data {
			a.Data[i] = math.Float64frombits(order.Uint64(raw[i*8:]))
		}
	} else {
		for i := range a.Data {
			a.Data[i] = float64(math.Float32frombits(order.Uint32(raw[i*4:])))
		}
	}
	return a, nil
}

func hlenBytes(major byte) int {
	if major == 1 {
		return 2
	}
	return 4
}

// hostLittleEndian: this machine stores a float64 as "<f8" does.
var hostLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// readExactly fills raw and checks nothing follows.
func readExactly(br *bufio.Reader, raw []byte) error {
	if _, err := io.ReadFull(br, raw); err != nil {
		return fmt.Errorf("%w: data: %w", ErrFormat, err)
	}
	return checkEnd(br)
}

// checkEnd checks that br has nothing left.
func checkEnd(br *bufio.Reader) error {
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("%w: trailing bytes after the data", ErrFormat)
		}
		return fmt.Errorf("npy: data: %w", err)
	}
	return nil
}

// readData reads exactly want bytes and checks nothing follows. With the
// size known it allocates once; otherwise the buffer grows with the data.
func readData(br *bufio.Reader, want int64, sized bool) ([]byte, error) {
	if sized {
		raw := make([]byte, want)
		return raw, readExactly(br, raw)
	}
	raw, err := io.ReadAll(io.LimitReader(br, want))
	if err != nil {
		return nil, fmt.Errorf("npy: data: %w", err)
	}
	if int64(len(raw)) != want {
		return nil, fmt.Errorf("%w: data has %d bytes, the shape needs %d", ErrFormat, len(raw), want)
	}
	return raw, checkEnd(br)
}

// parseHeader parses the header: a Python dict literal with the keys
// 'descr', 'fortran_order' and 'shape' (in any order), padded with spaces
// and ending in a newline.
func parseHeader(s string) (header, error) {
	var h header
	p := &lit{s: strings.TrimRight(s, " \n\x00")}
	bad := func(msg string) (header, error) {
		return header{}, fmt.Errorf("%w: header %q: %s", ErrFormat, truncate(s), msg)
	}
	if !p.eat('{') {
		return bad("not a dict")
	}
	seen := map[string]bool{}
	for {
		if p.eat('}') {
			break
		}
		key, ok := p.str()
		if !ok || !p.eat(':') {
			return bad("want 'key': value")
		}
		if seen[key] {
			return bad("key " + key + " twice")
		}
		seen[key] = true
		switch key {
		case "descr":
			if h.descr, ok = p.str(); !ok {
				return bad("descr is not a string")
			}
		case "fortran_order":
			switch {
			case p.word("True"):
				h.fortran = true
			case p.word("False"):
				h.fortran = false
			default:
				return bad("fortran_order is not True or False")
			}
		case "shape":
			if h.shape, ok = p.tuple(); !ok {
				return bad("shape is not a tuple of non-negative integers")
			}
		default:
			return bad("unknown key " + strconv.Quote(key))
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return bad("want , or }")
			}
			break
		}
	}
	p.skip()
	if p.i != len(p.s) {
		return bad("text after the dict")
	}
	if !seen["descr"] || !seen["fortran_order"] || !seen["shape"] {
		return bad("want keys descr, fortran_order and shape")
	}
	return h, nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// lit scans a Python literal.
type lit struct {
	s string
	i int
}

func (p *lit) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *lit) eat(c byte) bool {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *lit) word(w string) bool {
	p.skip()
	if strings.HasPrefix(p.s[p.i:], w) {
		p.i += len(w)
		return true
	}
	return false
}

// str reads a quoted string without escapes (dtype strings and the keys
// have none).
func (p *lit) str() (string, bool) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", false
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", false
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsRune(v, '\\') {
		return "", false
	}
	p.i += end + 2
	return v, true
}

// tuple reads (), (n,) or (n, m, …) of non-negative integers.
func (p *lit) tuple() ([]int, bool) {
	if !p.eat('(') {
		return nil, false
	}
	dims := []int{}
	for {
		if p.eat(')') {
			return dims, len(dims) != 1 || strings.HasSuffix(strings.TrimRight(p.s[:p.i-1], " "), ",")
		}
		p.skip()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == p.i || j-p.i > 18 {
			return nil, false
		}
		v, err := strconv.Atoi(p.s[p.i:j])
		if err != nil {
			return nil, false
		}
		p.i = j
		p.word("L") // Python 2 longs
		dims = append(dims, v)
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, false
			}
			return dims, len(dims) != 1
		}
	}
}

// Encode writes data with the given shape as a version 1.0 .npy array of
// little-endian float64 (or float32 when asFloat32: values are rounded), C
// order, its header padded to a multiple of 64 bytes like NumPy's.
func Encode(w io.Writer, data []float64, shape []int, asFloat32 bool) error {
	count := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("%w: negative dimension in shape %v", ErrFormat, shape)
		}
		count *= d
	}
	if count != len(data) {
		return fmt.Errorf("%w: shape %v holds %d values, got %d", ErrFormat, shape, count, len(data))
	}
	descr, item := "<f8", 8
	if asFloat32 {
		descr, item = "<f4", 4
	}
	var dims strings.Builder
	dims.WriteByte('(')
	for i, d := range shape {
		if i > 0 {
			dims.WriteString(", ")
		}
		dims.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		dims.WriteByte(',')
	}
	dims.WriteByte(')')
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, dims.String())
	// magic(6) + version(2) + length(2) + dict + padding + '\n' ≡ 0 mod 64.
	total := (10 + len(dict) + 1 + 63) / 64 * 64
	var head bytes.Buffer
	head.WriteString(Magic)
	head.Write([]byte{1, 0})
	hl := total - 10
	if hl > math.MaxUint16 {
		return fmt.Errorf("%w: shape %v: header too long", ErrFormat, shape)
	}
	head.Write([]byte{byte(hl), byte(hl >> 8)})
	head.WriteString(dict)
	head.WriteString(strings.Repeat(" ", total-10-len(dict)-1))
	head.WriteByte('\n')
	bw := bufio.NewWriterSize(w, 1<<16)
	if _, err := bw.Write(head.Bytes()); err != nil {
		return fmt.Errorf("npy: write: %w", err)
	}
	var buf [8]byte
	for _, v := range data {
		if asFloat32 {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(float32(v)))
		} else {
			binary.LittleEndian.PutUint64(buf[:], math.Float64bits(v))
		}
		if _, err := bw.Write(buf[:item]); err != nil {
			return fmt.Errorf("npy: write: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("npy: write: %w", err)
	}
	return nil
}

// EncodeRows writes equal-length rows as an n×d array (Encode's format).
func EncodeRows(w io.Writer, rows [][]float64, asFloat32 bool) error {
	d := 0
	if len(rows) > 0 {
		d = len(rows[0])
	}
	data := make([]float64, 0, len(rows)*d)
	for i, r := range rows {
		if len(r) != d {
			return fmt.Errorf("%w: row %d has %d values, row 0 has %d", ErrFormat, i, len(r), d)
		}
		data = append(data, r...)
	}
	return Encode(w, data, []int{len(rows), d}, asFloat32)
}
