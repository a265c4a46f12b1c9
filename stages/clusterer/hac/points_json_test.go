package hac

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// checkPointsAsJSON: where parsePoints takes b, encoding/json accepts it and
// decodes the same values, bit for bit, whatever the number of pieces.
func checkPointsAsJSON(t *testing.T, b []byte) {
	t.Helper()
	var want [][]float64
	errWant := json.Unmarshal(b, &want)
	for _, workers := range []int{1, 2, 3} {
		got, ok := parsePoints(b, workers, 0)
		if !ok {
			continue
		}
		if errWant != nil {
			t.Fatalf("parsePoints(%q, %d) took what encoding/json rejects: %v", b, workers, errWant)
		}
		if len(got) != len(want) || (got == nil) != (want == nil) {
			t.Fatalf("parsePoints(%q, %d) = %v, encoding/json %v", b, workers, got, want)
		}
		for i := range got {
			if len(got[i]) != len(want[i]) || (got[i] == nil) != (want[i] == nil) {
				t.Fatalf("parsePoints(%q, %d) row %d = %v, encoding/json %v", b, workers, i, got[i], want[i])
			}
			for j := range got[i] {
				if math.Float64bits(got[i][j]) != math.Float64bits(want[i][j]) {
					t.Fatalf("parsePoints(%q, %d) [%d][%d] = %v, encoding/json %v", b, workers, i, j, got[i][j], want[i][j])
				}
			}
		}
	}
	// The whole decoder, fast path or not, agrees with encoding/json.
	var p pointsJSON
	if err := p.UnmarshalJSON(b); (err == nil) != (errWant == nil) {
		t.Fatalf("UnmarshalJSON(%q) error %v, encoding/json %v", b, err, errWant)
	}
}

func TestParsePoints(t *testing.T) {
	for _, s := range []string{
		`[]`, ` [ ] `, `[[]]`, `[[],[]]`, `[[1]]`, `[[1,2],[3,4]]`, " [\n[ 1 , 2 ]\t,\r\n[3,4] ] ",
		`[[-0,0.5,1e3,1E-3,-1.25e+2,123456789012345678901234567890]]`,
		`[[0.1,0.2,0.30000000000000004,2.2250738585072014e-308,4.9e-324,1e-400,1.7976931348623157e308]]`,
		// Not the plain form: handed to sonic, which must agree with encoding/json.
		`null`, `[null]`, `[[null]]`, `[[1,null]]`, `[[1e400]]`, `[[01]]`, `[[1.]]`, `[[.5]]`, `[[+1]]`,
		`[[1,]]`, `[[1],]`, `[,[1]]`, `[[1] [2]]`, `[[1]`, `[1]`, `[["1"]]`, `[[NaN]]`, `[[Infinity]]`,
		`[[1]]]`, `[[1]],`, `{}`, `[[0x10]]`, `[[1_0]]`, `[[-]]`, `[[1e]]`, `[[1e+]]`, `[[- 1]]`,
	} {
		checkPointsAsJSON(t, []byte(s))
	}
}

// TestParsePointsPieces: a case big enough to be cut into pieces parses to
// the same rows as encoding/json, with any number of pieces.
func TestParsePointsPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	sb.WriteString("[")
	for i := range 300 {
		if i > 0 {
			sb.WriteString(",\n ")
		}
		sb.WriteString("[")
		for j := range 1 + i%7 {
			if j > 0 {
				sb.WriteString(", ")
			}
			v := rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
			sb.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
		sb.WriteString("]")
	}
	sb.WriteString("]")
	b := []byte(sb.String())
	checkPointsAsJSON(t, b)
	for _, workers := range []int{2, 5, 64} {
		if chunks := splitRows(b[1:len(b)-1], workers); len(chunks) < 2 {
			t.Fatalf("splitRows gave %d pieces for %d workers", len(chunks), workers)
		}
	}
}

func FuzzParsePoints(f *testing.F) {
	for _, s := range []string{`[[1,2],[3,4]]`, `[[0.5e-3, -2], [], [7]]`, `[[1],[null]]`, fmt.Sprint([][]float64{{1, 2}, {3}})} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkPointsAsJSON(t, b) })
}

// checkParseNumber: parseNumber finds the number numberEnd (the grammar,
// written plainly) finds, and its value is strconv.ParseFloat's bit for bit.
func checkParseNumber(t *testing.T, b []byte) {
	t.Helper()
	v, end, ok := parseNumber(b, 0)
	wantEnd := numberEnd(b, 0)
	var want float64
	wantOK := wantEnd >= 0
	if wantOK {
		var err error
		want, err = strconv.ParseFloat(string(b[:wantEnd]), 64)
		wantOK = err == nil
	}
	if ok != wantOK || ok && (end != wantEnd || math.Float64bits(v) != math.Float64bits(want)) {
		t.Fatalf("parseNumber(%q) = %v, %d, %v; want %v, %d, %v", b, v, end, ok, want, wantEnd, wantOK)
	}
}

func TestParseNumber(t *testing.T) {
	for _, s := range []string{
		"0", "-0", "-0.0", "0.000", "1", "-1", "0.03716498240828514", "-0.03716498240828514",
		"9007199254740991", "9007199254740992", "9007199254740993", "90071992547409930", // 2⁵³ edges
		"1234567890123456789", "12345678901234567890", "0.12345678901234567890123",
		"1e22", "1e23", "1e-22", "1e-23", "123e20", "0.1e-21", "5e-324", "4.9e-324", "2e-324",
		"2.2250738585072011e-308", "2.2250738585072014e-308", "1.7976931348623157e308", "1.8e308",
		"1e400", "-1e400", "1e-400", "0e999999999999", "1e-99999999999999999999", "0.0000000000000000000000001",
		"3.0e+0", "3E-0", "1.5,", "2]", "7 ", "00", "01", "-", "+1", ".5", "1.", "1e", "1e+", "1.e3", "-.5", "", "x",
	} {
		checkParseNumber(t, []byte(s))
	}
	// Exponents past strconv's cap of ten thousand, made up by as many
	// leading zeros: the value is strconv's, not the mathematical one.
	for _, s := range []string{
		"0." + strings.Repeat("0", 10010) + "1e10015", "0." + strings.Repeat("0", 99999) + "1e100005",
		"1" + strings.Repeat("0", 400) + "e-395", "0.1e9999", "0.1e10000", "1e99999",
	} {
		checkParseNumber(t, []byte(s))
	}
}

// A short piece of rows is carved from a slab its own size, not one of 512
// KB that its rows would keep alive (the streaming reader cuts a case into
// many pieces).
func TestParseRowsShortPieceSlab(t *testing.T) {
	piece := []byte("[1.5,2.5,3.5],[4.5,5.5,6.5]")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rows, ok := parseRows(piece)
	runtime.ReadMemStats(&after)
	if !ok || len(rows) != 2 {
		t.Fatalf("parseRows: %v %v", rows, ok)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4096 {
		t.Errorf("parseRows of %d bytes allocated %d bytes", len(piece), n)
	}
}

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"-0.03716498240828514", "1e22", "9007199254740993", "0.000123", "1e-400", "12345678901234567890"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkParseNumber(t, b) })
}

// numberEnd is the end of the JSON number (RFC 8259) starting at b[i], or
// -1 if none starts there.
func numberEnd(b []byte, i int) int {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i == len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(i + 1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}
