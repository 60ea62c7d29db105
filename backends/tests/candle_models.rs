//! The candle backend on the real SmolLM2 GGUF and on a safetensors directory.

use std::ops::ControlFlow;
use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use charter_backends::candle::convert::{self, WeightFormat};
use charter_backends::candle::{
    self, generate_text, tokenizer, write_random_llama_dir, CandleBackend, CandleOptions,
    ModelSource,
};
use charter_backends::{Backend, GenRequest, Prompt, Sampling, StopReason};

fn smollm2() -> PathBuf {
    let p = std::env::var_os("CHARTER_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        p.is_file(),
        "{} missing: run scripts/fetch-smollm2.sh",
        p.display()
    );
    p
}

/// Converted weights go to the checkout's cache unless CHARTER_CACHE names one (every test
/// sets the same value).
fn use_checkout_cache() {
    if std::env::var_os("CHARTER_CACHE").is_some_and(|v| !v.is_empty()) {
        return;
    }
    std::env::set_var(
        "CHARTER_CACHE",
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache"),
    );
}

fn load(source: ModelSource) -> CandleBackend {
    load_as(source, WeightFormat::Auto)
}

fn load_as(source: ModelSource, weights: WeightFormat) -> CandleBackend {
    use_checkout_cache();
    candle::configure_threads(2);
    let mut opts = CandleOptions::new(source, 2);
    opts.weights = weights;
    CandleBackend::load(&opts).unwrap()
}

const CHAT: &str =
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";

#[test]
fn smollm2_greedy_is_deterministic_real_text() {
    let b = load(ModelSource::Path(smollm2()));
    let a = generate_text(&b, CHAT, 24).unwrap();
    let again = generate_text(&b, CHAT, 24).unwrap();
    assert_eq!(a, again, "greedy decoding must be deterministic");
    let words: Vec<&str> = a.split_whitespace().collect();
    assert!(words.len() >= 3, "too little text: {a:?}");
    let wordlike = words
        .iter()
        .filter(|w| {
            let w = w.trim_matches(|c: char| c.is_ascii_punctuation());
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_alphabetic() || c == '\'' || c == '-')
        })
        .count();
    assert!(
        wordlike * 10 >= words.len() * 8,
        "output is not mostly words: {a:?}"
    );
    assert!(
        a.contains("Paris"),
        "SmolLM2 should know the capital of France: {a:?}"
    );
}

/// Lowercase words of `s`, punctuation trimmed.
fn words(s: &str) -> Vec<String> {
    s.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| c.is_ascii_punctuation())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn conversion_keeps_the_greedy_answer_and_records_what_ran() {
    let keep = load_as(ModelSource::Path(smollm2()), WeightFormat::Keep);
    assert!(keep.record().weights_conversion.is_none());
    assert!(
        keep.record().dtype.contains("q4_1"),
        "{}",
        keep.record().dtype
    );
    let reference = generate_text(&keep, CHAT, 16).unwrap();
    drop(keep);
    for format in [WeightFormat::Auto, WeightFormat::Q4K] {
        let b = load_as(ModelSource::Path(smollm2()), format);
        let r = b.record();
        let c = r.weights_conversion.as_ref().expect("q4_1 is converted");
        assert_eq!(c.from, vec!["q4_1".to_string()]);
        assert_eq!(c.requested, format.as_str());
        assert!(!r.dtype.contains("q4_1"), "{}", r.dtype);
        assert!(c.tensors_converted > 0 && c.tensors_kept > 0, "{c:?}");
        match &r.weights {
            charter_backends::WeightsProvenance::Files { files, .. } => {
                // The record names the user's file; the copy is the conversion's.
                assert!(files[0].path.ends_with(".Q4_1.gguf"), "{files:?}");
                assert_ne!(c.file.sha256, files[0].sha256);
            }
            other => panic!("{other:?}"),
        }
        let text = generate_text(&b, CHAT, 16).unwrap();
        // The same answer: the first words agree, and it names Paris.
        let (a, k) = (words(&text), words(&reference));
        assert!(text.contains("Paris"), "{format:?}: {text:?}");
        assert_eq!(a[..3], k[..3], "{format:?}: {text:?} vs keep {reference:?}");
    }
}

