package output

import (
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/personcluster/personcluster/messages"
)

// liveWindow is window w of a live source "cam": two clusters (persons pa and pb, then pc in
// window 3), a face each in two frames, and one dropped face.
func liveWindow(w int) *messages.ClusterResult {
	box := messages.Box{10, 40, 50, 10}
	f := int64(10 * w)
	second := "pb"
	if w == 3 {
		second = "pc"
	}
	return &messages.ClusterResult{Source: "cam", Window: w, Final: w == 4, FramesSeen: 10, FramesAccepted: 2, Faces: 5,
		Params: messages.DefaultParams(), RejectedCounts: map[string]int{"blurred": 1},
		Clusters: []messages.Cluster{
			{ID: 0, Person: second, Members: []messages.Member{{Frame: f, Face: 0, Box: box, Image: "a"}, {Frame: f + 1, Face: 0, Box: box, Image: "a"}}},
			{ID: 1, Person: "pa", Members: []messages.Member{{Frame: f, Face: 1, Box: box, Image: "a"}, {Frame: f + 1, Face: 1, Box: box, Image: "a"}}},
		},
		Dropped: []messages.Member{{Frame: f + 1, Face: 2, Box: box}}}
}

type liveJSON struct {
	Window         int            `json:"window"`
	Windows        int            `json:"windows"`
	Final          bool           `json:"final"`
	Faces          int            `json:"faces"`
	FramesAccepted int64          `json:"frames_accepted"`
	RejectedCounts map[string]int `json:"rejected_counts"`
	Clusters       []messages.Cluster
	FaceList       []FaceRecord `json:"face_list"`
}

func readLive(t *testing.T, root string) liveJSON {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got liveJSON
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("results.json: %v\n%s", err, data)
	}
	return got
}

// who lists "window/frame/person" of each face, the way one reads who appeared when.
func who(l liveJSON) []string {
	var out []string
	for _, f := range l.FaceList {
		out = append(out, fmt.Sprintf("%d/%d/%s", f.Window, f.Frame, f.Person))
	}
	return out
}

// A live source's results.json accumulates every window's faces, each with its window, its
// window's cluster and its person; a window read again changes nothing, and window 1 (a new
// run of the source) starts the file afresh.
func TestLiveResultsAccumulate(t *testing.T) {
	dir := t.TempDir()
	objects := map[string][]byte{"a": jpegOfTB(t, 20, 20, rgba(200, 0, 0))}
	fetch := func(key string) ([]byte, error) { return objects[key], nil }
	write := func(w int) string {
		t.Helper()
		root, err := Write(dir, liveWindow(w), fetch)
		if err != nil {
			t.Fatal(err)
		}
		return root
	}
	for w := 1; w <= 3; w++ {
		write(w)
	}
	root := write(2) // a watcher reading a stored window again
	got := readLive(t, root)
	want := []string{
		"1/10/pb", "1/11/pb", "1/10/pa", "1/11/pa", "1/11/",
		"2/20/pb", "2/21/pb", "2/20/pa", "2/21/pa", "2/21/",
		"3/30/pc", "3/31/pc", "3/30/pa", "3/31/pa", "3/31/",
	}
	if !reflect.DeepEqual(who(got), want) {
		t.Errorf("faces %v\nwant %v", who(got), want)
	}
	if got.Window != 3 || got.Windows != 3 || got.Faces != 15 || got.FramesAccepted != 6 || got.RejectedCounts["blurred"] != 3 || len(got.Clusters) != 2 {
		t.Errorf("summary: window %d of %d, %d faces, %d accepted, rejected %v, %d clusters", got.Window, got.Windows, got.Faces, got.FramesAccepted, got.RejectedCounts, len(got.Clusters))
	}
	for _, f := range got.FaceList {
		if f.Cluster == -1 && f.Person != "" {
			t.Errorf("dropped face %+v has a person", f)
		}
		// Only the latest window's crops are in the folder.
		if (f.Image != "") != (f.Window == 3 && f.Cluster >= 0) {
			t.Errorf("face %+v: image %q", f, f.Image)
		}
		if f.Image != "" {
			if _, err := os.Stat(filepath.Join(root, f.Image)); err != nil {
				t.Error(err)
			}
		}
	}
	write(4)
	if got := readLive(t, root); !got.Final || len(got.FaceList) != 20 || got.Windows != 4 {
		t.Errorf("after the final window: final %v, %d faces in %d windows", got.Final, len(got.FaceList), got.Windows)
	}
	write(1)
	if got := readLive(t, root); got.Windows != 1 || len(got.FaceList) != 5 {
		t.Errorf("window 1 again (a new run): %d windows, %d faces; want the new run's 1 and 5", got.Windows, len(got.FaceList))
	}
	// A file source's result replaces a live file, and a live window after it starts afresh.
	file := liveWindow(1)
	file.Window = 0
	if _, err := Write(dir, file, fetch); err != nil {
		t.Fatal(err)
	}
	write(5)
	if got := readLive(t, root); got.Windows != 1 || len(got.FaceList) != 5 || got.FaceList[0].Window != 5 {
		t.Errorf("window 5 after a file result: %d windows, faces %v", got.Windows, who(got))
	}
}

func rgba(r, g, b uint8) color.RGBA { return color.RGBA{r, g, b, 255} }
