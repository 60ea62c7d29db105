#!/usr/bin/env bash
# Trace-replay benchmark (not a test): a ROWS-request Mooncake-format trace (generated,
# workloads/traces/generate.py, ~10 req/s) replayed at --trace-speed SPEED against the
# SIMULATED backend (1 ms TTFT, 1 ms per token). Prints the intended and achieved arrival
# rates, the schedule lag p99 and charter's RSS and heap in use at the first and the last sample.
#
#   scripts/bench-trace-replay.sh [ROWS=100000] [SPEED=100] [CHARTER=target/release/charter]
set -euo pipefail
rows=${1:-100000}
speed=${2:-100}
charter=${3:-target/release/charter}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 "$(dirname "$0")/../workloads/traces/generate.py" --mooncake-rows "$rows" --rate 10 --out "$work/trace.jsonl"
"$charter" profile --backend simulated --sim-ttft 1ms --sim-itl 1ms \
    --trace "$work/trace.jsonl" --trace-speed "$speed" --out "$work/run" --no-progress --json >/dev/null
python3 - "$work/run" <<'PY'
import csv, json, sys
run = sys.argv[1]
r = json.load(open(f"{run}/run.json"))
t, l = r["workload"]["trace"], r["levels"][0]
rows = list(csv.DictReader(open(f"{run}/requests.csv")))
intended = sorted(float(x["intended_start_s"]) for x in rows)
started = sorted(float(x["start_s"]) for x in rows)
rate = lambda ts: (len(ts) - 1) / (ts[-1] - ts[0])
samples = list(csv.DictReader(open(f"{run}/samples.csv")))
rss = [int(s["rss_bytes"]) for s in samples if s["rss_bytes"]]
heap = [int(s["heap_bytes"]) for s in samples if s["heap_bytes"]]
lag = l["summary"]["schedule_lag"]
print(f"rows {t['rows']}, speed x{t['speed']}, replay span {t['replay_span_s']:.1f} s, requests {len(rows)}")
print(f"arrival rate: intended {rate(intended):.1f} req/s, achieved {rate(started):.1f} req/s")
print(f"schedule lag: p50 {lag['p50_s']*1e3:.2f} ms, p99 {lag['p99_s']*1e3:.2f} ms, max {lag['max_s']*1e3:.2f} ms")
print(f"RSS: first sample {rss[0]/2**20:.1f} MiB, last {rss[-1]/2**20:.1f} MiB, max {max(rss)/2**20:.1f} MiB ({len(rss)} samples)")
if heap:
    print(f"heap in use: first sample {heap[0]/2**20:.1f} MiB, last {heap[-1]/2**20:.1f} MiB, max {max(heap)/2**20:.1f} MiB")
PY
