package clusterer

import (
	"math"
	"reflect"
	"testing"

	"github.com/personcluster/personcluster/messages"
)

// person is a unit face vector along one axis, nudged by noise in another.
func person(axis int, noise float32) []float32 {
	v := make([]float32, 8)
	v[axis] = 1
	v[(axis+1)%8] = noise
	return v
}

// box is a 40-pixel face box at x, y.
func box(x, y int) messages.Box { return messages.Box{y, x + 40, y + 40, x} }

func TestTracks(t *testing.T) {
	type face struct {
		seq  int64
		axis int
		x, y int
	}
	cases := []struct {
		name  string
		faces []face
		want  [][]int
	}{
		{"two people, each followed", []face{
			{0, 0, 10, 10}, {0, 1, 200, 10},
			{1, 0, 12, 11}, {1, 1, 203, 10},
			{2, 0, 14, 12}, {2, 1, 205, 11},
		}, [][]int{{0, 2, 4}, {1, 3, 5}}},
		{"a missed frame is bridged", []face{
			{0, 0, 10, 10}, {2, 0, 12, 10}, {3, 0, 13, 10},
		}, [][]int{{0, 1, 2}}},
		{"two missed frames end the track", []face{
			{0, 0, 10, 10}, {3, 0, 12, 10},
		}, [][]int{{0}, {1}}},
		{"another face in the same place (a cut) starts a track", []face{
			{0, 0, 10, 10}, {1, 0, 11, 10}, {2, 3, 11, 10}, {3, 3, 12, 10},
		}, [][]int{{0, 1}, {2, 3}}},
		{"a face that moved away starts a track", []face{
			{0, 0, 10, 10}, {1, 0, 60, 10},
		}, [][]int{{0}, {1}}},
		{"two faces of one frame never share a track", []face{
			// Face 1 continues face 0; face 0 also continues into face 2 two frames on (the
			// same place), and face 3 (frame 2 too) lies nearest face 1: joining it would put
			// faces 2 and 3 of frame 2 in one track.
			{0, 0, 10, 10}, {1, 0, 16, 10}, {2, 0, 10, 10}, {2, 0, 18, 10},
		}, [][]int{{0, 1, 2}, {3}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var f Faces
			for _, fc := range c.faces {
				f.Face = append(f.Face, person(fc.axis, 0.05))
				f.Cloth = append(f.Cloth, person(fc.axis, 0))
				f.Frame = append(f.Frame, fc.seq)
				f.Box = append(f.Box, box(fc.x, fc.y))
			}
			if got := Tracks(f, 0.45); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Tracks = %v, want %v", got, c.want)
			}
		})
	}
}

func TestTracksWithoutBoxes(t *testing.T) {
	f := Faces{Face: [][]float32{person(0, 0), person(0, 0)}, Cloth: [][]float32{person(1, 0), person(1, 0)}, Frame: []int64{0, 1}}
	if got, want := Tracks(f, 0.45), [][]int{{0}, {1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Tracks without boxes = %v, want each face alone %v", got, want)
	}
}

// TestClusterTracks: one person's track whose single faces lie apart (noise) stays one
// cluster, a second person standing still is another, and min_csize counts faces, not tracks.
func TestClusterTracks(t *testing.T) {
	var f Faces
	for seq := int64(0); seq < 4; seq++ {
		// Person A wobbles between two looks; each look alone sits far from the other.
		look := float32(0.3)
		if seq%2 == 1 {
			look = -0.3
		}
		a := person(0, 0)
		a[2] = look
		f.Face = append(f.Face, a, person(4, 0.02))
		f.Cloth = append(f.Cloth, person(0, 0), person(4, 0))
		f.Frame = append(f.Frame, seq, seq)
		f.Box = append(f.Box, box(10, 10), box(300, 10))
	}
	s := Scheme{Method: "average", MinCSize: 3, FaceWeight: 1, ClothWeight: 0, Cut: 0.3, CannotLink: true}
	single, _, _, err := ClusterFaces(f, s)
	if err != nil {
		t.Fatal(err)
	}
	s.TrackLink = 0.7
	tracked, dropped, threshold, err := ClusterFaces(f, s)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]int{{0, 2, 4, 6}, {1, 3, 5, 7}}; !reflect.DeepEqual(tracked, want) || len(dropped) != 0 {
		t.Errorf("with tracks: clusters %v dropped %v, want %v (single faces gave %v)", tracked, dropped, want, single)
	}
	if threshold != 0.3 {
		t.Errorf("threshold %v, want the cut 0.3", threshold)
	}
	if reflect.DeepEqual(single, tracked) {
		t.Errorf("single faces already gave %v: the case does not show what tracks add", single)
	}
}

func TestSchemeForTracks(t *testing.T) {
	p := messages.DefaultParams()
	p.CannotLink, p.Tracks, p.Cut = true, true, messages.CutCalibrated
	s, ok := SchemeFor(p, "euclidean", "dlib-resnet-128", "mobilenet_v1-512")
	if !ok || s.TrackLink != calibratedCuts["dlib-resnet-128"] {
		t.Fatalf("dlib: TrackLink %v calibrated %v", s.TrackLink, ok)
	}
	want := math.Hypot(calibratedCuts["dlib-resnet-128"]*trackFaceCutScales["dlib-resnet-128"], clothSpreads["mobilenet_v1-512"])
	if math.Abs(s.Cut-want) > 1e-12 || s.Exact {
		t.Errorf("dlib with tracks: cut %v exact %v, want %v and not exact", s.Cut, s.Exact, want)
	}
	if s, _ := SchemeFor(p, "euclidean", "fr_feature-512", "mobilenet_v1-512"); s.TrackLink != 0 {
		t.Errorf("MobileFaceNet has no measured track scale, yet TrackLink %v", s.TrackLink)
	}
	p.Tracks = false
	if s, _ := SchemeFor(p, "euclidean", "dlib-resnet-128", "mobilenet_v1-512"); s.TrackLink != 0 {
		t.Errorf("tracks off, yet TrackLink %v", s.TrackLink)
	}
}
