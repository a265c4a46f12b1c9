package output

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/adler32"
	"hash/crc32"
	"image"
	"runtime"

	"github.com/personcluster/personcluster/stages/internal/parallel"
)

// pngStripRows is how many rows one worker filters and compresses at a time.
const pngStripRows = 64

// encodeOpaquePNG writes img, every pixel opaque, as an 8-bit RGB PNG, filtering and
// compressing strips of rows on every core: image/png filters each row five ways and
// compresses on one core, which took 0.14 s of the final result's 0.5 on a 1804×2436 montage.
// Each strip is deflated on its own and ends byte-aligned (a sync flush), so the strips'
// streams concatenate into one, as pigz does. Rows are Paeth-filtered (thumbnails are photos;
// the background's rows filter to zeros).
func encodeOpaquePNG(img *image.RGBA) []byte {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	strips := (h + pngStripRows - 1) / pngStripRows
	raw := make([][]byte, strips)  // filtered rows, for the checksum
	comp := make([][]byte, strips) // their deflate stream
	parallel.Each(strips, runtime.GOMAXPROCS(0), func() func(int) {
		prev := make([]byte, 3*w)
		cur := make([]byte, 3*w)
		var buf bytes.Buffer
		zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
		return func(s int) {
			y0, y1 := s*pngStripRows, min(h, (s+1)*pngStripRows)
			out := make([]byte, 0, (y1-y0)*(1+3*w))
			clear(prev)
			if y0 > 0 {
				rgbRow(prev, img, y0-1)
			}
			for y := y0; y < y1; y++ {
				rgbRow(cur, img, y)
				out = appendPaeth(out, cur, prev)
				prev, cur = cur, prev
			}
			buf.Reset()
			zw.Reset(&buf)
			_, _ = zw.Write(out) // a bytes.Buffer does not fail
			if s == strips-1 {
				_ = zw.Close()
			} else {
				_ = zw.Flush()
			}
			raw[s], comp[s] = out, bytes.Clone(buf.Bytes())
		}
	})
	var png bytes.Buffer
	png.WriteString("\x89PNG\r\n\x1a\n")
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = 8, 2 // bit depth, colour type RGB; compression, filter, interlace 0
	writeChunk(&png, "IHDR", ihdr[:])
	sum := adler32.New()
	idat := []byte{0x78, 0x01} // zlib: deflate, 32K window, no dictionary, fastest
	for s := range strips {
		_, _ = sum.Write(raw[s])
		idat = append(idat, comp[s]...)
	}
	idat = binary.BigEndian.AppendUint32(idat, sum.Sum32())
	writeChunk(&png, "IDAT", idat)
	writeChunk(&png, "IEND", nil)
	return png.Bytes()
}

// rgbRow copies row y of img into dst as RGB.
func rgbRow(dst []byte, img *image.RGBA, y int) {
	src := img.Pix[img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y+y):]
	for x := 0; x < len(dst)/3; x++ {
		dst[3*x], dst[3*x+1], dst[3*x+2] = src[4*x], src[4*x+1], src[4*x+2]
	}
}

// appendPaeth appends the filter type byte and cur Paeth-filtered against prev (3 bytes per
// pixel).
func appendPaeth(out, cur, prev []byte) []byte {
	out = append(out, 4)
	for i := range cur {
		var a, c int
		if i >= 3 {
			a, c = int(cur[i-3]), int(prev[i-3])
		}
		b := int(prev[i])
		p := a + b - c
		pa, pb, pc := abs(p-a), abs(p-b), abs(p-c)
		pred := c
		if pa <= pb && pa <= pc {
			pred = a
		} else if pb <= pc {
			pred = b
		}
		out = append(out, cur[i]-byte(pred))
	}
	return out
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func writeChunk(w *bytes.Buffer, name string, data []byte) {
	_ = binary.Write(w, binary.BigEndian, uint32(len(data)))
	crc := crc32.NewIEEE()
	_, _ = crc.Write([]byte(name))
	_, _ = crc.Write(data)
	w.WriteString(name)
	w.Write(data)
	_ = binary.Write(w, binary.BigEndian, crc.Sum32())
}
