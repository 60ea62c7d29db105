#!/usr/bin/env python3
"""Generate a tiny Llama-like causal decoder as ONNX, in the layout Hugging Face Optimum exports.

The model is a test fixture for charter's ONNX Runtime backend (decoder mode): 2 layers, hidden
size 64, 4 attention heads over 2 key/value heads (grouped-query attention), head size 16,
SwiGLU MLP of 128, RMSNorm, rotary position embeddings, vocabulary 512, context 256. Weights are
random but deterministic (numpy PCG64 from --seed), so the same seed writes the same bytes.

Inputs and outputs follow Optimum's decoder-with-past layout:

    input_ids                  int64 [batch_size, sequence_length]
    attention_mask             int64 [batch_size, total_sequence_length]
    position_ids               int64 [batch_size, sequence_length]
    past_key_values.{i}.key    f32   [batch_size, 2, past_sequence_length, 16]   (and .value)
    -> logits                  f32   [batch_size, sequence_length, 512]
    -> present.{i}.key         f32   [batch_size, 2, total_sequence_length, 16]  (and .value)

Next to model.onnx it writes config.json (vocab size, context, eos_token_id, as Optimum exports
carry) and tokenizer.json: a byte-level BPE whose 253 merges are learned from a built-in
paragraph, so text prompts work and every string round-trips. odd-inputs/ holds two tiny graphs
for input-synthesis tests (a string input; an image input with named dynamic height/width).

The graph is checked with onnx.checker (full check, with shape inference). onnx and numpy come
from PyPI at pinned versions, installed once into .cache/python/ (nothing is installed into the
system Python).

    scripts/make-onnx-decoder.py                 # -> .cache/models/tiny-decoder/model.onnx
    scripts/make-onnx-decoder.py --out DIR --seed 7
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

PINS = [
    "onnx==1.20.1",
    "numpy==2.3.5",
    "protobuf==7.36.2",
    "ml_dtypes==0.6.0",
    "typing_extensions==4.16.0",
]

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CHARTER_CACHE", ROOT / ".cache"))

VOCAB = 512
HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
INTERMEDIATE = 128
CONTEXT = 256
ROPE_THETA = 10000.0
RMS_EPS = 1e-5
OPSET = 17
IR_VERSION = 8
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EOS_ID = 0

TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. A benchmark measures what a system does under load:
how long the first token takes, how steady the tokens come after it, and how many requests finish
every second. The harness starts each request, waits for every token, and writes down the time it
arrived. Then it counts the cores the process used and the memory it held, and it keeps all of it
in one record so that two runs can be compared later. Numbers without their conditions mean little,
so the record also names the model, the threads, the machine and the load that was offered.
When the load grows, queues form, latency rises, and throughput stops growing; the point where that
happens is the capacity of the system. It is the number most people want, and the one most often
measured wrong, because the client itself can become the bottleneck. There are 24 hours in a day,
365 days in a year, and 1,000 requests in this test; 12.5% of them were slow, the rest were fast.
Models read text as tokens. Words that are common become single tokens, and rare words are split
into pieces, down to single bytes when nothing else fits: naive, cafe, resume, and so on.
"""


def ensure_dependencies():
    """Import onnx and numpy from a pinned, project-local install (created on first use)."""
    tag = hashlib.sha256(("\n".join(PINS) + sys.version).encode()).hexdigest()[:12]
    target = CACHE / "python" / f"onnx-gen-{tag}"
    marker = target / ".complete"
    if not marker.exists():
        target.mkdir(parents=True, exist_ok=True)
        print(f"make-onnx-decoder: installing {' '.join(PINS)} into {target}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--only-binary=:all:", "--upgrade", "--target", str(target), *PINS],
            check=True,
            stdout=sys.stderr,
        )
        marker.write_text("\n".join(PINS) + "\n")
    sys.path.insert(0, str(target))


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def train_tokenizer():
    """A byte-level BPE tokenizer with exactly VOCAB tokens: specials, 256 bytes, then merges."""
    b2u = bytes_to_unicode()
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    # Close to GPT-2's pre-tokenizer split (tokenizers' ByteLevel uses the same idea).
    pattern = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")
    words = {}
    for w in pattern.findall(TRAINING_TEXT):
        key = tuple(b2u[b] for b in w.encode("utf-8"))
        words[key] = words.get(key, 0) + 1
    merges = []
    while len(vocab) < VOCAB:
        pairs = {}
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + n
        if not pairs:
            sys.exit("make-onnx-decoder: the training text has too few pairs to fill the vocabulary")
        # Most frequent pair; ties broken by the pair itself so the result is deterministic.
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab[a + b] = len(vocab)
        merged = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i, t in enumerate(SPECIALS)
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab, "merges": merges,
        },
    }


