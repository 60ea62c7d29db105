#!/usr/bin/env bash
# Client CPU per streamed chunk of a hybrid run (two tiers, both over HTTP) against a single-tier
# run of the same load: two `charter serve --backend simulated` servers with zero delays stream
# 256-token responses; pairs of runs (single tier, then hybrid with in-flight K = c/2, so about
# half the requests spill) alternate so that both see the same machine. Prints chunks per client
# CPU-second of each run and the hybrid ÷ single ratio of CPU per chunk.
# Usage: scripts/bench-hybrid.sh [CONCURRENCY] [PAIRS]   (default: 32 3; release build, or CHARTER_BIN)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CHARTER_BIN:-target/release/charter}
[ -x "$BIN" ] || cargo build --release -p charter
C=${1:-32}
PAIRS=${2:-3}
OUT=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$OUT"' EXIT
for tier in onprem cloud; do
  "$BIN" serve --backend simulated --sim-ttft 0ms --sim-itl 0ms --listen 127.0.0.1:0 2>"$OUT/$tier.log" &
  PIDS+=($!)
done
for tier in onprem cloud; do
  for _ in $(seq 50); do grep -q listening "$OUT/$tier.log" && break; sleep 0.1; done
done
ONPREM=$(grep -o 'http://[0-9.:]*' "$OUT/onprem.log" | head -1)
CLOUD=$(grep -o 'http://[0-9.:]*' "$OUT/cloud.log" | head -1)
COMMON=(--concurrency "$C" --requests $((C * 32)) --warmup "$C" --sample-interval 20ms --max-tokens 256
  --ignore-eos --prompts synthetic --prompt-tokens 16 --no-progress)
for i in $(seq "$PAIRS"); do
  "$BIN" profile --backend openai --base-url "$ONPREM" --model simulated "${COMMON[@]}" \
    --out "$OUT/single$i" >/dev/null
  "$BIN" profile --backend hybrid \
    --tier "{kind = \"openai\", base_url = \"$ONPREM\", model = \"simulated\", name = \"onprem\", max_in_flight = $((C / 2))}" \
    --tier "{kind = \"openai\", base_url = \"$CLOUD\", model = \"simulated\", name = \"cloud\"}" \
    "${COMMON[@]}" --out "$OUT/hybrid$i" >/dev/null
done
python3 - "$OUT" "$PAIRS" <<'PY'
import json, sys, statistics
out, pairs = sys.argv[1], int(sys.argv[2])
def per_chunk(run):
    l = json.load(open(f"{out}/{run}/run.json"))["levels"][0]
    s, cpu = l["summary"], l["resources"]["process_cpu_seconds"]
    spill = (s.get("routing") or {}).get("spill_fraction")
    return cpu / s["output_tokens"], s["request_throughput_per_s"], spill
ratios = []
for i in range(1, pairs + 1):
    (a, ra, _), (b, rb, spill) = per_chunk(f"single{i}"), per_chunk(f"hybrid{i}")
    ratios.append(b / a)
    print(f"pair {i}: single {1/a:,.0f} chunks per client CPU-second ({ra:.0f} req/s); "
          f"hybrid {1/b:,.0f} ({rb:.0f} req/s, {spill*100:.0f} % spilled); CPU per chunk hybrid/single {b/a:.3f}")
print(f"median CPU per chunk hybrid/single over {pairs} pairs: {statistics.median(ratios):.3f}")
PY
