package vision

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
	char msg[JMSG_LENGTH_MAX];
	int warned;
} pcv_err;

static void pcv_error_exit(j_common_ptr c) {
	pcv_err *e = (pcv_err *)c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jump, 1);
}

// Warnings (corrupt or missing data, which libjpeg papers over with grey) are remembered.
static void pcv_emit(j_common_ptr c, int level) {
	pcv_err *e = (pcv_err *)c->err;
	if (level < 0 && !e->warned) {
		e->warned = 1;
		(*c->err->format_message)(c, e->msg);
	}
}

static void pcv_silent(j_common_ptr c) { (void)c; }

// pcv_decode decompresses a JPEG of w×h pixels into packed 8-bit BGR rows of the given stride
// (libjpeg-turbo, JCS_EXT_BGR, its default islow DCT and fancy upsampling: OpenCV's imdecode
// settings). It returns 0; 1 after a libjpeg error; 2 when libjpeg warned of corrupt data; 3
// when the image is not w×h. msg says why.
static int pcv_decode(const unsigned char *data, unsigned long len, unsigned char *out, int w, int h, size_t stride, char *msg) {
	struct jpeg_decompress_struct c;
	pcv_err e;
	memset(&c, 0, sizeof c);
	memset(&e, 0, sizeof e);
	c.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = pcv_error_exit;
	e.pub.emit_message = pcv_emit;
	e.pub.output_message = pcv_silent;
	if (setjmp(e.jump)) {
		jpeg_destroy_decompress(&c);
		memcpy(msg, e.msg, JMSG_LENGTH_MAX);
		return 1;
	}
	jpeg_create_decompress(&c);
	jpeg_mem_src(&c, data, len);
	jpeg_read_header(&c, TRUE);
	if ((int)c.image_width != w || (int)c.image_height != h) {
		jpeg_destroy_decompress(&c);
		snprintf(msg, JMSG_LENGTH_MAX, "frame is %ux%u, header said %dx%d", c.image_width, c.image_height, w, h);
		return 3;
	}
	c.out_color_space = JCS_EXT_BGR;
	jpeg_start_decompress(&c);
	while (c.output_scanline < c.output_height && !e.warned) {
		JSAMPROW row = (JSAMPROW)(out + (size_t)c.output_scanline * stride);
		jpeg_read_scanlines(&c, &row, 1);
	}
	if (!e.warned) {
		jpeg_finish_decompress(&c);
	}
	jpeg_destroy_decompress(&c);
	if (e.warned) {
		memcpy(msg, e.msg, JMSG_LENGTH_MAX);
		return 2;
	}
	return 0;
}

// pcv_jpeg is one encoder's state: the error trap and a reusable output buffer.
typedef struct {
	pcv_err err;
	unsigned char *buf; // malloc'd; libjpeg may replace it with a bigger one
	unsigned long cap;
	unsigned char *out; // where libjpeg wrote (buf, or its replacement)
	unsigned long len;
} pcv_jpeg;

