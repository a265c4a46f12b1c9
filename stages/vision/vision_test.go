package vision

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/stages/internal/testenv"
)

func testJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(10, 100, 200, 0), h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	data, err := EncodeJPEG(m, 90)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// sof finds the SOF0 frame header of a baseline JPEG written by OpenCV.
func sof(t testing.TB, data []byte) int {
	t.Helper()
	i := bytes.Index(data, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	return i
}

func TestJPEGSize(t *testing.T) {
	data := testJPEG(t, 64, 48)
	w, h, err := JPEGSize(data)
	if err != nil || w != 64 || h != 48 {
		t.Fatalf("JPEGSize = %d, %d, %v; want 64, 48", w, h, err)
	}
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, image.NewGray(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	zero := append([]byte(nil), data...)
	i := sof(t, zero)
	zero[i+5], zero[i+6], zero[i+7], zero[i+8] = 0, 0, 0, 0
	for name, bad := range map[string][]byte{
		"empty":       nil,
		"png":         pngBuf.Bytes(),
		"soi only":    {0xFF, 0xD8},
		"no frame":    data[:20],
		"bad marker":  {0xFF, 0xD8, 0x00, 0x10, 0, 0},
		"zero length": {0xFF, 0xD8, 0xFF, 0xE0, 0, 1},
		"zero size":   zero,
	} {
		if _, _, err := JPEGSize(bad); !errors.Is(err, ErrNotJPEG) {
			t.Errorf("%s: JPEGSize error %v, want ErrNotJPEG", name, err)
		}
	}
}

func TestDecodeJPEG(t *testing.T) {
	data := testJPEG(t, 64, 48)
	m, err := DecodeJPEG(data, 64)
	if err != nil {
		t.Fatal(err)
	}
	if m.Cols() != 64 || m.Rows() != 48 || m.Channels() != 3 {
		t.Errorf("decoded %dx%dx%d", m.Cols(), m.Rows(), m.Channels())
	}
	m.Close()
	if _, err := DecodeJPEG(data, 63); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the side limit: %v, want ErrTooLarge", err)
	}
	// A decompression bomb: a small file declaring 60000×60000 is refused from its header.
	bomb := append([]byte(nil), data...)
	i := sof(t, bomb)
	bomb[i+5], bomb[i+6], bomb[i+7], bomb[i+8] = 0xEA, 0x60, 0xEA, 0x60
	if _, err := DecodeJPEG(bomb, 4096); !errors.Is(err, ErrTooLarge) {
		t.Errorf("bomb: %v, want ErrTooLarge", err)
	}
	if _, err := DecodeJPEG(data[:len(data)/2], 4096); !errors.Is(err, ErrDecode) {
		t.Errorf("truncated: %v, want ErrDecode", err)
	}
	if _, err := DecodeJPEG([]byte("GIF89a"), 4096); !errors.Is(err, ErrNotJPEG) {
		t.Errorf("not a JPEG: %v, want ErrNotJPEG", err)
	}
}

func TestEncodeJPEG(t *testing.T) {
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := EncodeJPEG(empty, 90); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty image: %v, want ErrEmpty", err)
	}
	// Round trip keeps the size and, on a flat image, the colour.
	data := testJPEG(t, 17, 9)
	m, err := DecodeJPEG(data, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Cols() != 17 || m.Rows() != 9 {
		t.Errorf("round trip %dx%d", m.Cols(), m.Rows())
	}
	if b, g, r := m.GetUCharAt(4, 24), m.GetUCharAt(4, 25), m.GetUCharAt(4, 26); absDiff(b, 10) > 3 || absDiff(g, 100) > 3 || absDiff(r, 200) > 3 {
		t.Errorf("round trip colour %d,%d,%d, want about 10,100,200", b, g, r)
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

// AppendBlob lays values out as NCHW, in BGR or RGB order, as (p−Mean)·Scale.
func TestAppendBlob(t *testing.T) {
	img := gocv.NewMatWithSize(2, 2, gocv.MatTypeCV8UC3)
	defer img.Close()
	px := [2][2][3]uint8{{{1, 2, 3}, {4, 5, 6}}, {{7, 8, 9}, {10, 11, 12}}} // BGR
	for y := 0; y < 2; y++ {
		for x := 0; x < 2; x++ {
			for c := 0; c < 3; c++ {
				img.SetUCharAt(y, 3*x+c, px[y][x][c])
			}
		}
	}
	opts := BlobOptions{Width: 2, Height: 2, Scale: 0.5, Mean: 1, Interp: gocv.InterpolationLinear}
	prefix := []float32{42}
	got, err := AppendBlob(prefix, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{42}
	for c := 0; c < 3; c++ {
		for y := 0; y < 2; y++ {
			for x := 0; x < 2; x++ {
				want = append(want, (float32(px[y][x][c])-1)*0.5)
			}
		}
	}
	if !equalFloats(got, want) {
		t.Errorf("BGR blob %v, want %v", got, want)
	}
	opts.RGB = true
	got, _ = AppendBlob(nil, img, opts)
	var wantRGB []float32
	for _, c := range []int{2, 1, 0} {
		for y := 0; y < 2; y++ {
			for x := 0; x < 2; x++ {
				wantRGB = append(wantRGB, (float32(px[y][x][c])-1)*0.5)
			}
		}
	}
	if !equalFloats(got, wantRGB) {
		t.Errorf("RGB blob %v, want %v", got, wantRGB)
	}
	// Channel maps each plane of the blob (RGB order here) once more.
	opts.Channel = func(c int, v float32) float32 { return (v - float32(c)) * float32(c+1) }
	got, _ = AppendBlob(nil, img, opts)
	for i := range wantRGB {
		c := i / 4
		wantRGB[i] = (wantRGB[i] - float32(c)) * float32(c+1)
	}
	if !equalFloats(got, wantRGB) {
		t.Errorf("RGB blob with Channel %v, want %v", got, wantRGB)
	}
	opts = BlobOptions{Width: 2, Height: 2, Scale: 1.0 / 256, Grey: true, Interp: gocv.InterpolationLinear}
	got, _ = AppendBlob(nil, img, opts)
	if len(got) != 4 {
		t.Fatalf("grey blob has %d values", len(got))
	}
	for i, y := range []int{0, 0, 1, 1} {
		x := i % 2
		b, g, r := float64(px[y][x][0]), float64(px[y][x][1]), float64(px[y][x][2])
		grey := math.Round(0.299*r + 0.587*g + 0.114*b)
		if math.Abs(float64(got[i])-grey/256) > 1e-6 {
			t.Errorf("grey value %d = %v, want %v", i, got[i], grey/256)
		}
	}
	// Resizing happens first: a 4×2 image into a 2×1 blob.
	wide := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(50, 50, 50, 0), 2, 4, gocv.MatTypeCV8UC3)
	defer wide.Close()
	got, _ = AppendBlob(nil, wide, BlobOptions{Width: 2, Height: 1, Scale: 1, Interp: gocv.InterpolationLinear})
	if len(got) != 6 || got[0] != 50 {
		t.Errorf("resized blob %v, want 6 values of 50", got)
	}
	empty := gocv.NewMat()
	defer empty.Close()
	if _, err := AppendBlob(nil, empty, opts); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty image: %v, want ErrEmpty", err)
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			return false
		}
	}
	return true
}

func TestDecodeJPEGReduced(t *testing.T) {
	data := testJPEG(t, 101, 50)
	for _, c := range []struct{ factor, w, h int }{{1, 101, 50}, {2, 51, 25}, {4, 26, 13}, {8, 13, 7}} {
		m, err := DecodeJPEGReduced(data, 200, c.factor)
		if err != nil {
			t.Fatal(err)
		}
		if m.Cols() != c.w || m.Rows() != c.h || m.Channels() != 3 {
			t.Errorf("factor %d: %dx%dx%d, want %dx%dx3", c.factor, m.Cols(), m.Rows(), m.Channels(), c.w, c.h)
		}
		m.Close()
	}
	if _, err := DecodeJPEGReduced(data, 200, 3); err == nil {
		t.Error("factor 3 accepted")
	}
	if _, err := DecodeJPEGReduced(data, 100, 2); !errors.Is(err, ErrTooLarge) {
		t.Errorf("side limit: %v", err)
	}
	if _, err := DecodeJPEGReduced(data[:len(data)/2], 200, 2); !errors.Is(err, ErrDecode) {
		t.Errorf("truncated: %v", err)
	}
}

// The direct libjpeg decoder gives exactly OpenCV's pixels, on real photos (colour and grey).
func TestDecodeJPEGMatchesOpenCV(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.Shared(t, "images"), "*.jpg"))
	chips, _ := filepath.Glob(filepath.Join(testenv.Shared(t, "faces/johns"), "*", "*.jpg"))
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(128, 128, 128, 0), 31, 17, gocv.MatTypeCV8U)
	greyJPEG, err := EncodeJPEG(m, 80)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{"grey": greyJPEG}
	for _, f := range append(files, chips[:min(3, len(chips))]...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(f)] = data
	}
	for name, data := range inputs {
		ours, err := DecodeJPEG(data, 1<<14)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		theirs, err := gocv.IMDecode(data, gocv.IMReadColor)
		if err != nil || theirs.Empty() {
			ours.Close()
			t.Fatalf("%s: OpenCV: %v", name, err)
		}
		a, _ := ours.DataPtrUint8()
		b, _ := theirs.DataPtrUint8()
		if ours.Cols() != theirs.Cols() || ours.Rows() != theirs.Rows() || !bytes.Equal(a, b) {
			t.Errorf("%s: pixels differ from OpenCV's", name)
		}
		ours.Close()
		theirs.Close()
	}
}

