// Command labelsheet helps label real footage by hand: it samples frames of a video, runs
// several detectors on each (the default RetinaFace with its second look, RetinaFace's weaker
// proposals, UltraFace-320), merges what they find into numbered candidate boxes, and writes
// each sampled frame as a PNG with the numbers drawn, plus candidates.json. A person then
// writes the truth file (evaluate.Truth: identities for the real faces, non_faces for the rest)
// by looking at the sheets.
//
//	go run ./stages/evaluate/labelsheet -video VIDEO -every 10 -out out/label
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"log"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/pipeline"
)

// Candidate is one numbered box of a sampled frame.
type Candidate struct {
	N      int                `json:"n"`
	Box    messages.Box       `json:"box"`
	Scores map[string]float32 `json:"scores"` // detector name → score
}

// Frame is a sampled frame's candidates.
type Frame struct {
	Frame      int64       `json:"frame"`
	Candidates []Candidate `json:"candidates"`
}

func main() {
	video := flag.String("video", "", "video file")
	every := flag.Int("every", 10, "label every Nth frame")
	out := flag.String("out", "out/label", "output folder")
	models := flag.String("models", pipeline.DefaultModelsDir(), "models folder")
	flag.Parse()
	if *video == "" {
		log.Fatal("labelsheet: -video is required")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	dets := map[string]detector.FaceDetector{}
	for name, m := range map[string]pipeline.Models{
		"zoom":    {Dir: *models, Threads: 2},
		"retina3": {Dir: *models, Threads: 2, DetectorNoZoom: true, DetectorScore: 0.2},
		"ultra":   {Dir: *models, Threads: 2, Detector: pipeline.DetectorUltraFace320, DetectorScore: 0.5},
	} {
		d, err := m.OpenDetector()
		if err != nil {
			log.Fatal(err)
		}
		defer d.Close()
		dets[name] = d
	}
	vc, err := gocv.VideoCaptureFile(*video)
	if err != nil {
		log.Fatal(err)
	}
	defer vc.Close()
	img := gocv.NewMat()
	defer img.Close()
	var frames []Frame
	var tiles []gocv.Mat
	for idx := int64(0); vc.Read(&img); idx++ {
		if img.Empty() || idx%int64(*every) != 0 {
			continue
		}
		var cands []Candidate
		for _, name := range []string{"zoom", "retina3", "ultra"} {
			found, err := dets[name].Detect(img)
			if err != nil {
				log.Fatal(err)
			}
			for _, d := range found {
				merged := false
				for i := range cands {
					if cands[i].Box.IoU(d.Box) > 0.4 {
						cands[i].Scores[name] = d.Score
						merged = true
						break
					}
				}
				if !merged {
					cands = append(cands, Candidate{N: len(cands), Box: d.Box, Scores: map[string]float32{name: d.Score}})
				}
			}
		}
		frames = append(frames, Frame{Frame: idx, Candidates: cands})
		sheet := img.Clone()
		for _, c := range cands {
			col := color.RGBA{255, 255, 0, 0}
			if _, ok := c.Scores["zoom"]; ok {
				col = color.RGBA{0, 255, 0, 0}
			}
			r := image.Rect(c.Box.Left(), c.Box.Top(), c.Box.Right(), c.Box.Bottom())
			gocv.Rectangle(&sheet, r, col, 1)
			gocv.PutText(&sheet, fmt.Sprint(c.N), image.Pt(r.Min.X, max(r.Min.Y-3, 10)), gocv.FontHersheySimplex, 0.45, col, 1)
		}
		gocv.PutText(&sheet, fmt.Sprintf("frame %d", idx), image.Pt(5, 20), gocv.FontHersheySimplex, 0.6, color.RGBA{255, 255, 255, 0}, 2)
		gocv.IMWrite(filepath.Join(*out, fmt.Sprintf("frame%04d.png", idx)), sheet)
		tiles = append(tiles, sheet)
		if len(tiles) == 4 {
			writeSheet(filepath.Join(*out, fmt.Sprintf("sheet%04d.png", idx)), tiles)
			tiles = nil
		}
	}
	if len(tiles) > 0 {
		writeSheet(filepath.Join(*out, "sheet-last.png"), tiles)
	}
	js, _ := json.MarshalIndent(frames, "", " ")
	if err := os.WriteFile(filepath.Join(*out, "candidates.json"), js, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("labelsheet: %d frames in %s\n", len(frames), *out)
}

// writeSheet tiles up to four frames 2×2 into one PNG, so a person looks at four at once, and
// closes them.
func writeSheet(path string, tiles []gocv.Mat) {
	for len(tiles) < 4 {
		tiles = append(tiles, gocv.NewMatWithSize(tiles[0].Rows(), tiles[0].Cols(), tiles[0].Type()))
	}
	top, bottom, all := gocv.NewMat(), gocv.NewMat(), gocv.NewMat()
	gocv.Hconcat(tiles[0], tiles[1], &top)
	gocv.Hconcat(tiles[2], tiles[3], &bottom)
	gocv.Vconcat(top, bottom, &all)
	gocv.IMWrite(path, all)
	for _, m := range append(tiles, top, bottom, all) {
		m.Close()
	}
}
