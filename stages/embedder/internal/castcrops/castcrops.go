// Package castcrops cuts the clothing crops of the labelled test video
// (../shared/testdata/video/cast_public.mp4) at its truth boxes, for the embedder's quality
// test and benchmarks.
package castcrops

import (
	"encoding/json"
	"fmt"
	"os"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/vision"
)

// Crop is one person's clothing crop in one frame.
type Crop struct {
	Frame    int
	Identity string
	Box      messages.Box // face box, top,right,bottom,left
	JPEG     []byte       // the clothing crop (DESIGN step 4), as the detector sends it
}

// Truth is the part of the truth file used here.
type Truth struct {
	Frames []struct {
		Frame  int `json:"frame"`
		People []struct {
			Identity string `json:"identity"`
			Box      [4]int `json:"box"`
		} `json:"people"`
	} `json:"frames"`
	OutfitChanges map[string]int `json:"outfit_changes_at_frame"`
	SharedOutfits [][]string     `json:"shared_outfits"`
}

// ReadTruth reads a truth file.
func ReadTruth(path string) (*Truth, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("castcrops: %w", err)
	}
	var t Truth
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("castcrops: %s: %w", path, err)
	}
	return &t, nil
}

// Load reads every every-th frame of video (frame numbers 0, every, 2·every, …) and cuts the
// clothing crop of each person listed in the truth file, JPEG-encoded at quality (the
// detector's default is 90).
func Load(video, truthPath string, every, quality int) ([]Crop, error) {
	truth, err := ReadTruth(truthPath)
	if err != nil {
		return nil, err
	}
	people := map[int][]Crop{}
	for _, f := range truth.Frames {
		for _, p := range f.People {
			people[f.Frame] = append(people[f.Frame], Crop{Frame: f.Frame, Identity: p.Identity, Box: messages.Box(p.Box)})
		}
	}
	v, err := vision.OpenVideo(video)
	if err != nil {
		return nil, fmt.Errorf("castcrops: %w", err)
	}
	defer v.Close()
	img := gocv.NewMat()
	defer img.Close()
	var crops []Crop
	for n := 0; v.Read(&img); n++ {
		if every > 1 && n%every != 0 {
			continue
		}
		for _, c := range people[n] {
			m, err := vision.Crop(img, vision.Clothing(c.Box))
			if err != nil {
				return nil, fmt.Errorf("castcrops: frame %d %s: %w", n, c.Identity, err)
			}
			c.JPEG, err = vision.EncodeJPEG(m, quality)
			m.Close()
			if err != nil {
				return nil, fmt.Errorf("castcrops: frame %d %s: %w", n, c.Identity, err)
			}
			crops = append(crops, c)
		}
	}
	if len(crops) == 0 {
		return nil, fmt.Errorf("castcrops: no crops from %s", video)
	}
	return crops, nil
}

// Messages groups crops by frame into FrameFaces messages of source, as the detector
// publishes them (only ClothJPEG and Box are filled in each Face).
func Messages(source string, crops []Crop) []*messages.FrameFaces {
	var out []*messages.FrameFaces
	for _, c := range crops {
		if len(out) == 0 || out[len(out)-1].Index != int64(c.Frame) {
			out = append(out, &messages.FrameFaces{Source: source, Seq: int64(len(out)), Index: int64(c.Frame), Width: 960, Height: 540,
				Accepted: true, Params: messages.DefaultParams()})
		}
		f := out[len(out)-1]
		f.Faces = append(f.Faces, messages.Face{Box: c.Box, ClothJPEG: c.JPEG, FaceJPEG: c.JPEG})
		f.Detected = len(f.Faces)
	}
	return out
}
