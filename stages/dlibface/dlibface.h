// C interface of the dlib shim (dlibface.cc) for Go.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Every function that can fail returns its error message in *err (malloc'ed; the caller frees
// it) and leaves *err NULL on success.

void* dlibface_hog_new(char** err);
void dlibface_hog_free(void* det);
// Runs the HOG detector on a packed 8-bit BGR image after upsampling it `upsample` times
// (dlib's pyramid_up, as dlib's Python detector(img, upsample) does). Writes up to cap
// detections as left, top, right, bottom (dlib's inclusive corners, in the input image) and
// confidences, best first; returns how many it found (which may exceed cap), or -1 on error.
int dlibface_hog_detect(void* det, const uint8_t* bgr, int rows, int cols, int upsample, double adjust,
                        long* rects, double* scores, int cap, char** err);

void* dlibface_encoder_new(const char* shape_predictor, const char* network, int* parts, char** err);
void dlibface_encoder_free(void* enc);
// Computes the 128-d descriptor of each face rectangle (left, top, right, bottom) of a packed
// 8-bit BGR image, as dlib's compute_face_descriptor(img, shape_predictor(img, rect)) with
// num_jitters=1 does. Writes n*128 floats to out and, when shapes is not NULL, n*parts*2
// landmark coordinates. Returns 0, or -1 on error.
int dlibface_encode(void* enc, const uint8_t* bgr, int rows, int cols, const long* rects, int n,
                    int chip_size, double padding, float* out, long* shapes, char** err);

// A shape predictor alone, for descriptors computed elsewhere (dlib's ResNet on onnxruntime).
void* dlibface_landmarker_new(const char* shape_predictor, int* parts, char** err);
void dlibface_landmarker_free(void* lm);
// Finds the landmarks of each face rectangle (left, top, right, bottom) of a packed 8-bit BGR
// image and cuts its aligned chip as compute_face_descriptor does (get_face_chip_details(shape,
// chip_size, padding) + extract_image_chips). Writes n chips of chip_size*chip_size packed RGB
// bytes to chips and, when shapes is not NULL, n*parts*2 landmark coordinates. Returns 0, or -1
// on error.
int dlibface_chips(void* lm, const uint8_t* bgr, int rows, int cols, const long* rects, int n,
                   int chip_size, double padding, uint8_t* chips, long* shapes, char** err);
// Counts the face rectangles whose landmarks from lm differ from those of dlib's own
// shape_predictor loaded from shape_predictor_path (a check for tests). -1 on error.
int dlibface_landmarks_differ(void* lm, const char* shape_predictor_path, const uint8_t* bgr, int rows, int cols,
                              const long* rects, int n, char** err);

#ifdef __cplusplus
}
#endif
