package dlibface_test

import (
	"os"
	"path/filepath"
	"testing"

	face "github.com/Kagami/go-face"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/testenv"
	"github.com/personcluster/personcluster/stages/vision"
)

// On go-face's own path (HOG without upsampling, descriptors of the faces it finds, from the
// same model folder) this package gives go-face's boxes and bit-identical descriptors.
func TestMatchesGoFace(t *testing.T) {
	if testing.Short() {
		t.Skip("compares descriptors with go-face")
	}
	enc := newEncoder(t)
	det := newDetector(t, 0)
	rec, err := face.NewRecognizer(filepath.Join(testenv.ModelsDir(t), "dlib"))
	if err != nil {
		t.Skipf("go-face cannot load the model folder (its third file, mmod_human_face_detector.dat, may be missing): %v", err)
	}
	defer rec.Close()
	compared := 0
	for _, f := range []string{"images/bbt1.jpg", "images/two_people.jpg"} {
		data, err := os.ReadFile(testenv.Shared(t, f))
		if err != nil {
			t.Fatal(err)
		}
		img, err := vision.DecodeJPEG(data, messages.MaxFrameSide)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := rec.Recognize(data)
		if err != nil {
			img.Close()
			t.Fatal(err)
		}
		ours, err := det.Detect(img)
		if err != nil || len(ours) != len(theirs) {
			img.Close()
			t.Fatalf("%s: %d faces here, %d in go-face (%v)", f, len(ours), len(theirs), err)
		}
		for _, g := range theirs {
			r := g.Rectangle // go-face: left, top, right, bottom of dlib's rectangle
			box := messages.Box{r.Min.Y, r.Max.X, r.Max.Y, r.Min.X}
			found := false
			for _, d := range ours {
				found = found || d.Box == box
			}
			if !found {
				t.Errorf("%s: go-face box %v not among %v", f, box, ours)
				continue
			}
			v, err := enc.Encode(img, box)
			if err != nil {
				t.Fatal(err)
			}
			if d := dist(v, g.Descriptor[:]); d > 1e-6 {
				t.Errorf("%s: face %v: descriptor %.2g away from go-face's", f, box, d)
			}
			compared++
		}
		img.Close()
	}
	if compared != 6 {
		t.Errorf("compared %d faces, want 6", compared)
	}
}
