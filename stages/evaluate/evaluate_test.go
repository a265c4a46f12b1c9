package evaluate

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/output"
)

func TestIoU(t *testing.T) {
	sq := Box{0, 10, 10, 0} // top, right, bottom, left: 10×10 at the origin
	for _, tc := range []struct {
		name string
		a, b Box
		want float64
	}{
		{"identical", sq, sq, 1},
		{"disjoint", sq, Box{20, 30, 30, 20}, 0},
		{"touching edges (half-open)", sq, Box{0, 20, 10, 10}, 0},
		{"touching corners", sq, Box{10, 20, 20, 10}, 0},
		{"half inside: exactly 0.5", sq, Box{0, 10, 5, 0}, 0.5},
		{"shifted by half a width", sq, Box{0, 15, 10, 5}, 50.0 / 150},
		{"contained", sq, Box{2, 8, 8, 2}, 36.0 / 100},
		{"one pixel", Box{5, 6, 6, 5}, Box{5, 6, 6, 5}, 1},
		{"empty box", sq, Box{5, 5, 5, 5}, 0},
		{"inverted box", sq, Box{10, 0, 0, 10}, 0},
		{"both empty", Box{}, Box{}, 0},
		{"negative coordinates", Box{-10, 0, 0, -10}, Box{-10, 0, 0, -10}, 1},
		{"huge coordinates", Box{0, 2e9, 2e9, 0}, Box{0, 2e9, 1e9, 0}, 0.5},
	} {
		got, rev := IoU(tc.a, tc.b), IoU(tc.b, tc.a)
		if !near(got, tc.want) || got != rev {
			t.Errorf("%s: IoU(%v, %v) = %v (reversed %v), want %v", tc.name, tc.a, tc.b, got, rev, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	t0, t1 := Box{0, 10, 10, 0}, Box{0, 10, 8, 0}
	r0, r1 := Box{0, 10, 10, 0}, Box{0, 10, 9, 0}
	// IoUs: t0-r0 1, t0-r1 .9, t1-r1 80/90, t1-r0 .8. Greedy: t0-r0, then t1-r1.
	got := Match([]Box{t0, t1}, []Box{r0, r1}, 0.5)
	want := []Pair{{0, 0, 1}, {1, 1, 80.0 / 90}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Match = %v, want %v", got, want)
	}
	// One-to-one: two results on one truth box, the better one wins.
	got = Match([]Box{t0}, []Box{r1, r0}, 0.5)
	if want := []Pair{{0, 1, 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("two results on one box: %v, want %v", got, want)
	}
	// Two truth boxes on one result: the better one wins.
	got = Match([]Box{t1, t0}, []Box{r0}, 0.5)
	if want := []Pair{{1, 0, 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("one result on two boxes: %v, want %v", got, want)
	}
	// Exactly at the threshold matches; just under does not.
	half := Box{0, 10, 5, 0}
	if got := Match([]Box{t0}, []Box{half}, 0.5); len(got) != 1 {
		t.Errorf("IoU 0.5 at threshold 0.5: %v, want a match", got)
	}
	if got := Match([]Box{t0}, []Box{half}, 0.5000001); len(got) != 0 {
		t.Errorf("IoU 0.5 at threshold 0.5000001: %v, want none", got)
	}
	// Ties go to the lower truth index, then the lower result index.
	got = Match([]Box{t0, t0}, []Box{t0, t0}, 0.5)
	if want := []Pair{{0, 0, 1}, {1, 1, 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("ties: %v, want %v", got, want)
	}
	// Greedy, not maximum cardinality (documented): t0-rA .9 is taken first although t0-rB and
	// t1-rA would match both.
	tA, tB := Box{0, 100, 100, 0}, Box{0, 100, 100, 30}
	rA, rB := Box{0, 100, 100, 10}, Box{0, 70, 100, 0}
	// IoU tA-rA .9, tA-rB .7, tB-rA 70/90, tB-rB 40/100.
	got = Match([]Box{tA, tB}, []Box{rA, rB}, 0.5)
	if want := []Pair{{0, 0, 0.9}}; !reflect.DeepEqual(got, want) {
		t.Errorf("greedy: %v, want %v", got, want)
	}
	if got := Match(nil, []Box{r0}, 0.5); len(got) != 0 {
		t.Errorf("no truth: %v", got)
	}
}

// smallTruth: frames 0, 1, 2 and 5; A, B and C.
func smallTruth() *Truth {
	a, b, c := Box{0, 10, 10, 0}, Box{0, 30, 10, 20}, Box{20, 10, 30, 0}
	return &Truth{Video: "small.mp4", FPS: 10, Width: 100, Height: 100, BoxOrder: BoxOrder,
		Identities: []string{"A", "B", "C"},
		Frames: []TruthFrame{
			{Frame: 0, People: []Person{{"A", a}, {"B", b}}},
			{Frame: 1, People: []Person{{"A", a}, {"B", b}, {"C", c}}},
			{Frame: 2, People: []Person{{"A", a}, {"C", c}}},
			{Frame: 5, People: []Person{{"B", b}}},
		}}
}

func TestEvaluateSmall(t *testing.T) {
	a, bShift, c := Box{0, 10, 10, 0}, Box{0, 31, 10, 21}, Box{20, 10, 30, 0}
	faces := []Face{
		{0, a, 0}, {0, bShift, 1}, {0, Box{50, 60, 60, 50}, 1}, // a false detection
		{1, a, 0}, {1, Box{0, 30, 10, 20}, 0}, {1, c, Dropped}, // B put with A; C dropped
		{5, Box{0, 30, 10, 20}, 1},
		{9, a, 0}, // no truth for frame 9
	}
	r, err := Evaluate(smallTruth(), faces, Options{})
	if err != nil {
		t.Fatal(err)
	}
	meanIoU := (5 + 90.0/110) / 6
	wantAll := Detection{Frames: 4, TruthBoxes: 8, ResultFaces: 7, Matched: 6, Recall: 0.75, Precision: 6.0 / 7, MeanIoU: meanIoU}
	wantAll.F = harmonic(wantAll.Precision, wantAll.Recall)
	wantAcc := Detection{Frames: 3, TruthBoxes: 6, ResultFaces: 7, Matched: 6, Recall: 1, Precision: 6.0 / 7, MeanIoU: meanIoU}
	wantAcc.F = harmonic(wantAcc.Precision, wantAcc.Recall)
	checkDetection(t, "all", r.All, wantAll)
	checkDetection(t, "accepted", r.Accepted, wantAcc)
	if r.ResultFaces != 8 || r.FacesUnannotated != 1 || r.DroppedFaces != 1 || r.ResultClusters != 2 || r.TruthIdentities != 3 || r.IoU != 0.5 || r.Video != "small.mp4" {
		t.Errorf("counts: %+v", r)
	}
	// Matched (identity, cluster): (A,0) (B,1) (A,0) (B,0) (C,−1) (B,1).
	// Pairwise: both 2, same cluster 3+1 = 4, same person 1+3 = 4.
	// BCubed P: (2/3+2/3 + 2/2+2/2 + 1/3 + 1)/6 = 7/9; R: (2/2+2/2 + 2/3+2/3 + 1/3 + 1)/6 = 7/9.
	cl := r.Clustering
	if cl.Faces != 6 || cl.Dropped != 1 || cl.Clusters != 2 || cl.Identities != 3 {
		t.Errorf("clustering counts: %+v", cl)
	}
	if !near(cl.Pairwise.Precision, 0.5) || !near(cl.Pairwise.Recall, 0.5) || !near(cl.BCubed.Precision, 7.0/9) || !near(cl.BCubed.Recall, 7.0/9) {
		t.Errorf("clustering scores: %+v", cl)
	}
	direct, _ := ScorePartition([]int{0, 1, 0, 1, 2, 1}, []int{0, 1, 0, 0, -1, 1})
	if cl != direct {
		t.Errorf("Evaluate's clustering %+v differs from ScorePartition's %+v", cl, direct)
	}
	wantIDs := []IdentityRow{
		{Identity: "A", TruthBoxes: 3, Matched: 2, Clusters: 1, MainCluster: 0, Share: 1},
		{Identity: "B", TruthBoxes: 3, Matched: 3, Clusters: 2, MainCluster: 1, Share: 2.0 / 3},
		{Identity: "C", TruthBoxes: 2, Matched: 1, Dropped: 1, Clusters: 0, MainCluster: -1, Share: 0},
	}
	if !reflect.DeepEqual(r.Identities, wantIDs) {
		t.Errorf("identities:\n got %+v\nwant %+v", r.Identities, wantIDs)
	}
	wantClusters := []ClusterRow{
		{Cluster: 0, Faces: 4, Matched: 3, MainIdentity: "A", Purity: 2.0 / 3},
		{Cluster: 1, Faces: 3, Matched: 2, MainIdentity: "B", False: 1, Purity: 1},
	}
	if !reflect.DeepEqual(r.Clusters, wantClusters) {
		t.Errorf("clusters:\n got %+v\nwant %+v", r.Clusters, wantClusters)
	}

	// A stricter IoU loses the shifted B of frame 0.
	r, err = Evaluate(smallTruth(), faces, Options{IoU: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if r.All.Matched != 5 || r.IoU != 0.9 {
		t.Errorf("IoU 0.9: matched %d, want 5", r.All.Matched)
	}

	var table, js bytes.Buffer
	if err := WriteTable(&table, r); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"small.mp4", "all truth frames", "accepted frames", "pairwise", "BCubed", "NMI", "ARI", "identity", "main cluster", "purity"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || !reflect.DeepEqual(&back, r) {
		t.Errorf("JSON round trip: %v\n%s", err, js.String())
	}
}

func checkDetection(t *testing.T, name string, got, want Detection) {
	t.Helper()
	if got.Frames != want.Frames || got.TruthBoxes != want.TruthBoxes || got.ResultFaces != want.ResultFaces || got.Matched != want.Matched ||
		!near(got.Recall, want.Recall) || !near(got.Precision, want.Precision) || !near(got.F, want.F) || !near(got.MeanIoU, want.MeanIoU) {
		t.Errorf("detection %s:\n got %+v\nwant %+v", name, got, want)
	}
}

func TestEvaluateNothing(t *testing.T) {
	r, err := Evaluate(smallTruth(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.All.Frames != 4 || r.All.TruthBoxes != 8 || r.All.Recall != 0 || r.All.Precision != 0 || r.Accepted.Frames != 0 ||
		r.Clustering != (Clustering{}) || len(r.Clusters) != 0 || len(r.Identities) != 3 {
		t.Errorf("no faces: %+v", r)
	}
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(&buf, r); err != nil { // no NaN anywhere
		t.Fatal(err)
	}
}

func TestEvaluateErrors(t *testing.T) {
	ok := []Face{{0, Box{0, 10, 10, 0}, 0}}
	for _, tc := range []struct {
		name  string
		truth *Truth
		faces []Face
		opts  Options
		msg   string
	}{
		{"nil truth", nil, ok, Options{}, "no truth"},
		{"IoU > 1", smallTruth(), ok, Options{IoU: 1.5}, "IoU threshold 1.5"},
		{"IoU < 0", smallTruth(), ok, Options{IoU: -0.1}, "IoU threshold -0.1"},
		{"IoU NaN", smallTruth(), ok, Options{IoU: math.NaN()}, "IoU threshold NaN"},
		{"empty truth", &Truth{}, ok, Options{}, "truth has no frames"},
		{"negative frame", smallTruth(), []Face{{-1, Box{0, 10, 10, 0}, 0}}, Options{}, "negative frame -1"},
		{"cluster -2", smallTruth(), []Face{{0, Box{0, 10, 10, 0}, -2}}, Options{}, "cluster -2"},
		{"empty box", smallTruth(), []Face{{0, Box{0, 10, 0, 0}, 0}}, Options{}, "empty box"},
	} {
		_, err := Evaluate(tc.truth, tc.faces, tc.opts)
		checkErr(t, tc.name, err, tc.msg)
	}
}

func checkErr(t *testing.T, name string, err error, msg string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %q", name, msg)
		return
	}
	if !strings.HasPrefix(err.Error(), "evaluate: ") || !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: error %q, want one starting with \"evaluate: \" containing %q", name, err, msg)
	}
}

const goodTruth = `{"video":"v.mp4","fps":10,"width":100,"height":100,"box_order":"top,right,bottom,left",
 "identities":["a","b"],"frames":[{"frame":0,"people":[{"identity":"a","box":[0,10,10,0]},{"identity":"b","box":[0,30,10,20]}]}]}`

func TestDecodeTruth(t *testing.T) {
	tr, err := DecodeTruth(strings.NewReader(goodTruth))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Video != "v.mp4" || len(tr.Frames) != 1 || tr.Frames[0].People[1] != (Person{"b", Box{0, 30, 10, 20}}) {
		t.Errorf("decoded %+v", tr)
	}
	// No identities list and no box order: allowed.
	if _, err := DecodeTruth(strings.NewReader(`{"frames":[{"frame":3,"people":[{"identity":"x","box":[0,10,10,0]}]}]}`)); err != nil {
		t.Errorf("minimal truth: %v", err)
	}
	frame := func(people string) string {
		return `{"identities":["a","b"],"frames":[{"frame":0,"people":[` + people + `]}]}`
	}
	for _, tc := range []struct{ name, in, msg string }{
		{"empty", "", "empty file"},
		{"blank", " \n\t", "empty file"},
		{"array", "[]", "not a JSON object"},
		{"null", "null", "not a JSON object"},
		{"truncated", `{"frames":[`, "unexpected EOF"},
		{"trailing data", goodTruth + ` {}`, "data after the JSON object"},
		{"trailing brace", goodTruth + `}`, "data after the JSON object"},
		{"no frames", `{"video":"v"}`, `no "frames" list`},
		{"null frames", `{"frames":null}`, `no "frames" list`},
		{"empty frames", `{"frames":[]}`, "no frames"},
		{"box order", `{"box_order":"left,top,right,bottom","frames":[{"frame":0,"people":[]}]}`, "box_order"},
		{"fps type", `{"fps":"ten","frames":[{"frame":0,"people":[]}]}`, "cannot unmarshal"},
		{"negative fps", `{"fps":-1,"frames":[{"frame":0,"people":[]}]}`, "negative"},
		{"negative frame", `{"frames":[{"frame":-1,"people":[]}]}`, "negative frame -1"},
		{"fractional frame", `{"frames":[{"frame":1.5,"people":[]}]}`, "cannot unmarshal"},
		{"duplicate frame", `{"frames":[{"frame":2,"people":[]},{"frame":2,"people":[]}]}`, "frame 2 listed twice"},
		{"duplicate identity", `{"identities":["a","a"],"frames":[{"frame":0,"people":[]}]}`, `identity "a" listed twice`},
		{"empty identity in list", `{"identities":[""],"frames":[{"frame":0,"people":[]}]}`, "identity 0 is empty"},
		{"unknown identity", frame(`{"identity":"z","box":[0,10,10,0]}`), `"z" not in identities`},
		{"empty identity", frame(`{"identity":"","box":[0,10,10,0]}`), "empty identity"},
		{"twice in a frame", frame(`{"identity":"a","box":[0,10,10,0]},{"identity":"a","box":[0,30,10,20]}`), `"a" appears twice`},
		{"short box", frame(`{"identity":"a","box":[0,10,10]}`), "box has 3 numbers"},
		{"long box", frame(`{"identity":"a","box":[0,10,10,0,5]}`), "box has 5 numbers"},
		{"missing box", frame(`{"identity":"a"}`), "empty box"},
		{"null box", frame(`{"identity":"a","box":null}`), "box has 0 numbers"},
		{"float box", frame(`{"identity":"a","box":[0,10.5,10,0]}`), "cannot unmarshal"},
		{"empty box", frame(`{"identity":"a","box":[0,10,0,0]}`), "empty box"},
		{"inverted box", frame(`{"identity":"a","box":[10,0,0,10]}`), "empty box"},
		{"people type", `{"frames":[{"frame":0,"people":{}}]}`, "cannot unmarshal"},
	} {
		_, err := DecodeTruth(strings.NewReader(tc.in))
		checkErr(t, tc.name, err, tc.msg)
	}
}

func TestDecodeResults(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Face
	}{
		{"faces", `{"faces":[{"frame":3,"pts_ms":300,"box":[0,10,10,0],"cluster":2,"image":"x.jpg"},{"frame":4,"box":[1,11,11,1],"cluster":-1}]}`,
			[]Face{{3, Box{0, 10, 10, 0}, 2}, {4, Box{1, 11, 11, 1}, -1}}},
		{"clusters and dropped", `{"clusters":[{"id":1,"members":[{"frame":3,"box":[0,10,10,0]}]}],"dropped":[{"frame":4,"box":[1,11,11,1]}]}`,
			[]Face{{3, Box{0, 10, 10, 0}, 1}, {4, Box{1, 11, 11, 1}, -1}}},
		{"faces null, clusters", `{"faces":null,"clusters":[{"id":0,"members":[{"frame":3,"box":[0,10,10,0]}]}]}`,
			[]Face{{3, Box{0, 10, 10, 0}, 0}}},
		{"no one found", `{"source":"s","clusters":[],"dropped":[],"faces":null}`, nil},
		{"empty faces", `{"faces":[]}`, []Face{}},
		{"faces null alone", `{"faces":null}`, nil},
		{"bare result, nothing found", `{"source":"s","faces":0,"clusters":null,"dropped":null}`, nil},
	} {
		got, err := DecodeResults(strings.NewReader(tc.in))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ name, in, msg string }{
		{"empty", "", "empty file"},
		{"array", `[{"frame":0}]`, "not a JSON object"},
		{"truth file", goodTruth, "not a personcluster results file"},
		{"empty object", `{}`, "not a personcluster results file"},
		{"truncated", `{"faces":[{"frame":0`, "unexpected EOF"},
		{"trailing", `{"faces":[]}x`, "data after the JSON object"},
		{"faces type", `{"faces":"x"}`, "neither a list nor a count"},
		{"faces element type", `{"faces":[1]}`, "cannot unmarshal"},
		{"faces count only", `{"faces":3}`, "not a personcluster results file"},
		{"clusters type", `{"clusters":{}}`, "clusters: json: cannot unmarshal"},
		{"dropped type", `{"dropped":3}`, "dropped: json: cannot unmarshal"},
		{"negative frame", `{"faces":[{"frame":-2,"box":[0,10,10,0],"cluster":0}]}`, "negative frame -2"},
		{"cluster -2", `{"faces":[{"frame":0,"box":[0,10,10,0],"cluster":-2}]}`, "cluster -2"},
		{"short box", `{"faces":[{"frame":0,"box":[0,10,10],"cluster":0}]}`, "box has 3 numbers"},
		{"empty box", `{"faces":[{"frame":0,"box":[0,0,10,0],"cluster":0}]}`, "empty box"},
		{"missing box", `{"faces":[{"frame":0,"cluster":0}]}`, "empty box"},
		{"negative cluster id", `{"clusters":[{"id":-1,"members":[]}]}`, "cluster id -1"},
		{"bad member box", `{"clusters":[{"id":0,"members":[{"frame":0,"box":[5,5,5,5]}]}]}`, "empty box"},
		{"bad dropped", `{"dropped":[{"frame":-1,"box":[0,10,10,0]}]}`, "negative frame"},
	} {
		_, err := DecodeResults(strings.NewReader(tc.in))
		checkErr(t, tc.name, err, tc.msg)
	}
}

// TestResultsFormat decodes what stages/output writes, both results.json and a bare ClusterResult.
func TestResultsFormat(t *testing.T) {
	cr := &messages.ClusterResult{Source: "s1", Final: true,
		Clusters: []messages.Cluster{
			{ID: 0, Members: []messages.Member{{Frame: 1, Box: messages.Box{0, 10, 10, 0}}, {Frame: 2, Box: messages.Box{1, 11, 11, 1}, Face: 1}}},
			{ID: 1, Members: []messages.Member{{Frame: 2, Box: messages.Box{0, 30, 10, 20}}}},
		},
		Dropped: []messages.Member{{Frame: 7, Box: messages.Box{5, 15, 15, 5}}},
	}
	want := []Face{{1, Box{0, 10, 10, 0}, 0}, {2, Box{1, 11, 11, 1}, 0}, {2, Box{0, 30, 10, 20}, 1}, {7, Box{5, 15, 15, 5}, -1}}
	full, err := json.Marshal(output.NewResults(cr))
	if err != nil {
		t.Fatal(err)
	}
	bare, err := json.Marshal(cr)
	if err != nil {
		t.Fatal(err)
	}
	// Files written before the face count took back its name carried the list as "faces".
	old, err := json.Marshal(map[string]any{"source": "s1", "faces": output.FaceRecords(cr)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(full, []byte(`"faces":0,`)) {
		t.Errorf("results.json lost its face count: %.200s", full)
	}
	for name, data := range map[string][]byte{"results.json": full, "ClusterResult": bare, "older results.json": old} {
		got, err := DecodeResults(bytes.NewReader(data))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, %v; want %v", name, got, err, want)
		}
	}

	// LoadResults takes the file, its folder, or an output folder with one source.
	dir := t.TempDir()
	src := filepath.Join(dir, "s1")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "results.json"), full, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(src, "results.json"), src, dir} {
		got, err := LoadResults(p)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("LoadResults(%s): %v, %v", p, got, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "s2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "s2", "results.json"), full, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadResults(dir)
	checkErr(t, "two sources", err, "2 sources")
	_, err = LoadResults(t.TempDir())
	checkErr(t, "empty folder", err, "no results.json")
	_, err = LoadResults(filepath.Join(dir, "missing.json"))
	checkErr(t, "missing file", err, "no such file")
	_, err = LoadTruth(filepath.Join(dir, "missing.json"))
	checkErr(t, "missing truth", err, "no such file")
	_, err = LoadTruth(filepath.Join(src, "results.json"))
	checkErr(t, "results as truth", err, "not a ground-truth file")
}

// truthAsFaces turns a truth into a perfect result: every box found, one cluster per identity.
func truthAsFaces(tr *Truth) []Face {
	ids := newIndex(tr.Identities)
	var faces []Face
	for _, fr := range tr.Frames {
		for _, p := range fr.People {
			faces = append(faces, Face{Frame: fr.Frame, Box: p.Box, Cluster: ids.id(p.Identity)})
		}
	}
	return faces
}

func TestRealTruthAgainstItself(t *testing.T) {
	for _, name := range []string{"cast_public.mp4.truth.json", "cast_hard_public.mp4.truth.json"} {
		t.Run(name, func(t *testing.T) {
			realTruthAgainstItself(t, filepath.Join("..", "..", "..", "shared", "testdata", "video", name))
		})
	}
}

func realTruthAgainstItself(t *testing.T, path string) {
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared test data not found: %v", err)
	}
	tr, err := LoadTruth(path)
	if err != nil {
		t.Fatal(err)
	}
	faces := truthAsFaces(tr)

	// Through results.json too, as `personcluster eval` reads it.
	recs := make([]output.FaceRecord, len(faces))
	for i, f := range faces {
		recs[i] = output.FaceRecord{Frame: f.Frame, Box: messages.Box(f.Box), Cluster: f.Cluster}
	}
	data, err := json.Marshal(output.Results{ClusterResult: &messages.ClusterResult{Source: "cast", Faces: len(recs)}, FaceList: recs})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadResults(file)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, faces) {
		t.Fatal("results.json round trip changed the faces")
	}

	r, err := Evaluate(tr, loaded, Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(faces)
	if r.All.Frames != len(tr.Frames) || r.All.TruthBoxes != n || r.All.Matched != n || r.Accepted.Frames != len(tr.Frames) || r.FacesUnannotated != 0 || r.DroppedFaces != 0 {
		t.Errorf("counts: %+v", r)
	}
	c := r.Clustering
	for name, v := range map[string]float64{
		"recall": r.All.Recall, "precision": r.All.Precision, "F": r.All.F, "mean IoU": r.All.MeanIoU,
		"accepted recall": r.Accepted.Recall, "accepted precision": r.Accepted.Precision,
		"pairwise P": c.Pairwise.Precision, "pairwise R": c.Pairwise.Recall, "pairwise F": c.Pairwise.F,
		"BCubed P": c.BCubed.Precision, "BCubed R": c.BCubed.Recall, "BCubed F": c.BCubed.F,
		"NMI": c.NMI, "ARI": c.ARI,
	} {
		if math.Abs(v-1) > 1e-12 {
			t.Errorf("%s = %v, want 1", name, v)
		}
	}
	present := map[string]bool{} // the identities list may name people who never appear
	for _, fr := range tr.Frames {
		for _, p := range fr.People {
			present[p.Identity] = true
		}
	}
	if k := len(present); c.Faces != n || c.Clusters != k || c.Identities != k || r.TruthIdentities != k || len(r.Identities) != k {
		t.Errorf("clustering counts: %+v (identities present %d)", c, k)
	}
	for _, row := range r.Identities {
		if row.Share != 1 || row.Clusters != 1 || row.Matched != row.TruthBoxes {
			t.Errorf("identity row %+v", row)
		}
	}
	for _, row := range r.Clusters {
		if row.Purity != 1 || row.Matched != row.Faces {
			t.Errorf("cluster row %+v", row)
		}
	}
	if t.Failed() {
		var buf bytes.Buffer
		_ = WriteTable(&buf, r)
		t.Log("\n" + buf.String())
	}

	// Everything in one cluster: recall stays 1, precision falls to the chance of a same pair.
	for i := range loaded {
		loaded[i].Cluster = 0
	}
	r, err = Evaluate(tr, loaded, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Clustering.Pairwise.Recall != 1 || r.Clustering.BCubed.Recall != 1 || r.Clustering.NMI != 0 || r.Clustering.ARI != 0 || r.Clustering.BCubed.Precision >= 0.5 {
		t.Errorf("one cluster: %+v", r.Clustering)
	}
}

// Result faces on labelled unclear faces are left out of precision and clustering; those on
// labelled non-faces, or on nothing, are false faces, counted by what they show and per cluster.
func TestEvaluateUnclearAndNonFaces(t *testing.T) {
	truth := smallTruth()
	hand, blur, logo := Box{50, 60, 60, 50}, Box{70, 80, 80, 70}, Box{0, 100, 10, 90}
	truth.Frames[0].Unclear = []Box{blur}
	truth.Frames[0].NonFaces = []NonFace{{hand, "hand"}}
	truth.Frames[1].NonFaces = []NonFace{{logo, "logo"}}
	a, b := truth.Frames[0].People[0].Box, truth.Frames[0].People[1].Box
	faces := []Face{
		{Frame: 0, Box: a, Cluster: 0}, {Frame: 0, Box: b, Cluster: 1},
		{Frame: 0, Box: blur, Cluster: 1}, {Frame: 0, Box: hand, Cluster: 2},
		{Frame: 1, Box: logo, Cluster: 2}, {Frame: 1, Box: Box{40, 40, 45, 35}, Cluster: 0},
		{Frame: 9, Box: hand, Cluster: 2}, // not a truth frame: ignored
	}
	rep, err := Evaluate(truth, faces, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.UnclearFaces != 1 || rep.FalseFaces != 3 || rep.All.ResultFaces != 5 || rep.All.Matched != 2 {
		t.Errorf("unclear %d, false %d, result faces %d, matched %d; want 1, 3, 5, 2", rep.UnclearFaces, rep.FalseFaces, rep.All.ResultFaces, rep.All.Matched)
	}
	if want := map[string]int{"hand": 1, "logo": 1, "unlabelled": 1}; !reflect.DeepEqual(rep.NonFaceKinds, want) {
		t.Errorf("non-face kinds %v, want %v", rep.NonFaceKinds, want)
	}
	if math.Abs(rep.RealShare-0.5) > 1e-12 || math.Abs(rep.All.Precision-0.4) > 1e-12 {
		t.Errorf("real share %.3f, precision %.3f; want 0.5 (3 of 6) and 0.4 (2 of 5)", rep.RealShare, rep.All.Precision)
	}
	if rep.Clustering.Faces != 2 {
		t.Errorf("clustering scored %d faces, want the 2 named ones", rep.Clustering.Faces)
	}
	for _, c := range rep.Clusters {
		if want := map[int]int{0: 1, 1: 0, 2: 2}[c.Cluster]; c.False != want {
			t.Errorf("cluster %d: %d false faces, want %d", c.Cluster, c.False, want)
		}
	}
	truth.Frames[2].NonFaces = []NonFace{{Box{5, 5, 5, 5}, "empty"}}
	if err := truth.Validate(); err == nil {
		t.Error("an empty non-face box is accepted")
	}
}

// A live source's face list holds many windows, each numbering its clusters from 0: its faces
// are grouped by person, or without one by window and cluster; dropped faces stay dropped.
func TestDecodeLiveResults(t *testing.T) {
	list := `{"faces":6,"window":2,"face_list":[
		{"frame":0,"box":[0,10,10,0],"cluster":0,"person":"pa","window":1},
		{"frame":0,"box":[0,30,10,20],"cluster":1,"person":"pb","window":1},
		{"frame":1,"box":[0,30,10,20],"cluster":-1,"window":1},
		{"frame":5,"box":[0,10,10,0],"cluster":0,"person":"pb","window":2},
		{"frame":5,"box":[0,30,10,20],"cluster":1,"window":2},
		{"frame":6,"box":[0,30,10,20],"cluster":1,"window":3}]}`
	faces, err := DecodeResults(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, f := range faces {
		got = append(got, f.Cluster)
	}
	// pa, pb, dropped, pb again, window 2's cluster 1, window 3's cluster 1 (another).
	if want := []int{0, 1, Dropped, 1, 2, 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("clusters %v, want %v", got, want)
	}
}
