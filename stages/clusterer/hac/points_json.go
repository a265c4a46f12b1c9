package hac

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"unsafe"

	"github.com/bytedance/sonic"
)

// pointsJSON is a case's "points" array. A case of 10,000 × 640 points is
// 6.4 million numbers, nearly all of the file: they are parsed here, on every
// core, straight into one backing array, instead of by the generic decoder
// (which grows each row by appending, on one core). Only the plain form —
// arrays of JSON numbers — takes this path; anything else (null rows or
// values, a malformed number, one out of range) is handed to sonic, whose
// result and error messages are encoding/json's, so the semantics do not
// change. Numbers are parsed by strconv.ParseFloat: correctly rounded, as
// sonic and encoding/json are.
type pointsJSON [][]float64

// parallelPointsMin: arrays shorter than this (in bytes) are parsed on one
// goroutine.
const parallelPointsMin = 1 << 20

// UnmarshalJSON implements json.Unmarshaler.
func (p *pointsJSON) UnmarshalJSON(b []byte) error {
	if rows, ok := parsePoints(b, runtime.GOMAXPROCS(0), parallelPointsMin); ok {
		*p = rows
		return nil
	}
	var rows [][]float64
	if err := sonic.ConfigStd.Unmarshal(b, &rows); err != nil {
		return err
	}
	*p = rows
	return nil
}

// parsePoints parses b, an array of arrays of JSON numbers, with up to
// workers goroutines where b has at least minParallel bytes; ok is false
// where b is anything else.
func parsePoints(b []byte, workers, minParallel int) (rows [][]float64, ok bool) {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '[' {
		return nil, false
	}
	end := len(b) - 1
	for end > i && isSpace(b[end]) {
		end--
	}
	if b[end] != ']' {
		return nil, false
	}
	body := b[i+1 : end] // the rows, separated by commas
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return [][]float64{}, true
	}
	chunks := [][]byte{body}
	if len(body) >= minParallel {
		chunks = splitRows(body, workers)
	}
	parts := make([][][]float64, len(chunks))
	oks := make([]bool, len(chunks))
	var wg sync.WaitGroup
	for k, c := range chunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parts[k], oks[k] = parseRows(c)
		}()
	}
	wg.Wait()
	total := 0
	for k := range parts {
		if !oks[k] {
			return nil, false
		}
		total += len(parts[k])
	}
	rows = make([][]float64, 0, total)
	for _, part := range parts {
		rows = append(rows, part...)
	}
	return rows, true
}

// splitRows cuts body (rows separated by commas) into up to n pieces of
// whole rows, each piece again rows separated by commas. A cut goes after a
// ']' followed by a ','; in the plain form every ']' inside body closes a
// row. A piece that is not plain fails in parseRows, whatever the cut.
func splitRows(body []byte, n int) [][]byte {
	var chunks [][]byte
	start := 0
	for k := 1; k < n; k++ {
		at := max(start, len(body)*k/n)
		j := bytes.IndexByte(body[at:], ']')
		if j < 0 {
			break
		}
		j += at + 1
		c := skipSpace(body, j)
		if c == len(body) || body[c] != ',' {
			break
		}
		chunks = append(chunks, body[start:j])
		start = c + 1
	}
	return append(chunks, body[start:])
}

// parseRows parses rows separated by commas: "[1,2],[3,4]". Each row gets
// its exact length, carved from slabs so a big case makes few allocations.
func parseRows(b []byte) ([][]float64, bool) {
	var rows [][]float64
	var row, slab []float64
	i := 0
	for {
		i = skipSpace(b, i)
		if i == len(b) || b[i] != '[' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		row = row[:0]
		if i < len(b) && b[i] == ']' {
			i++
		} else {
			for {
				v, j, ok := parseNumber(b, i)
				if !ok {
					return nil, false
				}
				row = append(row, v)
				i = skipSpace(b, j)
				if i == len(b) {
					return nil, false
				}
				if b[i] == ']' {
					i++
					break
				}
				if b[i] != ',' {
					return nil, false
				}
				i = skipSpace(b, i+1)
			}
		}
		if len(row) == 0 {
			rows = append(rows, []float64{}) // empty, not nil, as encoding/json
		} else {
			if len(slab) < len(row) {
				// Numbers take two bytes at least (with their comma), so
				// the rest of b bounds what a slab can still hold: a short
				// piece gets a short slab, not 512 KB kept alive by its rows.
				slab = make([]float64, max(len(row), min(1<<16, (len(b)-i)/2+1)))
			}
			r := slab[:len(row):len(row)]
			slab = slab[len(row):]
			copy(r, row)
			rows = append(rows, r)
		}
		i = skipSpace(b, i)
		if i == len(b) {
			return rows, true
		}
		if b[i] != ',' {
			return nil, false
		}
		i++
	}
}

// exactPow10 are the powers of ten a float64 holds exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseNumber parses the JSON number (RFC 8259) starting at b[i]: its value,
// correctly rounded as strconv.ParseFloat gives it, and its end; ok is false
// where no number starts there or it is out of float64's range. One pass
// reads the digits into an integer mantissa w and a power of ten; where w
// is below 2⁵³ and the power within ±22, both are exact float64s and one
// multiplication or division rounds correctly (Clinger's fast path): most
// of the 16-significant-digit numbers that Python and Go print for
// fingerprint components. Up to 19 digits, wideDecimal rounds most of the
// rest; anything else goes to strconv.ParseFloat.
func parseNumber(b []byte, i int) (v float64, end int, ok bool) {
	start := i
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	var w uint64
	nd, e10 := 0, 0 // significant digits in w; w·10^e10 is the number
	slow := false   // more than 19 significant digits: w cannot hold them
	switch {
	case i == len(b):
		return 0, -1, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if nd < 19 {
				w, nd = w*10+uint64(b[i]-'0'), nd+1
			} else {
				slow = true
			}
		}
	default:
		return 0, -1, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		j := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			switch c := uint64(b[i] - '0'); {
			case w == 0 && c == 0: // a leading zero: only the scale changes
				e10--
			case nd < 19:
				w, nd, e10 = w*10+c, nd+1, e10-1
			default:
				slow = true
			}
		}
		if i == j {
			return 0, -1, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		sign := 1
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			if b[i] == '-' {
				sign = -1
			}
			i++
		}
		j, exp := i, 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if exp < 10000 { // strconv's cap, so a number with ten thousand leading zeros reads as it does there
				exp = exp*10 + int(b[i]-'0')
			}
		}
		if i == j {
			return 0, -1, false
		}
		e10 += sign * exp
	}
	if !slow && w < 1<<53 && e10 >= -22 && e10 <= 22 {
		v = float64(w)
		if e10 < 0 {
			v /= exactPow10[-e10]
		} else {
			v *= exactPow10[e10]
		}
		if neg {
			v = -v
		}
		return v, i, true
	}
	if !slow {
		if v, ok := wideDecimal(w, e10, neg); ok {
			return v, i, true
		}
	}
	v, err := strconv.ParseFloat(unsafe.String(&b[start], i-start), 64)
	if err != nil {
		return 0, -1, false
	}
	return v, i, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}
