#!/usr/bin/env bash
# Client capacity of the remote backend: `charter serve` with a zero-delay SIMULATED backend
# streams 256-token responses; `charter profile --backend openai` drives it at the given
# concurrencies. Prints streamed chunks per client CPU-second (the client's process CPU time in
# the measured window, from run.json), requests/s, and both processes' CPU use.
# Usage: scripts/bench-remote.sh [CONCURRENCY...]   (default: 64 256; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${CHARTER_BIN:-target/release/charter}
[ -x "$BIN" ] || cargo build --release -p charter
OUT=$(mktemp -d)
"$BIN" serve --backend simulated --sim-ttft 0ms --sim-itl 0ms --listen 127.0.0.1:0 2>"$OUT/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$OUT"' EXIT
for _ in $(seq 50); do grep -q listening "$OUT/serve.log" && break; sleep 0.1; done
BASE=$(grep -o 'http://[0-9.:]*' "$OUT/serve.log" | head -1)
server_cpu() { awk '{print ($14 + $15) / 100}' "/proc/$SERVER/stat"; }
for C in "${@:-64 256}"; do
  for c in $C; do
    s0=$(server_cpu)
    "$BIN" profile --backend openai --base-url "$BASE" --model simulated \
      --concurrency "$c" --requests $((c * 32)) --warmup "$c" --sample-interval 20ms --max-tokens 256 --ignore-eos \
      --prompts synthetic --prompt-tokens 16 --out "$OUT/c$c" --no-progress >/dev/null
    s1=$(server_cpu)
    python3 - "$OUT/c$c/run.json" "$c" "$s0" "$s1" <<'PY'
import json, sys
rec = json.load(open(sys.argv[1])); l = rec["levels"][0]; s = l["summary"]; r = l["resources"]
cpu = r["process_cpu_seconds"]; dur = s["duration_s"]; chunks = s["output_tokens"]
print(f"c={sys.argv[2]}: {s['requests_completed']} requests ({s['requests_failed']} failed), "
      f"{chunks} chunks in {dur:.2f} s: {s['request_throughput_per_s']:.1f} req/s, "
      f"{chunks/dur:,.0f} chunks/s; client CPU {cpu:.2f} s ({cpu/dur:.2f} cores) = "
      f"{chunks/cpu:,.0f} chunks per client CPU-second ({cpu/chunks*1e6:.2f} us/chunk); "
      f"server CPU over the whole level incl. warm-up {float(sys.argv[4])-float(sys.argv[3]):.2f} s; "
      f"sources {s['token_count_sources']}")
PY
  done
done
