package output

import (
	"fmt"
	"image"
	"image/color"
	"runtime"
	"sync"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/internal/parallel"
)

// Thumbnails holds crops decoded and scaled to a montage's cell, by object key, so that the
// results of one source (the quota's, then the final one) decode each crop once: the final
// result's montage was most of the clusterer's work after the last frame (0.5 s of 0.8 on
// cast_public). It keeps only the thumbnails of the last montage drawn with it. Safe for
// concurrent use.
type Thumbnails struct {
	cell int
	mu   sync.Mutex
	m    map[string]thumb
}

// NewThumbnails makes an empty cache of cell×cell thumbnails.
func NewThumbnails(cell int) *Thumbnails {
	return &Thumbnails{cell: cell, m: map[string]thumb{}}
}

// thumbJob is one crop a montage shows: its key, and where its thumbnail goes.
type thumbJob struct {
	key    string
	member messages.Member
	column int
	img    thumb // img.RGBA nil: missing or not decodable
	err    error
}

// fill sets each job's thumbnail: from the cache, or fetched, decoded and scaled, the missing
// ones on every core, and adds them to the cache. A crop that is missing or does not decode is
// left without one; the first fetch error (in job order) is returned.
func (t *Thumbnails) fill(jobs []thumbJob, fetch Fetcher) error {
	t.mu.Lock()
	var todo []int
	for i := range jobs {
		if img, ok := t.m[jobs[i].key]; ok {
			jobs[i].img = img
		} else {
			todo = append(todo, i)
		}
	}
	t.mu.Unlock()
	parallel.Each(len(todo), runtime.GOMAXPROCS(0), func() func(int) {
		return func(k int) {
			j := &jobs[todo[k]]
			data, err := fetch(j.key)
			if err != nil {
				j.err = err
				return
			}
			if data == nil {
				return
			}
			if img, err := DecodeThumbnail(data, t.cell, t.cell); err == nil {
				j.img = thumb{img}
			}
		}
	})
	var first error
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, j := range jobs {
		if j.err != nil && first == nil {
			first = fmt.Errorf("output: montage: image of frame %d face %d: %w", j.member.Frame, j.member.Face, j.err)
		}
		if j.img.RGBA != nil {
			t.m[j.key] = j.img
		}
	}
	return first
}

// retain forgets every thumbnail but those of keys: the cache holds one montage's crops.
func (t *Thumbnails) retain(keys map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.m {
		if !keys[k] {
			delete(t.m, k)
		}
	}
}

// thumb is a crop already scaled for its cell, which drawFit copies as it is (scaling it again
// could change it: a 299-pixel side at 96/299 comes out 95 pixels, which a second fit would
// stretch to 96).
type thumb struct{ *image.RGBA }

// fit is the size of a width×height image scaled by scale to fit w×h, keeping its aspect ratio.
func fit(width, height, w, h int) (tw, th int, scale float64) {
	scale = min(float64(w)/float64(width), float64(h)/float64(height))
	return int(float64(width) * scale), int(float64(height) * scale), scale
}

// thumbnail scales src to fit w×h keeping its aspect ratio, by nearest neighbour, exactly as
// a montage draws it into a w×h cell.
func thumbnail(src image.Image, w, h int) *image.RGBA {
	sb := src.Bounds()
	if sb.Dx() == 0 || sb.Dy() == 0 || w <= 0 || h <= 0 {
		return image.NewRGBA(image.Rectangle{})
	}
	tw, th, scale := fit(sb.Dx(), sb.Dy(), w, h)
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	xs := make([]int, tw)
	for x := range xs {
		xs[x] = sb.Min.X + int(float64(x)/scale)
	}
	for y := 0; y < th; y++ {
		sy := sb.Min.Y + int(float64(y)/scale)
		row := dst.Pix[y*dst.Stride : y*dst.Stride+4*tw]
		switch s := src.(type) {
		case *image.YCbCr:
			for x, sx := range xs {
				yi, ci := s.YOffset(sx, sy), s.COffset(sx, sy)
				r, g, b := color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = r, g, b, 255
			}
		case *image.Gray:
			for x, sx := range xs {
				v := s.Pix[s.PixOffset(sx, sy)]
				row[4*x], row[4*x+1], row[4*x+2], row[4*x+3] = v, v, v, 255
			}
		case *image.RGBA:
			for x, sx := range xs {
				copy(row[4*x:4*x+4], s.Pix[s.PixOffset(sx, sy):])
			}
		default:
			for x, sx := range xs {
				dst.Set(x, y, src.At(sx, sy))
			}
		}
	}
	return dst
}
