#!/usr/bin/env bash
# Two shards vs one process, simulated backend, open loop at a rate that saturates one client.
set -euo pipefail
C=${C:-target/release/charter}
RATE=${RATE:-4000}
D=${D:-/tmp/shards-bench}
rm -rf "$D"; mkdir -p "$D"
A="profile --backend simulated --sim-ttft 1ms --sim-itl 1ms --max-tokens 16 --ignore-eos --prompts synthetic --prompt-tokens 8 --rate $RATE --arrivals poisson --max-in-flight 512 --duration 5s --warmup 0 --no-progress --json"
$C $A --out "$D/single" > /dev/null
AT=$(date -u -d '+3 sec' +%Y-%m-%dT%H:%M:%SZ)
for k in 0 1; do $C $A --shard $k/2 --start-at "$AT" --out "$D/shard-$k" > /dev/null 2>&1 & done; wait
$C merge "$D/shard-0" "$D/shard-1" --out "$D/merged" > /dev/null 2>&1
python3 - "$D" <<'PY'
import json, sys
d = sys.argv[1]
for name in ["single", "shard-0", "shard-1", "merged"]:
    l = json.load(open(f"{d}/{name}/run.json"))["levels"][0]
    s, r = l["summary"], l["resources"]
    chunks = s["chunk_gaps"]["count"] + s["requests_completed"]
    cpu = r.get("process_cpu_seconds")
    print(f"{name:8} offered {l['load']['rate_per_s']:.0f}/s achieved {s['request_throughput_per_s']:.0f} req/s "
          f"({s['requests_completed']} req, {chunks} chunks) lag p99 {s['schedule_lag']['p99_s']*1e3:.2f} ms "
          f"cpu {cpu:.2f} s = {cpu/chunks*1e6:.2f} us/chunk, cores mean {r['process_cpu_cores']['mean']:.2f} "
          f"client_bound {l['client_bound']['flagged']}")
PY
