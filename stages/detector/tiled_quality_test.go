package detector_test

import (
	"image"
	"path/filepath"
	"testing"

	"github.com/personcluster/personcluster/stages/detector"
)

// Small faces: tiling on the hard cast video (faces 35–71 px in 960×540, blurred, dimmed, partly
// covered), every 8th frame: tiles find more faces than the whole frame alone and no false ones. Logs
// recall, precision and the time per frame. (Measured every 4th frame: UltraFace-320 0.325,
// 320 tiled 2×2 0.458, 640 0.584, 640 tiled 2×2 0.693 at 5× the time, 640 at score 0.5 tiled
// 0.705; precision 1.0 throughout.)
func TestTiledFindsSmallFaces(t *testing.T) {
	if testing.Short() {
		t.Skip("reads two videos with four detectors")
	}
	dir := initORT(t)
	type cfg struct {
		name string
		det  detector.FaceDetector
	}
	tiled := func(d detector.FaceDetector, c detector.TiledConfig) detector.FaceDetector {
		tl, err := detector.NewTiled(d, c)
		if err != nil {
			t.Fatal(err)
		}
		return tl
	}
	open640 := func(th float32) detector.FaceDetector {
		return openUltraFace(t, detector.UltraFaceConfig{Path: filepath.Join(dir, "face", "version-RFB-640.onnx"), Width: 640, Height: 480, RGB: true, Threshold: th})
	}
	cfgs := []cfg{
		{"640", open640(0)},
		{"640 tiled 2x2", tiled(open640(0), detector.TiledConfig{})},
	}
	for _, video := range []string{"video/cast_hard_public.mp4"} {
		scores := scoreVideo(t, video, 8, cfgs[0].det, cfgs[1].det)
		for k, c := range cfgs {
			t.Logf("%s UltraFace-%s: recall %.3f precision %.3f, %.1f ms/frame", video, c.name, scores[k].recall(), scores[k].precision(),
				float64(scores[k].spent.Milliseconds())/float64(scores[k].frames))
		}
		if scores[1].recall() < scores[0].recall()+0.05 || scores[1].precision() < 0.95 {
			t.Errorf("tiles: recall %.3f (whole frame %.3f), precision %.3f", scores[1].recall(), scores[0].recall(), scores[1].precision())
		}
	}
	for _, c := range cfgs {
		c.det.Close()
	}
}

func TestTilesCoverTheImageWithOverlap(t *testing.T) {
	for _, c := range []struct{ cols, rows, w, h int }{{2, 2, 960, 540}, {3, 3, 640, 360}, {1, 2, 101, 77}, {4, 1, 1920, 1080}} {
		u := openUltraFace(t, detector.UltraFaceConfig{})
		tl, err := detector.NewTiled(u, detector.TiledConfig{Cols: c.cols, Rows: c.rows, Overlap: 0.25})
		if err != nil {
			t.Fatal(err)
		}
		tiles := tl.Tiles(c.w, c.h)
		tl.Close()
		if len(tiles) != c.cols*c.rows {
			t.Fatalf("%+v: %d tiles", c, len(tiles))
		}
		covered := image.Rectangle{}
		for k, r := range tiles {
			if !r.In(image.Rect(0, 0, c.w, c.h)) || r.Empty() {
				t.Errorf("%+v: tile %v outside the image", c, r)
			}
			covered = covered.Union(r)
			// Neighbours overlap by about a quarter of a tile.
			if k%c.cols > 0 {
				left := tiles[k-1]
				if ov := left.Max.X - r.Min.X; float64(ov) < 0.2*float64(r.Dx()) {
					t.Errorf("%+v: tiles %v and %v overlap by %d px", c, left, r, ov)
				}
			}
		}
		if covered != image.Rect(0, 0, c.w, c.h) {
			t.Errorf("%+v: tiles cover %v", c, covered)
		}
	}
	if _, err := detector.NewTiled(openUltraFace(t, detector.UltraFaceConfig{}), detector.TiledConfig{Cols: 2, Rows: 2, Overlap: 0.7}); err == nil {
		t.Error("overlap 0.7 accepted")
	}
}