#[test]
fn conversion_is_deterministic_and_cached() {
    let src = smollm2();
    let mut f = std::fs::File::open(&src).unwrap();
    let content = gguf_file::Content::read(&mut f).unwrap();
    let sha = charter_backends::file_digest(&src).unwrap().sha256;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = convert::convert_gguf(&src, &sha, &content, WeightFormat::Q8_0, a.path())
        .unwrap()
        .unwrap();
    let second = convert::convert_gguf(&src, &sha, &content, WeightFormat::Q8_0, b.path())
        .unwrap()
        .unwrap();
    assert!(!first.cached && !second.cached);
    assert_eq!(
        first.file.sha256, second.file.sha256,
        "same source, same bytes"
    );
    assert_ne!(first.file.sha256, sha);
    let again = convert::convert_gguf(&src, &sha, &content, WeightFormat::Q8_0, a.path())
        .unwrap()
        .unwrap();
    assert!(again.cached && again.convert_s.is_none());
    assert_eq!(again.file.sha256, first.file.sha256);
    // The copy says what it is; the source is untouched; keep converts nothing.
    let mut cf = std::fs::File::open(&first.path).unwrap();
    let copy = gguf_file::Content::read(&mut cf).unwrap();
    match copy.metadata.get("charter.conversion.source_sha256") {
        Some(gguf_file::Value::String(s)) => assert_eq!(s, &sha),
        other => panic!("no source sha256 in the copy: {other:?}"),
    }
    assert_eq!(charter_backends::file_digest(&src).unwrap().sha256, sha);
    assert!(
        convert::convert_gguf(&src, &sha, &content, WeightFormat::Keep, a.path())
            .unwrap()
            .is_none()
    );
}

#[test]
fn smollm2_tokenizer_adds_no_leading_space_and_round_trips() {
    let mut f = std::fs::File::open(smollm2()).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let tok = tokenizer::from_gguf(&ct).unwrap();
    tokenizer::check_round_trip(&tok, "gguf").unwrap();
    let enc = tok.encode("Hello world", false).unwrap();
    let first = tok.decode(&enc.get_ids()[..1], false).unwrap();
    assert_eq!(first, "Hello", "first token must not carry a leading space");
    // candle's stock from_gguf would add one: this is what the fix is for.
    use candle_core::quantized::tokenizer::TokenizerFromGguf;
    let stock = tokenizers::Tokenizer::from_gguf(&ct).unwrap();
    let stock_first = stock
        .decode(
            &stock.encode("Hello world", false).unwrap().get_ids()[..1],
            false,
        )
        .unwrap();
    assert_eq!(stock_first, " Hello");
}

