#!/usr/bin/env python3
"""Charter's per-request numbers beside llama.cpp's own per-request timings.

Usage: scripts/compare-llamacpp-log.py SERVER_LOG RUN_DIR [RUN_DIR...]

SERVER_LOG is the stderr of `python -m llama_cpp.server ... --verbose True`, which prints
`llama_perf_context_print` lines (prompt eval, eval, total) once per request. llama-cpp-python
serves one request at a time (a lock), so its log entries are in completion order: the run
directories' requests (warm-up included), sorted by end time and taken in the order the runs
were made, are matched to the log's last entries one for one.

Prints, per request: charter's TTFT, ITL (decode time / (tokens - 1)) and E2E, beside the
server's prompt eval time, eval time per run and total time, then the medians.
"""
import csv
import re
import statistics
import sys
from pathlib import Path

PROMPT = re.compile(r"prompt eval time =\s+([\d.]+) ms /\s+(\d+) tokens")
EVAL = re.compile(r"\beval time =\s+([\d.]+) ms /\s+(\d+) runs")
TOTAL = re.compile(r"total time =\s+([\d.]+) ms")


def server_entries(log):
    entries, cur = [], {}
    for line in Path(log).read_text(errors="replace").splitlines():
        if m := PROMPT.search(line):
            cur = {"prompt_ms": float(m[1]), "prompt_tokens": int(m[2])}
        elif (m := EVAL.search(line)) and "prompt" not in line:
            cur["eval_ms"], cur["runs"] = float(m[1]), int(m[2])
        elif (m := TOTAL.search(line)) and cur:
            cur["total_ms"] = float(m[1])
            entries.append(cur)
            cur = {}
    return entries


def ms(v):
    return f"{1e3 * float(v):8.1f}" if v not in ("", None) else "     n/a"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    log, runs = sys.argv[1], sys.argv[2:]
    rows = []
    for run in runs:
        with open(Path(run) / "requests.csv", newline="") as f:
            rs = sorted(csv.DictReader(f), key=lambda r: float(r["end_s"]))
        rows += [(run, r) for r in rs]
    entries = server_entries(log)
    if len(entries) < len(rows):
        sys.exit(f"{log}: {len(entries)} server entries for {len(rows)} requests")
    entries = entries[-len(rows):]
    print(
        "run            warm  out | charter TTFT   ITL    E2E (ms) | server prompt  per-run  total (ms)"
    )
    per_run = {}
    for (run, r), e in zip(rows, entries):
        print(
            f"{Path(run).name:<14} {r['warmup']:<5} {r['output_tokens']:>3} |"
            f" {ms(r['ttft_s'])} {ms(r['itl_s'])} {ms(r['e2e_s'])} |"
            f" {e['prompt_ms']:8.1f} {e['eval_ms'] / max(e['runs'], 1):8.1f} {e['total_ms']:8.1f}"
        )
        if r["warmup"] == "false" and r["itl_s"]:
            d = per_run.setdefault(run, {"itl": [], "per_run": [], "e2e": [], "total": []})
            d["itl"].append(1e3 * float(r["itl_s"]))
            d["per_run"].append(e["eval_ms"] / max(e["runs"], 1))
            d["e2e"].append(1e3 * float(r["e2e_s"]))
            d["total"].append(e["total_ms"])
    for run, d in per_run.items():
        med = {k: statistics.median(v) for k, v in d.items()}
        print(
            f"{Path(run).name}: median ITL charter {med['itl']:.1f} ms vs server eval {med['per_run']:.1f} ms/run;"
            f" median E2E charter {med['e2e']:.0f} ms vs server total {med['total']:.0f} ms"
        )


if __name__ == "__main__":
    main()
