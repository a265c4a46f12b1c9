package main

import (
	"fmt"
	"path/filepath"

	"github.com/personcluster/personcluster/stages/evaluate"
)

// photoTruth reads an imglab XML file into one truth frame per photo: its annotated faces as
// one identity each ("file#i"), and boxes marked ignore as unclear.
func photoTruth(path string) (map[string]evaluate.TruthFrame, error) {
	images, err := evaluate.LoadImglab(path)
	if err != nil {
		return nil, err
	}
	out := map[string]evaluate.TruthFrame{}
	for _, img := range images {
		fr := evaluate.TruthFrame{Unclear: img.Ignored}
		for i, b := range img.Faces {
			fr.People = append(fr.People, evaluate.Person{Identity: fmt.Sprintf("%s#%d", filepath.Base(img.File), i), Box: b})
		}
		out[img.File] = fr
	}
	return out, nil
}