def build_model(seed):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    counter = [0]

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(name, shape, std):
        return const(name, (rng.standard_normal(shape) * std).astype(np.float32))

    def node(op, inputs, outputs=None, **attrs):
        if outputs is None:
            counter[0] += 1
            outputs = [f"{op.lower()}_{counter[0]}"]
        nodes.append(helper.make_node(op, inputs, outputs, **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    i64 = lambda name, values: const(name, np.array(values, dtype=np.int64))
    f32 = lambda name, value: const(name, np.array(value, dtype=np.float32))

    # Shared constants.
    i64("axes_0", [0])
    i64("axes_1", [1])
    i64("axes_2", [2])
    i64("axes_12", [1, 2])
    i64("one_scalar", 1)
    i64("zero_scalar", 0)
    i64("half_start", [0])
    i64("half_mid", [HEAD_DIM // 2])
    i64("half_end", [HEAD_DIM])
    i64("axis_3", [3])
    i64("shape_q", [0, 0, HEADS, HEAD_DIM])
    i64("shape_kv", [0, 0, KV_HEADS, HEAD_DIM])
    i64("shape_rep", [1, 1, HEADS // KV_HEADS, 1, 1])
    i64("shape_heads", [0, HEADS, -1, HEAD_DIM])
    i64("shape_out", [0, 0, HEADS * HEAD_DIM])
    f32("eps", RMS_EPS)
    f32("two", 2.0)
    f32("scale", 1.0 / np.sqrt(HEAD_DIM))
    f32("zero_f", 0.0)
    f32("neg_big", -1e9)

    # Rotary tables, [CONTEXT, HEAD_DIM] (rotate-half layout, as in Llama).
    inv = 1.0 / (ROPE_THETA ** (np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM))
    ang = np.outer(np.arange(CONTEXT, dtype=np.float64), inv)
    ang = np.concatenate([ang, ang], axis=1)
    const("cos_table", np.cos(ang).astype(np.float32))
    const("sin_table", np.sin(ang).astype(np.float32))

    weight("embed_tokens", (VOCAB, HIDDEN), 1.0)
    x = node("Gather", ["embed_tokens", "input_ids"], axis=0)
    cos = node("Unsqueeze", [node("Gather", ["cos_table", "position_ids"], axis=0), "axes_1"])
    sin = node("Unsqueeze", [node("Gather", ["sin_table", "position_ids"], axis=0), "axes_1"])

    # Mask bias [b, 1, s, T]: key j is visible to query i when j <= past + i and the mask allows j.
    total = node("Squeeze", [node("Shape", ["attention_mask"], start=1, end=2), "axes_0"])
    seq = node("Squeeze", [node("Shape", ["input_ids"], start=1, end=2), "axes_0"])
    past = node("Sub", [total, seq])
    q_pos = node("Unsqueeze", [node("Range", [past, total, "one_scalar"]), "axes_1"])
    k_pos = node("Unsqueeze", [node("Range", ["zero_scalar", total, "one_scalar"]), "axes_0"])
    causal = node("LessOrEqual", [k_pos, q_pos])
    pad = node("Unsqueeze", [node("Cast", ["attention_mask"], to=TensorProto.BOOL), "axes_12"])
    bias = node("Where", [node("And", [causal, pad]), "zero_f", "neg_big"])

    def rms_norm(h, name):
        const(name, np.ones(HIDDEN, dtype=np.float32))
        ms = node("ReduceMean", [node("Pow", [h, "two"])], axes=[-1], keepdims=1)
        return node("Mul", [node("Div", [h, node("Sqrt", [node("Add", [ms, "eps"])])]), name])

    def rope(t):
        t1 = node("Slice", [t, "half_start", "half_mid", "axis_3"])
        t2 = node("Slice", [t, "half_mid", "half_end", "axis_3"])
        rot = node("Concat", [node("Neg", [t2]), t1], axis=3)
        return node("Add", [node("Mul", [t, cos]), node("Mul", [rot, sin])])

    def heads(h, w, shape):
        return node("Transpose", [node("Reshape", [node("MatMul", [h, w]), shape])], perm=[0, 2, 1, 3])

    def repeat_kv(t):
        expanded = node("Expand", [node("Unsqueeze", [t, "axes_2"]), "shape_rep"])
        return node("Reshape", [expanded, "shape_heads"])

    graph_inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total_sequence_length"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
    ]
    graph_outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "sequence_length", VOCAB]),
    ]
    for i in range(LAYERS):
        p = f"layers.{i}"
        std = 1.0 / np.sqrt(HIDDEN)
        h = rms_norm(x, f"{p}.input_layernorm")
        q = rope(heads(h, weight(f"{p}.q_proj", (HIDDEN, HEADS * HEAD_DIM), std), "shape_q"))
        k = rope(heads(h, weight(f"{p}.k_proj", (HIDDEN, KV_HEADS * HEAD_DIM), std), "shape_kv"))
        v = heads(h, weight(f"{p}.v_proj", (HIDDEN, KV_HEADS * HEAD_DIM), std), "shape_kv")
        for kind in ("key", "value"):
            graph_inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kind}", TensorProto.FLOAT,
                ["batch_size", KV_HEADS, "past_sequence_length", HEAD_DIM]))
            graph_outputs.append(helper.make_tensor_value_info(
                f"present.{i}.{kind}", TensorProto.FLOAT,
                ["batch_size", KV_HEADS, "total_sequence_length", HEAD_DIM]))
        k_all = node("Concat", [f"past_key_values.{i}.key", k], [f"present.{i}.key"], axis=2)
        v_all = node("Concat", [f"past_key_values.{i}.value", v], [f"present.{i}.value"], axis=2)
        k_t = node("Transpose", [repeat_kv(k_all)], perm=[0, 1, 3, 2])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k_t]), "scale"]), bias])
        attn = node("MatMul", [node("Softmax", [scores], axis=-1), repeat_kv(v_all)])
        attn = node("Reshape", [node("Transpose", [attn], perm=[0, 2, 1, 3]), "shape_out"])
        x = node("Add", [x, node("MatMul", [attn, weight(f"{p}.o_proj", (HEADS * HEAD_DIM, HIDDEN), std)])])
        h = rms_norm(x, f"{p}.post_attention_layernorm")
        gate = node("MatMul", [h, weight(f"{p}.gate_proj", (HIDDEN, INTERMEDIATE), std)])
        up = node("MatMul", [h, weight(f"{p}.up_proj", (HIDDEN, INTERMEDIATE), std)])
        act = node("Mul", [node("Mul", [gate, node("Sigmoid", [gate])]), up])
        down = weight(f"{p}.down_proj", (INTERMEDIATE, HIDDEN), 1.0 / np.sqrt(INTERMEDIATE))
        x = node("Add", [x, node("MatMul", [act, down])])
    h = rms_norm(x, "norm")
    # A wider lm_head than 1/sqrt(fan_in) gives peaked next-token distributions, so greedy
    # choices are far from ties and cache/no-cache comparisons are robust to rounding.
    node("MatMul", [h, weight("lm_head", (HIDDEN, VOCAB), 3.0 / np.sqrt(HIDDEN))], ["logits"])

    graph = helper.make_graph(nodes, "tiny_llama_decoder", graph_inputs, graph_outputs, inits)
    model = helper.make_model(
        graph,
        producer_name="charter scripts/make-onnx-decoder.py",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    model.doc_string = f"Tiny Llama-like decoder with random weights (seed {seed}); a charter test fixture."
    onnx.checker.check_model(model, full_check=True)
    return model


def build_odd_inputs():
    """Two tiny graphs for input-synthesis tests: a string input (cannot be synthesised) and an
    image input with named dynamic height/width (needs --onnx-dim height=N,width=N)."""
    import onnx
    from onnx import TensorProto, helper

    def identity(name, elem, dims):
        graph = helper.make_graph(
            [helper.make_node("Identity", [name], ["out"])],
            f"{name}_identity",
            [helper.make_tensor_value_info(name, elem, dims)],
            [helper.make_tensor_value_info("out", elem, dims)],
        )
        model = helper.make_model(
            graph,
            producer_name="charter scripts/make-onnx-decoder.py",
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
        )
        onnx.checker.check_model(model, full_check=True)
        return model

    return {
        "string-input.onnx": identity("text", TensorProto.STRING, ["batch_size"]),
        "image-input.onnx": identity("pixel_values", TensorProto.FLOAT, ["batch_size", 3, "height", "width"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=CACHE / "models" / "tiny-decoder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ensure_dependencies()
    import onnx

    model = build_model(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "model.onnx"
    onnx.save(model, str(path))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": CONTEXT,
        "rms_norm_eps": RMS_EPS,
        "rope_theta": ROPE_THETA,
        "bos_token_id": EOS_ID,
        "eos_token_id": EOS_ID,
        "torch_dtype": "float32",
        "charter_fixture_seed": args.seed,
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (args.out / "tokenizer.json").write_text(json.dumps(train_tokenizer(), ensure_ascii=False, indent=1) + "\n")
    odd = args.out / "odd-inputs"
    odd.mkdir(exist_ok=True)
    for name, m in build_odd_inputs().items():
        onnx.save(m, str(odd / name))
    print(path)


if __name__ == "__main__":
    main()
