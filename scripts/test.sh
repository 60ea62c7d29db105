#!/usr/bin/env bash
# The whole test suite: fetch or generate what the tests need, then run every test.
#   - the SmolLM2 GGUF (candle backend),
#   - ONNX Runtime 1.31.1's shared library, the all-MiniLM-L6-v2 int8 ONNX model, and a tiny
#     generated ONNX decoder (ONNX Runtime backend).
# Everything is cached under .cache/ (or $CHARTER_CACHE), sha256-checked where fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
CHARTER_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh)
CHARTER_ORT_LIB=$(scripts/fetch-onnxruntime.sh)
CHARTER_MINILM_ONNX=$(scripts/fetch-minilm.sh)
CHARTER_ONNX_DECODER=$(scripts/make-onnx-decoder.py)
export CHARTER_SMOLLM2_GGUF CHARTER_ORT_LIB CHARTER_MINILM_ONNX CHARTER_ONNX_DECODER
cargo test --workspace --all-targets "$@"
