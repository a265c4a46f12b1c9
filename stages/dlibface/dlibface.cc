// A thin shim over dlib (Debian's libdlib-dev) doing exactly what the original's
// face_recognition calls did: face_locations (HOG, upsampled), then face_encodings on those
// boxes (68-point landmarks, 150×150 chip with padding 0.25, ResNet-29 descriptor). The network
// definition is dlib's (dnn_face_recognition_ex.cpp), as go-face and dlib's Python bindings use.
// No fused multiply-add contraction: the x86-64-v3 clones below then compute what the default
// code computes (landmarks and chips equal on every CPU).
#pragma GCC optimize("fp-contract=off")

#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include <dlib/dnn.h>
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>

#include "dlibface.h"

using namespace dlib;

namespace {

template <template <int, template <typename> class, int, typename> class block, int N,
          template <typename> class BN, typename SUBNET>
using residual = add_prev1<block<N, BN, 1, tag1<SUBNET>>>;

template <template <int, template <typename> class, int, typename> class block, int N,
          template <typename> class BN, typename SUBNET>
using residual_down = add_prev2<avg_pool<2, 2, 2, 2, skip1<tag2<block<N, BN, 2, tag1<SUBNET>>>>>>;

template <int N, template <typename> class BN, int stride, typename SUBNET>
using block = BN<con<N, 3, 3, 1, 1, relu<BN<con<N, 3, 3, stride, stride, SUBNET>>>>>;

template <int N, typename SUBNET> using ares = relu<residual<block, N, affine, SUBNET>>;
template <int N, typename SUBNET> using ares_down = relu<residual_down<block, N, affine, SUBNET>>;

template <typename SUBNET> using alevel0 = ares_down<256, SUBNET>;
template <typename SUBNET> using alevel1 = ares<256, ares<256, ares_down<256, SUBNET>>>;
template <typename SUBNET> using alevel2 = ares<128, ares<128, ares_down<128, SUBNET>>>;
template <typename SUBNET> using alevel3 = ares<64, ares<64, ares<64, ares_down<64, SUBNET>>>>;
template <typename SUBNET> using alevel4 = ares<32, ares<32, ares<32, SUBNET>>>;

using anet_type = loss_metric<fc_no_bias<128, avg_pool_everything<
    alevel0<alevel1<alevel2<alevel3<alevel4<
    max_pool<3, 3, 2, 2, relu<affine<con<32, 7, 7, 2, 2, input_rgb_image_sized<150>>>>>>>>>>>>>;

// landmark_predictor is dlib's shape_predictor with its regression trees laid out flat, so
// that the leaves a face reaches can be prefetched: dlib keeps each leaf (136 floats) in its
// own allocation, and a face reads 7,500 of the 65 MB of leaves, which the pipeline's networks
// have evicted from the caches between faces (2.4 ms a face there against 1 ms in a loop).
// It gives dlib's landmarks bit for bit: the same features and the same float sums of the
// leaves, tree after tree (dlibface_landmarks_differ checks it against dlib's own).
struct landmark_cascade {
    std::vector<impl::split_feature> splits;  // every tree's splits, tree after tree
    std::vector<float> leaves;                // every tree's leaves, dim floats each
    std::vector<unsigned long> split_off;     // per tree: its first split in splits
    std::vector<unsigned long> nsplits;       // per tree
    std::vector<unsigned long> leaf_off;      // per tree: its first leaf in leaves (in leaves)
};

struct landmark_predictor {
    matrix<float, 0, 1> initial_shape;
    std::vector<landmark_cascade> cascades;
    std::vector<std::vector<unsigned long>> anchor_idx;
    std::vector<std::vector<dlib::vector<float, 2>>> deltas;
    unsigned long num_parts() const { return initial_shape.size() / 2; }
};

// load_predictor reads a shape_predictor file as dlib's deserialize(shape_predictor&) does.
void load_predictor(const std::string& path, landmark_predictor& p) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw serialization_error("unable to open " + path + " for reading");
    int version = 0;
    dlib::deserialize(version, in);
    if (version != 1) throw serialization_error("Unexpected version found while deserializing dlib::shape_predictor.");
    dlib::deserialize(p.initial_shape, in);
    std::vector<std::vector<impl::regression_tree>> forests;
    dlib::deserialize(forests, in);
    dlib::deserialize(p.anchor_idx, in);
    dlib::deserialize(p.deltas, in);
    if (forests.size() != p.anchor_idx.size() || forests.size() != p.deltas.size())
        throw serialization_error("inconsistent cascades in " + path);
    const long dim = p.initial_shape.size();
    p.cascades.resize(forests.size());
    for (size_t c = 0; c < forests.size(); ++c) {
        landmark_cascade& lc = p.cascades[c];
        for (auto& tree : forests[c]) {
            if (tree.leaf_values.size() != tree.splits.size() + 1)
                throw serialization_error("a regression tree with " + std::to_string(tree.splits.size()) + " splits and " +
                                          std::to_string(tree.leaf_values.size()) + " leaves in " + path);
            lc.split_off.push_back(lc.splits.size());
            lc.nsplits.push_back(tree.splits.size());
            lc.leaf_off.push_back(lc.leaves.size() / dim);
            lc.splits.insert(lc.splits.end(), tree.splits.begin(), tree.splits.end());
            for (const auto& leaf : tree.leaf_values) {
                if (leaf.size() != dim) throw serialization_error("a leaf of the wrong size in " + path);
                lc.leaves.insert(lc.leaves.end(), leaf.begin(), leaf.end());
            }
        }
        std::vector<impl::regression_tree>().swap(forests[c]);  // free as we go
    }
}

