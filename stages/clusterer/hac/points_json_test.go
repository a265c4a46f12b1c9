package hac

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
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
