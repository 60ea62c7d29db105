//! A token-efficiency record in the charter: its headline, its Markdown and HTML sections, its
//! chart, and RAM per 1k words where a profiled run used the very file a tokenizer came from.

mod common;

use std::collections::BTreeMap;

use charter_record::tokens::{BootstrapSettings, CounterInfo, TokenizerIdentity, TokenizerKind};
use charter_record::{FileDigest, HostInfo, MemorySignal, RamFit, ToolInfo, WeightsProvenance};
use charter_reports::tokens::{self, BuildInput, DocStats, TokenizerCounts};
use charter_reports::{charter, charts, render};
use common::fixture;

const SHA: &str = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";

fn record() -> tokens::TokensRecord {
    let docs: Vec<DocStats> = (0..4)
        .map(|i| DocStats {
            id: format!("d{i}"),
            label: Some(if i < 2 { "en" } else { "de" }.into()),
            words: 100,
            characters: 500,
            bytes: 520,
        })
        .collect();
    let counts = |label: &str, sha: Option<&str>, per_doc: u64| TokenizerCounts {
        label: label.into(),
        info: CounterInfo {
            identity: TokenizerIdentity {
                kind: TokenizerKind::Gguf,
                source: format!("{label}.gguf"),
                sha256: sha.map(str::to_string),
                vocab_size: Some(1000),
                model: None,
                api_key_env: None,
                count_method: "test".into(),
            },
            chat_template: None,
            no_round_trip: None,
            kv: None,
        },
        tokens: vec![Some(per_doc); 4],
        round_trip: vec![Some(true); 4],
        chat_tokens: vec![None; 4],
        errors: BTreeMap::new(),
        elapsed_s: 0.5,
    };
    let toks = [counts("base", None, 200), counts("model", Some(SHA), 150)];
    tokens::build(BuildInput {
        tool: ToolInfo {
            name: "charter".into(),
            version: "test".into(),
            git_sha: None,
            libraries: BTreeMap::new(),
        },
        host: HostInfo {
            hostname: None,
            os: None,
            kernel: None,
            cpu_model: None,
            logical_cores: 2,
            physical_cores: None,
            total_memory_bytes: 0,
        },
        started_at: "t".into(),
        elapsed_s: 1.0,
        threads: 2,
        corpus_name: "test-corpus".into(),
        license: None,
        word_definition: "test words".into(),
        docs: &docs,
        tokenizers: &toks,
        baseline: 0,
        bootstrap: BootstrapSettings {
            resamples: 100,
            seed: 1,
            confidence: 0.95,
        },
        prices: None,
        kv_dtype: None,
    })
}

#[test]
fn the_charter_carries_the_tokens_section_and_ram_per_1k_words() {
    let mut run = fixture();
    run.record.backend.weights = WeightsProvenance::Files {
        format: "gguf".into(),
        files: vec![FileDigest {
            path: "model.gguf".into(),
            bytes: 1,
            sha256: SHA.into(),
        }],
    };
    run.record.levels[0].resources.ram_per_1k_tokens = Some(RamFit {
        bytes_per_1k_tokens: Some(2_000_000.0),
        fitted_bytes_per_1k_tokens: Some(2_000_000.0),
        baseline_bytes: 1e8,
        r_squared: 0.99,
        samples: 40,
        live_tokens_min: 100,
        live_tokens_max: 2000,
        signal: Some(MemorySignal::Heap),
        inconclusive: None,
        method: "test".into(),
    });
    let runs = vec![run];
    let mut ch = charter::build(&runs, None, "charter (test)");
    let without = ch.headline.len();
    tokens::attach(&mut ch, vec![record()], &runs);
    let added = &ch.headline[without..];
    assert!(
        added
            .iter()
            .any(|h| h.contains("model needs 25.0 % ± 0.0 % fewer tokens than base")),
        "{added:#?}"
    );
    // 2 MB per 1k tokens × 1.5 tokens per word = 3 MB per 1k words.
    let ram = added
        .iter()
        .find(|h| h.starts_with("RAM:"))
        .expect("RAM per 1k words");
    assert!(
        ram.contains("1.500 tokens per word") && ram.contains("2.9 MiB per 1k words"),
        "{ram}"
    );
    let md = render::markdown(&ch, &[]);
    assert!(
        md.contains("## Token efficiency — corpus `test-corpus`"),
        "{md}"
    );
    assert!(md.contains("| en |") && md.contains("| de |"), "{md}");
    let html = render::html(&ch, &[]);
    assert!(html.contains("<h2>Token efficiency — corpus <code>test-corpus</code></h2>"));
    let json: serde_json::Value = serde_json::from_str(&render::json(&ch)).unwrap();
    assert_eq!(json["tokens"][0]["baseline"], "base");
    let drawn = charts::all(&runs, &ch).unwrap();
    assert!(drawn.iter().any(|c| c.name == "tokens-per-word-0"));
}

#[test]
fn no_tokens_record_leaves_the_charter_as_it_was() {
    let runs = vec![fixture()];
    let ch = charter::build(&runs, None, "charter (test)");
    let json = render::json(&ch);
    assert!(!json.contains("\"tokens\""), "{json}");
    assert!(!render::markdown(&ch, &[]).contains("Token efficiency"));
}
