// Command gatestudy measures what tells a face from what a detector mistakes for one: it runs
// the default detector over the labelled frames of videos, labels each detection from the
// truth (face, unclear face, false) and writes one CSV row of candidate gate features per
// detection: detector score, size, sharpness, pose and landmark fit from dlib's 68 points,
// the dlib descriptor's norm, and a second detector's score on the face.
//
//	go run ./stages/evaluate/gatestudy -out out/gate.csv VIDEO...   (truth beside each video or in testdata/truth)
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	"github.com/personcluster/personcluster/stages/dlibface"
	"github.com/personcluster/personcluster/stages/encoder"
	"github.com/personcluster/personcluster/stages/evaluate"
	"github.com/personcluster/personcluster/stages/pipeline"
	"github.com/personcluster/personcluster/stages/vision"
)

func main() {
	out := flag.String("out", "out/gate.csv", "CSV file")
	models := flag.String("models", pipeline.DefaultModelsDir(), "models folder")
	every := flag.Int("every", 1, "use every Nth truth frame")
	score := flag.Float64("score", 0, "the detector's score (0: its default); lower finds the hard non-faces a gate must refuse")
	photos := flag.String("photos", "", "an imglab XML file of annotated photos (dlib's training.xml) to add")
	flag.Parse()
	m := pipeline.Models{Dir: *models, Threads: 2, DetectorScore: *score}
	det, err := m.OpenDetector()
	if err != nil {
		log.Fatal(err)
	}
	defer det.Close()
	ultra, err := pipeline.Models{Dir: *models, Threads: 2, Detector: pipeline.DetectorUltraFace320, DetectorScore: 0.05}.OpenDetector()
	if err != nil {
		log.Fatal(err)
	}
	defer ultra.Close()
	encAny, err := m.OpenEncoder()
	if err != nil {
		log.Fatal(err)
	}
	enc := encAny.(*dlibface.ResNetONNX)
	defer enc.Close()
	sp, _ := dlibface.EncoderConfig{Dir: filepath.Join(*models, "dlib")}.Paths()
	lm, err := dlibface.NewLandmarker(sp, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer lm.Close()
	mfn, err := pipeline.Models{Dir: *models, Threads: 2, FaceBackend: pipeline.BackendMobileFaceNet}.OpenEncoder()
	if err != nil {
		log.Fatal(err)
	}
	defer mfn.Close()
	cnnLM = mfn.(*encoder.ONNXEncoder)

	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	defer w.Flush()
	head := []string{"video", "frame", "label", "what", "score", "height", "sharp", "yaw", "eyes_w", "fit", "norm", "ultra", "agree", "top", "right", "bottom", "left"}
	for i := 0; i < dlibface.DescriptorLen; i++ {
		head = append(head, fmt.Sprintf("d%d", i))
	}
	w.Write(head)
	judge := func(name string, idx int64, img gocv.Mat, fr evaluate.TruthFrame) int {
		dets, err := det.Detect(img)
		if err != nil {
			log.Fatal(err)
		}
		for _, d := range dets {
			label, what := classify(fr, d.Box)
			row, desc := features(img, d, enc, lm, ultra)
			rec := []string{name, fmt.Sprint(idx), label, what}
			for _, v := range row {
				rec = append(rec, fmt.Sprintf("%.4f", v))
			}
			for _, v := range d.Box {
				rec = append(rec, fmt.Sprint(v))
			}
			for _, v := range desc {
				rec = append(rec, fmt.Sprintf("%.5f", v))
			}
			w.Write(rec)
		}
		return len(dets)
	}
	if *photos != "" {
		truth, err := photoTruth(*photos)
		if err != nil {
			log.Fatal(err)
		}
		n := 0
		for path, fr := range truth {
			img := gocv.IMRead(path, gocv.IMReadColor)
			if img.Empty() {
				log.Fatalf("cannot read %s", path)
			}
			n += judge(filepath.Base(path), 0, img, fr)
			img.Close()
		}
		log.Printf("%s: %d detections", *photos, n)
	}
	for _, video := range flag.Args() {
		truthPath := video + ".truth.json"
		if _, err := os.Stat(truthPath); err != nil {
			truthPath = filepath.Join("testdata", "truth", filepath.Base(video)+".truth.json")
		}
		truth, err := evaluate.LoadTruth(truthPath)
		if err != nil {
			log.Fatal(err)
		}
		frames := map[int64]evaluate.TruthFrame{}
		for i, fr := range truth.Frames {
			if i%*every == 0 {
				frames[fr.Frame] = fr
			}
		}
		vc, err := gocv.VideoCaptureFile(video)
		if err != nil {
			log.Fatal(err)
		}
		img := gocv.NewMat()
		n := 0
		for idx := int64(0); vc.Read(&img); idx++ {
			fr, ok := frames[idx]
			if !ok || img.Empty() {
				continue
			}
			n += judge(filepath.Base(video), idx, img, fr)
		}
		img.Close()
		vc.Close()
		log.Printf("%s: %d detections", video, n)
	}
}

func box(b messages.Box) evaluate.Box { return evaluate.Box(b) }

// classify labels a detection: "face" (on a named face), "unclear" or "false".
func classify(fr evaluate.TruthFrame, b messages.Box) (string, string) {
	for _, p := range fr.People {
		if evaluate.IoU(p.Box, box(b)) >= 0.5 {
			return "face", p.Identity
		}
	}
	for _, u := range fr.Unclear {
		if evaluate.IoU(u, box(b)) >= 0.5 {
			return "unclear", ""
		}
	}
	for _, n := range fr.NonFaces {
		if evaluate.IoU(n.Box, box(b)) >= 0.5 {
			return "false", n.What
		}
	}
	return "false", "unlabelled"
}

// features: score, height, sharpness, yaw, eye distance / width, landmark fit, descriptor
// norm, UltraFace's score on a crop around the face.
func features(img gocv.Mat, d detector.Detection, enc *dlibface.ResNetONNX, lm *dlibface.Landmarker, ultra detector.FaceDetector) ([]float64, []float32) {
	b := d.Box
	out := []float64{float64(d.Score), float64(b.Height())}
	out = append(out, detector.Sharpness(img, b)) // what the gate measures
	// Pose and fit from dlib's 68 points.
	_, shapes, err := lm.Chips(img, []messages.Box{b}, true)
	if err != nil {
		log.Fatal(err)
	}
	s := shapes[0]
	mid := func(idx ...int) [2]float64 {
		var x, y float64
		for _, i := range idx {
			x += float64(s[i][0])
			y += float64(s[i][1])
		}
		return [2]float64{x / float64(len(idx)), y / float64(len(idx))}
	}
	le, re, nose := mid(36, 37, 38, 39, 40, 41), mid(42, 43, 44, 45, 46, 47), mid(30)
	eyeD := math.Hypot(re[0]-le[0], re[1]-le[1])
	yaw := 0.0
	if eyeD > 0 {
		yaw = ((nose[0] - (le[0]+re[0])/2) / eyeD)
	}
	out = append(out, yaw, eyeD/float64(b.Width()))
	// Fit: how far the 68 points lie from dlib's mean face after a similarity alignment,
	// relative to the eye distance (a shape the predictor had to bend far).
	var src, dst [5][2]float64
	tmpl := encoder.Template
	five := [5][2]float64{le, re, nose, mid(48, 60), mid(54, 64)}
	src, dst = five, tmpl
	mtx, err := encoder.Similarity(src, dst)
	fit := 0.0
	if err == nil {
		for i := range five {
			x := mtx[0][0]*five[i][0] + mtx[0][1]*five[i][1] + mtx[0][2]
			y := mtx[1][0]*five[i][0] + mtx[1][1]*five[i][1] + mtx[1][2]
			fit += math.Hypot(x-tmpl[i][0], y-tmpl[i][1])
		}
		fit /= 5 * (tmpl[1][0] - tmpl[0][0])
	}
	out = append(out, fit)
	// Descriptor norm.
	region := vision.FaceWithMargin(b, 0.25)
	crop, err := vision.Crop(img, region)
	if err != nil {
		log.Fatal(err)
	}
	inCrop := messages.Box{b.Top() - region.Y1, b.Right() - region.X1, b.Bottom() - region.Y1, b.Left() - region.X1}
	v, err := enc.Encode(crop, inCrop)
	crop.Close()
	if err != nil {
		log.Fatal(err)
	}
	var n2 float64
	for _, x := range v {
		n2 += float64(x) * float64(x)
	}
	out = append(out, math.Sqrt(n2))
	// A second detector on a crop twice the face's size around it.
	r2 := vision.FaceWithMargin(b, 0.5)
	c2, err := vision.Crop(img, r2)
	if err != nil {
		log.Fatal(err)
	}
	ds, err := ultra.Detect(c2)
	c2.Close()
	if err != nil {
		log.Fatal(err)
	}
	best := 0.0
	in2 := messages.Box{b.Top() - r2.Y1, b.Right() - r2.X1, b.Bottom() - r2.Y1, b.Left() - r2.X1}
	for _, x := range ds {
		if x.Box.IoU(in2) > 0.3 {
			best = math.Max(best, float64(x.Score))
		}
	}
	out = append(out, best)
	// Agreement of two landmark models: dlib's regression trees and fr_landmark's CNN, the
	// mean distance of their 68 points over the eye distance.
	cnn, err := cnnLM.Landmarks(img, b)
	if err != nil {
		log.Fatal(err)
	}
	var sum float64
	for i := range cnn {
		sum += math.Hypot(cnn[i][0]-float64(s[i][0]), cnn[i][1]-float64(s[i][1]))
	}
	return append(out, sum/68/math.Max(eyeD, 1)), v
}

var cnnLM *encoder.ONNXEncoder
