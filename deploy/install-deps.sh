#!/usr/bin/env bash
# Installs the Debian packages personcluster builds and runs with. Quick when already installed.
set -euo pipefail
pkgs=(libopencv-dev libdlib-dev libdlib-data libblas-dev liblapack-dev libatlas-base-dev libopenblas-dev libjpeg-dev libpng-dev
  pkg-config python3-scipy python3-fastcluster python3-numpy
  docker-compose # validates docker-compose.yml in the tests (no Docker engine needed)
  chromium # the browser tests of the result page and the live UI (headless)
  curl unzip) # models/fetch-cuda.sh: onnxruntime's CUDA provider from its NuGet package
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: Debian packages already installed"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
