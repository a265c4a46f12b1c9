package detector_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
	imglab "github.com/personcluster/personcluster/stages/evaluate"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/vision"
)

// annotated is one image of a dlib imglab dataset with its hand-drawn face boxes.
type annotated struct {
	File  string
	Boxes []messages.Box
}

// loadImglab reads a dlib imglab XML file; boxes marked ignore='1' are left out.
func loadImglab(t testing.TB, path string) []annotated {
	t.Helper()
	images, err := imglab.LoadImglab(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]annotated, len(images))
	for i, im := range images {
		out[i].File = im.File
		for _, b := range im.Faces {
			out[i].Boxes = append(out[i].Boxes, messages.Box(b))
		}
	}
	return out
}

// match pairs detections with truth boxes greedily by IoU (best pairs first) and returns the
// number of pairs with IoU ≥ minIoU.
func match(truth, found []messages.Box, minIoU float64) int {
	usedT := make([]bool, len(truth))
	usedF := make([]bool, len(found))
	n := 0
	for {
		best, bi, bj := minIoU, -1, -1
		for i, tb := range truth {
			for j, fb := range found {
				if usedT[i] || usedF[j] {
					continue
				}
				if v := tb.IoU(fb); v >= best {
					best, bi, bj = v, i, j
				}
			}
		}
		if bi < 0 {
			return n
		}
		usedT[bi], usedF[bj] = true, true
		n++
	}
}

type score struct {
	truth, found, matched int
	frames                int
	spent                 time.Duration // in Detect
}

func (s score) recall() float64    { return float64(s.matched) / float64(max(1, s.truth)) }
func (s score) precision() float64 { return float64(s.matched) / float64(max(1, s.found)) }

// evaluate runs det over the annotated photos (training.xml + testing.xml).
func evaluate(t testing.TB, det detector.FaceDetector, minIoU float64) score {
	t.Helper()
	dir := testenv.Shared(t, "faces/dlib_annotated")
	var s score
	for _, set := range []string{"training.xml", "testing.xml"} {
		for _, a := range loadImglab(t, filepath.Join(dir, set)) {
			data, err := os.ReadFile(a.File)
			if err != nil {
				t.Fatal(err)
			}
			img, err := vision.DecodeJPEG(data, messages.MaxFrameSide)
			if err != nil {
				t.Fatalf("%s: %v", a.File, err)
			}
			dets, err := det.Detect(img)
			img.Close()
			if err != nil {
				t.Fatalf("%s: %v", a.File, err)
			}
			var found []messages.Box
			for _, d := range dets {
				found = append(found, d.Box)
			}
			m := match(a.Boxes, found, minIoU)
			if testing.Verbose() {
				t.Logf("%s: %d faces, %d found, %d matched", filepath.Base(a.File), len(a.Boxes), len(found), m)
			}
			s.truth += len(a.Boxes)
			s.found += len(found)
			s.matched += m
		}
	}
	return s
}

// scoreVideo runs each detector over every nth frame of a labelled video (under
// ../shared/testdata) and scores it against the truth boxes at IoU ≥ 0.4.
func scoreVideo(t testing.TB, video string, every int, dets ...detector.FaceDetector) []score {
	t.Helper()
	path := testenv.Shared(t, video)
	truth := truthFrames(t, path+".truth.json")
	v, err := vision.OpenVideo(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m := gocv.NewMat()
	defer m.Close()
	scores := make([]score, len(dets))
	for i := 0; v.Read(&m); i++ {
		if i%every != 0 {
			continue
		}
		for k, det := range dets {
			start := time.Now()
			found, err := det.Detect(m)
			scores[k].spent += time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			var boxes []messages.Box
			for _, d := range found {
				boxes = append(boxes, d.Box)
			}
			scores[k].frames++
			scores[k].truth += len(truth[i])
			scores[k].found += len(boxes)
			scores[k].matched += match(truth[i], boxes, 0.4)
		}
	}
	return scores
}
