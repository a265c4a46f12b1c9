package vision

import (
	"bytes"
	"image"
	"testing"

	"gocv.io/x/gocv"
)

// The reusable encoder must give OpenCV's bytes exactly, whatever the size and quality, for
// frames that fill their Mat and for views into a bigger one, as its buffer grows and shrinks.
func TestJPEGEncoderMatchesOpenCV(t *testing.T) {
	enc := NewJPEGEncoder()
	defer enc.Close()
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
		got, err := enc.Encode(c.img, c.q)
		if err != nil {
			t.Fatalf("%s q%d: %v", c.name, c.q, err)
		}
		buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, c.img, []int{gocv.IMWriteJpegQuality, c.q})
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte(nil), buf.GetBytes()...)
		buf.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("%s q%d: %d bytes, OpenCV gives %d different ones", c.name, c.q, len(got), len(want))
		}
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := enc.Encode(empty, 90); err == nil {
		t.Error("encoding an empty Mat succeeded")
	}
}

// libjpeg errors come back as errors (its default handler would exit the process).
func TestJPEGEncoderError(t *testing.T) {
	enc := NewJPEGEncoder()
	defer enc.Close()
	m := gocv.NewMatWithSize(10, 70000, gocv.MatTypeCV8UC3) // wider than JPEG allows
	defer m.Close()
	if _, err := enc.Encode(m, 90); err == nil {
		t.Fatal("a 70000-pixel-wide JPEG was encoded")
	} else {
		t.Log(err)
	}
	small := gocv.NewMatWithSize(8, 8, gocv.MatTypeCV8UC3)
	defer small.Close()
	if _, err := enc.Encode(small, 90); err != nil {
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
	b.Run("one-shot", func(b *testing.B) {
		for range b.N {
			if _, err := EncodeJPEG(m, 90); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reused", func(b *testing.B) {
		enc := NewJPEGEncoder()
		defer enc.Close()
		for range b.N {
			if _, err := enc.Encode(m, 90); err != nil {
				b.Fatal(err)
			}
		}
	})
}
