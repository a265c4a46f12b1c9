package detector_test

import (
	"image"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/detector"
)

// texture is a 640×480 frame of sharp random texture (every face on it is sharp), with the
// region r blurred out of focus when blur is set.
func texture(t testing.TB, blur image.Rectangle) gocv.Mat {
	t.Helper()
	img := gocv.NewMatWithSize(480, 640, gocv.MatTypeCV8UC3)
	gocv.RandU(&img, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
	if !blur.Empty() {
		region := img.Region(blur)
		gocv.GaussianBlur(region, &region, image.Pt(0, 0), 6, 6, gocv.BorderDefault)
		region.Close()
	}
	return img
}

func det(top, right, bottom, left int) detector.Detection {
	return detector.Detection{Box: messages.Box{top, right, bottom, left}, Score: 0.9}
}

func TestGateJudge(t *testing.T) {
	face := det(100, 300, 220, 200) // 120 px tall, 100 wide
	for _, c := range []struct {
		name     string
		dets     []detector.Detection
		rejected map[int]string // index in dets → reason
	}{
		{"a hand holding the microphone below the face", []detector.Detection{face, det(240, 270, 290, 230)}, map[int]string{1: detector.RejectPartOfPerson}},
		{"an ear beside the face", []detector.Detection{det(140, 350, 180, 310), face}, map[int]string{0: detector.RejectPartOfPerson}},
		{"hair above the face", []detector.Detection{face, det(50, 280, 90, 240)}, map[int]string{1: detector.RejectPartOfPerson}},
		{"a hand out to the side of the body", []detector.Detection{face, det(300, 440, 360, 380)}, map[int]string{1: detector.RejectPartOfPerson}},
		{"a second person of similar size beside", []detector.Detection{face, det(110, 420, 210, 330)}, nil},
		{"a small face far away", []detector.Detection{face, det(20, 600, 60, 565)}, nil},
		{"a small face beside, out of the head region", []detector.Detection{face, det(120, 420, 170, 380)}, nil},
		{"a small face only", []detector.Detection{det(240, 270, 290, 230)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := detector.NewGate(detector.GateConfig{MinSharpness: -1})
			if err != nil {
				t.Fatal(err)
			}
			img := texture(t, image.Rectangle{})
			defer img.Close()
			kept, rejected := g.Judge(img, c.dets)
			if len(kept)+len(rejected) != len(c.dets) || len(rejected) != len(c.rejected) {
				t.Fatalf("kept %v, rejected %v; want %d rejected", kept, rejected, len(c.rejected))
			}
			for _, r := range rejected {
				found := false
				for i, reason := range c.rejected {
					if c.dets[i].Box == r.Box && reason == r.Reason {
						found = true
					}
				}
				if !found {
					t.Errorf("rejected %v (%s), want %v", r.Box, r.Reason, c.rejected)
				}
			}
			if len(kept) > 0 && kept[0].Box != c.dets[0].Box && c.rejected[0] == "" {
				t.Errorf("kept faces lost their order: %v", kept)
			}
		})
	}
}

// A face out of focus is refused as blurred; the same face sharp is kept; the gate off keeps all.
func TestGateBlur(t *testing.T) {
	sharp, blurred := det(100, 200, 200, 100), det(100, 500, 200, 400)
	img := texture(t, image.Rect(390, 90, 510, 210))
	defer img.Close()
	if s, b := detector.Sharpness(img, sharp.Box), detector.Sharpness(img, blurred.Box); s < 10 || b > 2 {
		t.Errorf("sharpness %.2f (sharp texture) and %.2f (blurred)", s, b)
	}
	g, err := detector.NewGate(detector.GateConfig{})
	if err != nil {
		t.Fatal(err)
	}
	kept, rejected := g.Judge(img, []detector.Detection{sharp, blurred})
	if len(kept) != 1 || kept[0].Box != sharp.Box || len(rejected) != 1 || rejected[0].Reason != detector.RejectBlurred {
		t.Errorf("kept %v, rejected %v; want the blurred face refused", kept, rejected)
	}
	off, _ := detector.NewGate(detector.GateConfig{Off: true})
	if kept, rejected := off.Judge(img, []detector.Detection{sharp, blurred}); len(kept) != 2 || rejected != nil {
		t.Errorf("gate off: kept %v, rejected %v", kept, rejected)
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if s := detector.Sharpness(empty, sharp.Box); s != 0 {
		t.Errorf("sharpness of an empty image %v", s)
	}
}

// The stage applies the gate before the 2–4 faces rule and lists what it refused.
func TestFrameCountsFacesAfterTheGate(t *testing.T) {
	img := texture(t, image.Rectangle{})
	defer img.Close()
	f := frameOf(t, img)
	dets := &fixed{dets: []detector.Detection{det(100, 300, 220, 200), det(240, 270, 290, 230)}}
	s, err := detector.New(detector.Config{}, dets)
	if err != nil {
		t.Fatal(err)
	}
	ff, err := s.Frame(f)
	if err != nil {
		t.Fatal(err)
	}
	if ff.Accepted || ff.SkipReason != detector.SkipTooFew || ff.Detected != 1 {
		t.Errorf("accepted %v (%s), %d detected; want one face left, skipped", ff.Accepted, ff.SkipReason, ff.Detected)
	}
	if len(ff.Rejected) != 1 || ff.Rejected[0].Reason != detector.RejectPartOfPerson || ff.Rejected[0].Frame != f.Index || ff.Rejected[0].Box != dets.dets[1].Box {
		t.Errorf("rejected %+v", ff.Rejected)
	}
	if err := ff.Validate(); err != nil {
		t.Error(err)
	}
	if got := s.Counts.Rejected()[detector.RejectPartOfPerson]; got != 1 {
		t.Errorf("counted %d refused as part of a person", got)
	}
}

func TestGateConfigValidation(t *testing.T) {
	for name, cfg := range map[string]detector.GateConfig{
		"part ratio 1":  {PartRatio: 1},
		"negative side": {HeadSide: -1},
		"below 9":       {Below: 9},
		"sharpness":     {MinSharpness: 5000},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := detector.NewGate(cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "detector: gate") {
				t.Errorf("error %v", err)
			}
			if _, err := detector.New(detector.Config{Gate: cfg}, &fixed{}); err == nil {
				t.Error("the stage accepted it")
			}
		})
	}
}