// pcv_encode compresses packed 8-bit BGR rows into s->out[0:s->len] with OpenCV's imencode
// settings (jpeg_set_defaults, the quality, baseline; libjpeg-turbo's SIMD islow DCT). A grown
// output buffer is kept for the next image. It returns 0, or 1 with s->err.msg set.
static int pcv_encode(pcv_jpeg *s, const unsigned char *bgr, int w, int h, size_t stride, int quality) {
	struct jpeg_compress_struct c;
	memset(&c, 0, sizeof c);
	memset(&s->err, 0, sizeof s->err);
	c.err = jpeg_std_error(&s->err.pub);
	s->err.pub.error_exit = pcv_error_exit;
	s->err.pub.output_message = pcv_silent;
	s->out = s->buf;
	s->len = s->cap;
	if (setjmp(s->err.jump)) {
		jpeg_destroy_compress(&c);
		if (s->out != s->buf) {
			free(s->out);
		}
		s->out = NULL;
		s->len = 0;
		return 1;
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
		JSAMPROW row = (JSAMPROW)(bgr + (size_t)c.next_scanline * stride);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	if (s->out != s->buf) { // grown: keep the bigger buffer
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
)

// decodeDirect decodes a w×h JPEG with libjpeg-turbo straight into a new BGR Mat: OpenCV's
// pixels (the same library and settings), several times faster than gocv.IMDecode, which
// copies the input and converts colour rows one by one. ok is false when libjpeg cannot read
// the file (e.g. CMYK): the caller then tries OpenCV.
func decodeDirect(data []byte, w, h int) (m gocv.Mat, ok bool, err error) {
	m = gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	out, err := m.DataPtrUint8()
	if err != nil || len(out) < h*m.Step() || !m.IsContinuous() {
		m.Close()
		return gocv.Mat{}, false, nil
	}
	var msg [C.JMSG_LENGTH_MAX]C.char
	// data is Go memory without pointers, read during the call only; out is OpenCV's memory.
	rc := C.pcv_decode((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), (*C.uchar)(unsafe.Pointer(&out[0])),
		C.int(w), C.int(h), C.size_t(m.Step()), &msg[0])
	switch rc {
	case 0:
		return m, true, nil
	case 2, 3:
		m.Close()
		return gocv.Mat{}, true, fmt.Errorf("%w: %d bytes (corrupt or truncated JPEG: %s)", ErrDecode, len(data), C.GoString(&msg[0]))
	}
	m.Close()
	return gocv.Mat{}, false, nil
}

// JPEGEncoder JPEG-encodes images as EncodeJPEG does (OpenCV's imencode bytes), reusing one
// output buffer between calls: no allocation in C per image. One per goroutine; Close frees it.
type JPEGEncoder struct {
	s *C.pcv_jpeg
}

// NewJPEGEncoder returns an encoder; Close it when done.
func NewJPEGEncoder() *JPEGEncoder {
	return &JPEGEncoder{s: (*C.pcv_jpeg)(C.calloc(1, C.size_t(unsafe.Sizeof(C.pcv_jpeg{}))))}
}

// Encode encodes img at quality (1..100); images libjpeg is not given directly (other types,
// non-continuous) go through EncodeJPEG.
func (e *JPEGEncoder) Encode(img gocv.Mat, quality int) ([]byte, error) {
	if img.Empty() {
		return nil, ErrEmpty
	}
	if data, ok, err := e.encode(img, quality); ok {
		return data, err
	}
	return EncodeJPEG(img, quality)
}

// Close frees the encoder's buffers; safe to call twice.
func (e *JPEGEncoder) Close() {
	if e.s == nil {
		return
	}
	C.free(unsafe.Pointer(e.s.buf))
	C.free(unsafe.Pointer(e.s))
	e.s = nil
}

// encode JPEG-encodes an 8-bit BGR image with libjpeg-turbo: OpenCV's imencode bytes (the same
// library and settings) without its intermediate copies. ok is false for images it does not
// handle (other types, non-continuous), which the caller gives to OpenCV.
func (e *JPEGEncoder) encode(img gocv.Mat, quality int) (data []byte, ok bool, err error) {
	if img.Type() != gocv.MatTypeCV8UC3 || !img.IsContinuous() || quality < 1 || quality > 100 {
		return nil, false, nil
	}
	pix, err := img.DataPtrUint8()
	if err != nil || len(pix) < img.Rows()*img.Step() {
		return nil, false, nil
	}
	// pix is OpenCV's memory, not Go's: C may read it freely.
	if C.pcv_encode(e.s, (*C.uchar)(unsafe.Pointer(&pix[0])), C.int(img.Cols()), C.int(img.Rows()), C.size_t(img.Step()), C.int(quality)) != 0 {
		return nil, true, fmt.Errorf("vision: encoding JPEG: %s", C.GoString(&e.s.err.msg[0]))
	}
	if e.s.len == 0 {
		return nil, true, errors.New("vision: encoding JPEG: empty output")
	}
	return C.GoBytes(unsafe.Pointer(e.s.out), C.int(e.s.len)), true, nil
}

// encodeDirect is encode with an encoder of its own.
func encodeDirect(img gocv.Mat, quality int) (data []byte, ok bool, err error) {
	e := NewJPEGEncoder()
	defer e.Close()
	return e.encode(img, quality)
}
