#!/usr/bin/env bash
# `make models-internet`: fetches and prepares the ResNet clothing models that no package
# registry ships, into models/data/cloth (or $MODELS_DIR/cloth). Needs internet access, curl and
# a Python 3.9–3.11 (TensorFlow 2.15 for the ResNet50 export); everything Python goes into a
# throw-away virtual environment. Idempotent: models already present are kept.
#
#   resnet18.json  ONNX model zoo ResNet18 v1 (resnet18-v1-7.onnx, Apache-2.0), cut at its
#                  global average pool (resnetv15_pool1_fwd, [N,512,1,1]), batch made dynamic.
#   resnet50.json  Keras ResNet50 ImageNet weights (the original's model), cut at
#                  conv3_block4_out ([N,28,28,512], NHWC), exported with tf2onnx; output "features".
#
# Select one with `--cloth-model models/manifests/resnet18.json` (or resnet50.json).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${MODELS_DIR:-$here/../data}/cloth
PYTHON=${PYTHON:-python3}
ZOO=https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet18-v1-7.onnx
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

venv() { # packages...
  if [ ! -x "$tmp/venv/bin/python" ]; then
    "$PYTHON" -m venv "$tmp/venv" || { echo "models-internet: $PYTHON -m venv failed (set PYTHON=python3.11)" >&2; exit 1; }
  fi
  "$tmp/venv/bin/pip" install --quiet "$@"
}

if [ ! -s "$dest/resnet18_v1_7_pool.onnx" ]; then
  echo "models-internet: downloading $ZOO"
  curl -fL --retry 3 -o "$tmp/resnet18-v1-7.onnx" "$ZOO"
  venv "onnx>=1.14,<2"
  "$tmp/venv/bin/python" - "$tmp/resnet18-v1-7.onnx" "$dest/resnet18_v1_7_pool.onnx" <<'PY'
import sys, onnx, onnx.utils
src, dst = sys.argv[1], sys.argv[2]
onnx.utils.extract_model(src, dst, ["data"], ["resnetv15_pool1_fwd"])
m = onnx.load(dst)
del m.graph.value_info[:]          # intermediate shapes recorded for batch 1
for v in list(m.graph.input) + list(m.graph.output):
    v.type.tensor_type.shape.dim[0].dim_param = "N"
onnx.checker.check_model(m)
onnx.save(m, dst)
print("models-internet: wrote", dst)
PY
fi

if [ ! -s "$dest/resnet50_conv3_block4.onnx" ]; then
  echo "models-internet: exporting Keras ResNet50 (conv3_block4_out) with tf2onnx"
  venv "tensorflow==2.15.*" "tf2onnx==1.16.1" "onnx>=1.14,<1.17" "protobuf<4"
  "$tmp/venv/bin/python" - "$dest/resnet50_conv3_block4.onnx" <<'PY'
import sys, onnx, tensorflow as tf, tf2onnx
dst = sys.argv[1]
base = tf.keras.applications.ResNet50(weights="imagenet", include_top=False, input_shape=(224, 224, 3))
cut = tf.keras.Model(base.input, base.get_layer("conv3_block4_out").output)
spec = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="input"),)
model, _ = tf2onnx.convert.from_keras(cut, input_signature=spec, opset=13)
old = model.graph.output[0].name
for n in model.graph.node:
    for i, name in enumerate(n.output):
        if name == old:
            n.output[i] = "features"
    for i, name in enumerate(n.input):
        if name == old:
            n.input[i] = "features"
model.graph.output[0].name = "features"
onnx.checker.check_model(model)
onnx.save(model, dst)
print("models-internet: wrote", dst)
PY
fi
echo "models-internet: ready in $dest (use --cloth-model models/manifests/resnet18.json or resnet50.json)"
