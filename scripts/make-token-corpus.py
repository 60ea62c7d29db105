#!/usr/bin/env python3
"""A large JSONL corpus for benchmarking `charter tokens` (not committed: generate it).

Documents are built from the sentences of the built-in multilingual corpus
(workloads/corpus/multilingual.jsonl): each keeps one language (or code) and strings 3 to 12 of
its sentences (lines, for code) together in a seeded random order, so the corpus has the built-in
corpus' mix of scripts. Its vocabulary is small, so tokenizers with a word cache (Hugging Face
`tokenizers`) run faster on it than on real text of the same size.

  scripts/make-token-corpus.py OUT.jsonl [MEGABYTES=50] [SEED=1]
"""

import json
import os
import random
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    out = sys.argv[1]
    megabytes = float(sys.argv[2]) if len(sys.argv) > 2 else 50.0
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    pools = {}
    with open(os.path.join(ROOT, "workloads/corpus/multilingual.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d["lang"] == "code":
                parts = [l for l in d["text"].splitlines() if l.strip()]
            else:
                parts = [p for p in re.split(r"(?<=[.!?。！？।])\s*", d["text"]) if p.strip()]
            pools.setdefault(d["lang"], []).extend(parts)
    langs = sorted(pools)
    target = int(megabytes * 1e6)
    written = 0
    with open(out, "w", encoding="utf-8") as f:
        n = 0
        while written < target:
            lang = rng.choice(langs)
            parts = [rng.choice(pools[lang]) for _ in range(rng.randint(3, 12))]
            sep = "\n" if lang == "code" else ("" if lang in ("zh", "ja") else " ")
            line = json.dumps({"id": f"gen-{n}", "lang": lang, "text": sep.join(parts)}, ensure_ascii=False) + "\n"
            f.write(line)
            written += len(line.encode("utf-8"))
            n += 1
    print(f"{out}: {n} documents, {written / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
