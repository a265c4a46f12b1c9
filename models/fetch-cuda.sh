#!/usr/bin/env bash
# Puts onnxruntime's CUDA provider beside models/data/lib/libonnxruntime.so, so that
# `--device auto` (the default) or `cuda` runs the detector, the face network and the clothing
# embedder on an NVIDIA GPU. npm's onnxruntime-node ships the core library only (built to load
# the provider); its own install script takes the provider from NuGet's
# Microsoft.ML.OnnxRuntime.Gpu.Linux of the same version, and so does this script:
#   - $MODELS_MIRROR/lib/: both provider libraries already extracted there, or
#   - $ORT_CUDA_NUPKG: that .nupkg (a zip) already on disk, for machines without network, or
#   - api.nuget.org otherwise.
# The provider needs CUDA 12 (cudart, cuBLAS, cuFFT, cuRAND) and cuDNN 9 from NVIDIA's Debian
# repository (deploy/Dockerfile's cuda target installs them); this script checks and says which
# are missing. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=${MODELS_DIR:-$here/data}/lib
mirror=${MODELS_MIRROR:-$here/../../shared/models}
version=1.24.3 # the npm onnxruntime-node version models/fetch.sh takes the core from
pkg=microsoft.ml.onnxruntime.gpu.linux
url="https://api.nuget.org/v3-flatcontainer/$pkg/$version/$pkg.$version.nupkg"
libs=(libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so)

if [ ! -s "$dest/libonnxruntime.so" ]; then
  echo "models: $dest/libonnxruntime.so is missing: run make deps first" >&2
  exit 1
fi
have=1
for l in "${libs[@]}"; do [ -s "$dest/$l" ] || have=0; done
if [ "$have" = 0 ] && [ -s "$mirror/lib/${libs[0]}" ] && [ -s "$mirror/lib/${libs[1]}" ]; then
  for l in "${libs[@]}"; do install -m 0755 "$mirror/lib/$l" "$dest/$l"; done
  echo "models: CUDA provider copied from $mirror/lib"
  have=1
fi
if [ "$have" = 0 ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  nupkg=${ORT_CUDA_NUPKG:-}
  if [ -z "$nupkg" ]; then
    echo "models: fetching onnxruntime's CUDA provider from $url"
    nupkg=$tmp/ort-gpu.nupkg
    curl -fsSL --retry 3 -o "$nupkg" "$url" || {
      echo "models: could not download $url; on a machine without network, fetch it elsewhere and set ORT_CUDA_NUPKG to the file" >&2
      exit 1
    }
  fi
  for l in "${libs[@]}"; do
    unzip -o -q -j "$nupkg" "runtimes/linux-x64/native/$l" -d "$tmp" || {
      echo "models: $nupkg has no runtimes/linux-x64/native/$l (want $pkg $version)" >&2
      exit 1
    }
    install -m 0755 "$tmp/$l" "$dest/$l"
  done
  echo "models: CUDA provider in $dest"
fi

# What the provider loads at run time: report what the dynamic loader cannot find.
missing=$(ldd "$dest/libonnxruntime_providers_cuda.so" 2>/dev/null | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
if [ -n "$missing" ]; then
  echo "models: the CUDA provider cannot load yet; missing: $missing" >&2
  echo "models: install CUDA 12 and cuDNN 9 from NVIDIA's Debian repository (see deploy/Dockerfile, target cuda)" >&2
  exit 1
fi
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "models: CUDA provider ready; no nvidia-smi here, so runs will fall back to the CPU" >&2
fi
