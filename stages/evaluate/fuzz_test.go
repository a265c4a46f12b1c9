package evaluate

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func seedFuzz(f *testing.F) {
	f.Add([]byte(goodTruth))
	f.Add([]byte(`{"faces":[{"frame":0,"box":[0,10,10,0],"cluster":0},{"frame":0,"box":[0,30,10,20],"cluster":-1}]}`))
	f.Add([]byte(`{"clusters":[{"id":0,"members":[{"frame":0,"box":[0,10,10,0]}]}],"dropped":[{"frame":0,"box":[0,30,10,20]}]}`))
	f.Add([]byte(`{"frames":[{"frame":0,"people":[{"identity":"a","box":[0,10,10]}]}]}`))
	f.Add([]byte(`{"faces":null}`))
	f.Add([]byte(`{"faces":2,"face_list":[{"frame":0,"box":[0,10,10,0],"cluster":0},{"frame":0,"box":[0,30,10,20],"cluster":-1}]}`))
	f.Add([]byte(`{"faces":1,"face_list":null,"dropped":[{"frame":0,"box":[0,30,10,20]}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(``))
}

// checkReport fails on a report outside its ranges or one JSON cannot encode.
func checkReport(t *testing.T, r *Report) {
	c := r.Clustering
	for _, v := range []float64{r.All.Recall, r.All.Precision, r.All.F, r.All.MeanIoU, r.Accepted.Recall, r.Accepted.Precision, r.Accepted.F,
		c.Pairwise.Precision, c.Pairwise.Recall, c.Pairwise.F, c.BCubed.Precision, c.BCubed.Recall, c.BCubed.F, c.NMI} {
		if math.IsNaN(v) || v < 0 || v > 1+1e-12 {
			t.Fatalf("score %v outside [0,1]: %+v", v, r)
		}
	}
	if math.IsNaN(c.ARI) || c.ARI < -1 || c.ARI > 1+1e-12 {
		t.Fatalf("ARI %v", c.ARI)
	}
	if err := WriteJSON(&bytes.Buffer{}, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(&bytes.Buffer{}, r); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeTruth(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTruth(bytes.NewReader(data))
		if err != nil {
			if tr != nil || !strings.HasPrefix(err.Error(), "evaluate: ") {
				t.Fatalf("%v, %v", tr, err)
			}
			return
		}
		if len(tr.Frames) > 1000 {
			return
		}
		r, err := Evaluate(tr, truthAsFaces(tr), Options{})
		if err != nil {
			t.Fatalf("a valid truth against itself: %v", err)
		}
		checkReport(t, r)
		if r.All.Matched != r.All.TruthBoxes {
			t.Fatalf("truth against itself matched %d of %d", r.All.Matched, r.All.TruthBoxes)
		}
		// A valid truth survives a round trip.
		js, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeTruth(bytes.NewReader(js)); err != nil {
			t.Fatalf("re-encoded truth: %v", err)
		}
	})
}

func FuzzDecodeResults(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		faces, err := DecodeResults(bytes.NewReader(data))
		if err != nil {
			if faces != nil || !strings.HasPrefix(err.Error(), "evaluate: ") {
				t.Fatalf("%v, %v", faces, err)
			}
			return
		}
		if len(faces) > 1000 {
			return
		}
		r, err := Evaluate(smallTruth(), faces, Options{})
		if err != nil {
			t.Fatalf("valid faces: %v", err)
		}
		checkReport(t, r)
	})
}