struct encoder {
    landmark_predictor sp;
    anet_type net;
};

char* dup(const std::string& s) {
    char* p = static_cast<char*>(std::malloc(s.size() + 1));
    if (p) std::memcpy(p, s.c_str(), s.size() + 1);
    return p;
}

// The original read RGB frames; dlib works on rgb_pixel images.
matrix<rgb_pixel> from_bgr(const uint8_t* bgr, int rows, int cols) {
    matrix<rgb_pixel> img(rows, cols);
    for (int r = 0; r < rows; ++r) {
        const uint8_t* p = bgr + static_cast<size_t>(r) * cols * 3;
        for (int c = 0; c < cols; ++c, p += 3) img(r, c) = rgb_pixel(p[2], p[1], p[0]);
    }
    return img;
}

// Runtime dispatch: the landmarks' regression trees and the chips' resampling, dlib templates
// compiled into this shim, run twice as fast with AVX2 and FMA, but the default build must run
// on any x86-64 CPU. GCC compiles these two functions twice (target_clones) and picks the
// clone for the CPU at load time; flatten inlines dlib's code into each clone, so the
// x86-64-v3 code never leaves them (no shared template instance is compiled for AVX2).
// fp-contract=off (the pragma at the top) keeps the clones' results equal.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DLIBFACE_DISPATCH __attribute__((flatten, target_clones("arch=x86-64-v3", "default")))
#else
#define DLIBFACE_DISPATCH
#endif

// How many trees ahead landmarks prefetches a leaf: a leaf's sum takes some ns, a miss to
// memory some 100.
constexpr size_t leaf_prefetch_distance = 8;
// And how many trees ahead it prefetches a tree's splits while walking the trees.
constexpr size_t split_prefetch_distance = 4;

DLIBFACE_DISPATCH
full_object_detection landmarks(const landmark_predictor& sp, const matrix<rgb_pixel>& img, const rectangle& rect) {
    // shape_predictor::operator() with the trees of a cascade walked first (they depend only
    // on the cascade's features) and their leaves then summed in the same order, prefetched.
    using namespace impl;
    matrix<float, 0, 1> current_shape = sp.initial_shape;
    const long dim = current_shape.size();
    std::vector<float> feature_pixel_values;
    std::vector<const float*> chosen;
    for (size_t iter = 0; iter < sp.cascades.size(); ++iter) {
        extract_feature_pixel_values(img, rect, current_shape, sp.initial_shape, sp.anchor_idx[iter], sp.deltas[iter],
                                     feature_pixel_values);
        const landmark_cascade& c = sp.cascades[iter];
        const size_t trees = c.nsplits.size();
        chosen.resize(trees);
        for (size_t t = 0; t < trees; ++t) {
            if (t + split_prefetch_distance < trees) {
                // A tree's splits span a few cache lines; its walk reads one node per level.
                const size_t ahead = t + split_prefetch_distance;
                const char* first = reinterpret_cast<const char*>(c.splits.data() + c.split_off[ahead]);
                const size_t bytes = c.nsplits[ahead] * sizeof(split_feature);
                for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(first + b);
            }
            const split_feature* splits = c.splits.data() + c.split_off[t];
            const unsigned long n = c.nsplits[t];
            unsigned long i = 0;
            while (i < n) {
                if ((float)feature_pixel_values[splits[i].idx1] - (float)feature_pixel_values[splits[i].idx2] > splits[i].thresh)
                    i = left_child(i);
                else
                    i = right_child(i);
            }
            chosen[t] = c.leaves.data() + (c.leaf_off[t] + (i - n)) * dim;
        }
        float* shape = &current_shape(0);
        for (size_t t = 0; t < trees; ++t) {
            if (t + leaf_prefetch_distance < trees) {
                const char* ahead = reinterpret_cast<const char*>(chosen[t + leaf_prefetch_distance]);
                for (long b = 0; b < dim * static_cast<long>(sizeof(float)); b += 64) __builtin_prefetch(ahead + b);
            }
            const float* leaf = chosen[t];
            for (long k = 0; k < dim; ++k) shape[k] += leaf[k];
        }
    }
    const point_transform_affine tform_to_img = unnormalizing_tform(rect);
    std::vector<point> parts(dim / 2);
    for (unsigned long i = 0; i < parts.size(); ++i) parts[i] = tform_to_img(location(current_shape, i));
    return full_object_detection(rect, parts);
}

