package output

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/personcluster/personcluster/messages"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// pageResult is a small result of the tuned profile: two people (the first's typical face is
// its smallest), one face dropped, three kept out by the face-quality gate (two listed).
func pageResult() *messages.ClusterResult {
	p := messages.DefaultParams()
	p.Cut, p.CannotLink = messages.CutCalibrated, true
	return &messages.ClusterResult{Source: "lobby", Final: true, FramesSeen: 275, FramesAccepted: 114, Faces: 6,
		Threshold: 1.2093, Params: p, FaceModel: "fr_feature-512", ClothModel: "mobilenet_v1-512",
		Clusters: []messages.Cluster{
			{ID: 0, Typical: 2, Members: []messages.Member{
				{Seq: 3, Frame: 12, PTSMillis: 480, Face: 0, Box: messages.Box{10, 60, 60, 10}, Image: "lobby/faces/000003-0.jpg"},
				{Seq: 9, Frame: 36, PTSMillis: 1440, Face: 1, Box: messages.Box{10, 90, 90, 10}, Image: "lobby/faces/000009-1.jpg"},
				{Seq: 70, Frame: 280, PTSMillis: 11200, Face: 0, Box: messages.Box{5, 30, 30, 5}, Image: "lobby/faces/000070-0.jpg"}}},
			{ID: 1, Members: []messages.Member{
				{Seq: 9, Frame: 36, PTSMillis: 1440, Face: 0, Box: messages.Box{0, 40, 40, 0}, Image: "lobby/faces/000009-0.jpg"},
				{Seq: 61, Frame: 244, PTSMillis: 65760, Face: 1, Box: messages.Box{0, 44, 44, 0}}}},
		},
		Dropped: []messages.Member{{Seq: 40, Frame: 160, PTSMillis: 6400, Face: 2, Box: messages.Box{185, 81, 217, 57}}},
		Rejected: []messages.RejectedFace{
			{Frame: 200, PTSMillis: 8000, Box: messages.Box{300, 120, 320, 100}, Score: 0.91, Reason: "part_of_person"},
			{Frame: 24, PTSMillis: 960, Box: messages.Box{40, 230, 70, 200}, Score: 0.62, Reason: "blurred"}},
		RejectedCounts: map[string]int{"part_of_person": 2, "blurred": 1}}
}

// debugText matches what Go prints for values no page should show: struct and slice dumps,
// formatting errors, nil.
var debugText = regexp.MustCompile(`\[\{|&\{|map\[|%!|<nil>|\{\d+ \d+ \[`)

// TestPageGolden pins index.html; go test ./stages/output -run TestPageGolden -update rewrites it.
func TestPageGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePage(&buf, pageResult(), DiskLinks()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	golden := filepath.Join("testdata", "index.golden.html")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if page != string(want) {
		t.Errorf("index.html differs from %s (rerun with -update and review the diff):\n%s", golden, page)
	}
	if m := debugText.FindString(page); m != "" {
		t.Errorf("index.html shows Go debug text %q", m)
	}
	for _, want := range []string{
		`<b id="faces">6</b> faces`, `<b id="people">2</b> people`, `<b id="frames-read">275</b>`,
		"calibrated for face model fr_feature-512 (tuned profile): height 1.2093",
		`<section class="person" data-person="0"`, `<section class="person" data-person="1"`,
		`<svg class="timeline"`, `loading="lazy" src="clusters/0/frame000036_face1.jpg"`,
		"first seen 0:00.4, last seen 0:11.2", "1:05.7", "Dropped faces (1)", "24×32 px at (57, 185)",
		`src="clusters/0/frame000280_face0.jpg" alt="Person 0: best view">`, // the typical face, not the largest
		`Faces the quality gate rejected (<span id="rejected">3</span>)`,
		`<li data-reason="part_of_person"><b>2</b> part of a person beside a face`, `<li data-reason="blurred"><b>1</b> too blurred to describe`,
		"The first 2, by frame",
		`<tr data-reason="blurred"><td>24</td><td>0:00.9</td><td>too blurred to describe</td><td>30×30 px at (200, 40)</td><td>0.62</td></tr>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	if strings.Contains(page, "sim 0.55") {
		t.Error("the page names the relative cut the tuned profile did not use")
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("the page loads something from the network")
	}
}

// The original profile's page names its relative cut.
func TestPageRelativeCut(t *testing.T) {
	r := pageResult()
	r.Params.Cut, r.Threshold = "", 0.8123
	var buf bytes.Buffer
	if err := WritePage(&buf, r, DiskLinks()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "max(d)·(1−sim), sim 0.55: height 0.8123") {
		t.Errorf("page:\n%s", buf.String())
	}
}

func TestFormatPTS(t *testing.T) {
	for ms, want := range map[int64]string{0: "0:00.0", 480: "0:00.4", 65760: "1:05.7", 3723456: "1:02:03.4", -5: "0:00.0"} {
		if got := FormatPTS(ms); got != want {
			t.Errorf("FormatPTS(%d) = %q, want %q", ms, got, want)
		}
	}
}

// A person with more faces than a section shows at once: the first rows are on the page, the
// rest in an inert template behind a button, and the page carries the script its hash allows.
func TestPageManyFaces(t *testing.T) {
	r := pageResult()
	c := &r.Clusters[0]
	for i := len(c.Members); i < facesShown+8; i++ {
		c.Members = append(c.Members, messages.Member{Seq: int64(100 + i), Frame: int64(400 + i), PTSMillis: int64(16000 + 40*i),
			Box: messages.Box{0, 40, 40, 0}, Image: fmt.Sprintf("lobby/faces/%06d-0.jpg", 100+i)})
	}
	var buf bytes.Buffer
	if err := WritePage(&buf, r, DiskLinks()); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	shown, rest, ok := strings.Cut(page, `<template class="more-faces">`)
	if !ok || strings.Count(page, `<template class="more-faces">`) != 1 {
		t.Fatalf("want one template of more faces:\n%s", page)
	}
	rest, _, _ = strings.Cut(rest, "</template>")
	section := shown[strings.Index(shown, `data-person="0"`):]
	if n, m := strings.Count(section, "<figure>"), strings.Count(rest, "<figure>"); n != facesShown || m != 8 {
		t.Errorf("%d faces shown and %d in the template, want %d and 8", n, m, facesShown)
	}
	if !strings.Contains(page, `<button type="button" class="more" data-more>show all 40 faces</button>`) {
		t.Error("no button for the rest")
	}
	_, script, _ := strings.Cut(page, "<script>")
	script, _, _ = strings.Cut(script, "</script>")
	sum := sha256.Sum256([]byte(script))
	if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; script == "" || PageScriptHash != want {
		t.Errorf("PageScriptHash %s, the page's script hashes to %s", PageScriptHash, want)
	}
	if m := debugText.FindString(page); m != "" {
		t.Errorf("debug text %q", m)
	}
}
