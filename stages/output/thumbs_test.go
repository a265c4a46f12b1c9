package output

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/personcluster/personcluster/messages"
)

// slowFit is the montage's original drawing: every pixel through At and Set.
func slowFit(src image.Image, w, h int) *image.RGBA {
	canvas := image.NewRGBA(image.Rect(0, 0, w, h))
	sb := src.Bounds()
	scale := min(float64(w)/float64(sb.Dx()), float64(h)/float64(sb.Dy()))
	tw, th := int(float64(sb.Dx())*scale), int(float64(sb.Dy())*scale)
	ox, oy := (w-tw)/2, (h-th)/2
	for y := 0; y < th; y++ {
		sy := sb.Min.Y + int(float64(y)/scale)
		for x := 0; x < tw; x++ {
			canvas.Set(ox+x, oy+y, src.At(sb.Min.X+int(float64(x)/scale), sy))
		}
	}
	return canvas
}

func noisy(r *rand.Rand, b image.Rectangle) *image.NRGBA {
	m := image.NewNRGBA(b)
	for i := range m.Pix {
		m.Pix[i] = uint8(r.IntN(256))
	}
	return m
}

// Thumbnail and drawFit's copy give the pixels of the per-pixel drawing they replace, for
// every image type a JPEG decodes to (all chroma subsamplings, gray), RGBA, and the rest.
func TestThumbnailMatchesPixelByPixel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var srcs []image.Image
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422,
		image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410} {
		m := image.NewYCbCr(image.Rect(3, 5, 3+131, 5+77), ratio)
		for _, p := range [][]byte{m.Y, m.Cb, m.Cr} {
			for i := range p {
				p[i] = uint8(r.IntN(256))
			}
		}
		srcs = append(srcs, m)
	}
	var jp bytes.Buffer
	if err := jpeg.Encode(&jp, noisy(r, image.Rect(0, 0, 61, 203)), nil); err != nil {
		t.Fatal(err)
	}
	decoded, err := jpeg.Decode(&jp)
	if err != nil {
		t.Fatal(err)
	}
	gray := image.NewGray(image.Rect(-4, 2, 40, 90))
	for i := range gray.Pix {
		gray.Pix[i] = uint8(r.IntN(256))
	}
	rgba := image.NewRGBA(image.Rect(1, 1, 300, 120))
	for i := range rgba.Pix {
		rgba.Pix[i] = uint8(r.IntN(256))
	}
	srcs = append(srcs, decoded, gray, rgba, noisy(r, image.Rect(0, 0, 50, 50)), image.NewRGBA(image.Rect(0, 0, 96, 40)))
	for i, src := range srcs {
		for _, cell := range [][2]int{{96, 96}, {64, 64}, {200, 150}, {7, 30}} {
			want := slowFit(src, cell[0], cell[1])
			got := image.NewRGBA(want.Rect)
			drawFit(got, got.Rect, src)
			if !bytes.Equal(got.Pix, want.Pix) {
				t.Errorf("image %d (%T %v) in %v: drawFit differs from the pixel-by-pixel drawing", i, src, src.Bounds(), cell)
			}
			// A thumbnail drawn again is copied as it is.
			again := image.NewRGBA(want.Rect)
			drawFit(again, again.Rect, thumb{thumbnail(src, cell[0], cell[1])})
			if !bytes.Equal(again.Pix, want.Pix) {
				t.Errorf("image %d (%T) in %v: its thumbnail drawn again differs", i, src, cell)
			}
		}
	}
}

// montageResult is a result of clusters × members crops of distinct colours, and the crops.
func montageResult(t testing.TB, clusters, members int) (*messages.ClusterResult, map[string][]byte) {
	crops := map[string][]byte{}
	r := &messages.ClusterResult{Source: "src"}
	for c := range clusters {
		cl := messages.Cluster{ID: c, Typical: members / 2}
		for m := range members {
			key := fmt.Sprintf("src/faces/%06d-%d.jpg", m, c)
			crops[key] = jpegOfTB(t, 40+3*m, 90-m, color.RGBA{uint8(40 * c), uint8(7 * m), 200, 255})
			cl.Members = append(cl.Members, messages.Member{Seq: int64(m), Frame: int64(m), Face: c, Image: key})
		}
		r.Clusters = append(r.Clusters, cl)
	}
	return r, crops
}

