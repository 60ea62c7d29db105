#!/usr/bin/env bash
# Coverage-guided fuzzing with libFuzzer (cargo-fuzz on the nightly toolchain), by hand: not in
# .ci/run, whose stable build runs the same entry points over the committed corpus and seeded
# mutations of it (harness/tests/fuzz.rs). Each target runs for SECONDS, starting from its
# committed corpus (fuzz/corpus/TARGET, read only: what libFuzzer adds goes to a temporary
# directory). Prints each target's runs and coverage; a crash stops the script with exit 1 and
# the input under fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [SECONDS=60] [TARGET...]     (targets: cargo +nightly fuzz list, in fuzz/)
#
# Built without a sanitizer (charter and its parsers are safe Rust; a panic, an overflow
# caught by debug assertions, a stack overflow or an allocation over -rss_limit_mb is what is
# looked for) and with debug assertions. Installs cargo-fuzz on first use.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
if ! command -v cargo-fuzz >/dev/null; then
    cargo install --locked cargo-fuzz
fi
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    if ! cargo +nightly fuzz run "${flags[@]}" "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$work/$t.log" 2>&1; then
        tail -n 30 "$work/$t.log" >&2
        echo "fuzz: $t crashed; the input is under fuzz/artifacts/$t/" >&2
        exit 1
    fi
    done_line=$(grep -oP '^Done \K\d+ runs in \d+ second\(s\)' "$work/$t.log")
    cov=$(grep -oP '#\d+\s+DONE\s+cov: \K\d+' "$work/$t.log" || echo "?")
    echo "fuzz: $t: $done_line, cov $cov, 0 crashes, $(ls "$work/$t" | wc -l) new corpus inputs"
done