func BenchmarkDecodeJPEG(b *testing.B) {
	data := testJPEG(b, 960, 540)
	b.Run("direct", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m, err := DecodeJPEG(data, 4096)
			if err != nil {
				b.Fatal(err)
			}
			m.Close()
		}
	})
	b.Run("opencv", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m, _ := gocv.IMDecode(data, gocv.IMReadColor)
			m.Close()
		}
	})
}

// The direct encoder writes exactly OpenCV's bytes.
func TestEncodeJPEGMatchesOpenCV(t *testing.T) {
	img := gocv.IMRead(filepath.Join(testenv.Shared(t, "images"), "bbt1.jpg"), gocv.IMReadColor)
	defer img.Close()
	for _, r := range []Region{{0, 768, 0, 1366}, {100, 370, 200, 470}, {-20, 50, 1300, 1400}, {5, 6, 7, 8}} {
		crop, err := Crop(img, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []int{50, 90, 92, 100} {
			ours, err := EncodeJPEG(crop, q)
			if err != nil {
				t.Fatal(err)
			}
			buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, crop, []int{gocv.IMWriteJpegQuality, q})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, buf.GetBytes()) {
				t.Errorf("region %+v quality %d: %d bytes, OpenCV %d", r, q, len(ours), len(buf.GetBytes()))
			}
			buf.Close()
		}
		crop.Close()
	}
}

