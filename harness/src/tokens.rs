//! `charter tokens`: how many tokens the same text costs under each tokenizer, and what that
//! costs. Reads the corpus (charter-workloads), loads each SPEC's tokenizer (charter-backends),
//! counts every document on `--threads` threads, and hands the counts to charter-reports, which
//! computes the statistics and renders `tokens.json`, `tokens.md`, `tokens.html`, `tokens.csv`
//! and the chart. Bad input (a SPEC, the corpus, the cost file, --out) fails before counting,
//! with exit code 2 and the offending input named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use charter_backends::tokens::{TokenCounter, TokenizerSpec};
use charter_record::tokens::{BootstrapSettings, KvDtype};
use charter_reports::export::{Export, Format, TokensDoc};
use charter_reports::tokens::{self as stats, DocStats, PriceList, TokenizerCounts};
use charter_workloads::corpus::{self, Corpus};

use crate::CliError;

/// Arguments of `charter tokens`.
#[derive(Debug, clap::Args)]
pub struct TokensArgs {
    /// A tokenizer, as `[NAME=]SPEC` (repeatable; the first is the baseline unless --baseline
    /// names another): a tokenizer.json (or its directory), a .gguf file, cl100k_base,
    /// o200k_base, a NAME.tiktoken ranks file, anthropic:MODEL[@URL], vllm:MODEL@URL or
    /// llamacpp:URL.
    #[arg(long = "tokenizer", value_name = "SPEC", required = true)]
    pub tokenizers: Vec<String>,
    /// What to count: `builtin` (10 languages and code, CC0), a .jsonl file ({"text", "lang"}
    /// per line), a ShareGPT .json file, a text file (one document per paragraph), or a
    /// directory of them.
    #[arg(long, default_value = "builtin", value_name = "FILE|DIR|builtin")]
    pub corpus: String,
    /// Output directory [default: runs/<UTC timestamp>-tokens].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The tokenizer (NAME) the others are compared with [default: the first].
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Price list: a cost.toml whose [[cloud_api]] entries price the tokenizers (an entry's
    /// `tokenizer` key, else its `name`, is the tokenizer's NAME): cost per 1M words.
    #[arg(long, value_name = "FILE")]
    pub cost: Option<PathBuf>,
    /// Environment variable holding the API key for remote SPECs (never a flag; never recorded).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Send the API key over plain http:// to a remote SPEC's host that is not this machine;
    /// refused (exit 2) without it.
    #[arg(long)]
    pub allow_plaintext_key: bool,
    /// Counting threads (documents are split between them) [default: logical cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
    /// Bootstrap resamples for the 95 % intervals.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub resamples: u32,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip the decode(encode(text)) == text check (it doubles the work).
    #[arg(long)]
    pub no_round_trip: bool,
    /// Documents (the first N) whose chat-template overhead is measured; 0 skips it.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub chat_documents: usize,
    /// KV-cache element type for KV RAM per 1k words [default: the model config's, f32 for
    /// GGUF as charter's candle backend keeps it].
    #[arg(long, value_enum)]
    pub kv_dtype: Option<KvDtype>,
    /// Print tokens.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

fn bad(e: impl std::fmt::Display) -> CliError {
    CliError::BadInput(e.to_string())
}

/// The output directory, created before any counting; a directory holding a record already
/// is refused.
fn prepare_out(out: &Path) -> Result<(), CliError> {
    let err = |what: String| CliError::BadInput(format!("--out {}: {what}", out.display()));
    match std::fs::metadata(out) {
        Ok(m) if !m.is_dir() => Err(err("exists and is not a directory".into())),
        Ok(_) if out.join("tokens.json").exists() || out.join("run.json").exists() => Err(err(
            "already holds a record; choose another directory".into(),
        )),
        Ok(_) => Ok(()),
        Err(_) => std::fs::create_dir_all(out.join("charts"))
            .map_err(|e| err(format!("cannot create directory: {e}"))),
    }
}

/// One tokenizer over the corpus.
fn count_all(
    counter: &dyn TokenCounter,
    docs: &[corpus::Document],
    threads: usize,
    round_trip: bool,
    chat_documents: usize,
) -> (TokenizerCounts, f64) {
    let n = docs.len();
    let next = AtomicUsize::new(0);
    const CHUNK: usize = 16;
    type Row = (usize, Result<(u64, Option<bool>), String>, Option<u64>);
    let started = Instant::now();
    let rows: Vec<Row> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.min(n).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut out: Vec<Row> = Vec::new();
                    loop {
                        let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                        if start >= n {
                            break;
                        }
                        for (i, d) in docs
                            .iter()
                            .enumerate()
                            .take((start + CHUNK).min(n))
                            .skip(start)
                        {
                            let c = counter
                                .count(&d.text, round_trip)
                                .map(|c| (c.tokens, c.round_trip))
                                .map_err(|e| e.to_string());
                            let chat = if i < chat_documents && c.is_ok() {
                                counter.count_chat(&d.text).and_then(Result::ok)
                            } else {
                                None
                            };
                            out.push((i, c, chat));
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a counting thread panicked"))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut tokens = vec![None; n];
    let mut rt = vec![None; n];
    let mut chat = vec![None; n];
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for (i, c, ch) in rows {
        match c {
            Ok((t, r)) => {
                tokens[i] = Some(t);
                rt[i] = r;
            }
            Err(e) => *errors.entry(e).or_default() += 1,
        }
        chat[i] = ch;
    }
    let mut info = counter.info().clone();
    if !round_trip {
        info.no_round_trip = Some("not requested (--no-round-trip)".into());
    }
    let counts = TokenizerCounts {
        label: String::new(),
        info,
        tokens,
        round_trip: rt,
        chat_tokens: chat,
        errors,
        elapsed_s: elapsed,
    };
    (counts, elapsed)
}

/// `charter tokens`.
pub fn run(args: &TokensArgs) -> Result<i32, CliError> {
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let specs = args
        .tokenizers
        .iter()
        .map(|s| TokenizerSpec::parse(s).map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].iter().any(|o| o.label == s.label) {
            return Err(bad(format!(
                "tokenizer SPEC `{}`: the name `{}` is taken by another --tokenizer; name one with NAME=SPEC",
                s.spec, s.label
            )));
        }
    }
    let baseline = match &args.baseline {
        None => 0,
        Some(b) => specs.iter().position(|s| &s.label == b).ok_or_else(|| {
            bad(format!(
                "--baseline {b}: no --tokenizer has that name (names: {})",
                specs
                    .iter()
                    .map(|s| s.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
    };
    let corpus = Corpus::load(&args.corpus).map_err(bad)?;
    let prices = args
        .cost
        .as_deref()
        .map(|p| PriceList::from_path(p).map_err(bad))
        .transpose()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| crate::rundir::default_path("tokens"));
    prepare_out(&out)?;
    let threads = args.threads.map(|t| t as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let docs: Vec<DocStats> = corpus
        .documents
        .iter()
        .map(|d| {
            let m = corpus::measure(&d.text);
            DocStats {
                id: d.id.clone(),
                label: d.label.clone(),
                words: m.words,
                characters: m.characters,
                bytes: m.bytes,
            }
        })
        .collect();
    let mut all = Vec::new();
    for spec in &specs {
        let counter = spec
            .load(args.api_key_env.as_deref(), args.allow_plaintext_key)
            .map_err(bad)?;
        let (mut counts, elapsed) = count_all(
            counter.as_ref(),
            &corpus.documents,
            threads,
            !args.no_round_trip,
            args.chat_documents,
        );
        counts.label = spec.label.clone();
        let total: u64 = counts.tokens.iter().flatten().sum();
        eprintln!(
            "charter: {}: {total} tokens in {elapsed:.2} s ({:.0} tokens/s, {threads} thread(s))",
            spec.label,
            total as f64 / elapsed.max(1e-9)
        );
        all.push(counts);
    }
    let record = stats::build(stats::BuildInput {
        tool: crate::host::tool_info(),
        host: crate::host::host_info(),
        started_at,
        elapsed_s: started.elapsed().as_secs_f64(),
        threads: threads as u32,
        corpus_name: corpus.name.clone(),
        license: corpus.license.clone(),
        word_definition: corpus::WORD_DEFINITION.into(),
        docs: &docs,
        tokenizers: &all,
        baseline,
        bootstrap: BootstrapSettings {
            resamples: args.resamples,
            seed: args.seed,
            confidence: 0.95,
        },
        prices: prices.as_ref(),
        kv_dtype: args.kv_dtype,
    });
    let chart = stats::render::chart(&record, None)
        .map_err(|e| CliError::Failure(anyhow::anyhow!("drawing the chart: {e}")))?;
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| {
            CliError::Failure(anyhow::anyhow!("{}: cannot write: {e}", p.display()))
        }
    };
    let charts_dir = out.join("charts");
    std::fs::create_dir_all(&charts_dir).map_err(io(&charts_dir))?;
    charter_reports::charts::write_all(std::slice::from_ref(&chart), &charts_dir)
        .map_err(io(&charts_dir))?;
    let doc = TokensDoc {
        record: &record,
        chart: Some(&chart),
    };
    let mut written = Vec::new();
    for (name, format) in doc.files() {
        let p = out.join(&name);
        std::fs::write(&p, doc.export(format)?).map_err(io(&p))?;
        written.push(name);
    }
    if args.json {
        print!("{}", doc.export(Format::Json)?);
    } else {
        print!("{}", doc.export(Format::Console)?);
        println!(
            "\nwrote {}/{} and charts/{}.svg|png",
            out.display(),
            written.join(", "),
            chart.name
        );
    }
    Ok(crate::EXIT_OK)
}

/// Whether `dir` holds a `charter tokens` record.
pub fn is_tokens_dir(dir: &Path) -> bool {
    dir.join("tokens.json").is_file() && !dir.join("run.json").exists()
}

/// Read `DIR/tokens.json`.
pub fn read_record(dir: &Path) -> Result<charter_record::tokens::TokensRecord, CliError> {
    let p = dir.join("tokens.json");
    let text = std::fs::read_to_string(&p)
        .map_err(|e| bad(format!("{}: cannot read: {e}", p.display())))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| bad(format!("{}: not valid JSON: {e}", p.display())))?;
    match v.get("schema_version").and_then(|x| x.as_u64()) {
        Some(n) if n > u64::from(charter_record::tokens::TOKENS_SCHEMA_VERSION) => {
            return Err(bad(format!(
                "{}: schema version {n} is newer than this charter reads; upgrade charter",
                p.display()
            )))
        }
        None => {
            return Err(bad(format!(
                "{}: no schema_version: not a charter tokens record",
                p.display()
            )))
        }
        _ => {}
    }
    serde_json::from_value(v)
        .map_err(|e| bad(format!("{}: not a charter tokens record: {e}", p.display())))
}
