package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/personcluster/personcluster/stages/evaluate"
)

// dlibDataset is the imglab XML of dlib's annotated photos (training.xml, testing.xml).
type dlibDataset struct {
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

// photoTruth reads an imglab XML file into one truth frame per photo: its annotated faces as
// one identity each ("file#i"), and boxes marked ignore as unclear.
func photoTruth(path string) (map[string]evaluate.TruthFrame, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ds dlibDataset
	dec := xml.NewDecoder(bytes.NewReader(data))
	// imglab declares ISO-8859-1; the files are ASCII.
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := dec.Decode(&ds); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[string]evaluate.TruthFrame{}
	for _, img := range ds.Images {
		var fr evaluate.TruthFrame
		for i, b := range img.Boxes {
			box := evaluate.Box{b.Top, b.Left + b.Width, b.Top + b.Height, b.Left}
			if b.Ignore != 0 {
				fr.Unclear = append(fr.Unclear, box)
				continue
			}
			fr.People = append(fr.People, evaluate.Person{Identity: fmt.Sprintf("%s#%d", img.File, i), Box: box})
		}
		out[filepath.Join(filepath.Dir(path), img.File)] = fr
	}
	return out, nil
}