func BenchmarkEncodeJPEG(b *testing.B) {
	img := gocv.NewMatWithSize(270, 270, gocv.MatTypeCV8UC3)
	defer img.Close()
	gocv.RandU(&img, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(255, 255, 255, 0))
	b.Run("direct", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := EncodeJPEG(img, 92); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("opencv", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			buf, _ := gocv.IMEncodeWithParams(gocv.JPEGFileExt, img, []int{gocv.IMWriteJpegQuality, 92})
			buf.Close()
		}
	})
}

// AppendBlob gives OpenCV's blobFromImage values on a real photo.
func TestAppendBlobMatchesOpenCV(t *testing.T) {
	img := gocv.IMRead(filepath.Join(testenv.Shared(t, "images"), "bbt1.jpg"), gocv.IMReadColor)
	defer img.Close()
	for _, o := range []BlobOptions{
		{Width: 320, Height: 240, Scale: 1.0 / 128, Mean: 127, Interp: gocv.InterpolationLinear},
		{Width: 112, Height: 112, Scale: 1.0 / 128, Mean: 127, RGB: true, Interp: gocv.InterpolationLinear},
		{Width: 64, Height: 64, Scale: 1.0 / 256, Grey: true, Interp: gocv.InterpolationLinear},
		{Width: 224, Height: 224, Scale: 1.0 / 255, Interp: gocv.InterpolationCubic},
	} {
		got, err := AppendBlob(nil, img, o)
		if err != nil {
			t.Fatal(err)
		}
		resized, src := gocv.NewMat(), gocv.NewMat()
		gocv.Resize(img, &resized, image.Pt(o.Width, o.Height), 0, 0, o.Interp)
		if o.Grey {
			gocv.CvtColor(resized, &src, gocv.ColorBGRToGray)
		} else {
			resized.CopyTo(&src)
		}
		blob := gocv.BlobFromImage(src, o.Scale, image.Pt(o.Width, o.Height), gocv.NewScalar(o.Mean, o.Mean, o.Mean, 0), o.RGB, false)
		want, _ := blob.DataPtrFloat32()
		if len(got) != len(want) {
			t.Fatalf("%+v: %d values, OpenCV %d", o, len(got), len(want))
		}
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Errorf("%+v: value %d = %v, OpenCV %v", o, i, got[i], want[i])
				break
			}
		}
		blob.Close()
		resized.Close()
		src.Close()
	}
}
