package reader

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

// pc_jpeg is one encoder's state: a reusable output buffer and the error trap.
typedef struct {
	struct jpeg_error_mgr err;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
	unsigned char *buf; // malloc'd; libjpeg may replace it with a bigger one
	unsigned long cap;
	unsigned char *out; // where libjpeg writes (buf, or its replacement)
	unsigned long len;
} pc_jpeg;

static void pc_error_exit(j_common_ptr c) {
	pc_jpeg *s = (pc_jpeg *)c->err;
	(*c->err->format_message)(c, s->msg);
	longjmp(s->jump, 1);
}

static void pc_silent(j_common_ptr c) { (void)c; }

// pc_encode compresses a packed 8-bit BGR image into s->out[0:len] (libjpeg-turbo's SIMD
// islow DCT, the settings OpenCV's imencode uses). It returns 0, or -1 with s->msg set.
static int pc_encode(pc_jpeg *s, const unsigned char *bgr, int w, int h, int stride, int quality) {
	struct jpeg_compress_struct c;
	memset(&c, 0, sizeof c);
	c.err = jpeg_std_error(&s->err);
	s->err.error_exit = pc_error_exit;
	s->err.output_message = pc_silent;
	s->out = s->buf;
	s->len = s->cap;
	if (setjmp(s->jump)) {
		jpeg_destroy_compress(&c);
		if (s->out != s->buf) {
			free(s->out);
		}
		return -1;
	}
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &s->out, &s->len);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = 3;
	c.in_color_space = JCS_EXT_BGR;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(bgr + (size_t)c.next_scanline * (size_t)stride);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	if (s->out != s->buf) { // grown: keep the bigger buffer for the next frame
		free(s->buf);
		s->buf = s->out;
		s->cap = s->len;
	}
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"gocv.io/x/gocv"

	"github.com/personcluster/personcluster/stages/vision"
)

// jpegEncoder JPEG-encodes frames with libjpeg-turbo directly. Its output is byte for byte
// OpenCV's imencode output (same library, same settings), about a third faster: no growing
// output vector and no extra copies. One per goroutine.
type jpegEncoder struct {
	s *C.pc_jpeg
}

func newJPEGEncoder() *jpegEncoder {
	s := (*C.pc_jpeg)(C.calloc(1, C.size_t(unsafe.Sizeof(C.pc_jpeg{}))))
	return &jpegEncoder{s: s}
}

// encode compresses img (8-bit BGR) at quality 1..100. Other image types go through OpenCV.
func (e *jpegEncoder) encode(img gocv.Mat, quality int) ([]byte, error) {
	if img.Empty() {
		return nil, vision.ErrEmpty
	}
	if img.Type() != gocv.MatTypeCV8UC3 || !img.IsContinuous() {
		return vision.EncodeJPEG(img, quality)
	}
	data, err := img.DataPtrUint8()
	if err != nil || len(data) < img.Rows()*img.Step() {
		return vision.EncodeJPEG(img, quality)
	}
	// data is OpenCV's memory, not Go's: C may read it freely.
	if C.pc_encode(e.s, (*C.uchar)(unsafe.Pointer(&data[0])), C.int(img.Cols()), C.int(img.Rows()), C.int(img.Step()), C.int(quality)) != 0 {
		return nil, fmt.Errorf("reader: encoding JPEG: %s", C.GoString(&e.s.msg[0]))
	}
	if e.s.len == 0 {
		return nil, errors.New("reader: encoding JPEG: empty output")
	}
	return C.GoBytes(unsafe.Pointer(e.s.out), C.int(e.s.len)), nil
}

func (e *jpegEncoder) close() {
	if e.s == nil {
		return
	}
	C.free(unsafe.Pointer(e.s.buf))
	C.free(unsafe.Pointer(e.s))
	e.s = nil
}
