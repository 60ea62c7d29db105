//! Bad input: a one-line error naming the input, exit code 2, and no run left behind.

mod common;

use std::path::Path;

use common::*;

fn assert_bad_input(args: &[&str], needle: &str, out_dir: Option<&Path>) {
    let o = charter(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "args {args:?}\nstderr: {err}");
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    if let Some(d) = out_dir {
        assert!(
            !d.join("run.json").exists(),
            "a run record was left in {}",
            d.display()
        );
        assert!(!d.exists(), "run directory {} was left behind", d.display());
    }
}

#[test]
fn missing_model_path() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    assert_bad_input(
        &[
            "profile",
            "--model",
            "/nonexistent/model.gguf",
            "--out",
            out.to_str().unwrap(),
        ],
        "/nonexistent/model.gguf",
        Some(&out),
    );
}

#[test]
fn zero_concurrency_and_unknown_preset() {
    assert_bad_input(&["profile", "--concurrency", "0"], "--concurrency", None);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    assert_bad_input(
        &[
            "profile",
            "--preset",
            "gpt-17",
            "--out",
            out.to_str().unwrap(),
        ],
        "unknown preset `gpt-17`",
        Some(&out),
    );
}

#[test]
fn bad_weights_values_are_named() {
    assert_bad_input(&["profile", "--weights", "q3_x"], "--weights", None);
    assert_bad_input(&["bench-engine", "--weights", "q3_x"], "--weights", None);
    // A candle setting with another backend, and a GGUF conversion asked of a directory.
    assert_bad_input(
        &["profile", "--backend", "simulated", "--weights", "q8_0"],
        "--weights",
        None,
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("llama");
    charter_backends::candle::write_random_llama_dir(&dir, &tiny_config(64), 1, None).unwrap();
    assert_bad_input(
        &[
            "profile",
            "--model",
            dir.to_str().unwrap(),
            "--weights",
            "q4_k",
            "--out",
            tmp.path().join("run").to_str().unwrap(),
        ],
        "--weights q4_k",
        Some(&tmp.path().join("run")),
    );
    assert_bad_input(
        &["profile", "--pin", "--isolation", "process"],
        "--pin",
        None,
    );
}

#[test]
fn file_that_is_not_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("junk.gguf");
    std::fs::write(&model, b"definitely not a gguf file").unwrap();
    let out = tmp.path().join("run");
    assert_bad_input(
        &[
            "profile",
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "not a readable GGUF file",
        Some(&out),
    );
}

#[test]
fn unsupported_gguf_architecture() {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("gpt2.gguf");
    let t =
        candle_core::Tensor::zeros((32, 32), candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
    let q = QTensor::quantize(&t, GgmlDType::F32).unwrap();
    let arch = gguf_file::Value::String("gpt2".into());
    let mut f = std::fs::File::create(&model).unwrap();
    gguf_file::write(&mut f, &[("general.architecture", &arch)], &[("w", &q)]).unwrap();
    drop(f);
    let out = tmp.path().join("run");
    assert_bad_input(
        &[
            "profile",
            "--model",
            model.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "unsupported architecture `gpt2`",
        Some(&out),
    );
}

#[test]
fn malformed_config_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 64,").unwrap();
    let out = tmp.path().join("run");
    assert_bad_input(
        &[
            "profile",
            "--model",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "malformed config.json",
        Some(&out),
    );
}

#[test]
fn tokenizer_that_does_not_round_trip() {
    use candle_core::quantized::gguf_file;
    use charter_backends::candle::tokenizer;
    // The real SmolLM2 tokenizer, plus a lowercasing normaliser: "The" comes back as "the".
    let gguf = smollm2_gguf();
    let mut f = std::fs::File::open(&gguf).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let mut tok = tokenizer::from_gguf(&ct).unwrap();
    tok.with_normalizer(Some(tokenizers::normalizers::Lowercase))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let cfg = tiny_config(49152);
    charter_backends::candle::write_random_llama_dir(&dir, &cfg, 1, Some(&tok)).unwrap();
    let out = tmp.path().join("run");
    assert_bad_input(
        &[
            "profile",
            "--model",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "does not round-trip",
        Some(&out),
    );
}

#[test]
fn out_dir_that_already_holds_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("run.json"), "{}").unwrap();
    let o = charter(&["profile", "--out", tmp.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already holds a run"));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("run.json")).unwrap(),
        "{}"
    );
}

pub fn tiny_config(vocab: usize) -> candle_transformers::models::llama::LlamaConfig {
    candle_transformers::models::llama::LlamaConfig {
        hidden_size: 64,
        intermediate_size: 128,
        vocab_size: vocab,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling: None,
        max_position_embeddings: 512,
        tie_word_embeddings: Some(true),
    }
}

/// Whatever RUST_BACKTRACE and RUST_LIB_BACKTRACE say, an error is one line (candle appends a
/// captured backtrace to its errors when they are set); `-v` prints it in full.
#[test]
fn errors_are_one_line_whatever_rust_backtrace_says() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("bad.gguf");
    // A GGUF header with a bad version: candle's reader fails with its own (backtraced) error.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&99u32.to_le_bytes());
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&model, &bytes).unwrap();
    let run = |verbose: bool| {
        let mut args = vec!["profile", "--model", model.to_str().unwrap()];
        if verbose {
            args.insert(0, "-v");
        }
        std::process::Command::new(env!("CARGO_BIN_EXE_charter"))
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LIB_BACKTRACE", "1")
            .output()
            .unwrap()
    };
    let o = run(false);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("charter: error: "), "{err}");
    assert!(err.contains("bad.gguf"), "the input is not named: {err}");
    assert!(!err.contains("backtrace") && !err.contains("::"), "{err}");
    // -v keeps the user's backtrace setting: candle's captured frames are printed.
    let v = run(true);
    let verr = stderr(&v);
    assert_eq!(v.status.code(), Some(2), "{verr}");
    assert!(verr.lines().count() > 1, "-v printed one line: {verr}");
    assert!(
        verr.starts_with("charter: error: ") && verr.contains("bad.gguf"),
        "{verr}"
    );
    assert!(verr.contains("candle_core"), "no backtrace with -v: {verr}");
}

#[test]
fn one_line_cuts_backtraces_and_joins_lines() {
    let bt = "cannot read: unknown version 99\n   0: candle_core::error::Error::bt\n             at src/error.rs:1\n   1: std::rt::lang_start\n";
    assert_eq!(charter::one_line(bt), "cannot read: unknown version 99");
    assert_eq!(
        charter::one_line("scenario x.toml:\n  line 3: key `rate`\n"),
        "scenario x.toml:; line 3: key `rate`"
    );
    assert_eq!(charter::one_line("a\nStack backtrace:\n  0: x"), "a");
}

/// A level that cannot fit in this machine's memory is refused before it starts, in seconds,
/// naming the flag and the estimate against the available memory (it used to start every
/// stream and end in the kernel's OOM killer).
#[test]
fn a_level_that_cannot_fit_is_refused_before_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let started = std::time::Instant::now();
    // A million streams of tiny-15m: terabytes of KV cache and per-stream memory.
    assert_bad_input(
        &[
            "profile",
            "--concurrency",
            "1000000",
            "--requests",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        "--concurrency 1000000: the largest level needs about",
        Some(&out),
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "refusing took {:?}",
        started.elapsed()
    );
    let o = charter(&[
        "profile",
        "--concurrency",
        "1000000",
        "--requests",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!out.exists());
    let err = stderr(&o);
    assert!(
        err.contains("is available") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
