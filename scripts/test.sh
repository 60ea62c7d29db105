#!/usr/bin/env bash
# The whole test suite: fetch what the tests need (the SmolLM2 GGUF), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
CHARTER_SMOLLM2_GGUF=$(scripts/fetch-smollm2.sh)
export CHARTER_SMOLLM2_GGUF
cargo test --workspace --all-targets "$@"
