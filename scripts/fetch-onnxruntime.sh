#!/usr/bin/env bash
# Fetch ONNX Runtime 1.31.1's shared library (CPU build, MIT) from the PyPI wheel
# onnxruntime==1.31.1 (manylinux_2_28 x86_64, CPython 3.11 — the library inside does not depend on
# Python), verify the wheel's and the library's sha256, and cache it outside git. Prints the path.
#
#   scripts/fetch-onnxruntime.sh        # -> .cache/onnxruntime/libonnxruntime.so.1.31.1
#   CHARTER_CACHE=/somewhere scripts/fetch-onnxruntime.sh
#
# charter finds the library there by itself (or pass --ort-lib PATH / set ORT_DYLIB_PATH).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="${CHARTER_CACHE:-$root/.cache}/onnxruntime"
name=libonnxruntime.so.1.31.1
out="$cache/$name"
wheel=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
wheel_sha=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
lib_sha=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "fetch-onnxruntime: only Linux x86_64 is scripted; pass --ort-lib PATH to an ONNX Runtime 1.31.x library" >&2
  exit 1
fi

if [ -f "$out" ] && echo "$lib_sha  $out" | sha256sum -c --quiet --status; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The platform and ABI are pinned (not this machine's Python) so the same wheel, and therefore
# the same sha256, is fetched everywhere.
python3 -m pip download --no-deps --quiet --disable-pip-version-check --only-binary=:all: \
  --implementation cp --python-version 3.11 --abi cp311 --platform manylinux_2_28_x86_64 \
  onnxruntime==1.31.1 -d "$tmp" >&2
whl="$tmp/$wheel"
[ -f "$whl" ] || { echo "fetch-onnxruntime: pip did not download $wheel" >&2; exit 1; }
echo "$wheel_sha  $whl" | sha256sum -c --quiet || { echo "fetch-onnxruntime: wheel sha256 mismatch" >&2; exit 1; }
python3 - "$whl" "$tmp" "onnxruntime/capi/$name" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract(sys.argv[3], sys.argv[2])
PY
echo "$lib_sha  $tmp/onnxruntime/capi/$name" | sha256sum -c --quiet || { echo "fetch-onnxruntime: library sha256 mismatch" >&2; exit 1; }
mv "$tmp/onnxruntime/capi/$name" "$out"
echo "$out"