DLIBFACE_DISPATCH
void extract_chips(const matrix<rgb_pixel>& img, const std::vector<chip_details>& details,
                   dlib::array<matrix<rgb_pixel>>& chips) {
    extract_image_chips(img, details, chips);
}

// Where compute_face_descriptor cuts the chip of each face rectangle (left, top, right,
// bottom): the landmarks' get_face_chip_details. Writes the landmarks to shapes unless NULL.
std::vector<chip_details> face_chip_details(const landmark_predictor& sp, const matrix<rgb_pixel>& img, const long* rects, int n,
                                            int chip_size, double padding, long* shapes) {
    std::vector<chip_details> details;
    for (int i = 0; i < n; ++i) {
        rectangle rect(rects[4 * i], rects[4 * i + 1], rects[4 * i + 2], rects[4 * i + 3]);
        full_object_detection shape = landmarks(sp, img, rect);
        if (shapes) {
            const unsigned long parts = shape.num_parts();
            for (unsigned long j = 0; j < parts; ++j) {
                shapes[(i * parts + j) * 2] = shape.part(j).x();
                shapes[(i * parts + j) * 2 + 1] = shape.part(j).y();
            }
        }
        details.push_back(get_face_chip_details(shape, chip_size, padding));
    }
    return details;
}

}  // namespace

