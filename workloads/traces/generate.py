#!/usr/bin/env python3
"""Writes charter's sample traces (synthetic, deterministic: a fixed seed per file).

    workloads/traces/generate.py                 # rewrite the four committed samples here
    workloads/traces/generate.py --mooncake-rows 100000 --rate 10 --out /tmp/trace-100k.jsonl

The samples follow the published column names and units of each format (Mooncake JSONL,
Alibaba Bailian JSONL, Azure LLM inference CSV, BurstGPT CSV); their values are made up here,
not taken from any published trace.
"""

import argparse
import datetime
import json
import os
import random


def mooncake_rows(n, rate, seed):
    """Rows of `n` requests at about `rate` per second (Poisson), 512-token blocks: a few shared
    system prompts (2 to 4 blocks each), some requests extending an earlier one's blocks, the
    rest fresh."""
    rng = random.Random(seed)
    next_id = 0

    def fresh(k):
        nonlocal next_id
        ids = list(range(next_id, next_id + k))
        next_id += k
        return ids

    systems = [fresh(rng.randint(2, 4)) for _ in range(4)]
    t = 0.0
    recent = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.5:
            base = list(rng.choice(systems))
        elif kind < 0.7 and recent:
            base = list(rng.choice(recent))
        else:
            base = []
        ids = base + fresh(rng.randint(1, 3))
        input_length = (len(ids) - 1) * 512 + rng.randint(1, 512)
        recent = (recent + [ids])[-32:]
        yield {
            "timestamp": int(t),
            "input_length": input_length,
            "output_length": rng.randint(1, 24),
            "hash_ids": ids,
        }
        t += rng.expovariate(rate) * 1000.0


def bailian_rows(seed):
    """Chats of 1 to 4 turns; a later turn's hash ids extend its parent's (16-token blocks)."""
    rng = random.Random(seed)
    next_block = 0
    rows = []
    chat_id = 0
    for c in range(8):
        start = c * 0.25 + rng.random() * 0.1
        parent = -1
        blocks = []
        t = start
        for turn in range(1, rng.randint(1, 4) + 1):
            new = rng.randint(1, 6)
            blocks = blocks + list(range(next_block, next_block + new))
            next_block += new
            rows.append({
                "chat_id": chat_id,
                "parent_chat_id": parent,
                "timestamp": round(t, 3),
                "input_length": (len(blocks) - 1) * 16 + rng.randint(1, 16),
                "output_length": rng.randint(1, 20),
                "type": "text",
                "turn": turn,
                "hash_ids": blocks,
            })
            parent = chat_id
            chat_id += 1
            t += 0.3 + rng.random() * 0.4
    rows.sort(key=lambda r: r["timestamp"])
    return rows


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mooncake-rows", type=int, help="write only a Mooncake trace of this many rows")
    p.add_argument("--rate", type=float, default=10.0, help="its mean arrival rate, requests/s")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--out", help="where (with --mooncake-rows)")
    a = p.parse_args()
    if a.mooncake_rows:
        write_jsonl(a.out, mooncake_rows(a.mooncake_rows, a.rate, a.seed))
        return
    here = os.path.dirname(os.path.abspath(__file__))
    write_jsonl(os.path.join(here, "mooncake-sample.jsonl"), mooncake_rows(40, 20.0, 15))
    write_jsonl(os.path.join(here, "bailian-sample.jsonl"), bailian_rows(16))
    rng = random.Random(17)
    t = datetime.datetime(2023, 11, 16, 18, 15, 46, 680590)
    with open(os.path.join(here, "azure-sample.csv"), "w") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for _ in range(30):
            # Seven fractional digits, as the published file has.
            f.write(f"{t.strftime('%Y-%m-%d %H:%M:%S.%f')}0,{rng.randint(20, 4000)},{rng.randint(1, 20)}\n")
            t += datetime.timedelta(microseconds=int(rng.expovariate(15.0) * 1e6))
    rng = random.Random(18)
    t = 0.0
    with open(os.path.join(here, "burstgpt-sample.csv"), "w") as f:
        f.write("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n")
        for _ in range(30):
            req, resp = rng.randint(10, 2000), rng.randint(1, 20)
            model = rng.choice(["ChatGPT", "GPT-4"])
            log = rng.choice(["Conversation log", "API log"])
            f.write(f"{t:g},{model},{req},{resp},{req + resp},{log}\n")
            t = round(t + rng.expovariate(15.0), 3)


if __name__ == "__main__":
    main()
