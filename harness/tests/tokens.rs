//! `charter tokens` end to end: the built-in corpus under several tokenizers (record checked
//! against the committed schema), the remote count endpoints against the scripted test server
//! (the key is sent, and appears in no output), bad input (exit 2, naming it), and `charter
//! report` with a tokens run.

mod common;
#[path = "common/sse_server.rs"]
#[allow(dead_code)]
mod sse_server;

use std::path::Path;
use std::process::{Command, Output};

use common::{charter, stderr, stdout};
use sse_server::{Script, TestServer};

fn validated_tokens(dir: &Path) -> serde_json::Value {
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/schema/tokens.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokens.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&record)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "tokens.json does not match the schema: {errors:#?}"
    );
    let _: charter_record::tokens::TokensRecord = serde_json::from_value(record.clone()).unwrap();
    record
}

fn tokenizer<'a>(r: &'a serde_json::Value, label: &str) -> &'a serde_json::Value {
    r["tokenizers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == label)
        .unwrap_or_else(|| panic!("no tokenizer {label}"))
}

#[test]
fn builtin_corpus_under_three_tokenizers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("t");
    // The tiny decoder's tokenizer.json, beside the model scripts/make-onnx-decoder.py makes.
    let hf = match std::env::var_os("CHARTER_ONNX_DECODER") {
        Some(m) => std::path::PathBuf::from(m).with_file_name("tokenizer.json"),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.cache/models/tiny-decoder/tokenizer.json"),
    };
    assert!(
        hf.is_file(),
        "{}: run scripts/make-onnx-decoder.py (scripts/test.sh does)",
        hf.display()
    );
    let o = charter(&[
        "tokens",
        "--tokenizer",
        "cl100k=cl100k_base",
        "--tokenizer",
        "o200k_base",
        "--tokenizer",
        "same=cl100k_base",
        "--tokenizer",
        &format!("tiny={}", hf.display()),
        "--out",
        out.to_str().unwrap(),
        "--resamples",
        "300",
        "--threads",
        "2",
        "--cost",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/token-prices.toml")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = validated_tokens(&out);
    for f in [
        "tokens.json",
        "tokens.md",
        "tokens.html",
        "tokens.csv",
        "charts/tokens-per-word.svg",
        "charts/tokens-per-word.png",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert_eq!(r["corpus"]["documents"], 44);
    assert_eq!(r["corpus"]["documents_compared"], 44);
    assert_eq!(r["baseline"], "cl100k");
    // The same tokenizer under another name differs from the baseline by exactly 0.
    let same = &tokenizer(&r, "same")["relative_to_baseline"];
    assert_eq!(
        (
            same["estimate"].as_f64(),
            same["low"].as_f64(),
            same["high"].as_f64()
        ),
        (Some(0.0), Some(0.0), Some(0.0))
    );
    assert_eq!(
        tokenizer(&r, "same")["tokens"],
        tokenizer(&r, "cl100k")["tokens"]
    );
    // o200k_base was built for many scripts: fewer tokens than cl100k_base on this corpus, and
    // far fewer on Hindi.
    let o200k = tokenizer(&r, "o200k_base");
    let rel = o200k["relative_to_baseline"]["estimate"].as_f64().unwrap();
    assert!(rel < -0.05, "{rel}");
    let hi = o200k["per_label"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["label"] == "hi")
        .unwrap();
    assert!(
        hi["relative_to_baseline"]["estimate"].as_f64().unwrap() < -0.3,
        "{hi}"
    );
    assert_eq!(o200k["per_label"].as_array().unwrap().len(), 11);
    assert_eq!(o200k["round_trip"]["status"], "exact");
    let tiny = tokenizer(&r, "tiny");
    assert_eq!(tiny["kind"], "hf_tokenizer_json");
    assert_eq!(tiny["kv_cache"]["bytes_per_token"], 2 * 2 * 2 * 16 * 4);
    // Priced: 1M words cost tokens-per-word × the price per 1M tokens.
    let price = r["cost"]["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["tokenizer"] == "o200k_base")
        .unwrap();
    let tpw = o200k["tokens_per_word"]["estimate"].as_f64().unwrap();
    assert!((price["input_per_1m_words"]["estimate"].as_f64().unwrap() - tpw * 2.5).abs() < 1e-9);
    let text = stdout(&o);
    assert!(
        text.contains("o200k_base needs") && text.contains("fewer tokens than cl100k"),
        "{text}"
    );
    assert!(
        text.contains("UAX #29"),
        "the word definition is stated: {text}"
    );
    let md = std::fs::read_to_string(out.join("tokens.md")).unwrap();
    assert!(md.contains("| hi |"), "{md}");

    // `charter report` with the tokens run: a section in the charter, and its chart.
    let rep = tmp.path().join("report");
    let o = charter(&[
        "report",
        out.to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = std::fs::read_to_string(rep.join("charter.md")).unwrap();
    assert!(
        md.contains("## Token efficiency — corpus `builtin`"),
        "{md}"
    );
    assert!(md.contains("fewer tokens than cl100k"), "{md}");
    let html = std::fs::read_to_string(rep.join("charter.html")).unwrap();
    assert!(html.contains("Token efficiency"));
    assert!(rep.join("charts/tokens-per-word-0.svg").is_file());
    let ch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("charter.json")).unwrap()).unwrap();
    assert_eq!(ch["tokens"][0]["corpus"]["name"], "builtin");
}

fn charter_env(args: &[&str], var: &str, key: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_charter"))
        .args(args)
        .env(var, key)
        .output()
        .expect("running charter")
}

/// Every file under `dir`, as text.
fn all_text(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            s += &all_text(&p);
        } else {
            s += &String::from_utf8_lossy(&std::fs::read(&p).unwrap());
        }
    }
    s
}

#[test]
fn remote_count_endpoints_with_a_key_that_never_leaks() {
    const KEY: &str = "sk-test-SECRET-4f9c2b7e";
    let server = TestServer::start(|_| Script::openai(0, 0, 1));
    let url = server.base_url();
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("c.jsonl");
    // Single spaces round-trip through the server's word tokenizer; the double space does not.
    // The last document is rate limited once by llama.cpp's /tokenize.
    std::fs::write(
        &corpus,
        "{\"text\": \"one two three\", \"lang\": \"en\"}\n{\"text\": \"four five six seven\", \"lang\": \"en\"}\n{\"text\": \"eins  zwei\", \"lang\": \"de\"}\n{\"text\": \"rate limited once\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("t");
    let o = charter_env(
        &[
            "tokens",
            "--tokenizer",
            &format!("vllm:served-model@{url}/v1"),
            "--tokenizer",
            &format!("cpp=llamacpp:{url}"),
            "--tokenizer",
            &format!("claude=anthropic:claude-test@{url}"),
            "--api-key-env",
            "CHARTER_TEST_TOKENS_KEY",
            "--corpus",
            corpus.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "2",
            "--resamples",
            "50",
        ],
        "CHARTER_TEST_TOKENS_KEY",
        KEY,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = validated_tokens(&out);
    for label in ["served-model", "cpp", "claude"] {
        let t = tokenizer(&r, label);
        // One token per word; llama.cpp's 429 was retried, so no document failed.
        assert_eq!(t["tokens"], 12, "{label}: one token per word");
        assert_eq!(t["documents_failed"], 0, "{label}");
        assert_eq!(t["api_key_env"], "CHARTER_TEST_TOKENS_KEY");
    }
    let vllm = tokenizer(&r, "served-model");
    assert_eq!(vllm["kind"], "vllm_tokenize");
    assert_eq!(vllm["round_trip"]["status"], "lossy");
    assert_eq!(vllm["round_trip"]["documents_lossy"], 1);
    assert_eq!(vllm["chat_template"]["per_message_tokens_mean"], 5.0);
    assert_eq!(tokenizer(&r, "cpp")["round_trip"]["status"], "lossy");
    let claude = tokenizer(&r, "claude");
    assert_eq!(claude["round_trip"]["status"], "not_checked");
    assert_eq!(claude["chat_template"]["per_message_tokens_mean"], 7.0);
    // The key was sent with every request: as a bearer token, and as x-api-key.
    let seen = server.credentials.lock().unwrap().clone();
    assert!(
        seen.iter().any(|c| c == &format!("Bearer {KEY}")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|c| c == KEY), "{seen:?}");
    // ... and appears in no output.
    let everything = all_text(&out) + &stdout(&o) + &stderr(&o);
    assert!(!everything.contains(KEY) && !everything.contains("SECRET-4f9c"));

    // A refused key: exit 2 naming the SPEC; the server echoes the key, charter does not.
    let o = charter_env(
        &[
            "tokens",
            "--tokenizer",
            &format!("anthropic:claude-test@{url}"),
            "--api-key-env",
            "CHARTER_TEST_TOKENS_KEY",
            "--corpus",
            corpus.to_str().unwrap(),
            "--out",
            tmp.path().join("refused").to_str().unwrap(),
        ],
        "CHARTER_TEST_TOKENS_KEY",
        "wrong-key-77aa1",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("`anthropic:claude-test@{url}`")),
        "{err}"
    );
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(
        !err.contains("wrong-key-77aa1") && err.contains("[redacted]"),
        "{err}"
    );
}

#[test]
fn bad_input_exits_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("t");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--tokenizer", "no/such/tokenizer.json"],
            "`no/such/tokenizer.json`",
        ),
        (&["--tokenizer", "weights.model"], "SentencePiece"),
        (
            &[
                "--tokenizer",
                "cl100k_base",
                "--corpus",
                "no-such-corpus.jsonl",
            ],
            "no-such-corpus.jsonl",
        ),
        (
            &["--tokenizer", "cl100k_base", "--cost", "no-such-cost.toml"],
            "no-such-cost.toml",
        ),
        (
            &["--tokenizer", "cl100k_base", "--baseline", "nobody"],
            "--baseline nobody",
        ),
        (
            &["--tokenizer", "cl100k_base", "--tokenizer", "cl100k_base"],
            "name `cl100k_base` is taken",
        ),
    ];
    for (args, says) in cases {
        let mut all = vec!["tokens", "--out", out];
        all.extend_from_slice(args);
        let o = charter(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains(says), "{args:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
    }
    assert!(!Path::new(out).join("tokens.json").exists());
}

/// A remote counter never gets the key over plain http:// to another machine unless asked:
/// exit 2 at once (no request sent), naming the SPEC and the flag that allows it.
#[test]
fn a_key_is_not_sent_in_plain_http_to_another_host_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    // TEST-NET-1 (RFC 5737): nothing answers there, so a request would hang until a timeout.
    let spec = "vllm:served-model@http://192.0.2.1:8000";
    let t0 = std::time::Instant::now();
    let o = charter_env(
        &[
            "tokens",
            "--tokenizer",
            spec,
            "--api-key-env",
            "CHARTER_TEST_TOKENS_KEY",
            "--out",
            tmp.path().join("t").to_str().unwrap(),
        ],
        "CHARTER_TEST_TOKENS_KEY",
        "sk-test-plaintext-0123",
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("`{spec}`"))
            && err.contains("the API key from --api-key-env CHARTER_TEST_TOKENS_KEY would cross the network unencrypted")
            && err.contains("--allow-plaintext-key"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "no request was attempted"
    );
}
