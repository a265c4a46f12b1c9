package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/personcluster/personcluster/messages"
)

func jpegOf(t *testing.T, w, h int, c color.RGBA) []byte { return jpegOfTB(t, w, h, c) }

func jpegOfTB(t testing.TB, w, h int, c color.RGBA) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteFolder(t *testing.T) {
	box := messages.Box{10, 40, 50, 10}
	r := &messages.ClusterResult{Source: "cam-1", Final: true, FramesSeen: 10, FramesAccepted: 3, Faces: 4, Params: messages.DefaultParams(),
		Clusters: []messages.Cluster{
			{ID: 0, Members: []messages.Member{{Frame: 1, Face: 0, Box: box, Image: "a"}, {Frame: 2, Face: 0, Box: box, Image: "b"}}},
			{ID: 1, Members: []messages.Member{{Frame: 2, Face: 1, Box: box, Image: "c"}}},
		},
		Dropped: []messages.Member{{Frame: 5, Face: 1, Box: box}}, Fingerprints: "fp"}
	objects := map[string][]byte{"a": jpegOf(t, 30, 60, color.RGBA{255, 0, 0, 255}), "b": jpegOf(t, 60, 30, color.RGBA{0, 255, 0, 255}),
		"c": jpegOf(t, 20, 20, color.RGBA{0, 0, 255, 255}), "fp": []byte("gz"), "fp.npy": []byte("npy"), "fp.npy.json": []byte("{}")}
	dir := t.TempDir()
	root, err := Write(dir, r, func(key string) ([]byte, error) { return objects[key], nil })
	if err != nil {
		t.Fatal(err)
	}
	if root != filepath.Join(dir, "cam-1") {
		t.Errorf("root %s", root)
	}
	for _, f := range []string{"clusters/0/frame000001_face0.jpg", "clusters/0/frame000002_face0.jpg", "clusters/1/frame000002_face1.jpg", "fingerprints.json.gz", FingerprintsNPY, FingerprintsNPYJSON, "index.html"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Error(err)
		}
	}
	var res struct {
		Faces    int          `json:"faces"`
		FaceList []FaceRecord `json:"face_list"`
	}
	data, _ := os.ReadFile(filepath.Join(root, "results.json"))
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if res.Faces != 4 || len(res.FaceList) != 4 || res.FaceList[3].Cluster != -1 || res.FaceList[3].Frame != 5 || res.FaceList[2].Cluster != 1 {
		t.Errorf("faces %d, list %+v", res.Faces, res.FaceList)
	}
	f, _ := os.Open(filepath.Join(root, "montage.png"))
	defer f.Close()
	m, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// Two columns (clusters) under their headers, two rows (the longer cluster), 96-pixel
	// cells with 4-pixel gaps.
	if b := m.Bounds(); b.Dx() != 2*100+4 || b.Dy() != montageHeader+2*100+4 {
		t.Errorf("montage %v", b)
	}
	if r, g, _, _ := m.At(4+48, montageHeader+4+48).RGBA(); r>>8 < 200 || g>>8 > 60 {
		t.Errorf("first cell is not the red crop: %v", m.At(52, montageHeader+52))
	}
	if !inked(m, image.Rect(4, 0, 100, montageHeader)) || !inked(m, image.Rect(104, 0, 200, montageHeader)) {
		t.Error("a montage column has no header")
	}
	page, _ := os.ReadFile(filepath.Join(root, "index.html"))
	if !strings.Contains(string(page), `<b id="people">2</b> people`) || !strings.Contains(string(page), `src="clusters/1/frame000002_face1.jpg"`) {
		t.Errorf("index.html:\n%s", page)
	}
}

func TestWriteRefusesUnsafeSource(t *testing.T) {
	r := &messages.ClusterResult{Source: "../escape"}
	if _, err := Write(t.TempDir(), r, nil); err == nil || !strings.HasPrefix(err.Error(), "output: ") {
		t.Fatalf("err = %v", err)
	}
}

// A video where no frame was accepted still gets a complete result folder.
func TestWriteNoClusters(t *testing.T) {
	r := &messages.ClusterResult{Source: "empty", Final: true, FramesSeen: 5, Params: messages.DefaultParams(), Fingerprints: "fp"}
	dir := t.TempDir()
	root, err := Write(dir, r, func(key string) ([]byte, error) { return []byte("gz"), nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.json", "montage.png", "index.html", "fingerprints.json.gz"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Error(err)
		}
	}
}

// inked reports whether r of m holds a light pixel (header text on the dark background).
func inked(m image.Image, r image.Rectangle) bool {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if v, _, _, _ := m.At(x, y).RGBA(); v>>8 > 128 {
				return true
			}
		}
	}
	return false
}

// The montage's first cell of a person is their typical face (Cluster.Typical), not their
// first.
func TestMontageTypicalFirst(t *testing.T) {
	colors := []color.RGBA{{220, 40, 40, 255}, {40, 220, 40, 255}, {40, 40, 220, 255}}
	c := messages.Cluster{ID: 0, Typical: 2}
	crops := map[string][]byte{}
	for i, col := range colors {
		key := fmt.Sprintf("src/faces/%06d-0.jpg", i)
		crops[key] = jpegOfTB(t, 64, 64, col)
		c.Members = append(c.Members, messages.Member{Seq: int64(i), Frame: int64(i), Image: key})
	}
	r := &messages.ClusterResult{Source: "src", Clusters: []messages.Cluster{c}}
	data, err := ResultMontage(r, func(key string) ([]byte, error) { return crops[key], nil }, 64)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// The middle of the first cell, below the header.
	got := color.RGBAModel.Convert(img.At(img.Bounds().Min.X+4+32, img.Bounds().Min.Y+montageHeader+4+32)).(color.RGBA)
	if got.B < 150 || got.R > 100 || got.G > 100 {
		t.Errorf("first cell is %v, want the typical face's blue", got)
	}
}
