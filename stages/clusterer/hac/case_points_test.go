package hac

import (
	"reflect"
	"testing"
)

// checkCaseFast: where decodeCaseFast takes a text, the ordinary decoder
// accepts it too and decodes the same case, field for field.
func checkCaseFast(t *testing.T, text []byte) (taken bool) {
	t.Helper()
	var fast, slow caseJSON
	ok := decodeCaseFast(text, &fast)
	err := decodeJSONText(text, &slow)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("decodeCaseFast took %q, which the decoder rejects: %v", text, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("decodeCaseFast(%q) =\n%+v\nthe decoder gives\n%+v", text, fast, slow)
	}
	return true
}

// caseFastTexts are case texts and whether the fast paths (decodeCaseFast,
// streamCase) take them.
var caseFastTexts = []struct {
	text  string
	taken bool // the fast path decodes it (else the ordinary one does)
}{
	{`{"points": [[0,0],[0,1],[5,5]]}`, true},
	{`{"name":"x","method":"ward","points":[[1,2],[3,4]],"sim":0.5,"timestamps":[1,2]}`, true},
	{"{\n  \"points\": [\n    [\n      1,\n      2\n    ],\n    [3, 4]\n  ],\n  \"min_csize\": 1\n}\n", true},
	{`{"Points": [[1],[2]], "expected": {"clusters": [[0,1]], "linkage": [[0,1,1,2]], "threshold": 1}}`, true},
	{`{"name": "a \"quoted\" ] name", "points": [[1]], "metric": "cosine"}`, true},
	{`{"points": []}`, true},
	{`{"points": [[]]}`, true},
	{`{"points": [[1,2]], "name": "n"} `, true},
	// Declined: the ordinary decoder decides (and errs where it must).
	{`{"points": [[1]], "points": [[2]]}`, false},
	{`{"points": [[1]], "POINTS": [[2]]}`, false},
	{`{"p\u006fints": [[1]]}`, false},
	{`{"points": [[1,[2]],[3]]}`, false},
	{`{"points": [[1],[null]]}`, false},
	{`{"points": null}`, false},
	{`{"points": [[1]]`, false},
	{`{"points": [[1]]} x`, false},
	{`{"points": [[1]], "sim": }`, false},
	{`[[1,2]]`, false},
	{`{"name": "no points"}`, false},
	{`{"points": [[1e400]]}`, false},
	{`{"pointſ": [[1]]}`, false},
	{`{"points": [[1]], "pointſ": [[2]]}`, false},
	{`{"größe": 1, "points": [[1]]}`, false},
	{``, false},
}

func TestDecodeCaseFast(t *testing.T) {
	for _, tc := range caseFastTexts {
		if taken := checkCaseFast(t, []byte(tc.text)); taken != tc.taken {
			t.Errorf("decodeCaseFast(%q): taken %v, want %v", tc.text, taken, tc.taken)
		}
	}
}

func FuzzDecodeCaseFast(f *testing.F) {
	for _, s := range []string{
		`{"points": [[0,0],[0,1]], "method": "average"}`, `{"a": {"b": ["]", "}"]}, "points": [[1]]}`,
		`{"points": [ [1 , 2] , [3] ] , "timestamps": [1, 2]}`, `{"Points": [[1]], "points": [[2]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) { checkCaseFast(t, text) })
}
