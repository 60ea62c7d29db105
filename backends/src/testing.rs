//! Synthetic inputs for charter's own tests (here and in the harness's integration tests),
//! defined once: not used by any measurement.

/// A Llama-2-style SentencePiece `tokenizer.json` (BPE with byte fallback, `▁` prepended and
/// spaces replaced by the normaliser, a decoder that strips the prepended space): the special
/// tokens, the 256 byte tokens, `▁`, the letters, and merges that make each of `words` (with
/// its leading `▁`) one token.
pub fn sentencepiece_tokenizer_json(words: &[&str]) -> serde_json::Value {
    let mut vocab: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    vocab.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    vocab.push("▁".into());
    vocab.extend(('a'..='z').map(String::from));
    let mut merges = Vec::new();
    for w in words {
        let chars: Vec<String> = format!("▁{w}").chars().map(String::from).collect();
        let mut prefix = chars[0].clone();
        for c in &chars[1..] {
            let merged = format!("{prefix}{c}");
            if !vocab.contains(&merged) {
                merges.push(vec![prefix.clone(), c.clone()]);
                vocab.push(merged.clone());
            }
            prefix = merged;
        }
    }
    let special = |id: usize, c: &str| {
        serde_json::json!({"id": id, "content": c, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab.iter().enumerate().map(|(i, t)| (t.clone(), serde_json::json!(i))).collect::<serde_json::Map<_, _>>(),
            "merges": merges,
        }
    })
}
