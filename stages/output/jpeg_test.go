package output

import (
	"bytes"
	"errors"
	"image"
	"image/jpeg"
	"testing"
)

// bomb is a JFIF header declaring 60000×60000 pixels.
var bomb = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xEA, 0x60, 0xEA, 0x60, 0x03,
	0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01, 0xFF, 0xD9}

func smallJPEG(t testing.TB) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, 24, 16)), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeJPEGBounded(t *testing.T) {
	img, err := DecodeJPEG(smallJPEG(t))
	if err != nil || img.Bounds().Dx() != 24 || img.Bounds().Dy() != 16 {
		t.Fatalf("small JPEG: %v, %v", img, err)
	}
	if _, err := DecodeJPEG(bomb); !errors.Is(err, ErrImageTooLarge) {
		t.Errorf("bomb: %v, want ErrImageTooLarge", err)
	}
	if _, err := DecodeJPEG([]byte("not a jpeg")); err == nil || errors.Is(err, ErrImageTooLarge) {
		t.Errorf("garbage: %v", err)
	}
}

// DecodeJPEG never panics and never returns an image over the bound.
func FuzzDecodeJPEG(f *testing.F) {
	f.Add(smallJPEG(f))
	f.Add(bomb)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeJPEG(data)
		if err != nil {
			return
		}
		if b := img.Bounds(); b.Dx() > MaxThumbnailSide || b.Dy() > MaxThumbnailSide {
			t.Fatalf("decoded %v", b)
		}
	})
}
