//! charter's token counts equal each tokenizer's own reference implementation, exactly, for
//! every string in `fixtures/tokens/reference.json`: Hugging Face `tokenizers` for a
//! tokenizer.json, llama.cpp for the GGUF tokenizer, and `tiktoken` for cl100k_base, o200k_base
//! and a `.tiktoken` ranks file. The fixture and the strings in it come from
//! `scripts/token-reference.py` (see there to regenerate).

use std::path::{Path, PathBuf};

use charter_backends::tokens::{TokenizerKind, TokenizerSpec};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn reference() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokens/reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The tiny decoder's tokenizer.json (beside the model `scripts/make-onnx-decoder.py` makes;
/// `CHARTER_ONNX_DECODER` names the model when the cache is elsewhere).
fn tiny_decoder_tokenizer() -> PathBuf {
    match std::env::var_os("CHARTER_ONNX_DECODER") {
        Some(m) => PathBuf::from(m).with_file_name("tokenizer.json"),
        None => root().join(".cache/models/tiny-decoder/tokenizer.json"),
    }
}

/// The spec of fixture entry `key`, with local paths made absolute: the models from the
/// variables `scripts/test.sh` exports when set, as the other tests find them.
fn spec_path(key: &str, spec: &str) -> String {
    let p = match key {
        "gguf" => std::env::var_os("CHARTER_SMOLLM2_GGUF")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join(spec)),
        "hf" => tiny_decoder_tokenizer(),
        _ if spec.contains('/') => root().join(spec),
        _ => return spec.to_string(),
    };
    assert!(
        p.exists(),
        "{} not found: scripts/test.sh fetches and makes the models (scripts/fetch-smollm2.sh, scripts/make-onnx-decoder.py)",
        p.display()
    );
    p.display().to_string()
}

#[test]
fn counts_equal_the_reference_implementations() {
    let r = reference();
    let strings: Vec<&str> = r["strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(strings.len() > 60, "fixed strings and the built-in corpus");
    let entries = r["tokenizers"].as_object().unwrap();
    let keys: Vec<&str> = entries.keys().map(String::as_str).collect();
    for want in ["hf", "gguf", "cl100k", "o200k", "tiktoken-file"] {
        assert!(
            keys.contains(&want),
            "the fixture has no {want} entry: {keys:?}"
        );
    }
    for (key, e) in entries {
        let spec = spec_path(key, e["spec"].as_str().unwrap());
        let counter = TokenizerSpec::parse(&spec)
            .unwrap()
            .load(None, false)
            .unwrap_or_else(|err| panic!("{key}: {err}"));
        let kind = counter.info().identity.kind;
        let expected_kind = match key.as_str() {
            "hf" => TokenizerKind::HfTokenizerJson,
            "gguf" => TokenizerKind::Gguf,
            "tiktoken-file" => TokenizerKind::TiktokenFile,
            _ => TokenizerKind::Tiktoken,
        };
        assert_eq!(kind, expected_kind, "{key}");
        assert_eq!(
            counter.info().identity.vocab_size,
            e["vocab_size"].as_u64(),
            "{key}: vocabulary size"
        );
        let mut mismatches = Vec::new();
        for (text, want) in strings.iter().zip(e["counts"].as_array().unwrap()) {
            let got = counter.count(text, true).unwrap();
            let want_tokens = want["tokens"].as_u64().unwrap();
            let want_rt = want["round_trip"].as_bool().unwrap();
            if got.tokens != want_tokens || got.round_trip != Some(want_rt) {
                mismatches.push(format!(
                    "{text:?}: charter {} tokens (round trip {:?}), reference {want_tokens} ({want_rt})",
                    got.tokens, got.round_trip
                ));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{key} ({}) differs from {}:\n{}",
            spec,
            e["reference"],
            mismatches.join("\n")
        );
    }
}

#[test]
fn gguf_tokenizer_has_its_chat_template_and_kv_shape() {
    let r = reference();
    let spec = spec_path("gguf", r["tokenizers"]["gguf"]["spec"].as_str().unwrap());
    let c = TokenizerSpec::parse(&spec)
        .unwrap()
        .load(None, false)
        .unwrap();
    let info = c.info();
    assert_eq!(info.chat_template.as_deref(), Some("gguf-metadata"));
    // SmolLM2-135M: 30 layers, 3 KV heads of 64 dimensions.
    let kv = info.kv.as_ref().unwrap();
    assert_eq!((kv.layers, kv.kv_heads, kv.head_dim), (30, 3, 64));
    let content = c.count("Hello there", false).unwrap().tokens;
    let chat = c.count_chat("Hello there").unwrap().unwrap();
    // ChatML: <|im_start|>user\n ... <|im_end|>\n<|im_start|>assistant\n around the content.
    assert!(chat > content + 5, "{chat} vs {content}");
    assert!(info.identity.sha256.as_ref().is_some_and(|s| s.len() == 64));
}

#[test]
fn hf_tokenizer_reads_its_config_for_the_kv_shape() {
    let p = tiny_decoder_tokenizer();
    let c = TokenizerSpec::parse(p.to_str().unwrap())
        .unwrap()
        .load(None, false)
        .unwrap();
    // tiny-decoder/config.json: 2 layers, 2 KV heads, 64 / 4 = 16 dimensions, float32.
    let kv = c.info().kv.as_ref().unwrap();
    assert_eq!((kv.layers, kv.kv_heads, kv.head_dim), (2, 2, 16));
    assert_eq!(kv.dtype.as_str(), "f32");
    assert!(
        c.count_chat("x").is_none(),
        "no tokenizer_config.json, no template"
    );
}
