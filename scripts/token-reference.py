#!/usr/bin/env python3
"""Reference token counts for `charter tokens`, from each tokenizer kind's own implementation.

Prints JSON: a fixed list of strings (Latin, Cyrillic, CJK, Arabic, Devanagari, emoji, code,
whitespace, special-token text) plus every document of the built-in multilingual corpus, and for
each local tokenizer kind charter supports, the token count of every string (no special tokens
added) and whether decode(encode(text)) == text:

  hf        .cache/models/tiny-decoder/tokenizer.json   Hugging Face `tokenizers`
  gguf      SmolLM2-135M-Instruct.Q4_1.gguf             llama.cpp (`llama-cpp-python`, vocab only)
  cl100k    cl100k_base                                 `tiktoken`
  o200k     o200k_base                                  `tiktoken`
  tiktoken-file  the first 2,000 ranks of cl100k_base, written to
                 backends/tests/fixtures/tokens/cl100k-2000/cl100k_base.tiktoken

tiktoken fetches its ranks files from the network; here it reads the copies that ship inside
the `tiktoken-rs` crate (charter's own source of them), after checking them against the
sha256 tiktoken itself expects. The GGUF reference needs `llama_cpp` importable (it is skipped,
and the fixture keeps no GGUF entry, otherwise).

Committed output: backends/tests/fixtures/tokens/reference.json, regenerated with

  python3 -m venv .cache/python/tokens-ref
  .cache/python/tokens-ref/bin/pip install tokenizers==0.23.3 tiktoken==0.14.0
  .cache/python/tokens-ref/bin/python scripts/token-reference.py \
      [--llama-cpp-site PATH/TO/site-packages] > backends/tests/fixtures/tokens/reference.json
"""

import argparse
import base64
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

STRINGS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnew\n\nlines\r\n",
    "Numbers: 3.14159, 1,000,000 and 2026-11-29.",
    "Größere Straßen führen über Brücken.",
    "L'été dernier, nous sommes allés à Québec.",
    "Съешь же ещё этих мягких французских булок.",
    "我们团队每周二开会，回顾一周的结果。",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 문장도 토큰으로 나뉩니다.",
    "مرحبا بالعالم، هذه جملة عربية.",
    "नमस्ते दुनिया, यह एक हिंदी वाक्य है।",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇩🇪 ❤️",
    "def f(x):\n    return {\"a\": [x, x ** 2]}  # comment\n",
    "fn main() { println!(\"{}\", 1 << 20); }",
    "<|endoftext|> is text here",
    "a",
    " ",
    "mixed Latin и кириллица 和汉字 123",
]

ASSETS = {
    # name -> (file in tiktoken-rs's assets/, sha256 tiktoken_ext.openai_public expects)
    "cl100k_base": ("cl100k_base.tiktoken", "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
    "o200k_base": ("o200k_base.tiktoken", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
}


def corpus_docs():
    with open(os.path.join(ROOT, "workloads/corpus/multilingual.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def tiktoken_asset(name):
    pattern = os.path.expanduser("~/.cargo/registry/src/*/tiktoken-rs-0.12.1/assets/" + ASSETS[name][0])
    found = sorted(glob.glob(pattern))
    if not found:
        sys.exit(f"token-reference: {pattern} not found: run `cargo fetch` first")
    return found[0]


def tiktoken_encodings():
    import tiktoken
    import tiktoken.load as load

    def read_file_cached(blobpath, expected_hash=None):
        name = os.path.basename(blobpath).removesuffix(".tiktoken")
        with open(tiktoken_asset(name), "rb") as f:
            data = f.read()
        if expected_hash and not load.check_hash(data, expected_hash):
            sys.exit(f"token-reference: {name} does not have the sha256 tiktoken expects")
        return data

    load.read_file_cached = read_file_cached
    return {n: tiktoken.get_encoding(n) for n in ("cl100k_base", "o200k_base")}


def write_truncated_ranks(enc_name, n, path):
    """The first n ranks of an encoding, as a .tiktoken file (a valid, smaller BPE)."""
    with open(tiktoken_asset(enc_name), "rb") as f:
        lines = [l for l in f.read().splitlines() if l.strip()][:n]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    ranks = {}
    for l in lines:
        tok, rank = l.split()
        ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp-site", help="site-packages holding llama_cpp, for the GGUF reference")
    args = ap.parse_args()
    texts = STRINGS + corpus_docs()
    out = {"strings": texts, "tokenizers": {}}

    import tokenizers
    hf = tokenizers.Tokenizer.from_file(os.path.join(ROOT, ".cache/models/tiny-decoder/tokenizer.json"))
    rows = []
    for t in texts:
        ids = hf.encode(t, add_special_tokens=False).ids
        rows.append({"tokens": len(ids), "round_trip": hf.decode(ids, skip_special_tokens=False) == t})
    out["tokenizers"]["hf"] = {
        "spec": ".cache/models/tiny-decoder/tokenizer.json",
        "reference": f"tokenizers {tokenizers.__version__}",
        "vocab_size": hf.get_vocab_size(with_added_tokens=True),
        "counts": rows,
    }

    import tiktoken
    encs = tiktoken_encodings()
    for short, name in (("cl100k", "cl100k_base"), ("o200k", "o200k_base")):
        enc = encs[name]
        rows = []
        for t in texts:
            ids = enc.encode_ordinary(t)
            rows.append({"tokens": len(ids), "round_trip": enc.decode_bytes(ids) == t.encode("utf-8")})
        out["tokenizers"][short] = {
            "spec": name,
            "reference": f"tiktoken {tiktoken.__version__}",
            "vocab_size": enc.n_vocab,
            "counts": rows,
        }

    rel = "backends/tests/fixtures/tokens/cl100k-2000/cl100k_base.tiktoken"
    ranks = write_truncated_ranks("cl100k_base", 2000, os.path.join(ROOT, rel))
    small = tiktoken.Encoding(
        name="cl100k-2000",
        pat_str=encs["cl100k_base"]._pat_str,
        mergeable_ranks=ranks,
        special_tokens={},
    )
    rows = []
    for t in texts:
        ids = small.encode_ordinary(t)
        rows.append({"tokens": len(ids), "round_trip": small.decode_bytes(ids) == t.encode("utf-8")})
    out["tokenizers"]["tiktoken-file"] = {
        "spec": rel,
        "reference": f"tiktoken {tiktoken.__version__} (cl100k_base pattern, first 2,000 ranks)",
        "vocab_size": len(ranks),
        "counts": rows,
    }

    if args.llama_cpp_site:
        sys.path.insert(0, args.llama_cpp_site)
    try:
        import llama_cpp
    except ImportError:
        print("token-reference: llama_cpp not importable: no GGUF reference", file=sys.stderr)
    else:
        gguf = os.path.join(ROOT, ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        llm = llama_cpp.Llama(model_path=gguf, vocab_only=True, verbose=False)
        rows = []
        for t in texts:
            ids = llm.tokenize(t.encode("utf-8"), add_bos=False, special=True)
            back = llm.detokenize(ids, special=True).decode("utf-8", errors="replace")
            rows.append({"tokens": len(ids), "round_trip": back == t})
        out["tokenizers"]["gguf"] = {
            "spec": ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf",
            "reference": f"llama-cpp-python {llama_cpp.__version__} (llama.cpp tokenizer, special tokens parsed)",
            "vocab_size": llm.n_vocab(),
            "counts": rows,
        }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