// A montage drawn from a cache filled by an earlier montage is the same PNG, and fetches
// only the crops that earlier montage did not show; the cache keeps one montage's crops.
func TestThumbnailsReuseCrops(t *testing.T) {
	r, crops := montageResult(t, 3, MaxMontageRows+6)
	var fetched atomic.Int64
	fetch := func(key string) ([]byte, error) { fetched.Add(1); return crops[key], nil }
	want, err := ResultMontage(r, fetch, 96)
	if err != nil {
		t.Fatal(err)
	}
	if n := fetched.Load(); n != 3*MaxMontageRows {
		t.Errorf("fetched %d crops, want %d", n, 3*MaxMontageRows)
	}
	thumbs := NewThumbnails(96)
	first := &messages.ClusterResult{Source: "src", Clusters: []messages.Cluster{r.Clusters[0], r.Clusters[1]}}
	if _, err := thumbs.ResultMontage(first, fetch); err != nil {
		t.Fatal(err)
	}
	fetched.Store(0)
	got, err := thumbs.ResultMontage(r, fetch)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the montage drawn with cached thumbnails differs")
	}
	if n := fetched.Load(); n != MaxMontageRows {
		t.Errorf("with the first two columns cached, fetched %d crops, want %d", n, MaxMontageRows)
	}
	if len(thumbs.m) != 3*MaxMontageRows {
		t.Errorf("the cache holds %d thumbnails, want the last montage's %d", len(thumbs.m), 3*MaxMontageRows)
	}
}

// Crops that are missing or do not decode leave their place to the next members, as many as
// a column has rows; a failed fetch names the member.
func TestMontageSkipsBadCrops(t *testing.T) {
	r, crops := montageResult(t, 1, MaxMontageRows+3)
	members := r.Clusters[0].Members
	crops[members[1].Image] = []byte("not a jpeg")
	delete(crops, members[4].Image)
	members[5].Image = ""
	thumbs := NewThumbnails(32)
	columns, err := thumbs.columns(r, func(key string) ([]byte, error) { return crops[key], nil })
	if err != nil {
		t.Fatal(err)
	}
	if n := len(columns[0].Images); n != MaxMontageRows {
		t.Errorf("%d images in the column, want %d", n, MaxMontageRows)
	}
	if columns[0].Count != len(members) {
		t.Errorf("count %d, want %d", columns[0].Count, len(members))
	}
	boom := errors.New("boom")
	_, err = ResultMontage(r, func(key string) ([]byte, error) {
		if key == members[7].Image {
			return nil, boom
		}
		return crops[key], nil
	}, 32)
	if !errors.Is(err, boom) || err.Error() != "output: montage: image of frame 7 face 0: boom" {
		t.Errorf("error %v", err)
	}
}

func BenchmarkResultMontage(b *testing.B) {
	r, crops := montageResult(b, 7, MaxMontageRows)
	fetch := func(key string) ([]byte, error) { return crops[key], nil }
	for b.Loop() {
		if _, err := ResultMontage(r, fetch, 96); err != nil {
			b.Fatal(err)
		}
	}
}

// encodeOpaquePNG's files decode (image/png) to the pixels written, for sizes around its
// strips' height, and a montage compresses about as well as image/png's adaptive filters.
func TestEncodeOpaquePNG(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, size := range [][2]int{{1, 1}, {5, 1}, {1, 130}, {97, pngStripRows}, {31, pngStripRows + 1}, {200, 3*pngStripRows - 1}} {
		img := image.NewRGBA(image.Rect(0, 0, size[0], size[1]))
		for i := range img.Pix {
			img.Pix[i] = uint8(r.IntN(256))
			if i%4 == 3 {
				img.Pix[i] = 255
			}
		}
		got, err := png.Decode(bytes.NewReader(encodeOpaquePNG(img)))
		if err != nil {
			t.Fatalf("%v: %v", size, err)
		}
		want := image.NewRGBA(got.Bounds())
		draw.Draw(want, want.Rect, got, image.Point{}, draw.Src)
		if got.Bounds() != img.Rect || !bytes.Equal(want.Pix, img.Pix) {
			t.Errorf("%v: decoded pixels differ", size)
		}
	}
	res, crops := montageResult(t, 5, MaxMontageRows)
	ours, err := ResultMontage(res, func(key string) ([]byte, error) { return crops[key], nil }, 96)
	if err != nil {
		t.Fatal(err)
	}
	m, err := png.Decode(bytes.NewReader(ours))
	if err != nil {
		t.Fatal(err)
	}
	var std bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&std, m); err != nil {
		t.Fatal(err)
	}
	if float64(len(ours)) > 1.25*float64(std.Len()) {
		t.Errorf("montage %d bytes, image/png's %d", len(ours), std.Len())
	}
	t.Logf("montage %d bytes, image/png's %d", len(ours), std.Len())
}