#[test]
fn stream_reports_events_counts_and_eos() {
    let b = load(ModelSource::Path(smollm2()));
    let mut s = b.new_stream().unwrap();
    let req = GenRequest {
        prompt: Prompt::Text(CHAT.into()),
        max_tokens: 64,
        ignore_eos: false,
        sampling: Sampling::greedy(),
    };
    let mut events = Vec::new();
    let out = s
        .generate(&req, &mut |e| {
            events.push(e);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(out.output_tokens as usize, events.len());
    assert_eq!(out.output_tokens as usize, out.output_token_ids.len());
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    // A short factual answer ends with <|im_end|> (EOS) well before 64 tokens.
    assert_eq!(
        out.stop_reason,
        StopReason::Eos,
        "{:?}",
        b.decode(&out.output_token_ids)
    );
    assert!(!out.output_token_ids.contains(&2));
}

#[test]
fn safetensors_directory_loads_and_generates() {
    let mut f = std::fs::File::open(smollm2()).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let tok = tokenizer::from_gguf(&ct).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = candle_transformers::models::llama::LlamaConfig {
        hidden_size: 64,
        intermediate_size: 128,
        vocab_size: 49152,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        bos_token_id: None,
        eos_token_id: Some(candle_transformers::models::llama::LlamaEosToks::Single(2)),
        rope_scaling: None,
        max_position_embeddings: 512,
        tie_word_embeddings: Some(true),
    };
    write_random_llama_dir(tmp.path(), &cfg, 3, Some(&tok)).unwrap();
    let b = load(ModelSource::Path(tmp.path().to_path_buf()));
    let r = b.record();
    assert_eq!(r.vocab_size, 49152);
    assert_eq!(r.eos_token_ids, vec![2]);
    assert!(
        matches!(&r.weights, charter_backends::WeightsProvenance::Files { format, files } if format == "safetensors" && files.len() == 1)
    );
    let mut s = b.new_stream().unwrap();
    let req = GenRequest {
        prompt: Prompt::Text("Hello there".into()),
        max_tokens: 5,
        ignore_eos: true,
        sampling: Sampling {
            temperature: 0.8,
            top_p: None,
            seed: 9,
        },
    };
    let out = s
        .generate(&req, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(out.output_tokens, 5);
    assert_eq!(out.prompt_tokens, 2);
    let again = s
        .generate(&req, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    assert_eq!(
        out.output_token_ids, again.output_token_ids,
        "same seed, same sample"
    );
}

/// The KV cache must give the same greedy tokens as recomputing the whole sequence each step.
#[test]
fn kv_cache_matches_full_recomputation() {
    let b = load(ModelSource::Preset {
        name: "tiny-15m".into(),
        seed: 5,
    });
    let prompt: Vec<u32> = (100..120).collect();
    let mut s = b.new_stream().unwrap();
    let req = GenRequest {
        prompt: Prompt::Tokens(prompt.clone()),
        max_tokens: 8,
        ignore_eos: true,
        sampling: Sampling::greedy(),
    };
    let cached = s
        .generate(&req, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    // Recompute: one new request per step with the growing sequence and max_tokens = 1.
    let mut seq = prompt;
    let mut recomputed = Vec::new();
    for _ in 0..8 {
        let r = GenRequest {
            prompt: Prompt::Tokens(seq.clone()),
            max_tokens: 1,
            ..req.clone()
        };
        let t = s
            .generate(&r, &mut |_| ControlFlow::Continue(()))
            .unwrap()
            .output_token_ids[0];
        recomputed.push(t);
        seq.push(t);
    }
    assert_eq!(cached.output_token_ids, recomputed);
}

/// charter's dense GGUF Llama against candle's own `quantized_llama` on the q8_0 copy charter
/// runs: with the quantized kernel everywhere it computes what candle computes (the port and the
/// in-place grouped-query attention of decode); with f32 prefill weights, the next token of a
/// real prompt is the same and the logits differ by activation-quantization noise only.
#[test]
fn gguf_llama_matches_candles_quantized_llama() {
    use candle_core::{Device, Tensor};
    use candle_transformers::models::quantized_llama::ModelWeights;
    use charter_backends::candle::gguf_llama::{GgufLlama, PREFILL_F32_MIN_ROWS};
    let b = load(ModelSource::Path(smollm2()));
    let copy = PathBuf::from(b.record().weights_conversion.clone().unwrap().file.path);
    let prompt = b
        .tokenizer()
        .unwrap()
        .encode(CHAT, false)
        .unwrap()
        .get_ids()
        .to_vec();
    drop(b);
    assert!(prompt.len() >= PREFILL_F32_MIN_ROWS, "{}", prompt.len());
    let open = || {
        let mut f = std::fs::File::open(&copy).unwrap();
        (gguf_file::Content::read(&mut f).unwrap(), f)
    };
    let (ct, mut f) = open();
    let mut candle_model = ModelWeights::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let (ct, mut f) = open();
    let mut ours = GgufLlama::from_gguf(ct, &mut f, &Device::Cpu).unwrap();
    let mut quantized = ours.clone();
    quantized.set_f32_min_rows(usize::MAX);
    let logits = |model: &mut dyn FnMut(&Tensor, usize) -> Vec<f32>, ids: &[u32], pos| {
        model(
            &Tensor::new(ids, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap(),
            pos,
        )
    };
    let vec =
        |t: candle_core::Result<Tensor>| t.unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap() as u32;
    let stats = |a: &[f32], t: &[f32]| {
        let range =
            t.iter().cloned().fold(f32::MIN, f32::max) - t.iter().cloned().fold(f32::MAX, f32::min);
        let diff = a
            .iter()
            .zip(t)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        (diff, range)
    };
    let (mut input, mut pos) = (prompt.clone(), 0);
    for step in 0..6 {
        let t = logits(&mut |x, p| vec(candle_model.forward(x, p)), &input, pos);
        let q = logits(&mut |x, p| vec(quantized.forward(x, p)), &input, pos);
        let (diff, range) = stats(&q, &t);
        eprintln!("step {step}: quantized everywhere: max |diff| {diff:.2e} (range {range:.1})");
        assert_eq!(argmax(&q), argmax(&t), "step {step}");
        assert!(diff < 1e-3 * range, "step {step}: {diff} of {range}");
        if step == 0 {
            let f = logits(&mut |x, p| vec(ours.forward(x, p)), &input, pos);
            let (diff, range) = stats(&f, &t);
            eprintln!("prefill with f32 weights: max |diff| {diff:.4} (range {range:.1})");
            assert_eq!(argmax(&f), argmax(&t), "f32 prefill: next token");
            assert!(diff < 0.05 * range, "f32 prefill: {diff} of {range}");
        }
        pos += input.len();
        input = vec![argmax(&t)];
    }
}
