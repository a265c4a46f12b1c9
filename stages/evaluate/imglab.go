package evaluate

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ImglabImage is one photo of a dlib imglab dataset (dlib's training.xml, testing.xml): its
// path and its hand-drawn face boxes, those marked ignore apart.
type ImglabImage struct {
	File    string // beside the XML file
	Faces   []Box
	Ignored []Box
}

// LoadImglab reads a dlib imglab XML file.
func LoadImglab(path string) ([]ImglabImage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	var doc struct {
		Images []struct {
			File  string `xml:"file,attr"`
			Boxes []struct {
				Top    int `xml:"top,attr"`
				Left   int `xml:"left,attr"`
				Width  int `xml:"width,attr"`
				Height int `xml:"height,attr"`
				Ignore int `xml:"ignore,attr"`
			} `xml:"box"`
		} `xml:"images>image"`
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	// The files declare ISO-8859-1 and are plain ASCII.
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("evaluate: %s: %w", path, err)
	}
	out := make([]ImglabImage, 0, len(doc.Images))
	for _, im := range doc.Images {
		img := ImglabImage{File: filepath.Join(filepath.Dir(path), im.File)}
		for _, b := range im.Boxes {
			box := Box{b.Top, b.Left + b.Width, b.Top + b.Height, b.Left}
			if b.Ignore != 0 {
				img.Ignored = append(img.Ignored, box)
			} else {
				img.Faces = append(img.Faces, box)
			}
		}
		out = append(out, img)
	}
	return out, nil
}
