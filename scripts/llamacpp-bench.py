#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) on a GGUF, the reference for `charter bench-engine`.

Usage: llamacpp-bench.py MODEL.gguf [THREADS]  (needs `pip install llama-cpp-python`)

Prompt: 128 token ids drawn from the vocabulary (fixed seed), then 64 greedy tokens.
prefill = 128 / time of eval(prompt); decode = 63 / time from the 1st to the 64th single-token eval.
Median of 3 reps after one warm-up.
"""
import random, statistics, sys, time
from llama_cpp import Llama

path = sys.argv[1]
n_threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
llm = Llama(model_path=path, n_ctx=1024, n_threads=n_threads, n_threads_batch=n_threads,
            n_batch=512, verbose=False, seed=0)
rng = random.Random(0)
vocab = llm.n_vocab()
prompt = [rng.randrange(100, vocab) for _ in range(128)]

def once():
    llm.reset()
    t0 = time.perf_counter(); llm.eval(prompt); t1 = time.perf_counter()
    times = []
    for _ in range(64):
        logits = llm.scores[llm.n_tokens - 1]
        tok = int(logits.argmax())
        llm.eval([tok]); times.append(time.perf_counter())
    return 128 / (t1 - t0), 63 / (times[-1] - times[0])

once()
pp, tg = zip(*[once() for _ in range(3)])
print(f"llama.cpp n_threads={n_threads}: prefill pp128 {statistics.median(pp):.1f} tok/s {['%.1f'%x for x in pp]}, decode tg64 {statistics.median(tg):.1f} tok/s {['%.1f'%x for x in tg]}")
