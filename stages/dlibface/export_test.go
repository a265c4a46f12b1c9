package dlibface

import (
	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/messages"
)

// LandmarksDiffer exposes landmarksDiffer to the package's tests.
func LandmarksDiffer(l *Landmarker, shapePredictor string, img gocv.Mat, boxes []messages.Box) (int, error) {
	return l.landmarksDiffer(shapePredictor, img, boxes)
}
