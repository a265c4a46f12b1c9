package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer"
)

func TestLoadPartsSplitsFingerprints(t *testing.T) {
	face := [][]float32{{3, 4, 0}, {0, 0, 2}, {1, 0, 0}}
	cloth := [][]float32{{1, 1}, {0, 5}, {2, 0}}
	fp := clusterer.FingerprintFile{FaceModel: "m", FaceWeight: 1, ClothWeight: 1}
	for i := range face {
		fp.Points = append(fp.Points, clusterer.Fingerprint(face[i], cloth[i], 1, 1))
		fp.Members = append(fp.Members, messages.Member{Seq: int64(i), Frame: int64(10 + i), Box: messages.Box{0, 10, 10, 0}})
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(fp); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	path := filepath.Join(t.TempDir(), "fingerprints.json.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := loadParts(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.faceDim != 3 || p.model != "m" || len(p.faces.Cloth[0]) != 2 || p.frameNos[2] != 12 {
		t.Errorf("split at %d, model %q, cloth %v, frames %v", p.faceDim, p.model, p.faces.Cloth, p.frameNos)
	}
	if d := p.faces.Face[0][0] - 0.6; d > 1e-6 || d < -1e-6 {
		t.Errorf("face 0 = %v, want the unit vector (0.6, 0.8, 0)", p.faces.Face[0])
	}
	if _, err := commonSplit([][]float64{{1, 2, 0}}); err == nil {
		t.Error("a point that is not two unit vectors was split")
	}
}

func TestPlot(t *testing.T) {
	var points []Point
	for _, run := range []string{"a-onnx", "b-dlib"} {
		for _, m := range modes {
			for s := 1; s <= 19; s++ {
				points = append(points, Point{Run: run, Mode: m.Name, CannotLink: true, Sim: float64(s) * 0.05, F: float64(s) / 20})
			}
		}
	}
	path := filepath.Join(t.TempDir(), "plot", "ablation.png")
	if err := writePlot(path, points); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 2*panelW || b.Dy() != panelH+legendH {
		t.Errorf("plot %v, want two panels in a row", b)
	}
}