extern "C" {

void* dlibface_hog_new(char** err) {
    *err = nullptr;
    try {
        return new frontal_face_detector(get_frontal_face_detector());
    } catch (std::exception& e) {
        *err = dup(std::string("creating the HOG face detector: ") + e.what());
    }
    return nullptr;
}

void dlibface_hog_free(void* det) { delete static_cast<frontal_face_detector*>(det); }

int dlibface_hog_detect(void* det, const uint8_t* bgr, int rows, int cols, int upsample, double adjust,
                        long* rects, double* scores, int cap, char** err) {
    *err = nullptr;
    try {
        auto& detector = *static_cast<frontal_face_detector*>(det);
        matrix<rgb_pixel> img = from_bgr(bgr, rows, cols);
        std::vector<rect_detection> dets;
        // As dlib's Python run_detector_with_upscale: pyramid_up `upsample` times, detect, then
        // map the rectangles back down.
        pyramid_down<2> pyr;
        if (upsample > 0) {
            matrix<rgb_pixel> up;
            pyramid_up(img, up, pyr);
            for (int i = 1; i < upsample; ++i) pyramid_up(up);
            detector(up, dets, adjust);
            for (auto& d : dets) d.rect = pyr.rect_down(d.rect, upsample);
        } else {
            detector(img, dets, adjust);
        }
        for (int i = 0; i < static_cast<int>(dets.size()) && i < cap; ++i) {
            rects[4 * i] = dets[i].rect.left();
            rects[4 * i + 1] = dets[i].rect.top();
            rects[4 * i + 2] = dets[i].rect.right();
            rects[4 * i + 3] = dets[i].rect.bottom();
            scores[i] = dets[i].detection_confidence;
        }
        return static_cast<int>(dets.size());
    } catch (std::exception& e) {
        *err = dup(std::string("HOG detection: ") + e.what());
    }
    return -1;
}

void* dlibface_encoder_new(const char* shape_predictor_path, const char* network_path, int* parts, char** err) {
    *err = nullptr;
    encoder* enc = nullptr;
    std::string loading = shape_predictor_path;
    try {
        enc = new encoder;
        load_predictor(shape_predictor_path, enc->sp);
        *parts = static_cast<int>(enc->sp.num_parts());
        loading = network_path;
        deserialize(network_path) >> enc->net;
        return enc;
    } catch (std::exception& e) {
        *err = dup(loading + ": " + e.what());
    }
    delete enc;
    return nullptr;
}

void dlibface_encoder_free(void* enc) { delete static_cast<encoder*>(enc); }

int dlibface_encode(void* e, const uint8_t* bgr, int rows, int cols, const long* rects, int n,
                    int chip_size, double padding, float* out, long* shapes, char** err) {
    *err = nullptr;
    try {
        auto& enc = *static_cast<encoder*>(e);
        matrix<rgb_pixel> img = from_bgr(bgr, rows, cols);
        std::vector<chip_details> details = face_chip_details(enc.sp, img, rects, n, chip_size, padding, shapes);
        dlib::array<matrix<rgb_pixel>> chips;
        extract_chips(img, details, chips);
        std::vector<matrix<rgb_pixel>> batch(chips.begin(), chips.end());
        std::vector<matrix<float, 0, 1>> descriptors = enc.net(batch, 16);
        for (int i = 0; i < n; ++i) {
            if (descriptors[i].size() != 128) {
                *err = dup("the network returned a descriptor of size " + std::to_string(descriptors[i].size()) + ", want 128");
                return -1;
            }
            for (int k = 0; k < 128; ++k) out[i * 128 + k] = descriptors[i](k);
        }
        return 0;
    } catch (std::exception& ex) {
        *err = dup(std::string("face descriptor: ") + ex.what());
    }
    return -1;
}

void* dlibface_landmarker_new(const char* shape_predictor_path, int* parts, char** err) {
    *err = nullptr;
    landmark_predictor* sp = nullptr;
    try {
        sp = new landmark_predictor;
        load_predictor(shape_predictor_path, *sp);
        *parts = static_cast<int>(sp->num_parts());
        return sp;
    } catch (std::exception& e) {
        *err = dup(std::string(shape_predictor_path) + ": " + e.what());
    }
    delete sp;
    return nullptr;
}

void dlibface_landmarker_free(void* lm) { delete static_cast<landmark_predictor*>(lm); }

int dlibface_landmarks_differ(void* lm, const char* shape_predictor_path, const uint8_t* bgr, int rows, int cols,
                              const long* rects, int n, char** err) {
    *err = nullptr;
    try {
        const auto& fast = *static_cast<landmark_predictor*>(lm);
        shape_predictor sp;
        deserialize(shape_predictor_path) >> sp;
        matrix<rgb_pixel> img = from_bgr(bgr, rows, cols);
        int differ = 0;
        for (int i = 0; i < n; ++i) {
            rectangle rect(rects[4 * i], rects[4 * i + 1], rects[4 * i + 2], rects[4 * i + 3]);
            full_object_detection a = sp(img, rect), b = landmarks(fast, img, rect);
            bool same = a.num_parts() == b.num_parts();
            for (unsigned long j = 0; same && j < a.num_parts(); ++j) same = a.part(j) == b.part(j);
            differ += !same;
        }
        return differ;
    } catch (std::exception& e) {
        *err = dup(std::string("landmarks: ") + e.what());
    }
    return -1;
}

int dlibface_chips(void* lm, const uint8_t* bgr, int rows, int cols, const long* rects, int n,
                   int chip_size, double padding, uint8_t* chips, long* shapes, char** err) {
    *err = nullptr;
    try {
        const auto& sp = *static_cast<landmark_predictor*>(lm);
        matrix<rgb_pixel> img = from_bgr(bgr, rows, cols);
        std::vector<chip_details> details = face_chip_details(sp, img, rects, n, chip_size, padding, shapes);
        dlib::array<matrix<rgb_pixel>> out;
        extract_chips(img, details, out);
        const size_t side = static_cast<size_t>(chip_size);
        for (int i = 0; i < n; ++i) {
            const auto& chip = out[i];
            if (chip.nr() != chip_size || chip.nc() != chip_size) {
                *err = dup("a chip of " + std::to_string(chip.nr()) + "x" + std::to_string(chip.nc()) + ", want " + std::to_string(chip_size));
                return -1;
            }
            uint8_t* dst = chips + static_cast<size_t>(i) * side * side * 3;
            for (long r = 0; r < chip.nr(); ++r) {
                for (long c = 0; c < chip.nc(); ++c, dst += 3) {
                    const rgb_pixel& p = chip(r, c);
                    dst[0] = p.red;
                    dst[1] = p.green;
                    dst[2] = p.blue;
                }
            }
        }
        return 0;
    } catch (std::exception& ex) {
        *err = dup(std::string("face chips: ") + ex.what());
    }
    return -1;
}

}  // extern "C"
