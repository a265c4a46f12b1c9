package reader

import (
	"bytes"
	"image"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/stages/vision"
)

// The direct libjpeg encoder must give OpenCV's bytes exactly, whatever the size and quality,
// for frames that fill their Mat and for views into a bigger one.
func TestJPEGEncoderMatchesOpenCV(t *testing.T) {
	enc := newJPEGEncoder()
	defer enc.close()
	big := gocv.NewMatWithSize(300, 500, gocv.MatTypeCV8UC3)
	defer big.Close()
	gocv.RandU(&big, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
	view := big.Region(image.Rect(13, 7, 413, 207)) // not continuous
	defer view.Close()
	odd := gocv.NewMatWithSize(37, 53, gocv.MatTypeCV8UC3)
	defer odd.Close()
	gocv.RandU(&odd, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
	grey := gocv.NewMatWithSize(40, 60, gocv.MatTypeCV8UC1)
	defer grey.Close()
	gocv.RandU(&grey, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 0, 0, 0))
	// Growing outputs: a tiny image first, then the noisy big one at top quality, then small again.
	for _, c := range []struct {
		name string
		img  gocv.Mat
		q    int
	}{{"odd", odd, 90}, {"big", big, 100}, {"big", big, 90}, {"odd", odd, 10}, {"view", view, 75}, {"grey", grey, 90}, {"big", big, 1}} {
		got, err := enc.encode(c.img, c.q)
		if err != nil {
			t.Fatalf("%s q%d: %v", c.name, c.q, err)
		}
		want, err := vision.EncodeJPEG(c.img, c.q)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s q%d: %d bytes, OpenCV gives %d different ones", c.name, c.q, len(got), len(want))
		}
	}
	if _, err := enc.encode(gocv.NewMat(), 90); err == nil {
		t.Error("encoding an empty Mat succeeded")
	}
}

// libjpeg errors come back as errors (its default handler would exit the process).
func TestJPEGEncoderError(t *testing.T) {
	enc := newJPEGEncoder()
	defer enc.close()
	m := gocv.NewMatWithSize(10, 70000, gocv.MatTypeCV8UC3) // wider than JPEG allows
	defer m.Close()
	if _, err := enc.encode(m, 90); err == nil {
		t.Fatal("a 70000-pixel-wide JPEG was encoded")
	} else {
		t.Log(err)
	}
	small := gocv.NewMatWithSize(8, 8, gocv.MatTypeCV8UC3)
	defer small.Close()
	if _, err := enc.encode(small, 90); err != nil {
		t.Errorf("the encoder does not work after an error: %v", err)
	}
}

func BenchmarkJPEG(b *testing.B) {
	vc, err := gocv.VideoCaptureFileWithAPI("../../../shared/testdata/video/short_hamilton_clip.mp4", gocv.VideoCaptureFFmpeg)
	if err != nil {
		b.Skip(err)
	}
	m := gocv.NewMat()
	defer m.Close()
	if !vc.Read(&m) {
		b.Skip("no frame")
	}
	vc.Close()
	b.Run("opencv", func(b *testing.B) {
		for range b.N {
			if _, err := vision.EncodeJPEG(m, 90); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("libjpeg", func(b *testing.B) {
		enc := newJPEGEncoder()
		defer enc.close()
		for range b.N {
			if _, err := enc.encode(m, 90); err != nil {
				b.Fatal(err)
			}
		}
	})
}
