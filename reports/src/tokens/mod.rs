//! Token efficiency: from per-document token counts (one list per tokenizer, same documents)
//! to the `tokens.json` record: tokens per word, character and UTF-8 byte with percentile
//! bootstrap intervals over documents, the paired relative difference to a baseline tokenizer,
//! the same per document label, round-trip and chat-template summaries, KV-cache RAM per 1k
//! words, and input cost per 1M words from a price list. Renderings are in [`render`]; the
//! document behind the one export seam is `export::TokensDoc`.
//!
//! Statistics are ratios of sums (Σ tokens ÷ Σ words over the documents), not means of
//! per-document ratios, so long documents weigh as much as their text. Every tokenizer is
//! resampled with the same document indices, so its difference to the baseline is paired, and a
//! tokenizer compared with itself differs by exactly 0.

pub mod render;

use std::collections::BTreeMap;
use std::path::Path;

pub use charter_record::tokens::*;
use charter_record::{HostInfo, ToolInfo};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::cost::{CloudApi, CostConfig, CostError};
use crate::gate::stats::{draw_index, quantile};

/// What the corpus says about one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocStats {
    pub id: String,
    pub label: Option<String>,
    pub words: u64,
    pub characters: u64,
    pub bytes: u64,
}

/// A tokenizer's counts on every document of the corpus, in corpus order.
#[derive(Debug, Clone)]
pub struct TokenizerCounts {
    pub label: String,
    /// What the counter is, as loaded (`no_round_trip` also says when the round trip was
    /// not asked for).
    pub info: CounterInfo,
    /// Content tokens per document; `None` where counting failed.
    pub tokens: Vec<Option<u64>>,
    /// decode(encode(text)) == text per document, where checked.
    pub round_trip: Vec<Option<bool>>,
    /// Templated message tokens per document, where measured.
    pub chat_tokens: Vec<Option<u64>>,
    /// Failure messages and how often each occurred.
    pub errors: BTreeMap<String, u64>,
    pub elapsed_s: f64,
}

/// Everything [`build`] needs.
pub struct BuildInput<'a> {
    pub tool: ToolInfo,
    pub host: HostInfo,
    pub started_at: String,
    pub elapsed_s: f64,
    pub threads: u32,
    pub corpus_name: String,
    pub license: Option<String>,
    pub word_definition: String,
    pub docs: &'a [DocStats],
    pub tokenizers: &'a [TokenizerCounts],
    /// Index into `tokenizers` of the baseline.
    pub baseline: usize,
    pub bootstrap: BootstrapSettings,
    pub prices: Option<&'a PriceList>,
    /// Overrides every model's KV element type.
    pub kv_dtype: Option<KvDtype>,
}

/// Sums of `columns` over `resamples` bootstrap resamples of the rows (each resample draws
/// `n` row indices with replacement): `out[r][c]`. Row `i` of column `c` is `columns[c][i]`.
///
/// A resample is kept as how often each row was drawn (increments in an array that stays in
/// cache), then each column is summed against those multiplicities in order: on a 50 MB corpus
/// this is many times faster than gathering every column at each random draw.
pub fn bootstrap_sums(columns: &[Vec<f64>], resamples: u32, seed: u64) -> Vec<Vec<f64>> {
    let n = columns.first().map_or(0, Vec::len);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(resamples as usize);
    if n == 0 {
        return out;
    }
    let mut times = vec![0u32; n];
    for _ in 0..resamples {
        times.iter_mut().for_each(|t| *t = 0);
        for _ in 0..n {
            times[draw_index(&mut rng, n)] += 1;
        }
        out.push(
            columns
                .iter()
                .map(|col| col.iter().zip(&times).map(|(x, &t)| x * f64::from(t)).sum())
                .collect(),
        );
    }
    out
}

/// Percentile interval of `f` over the resampled sums, around its value on the full sums.
/// `None` when the full-sample value is not finite (e.g. no words).
pub fn interval(
    full: &[f64],
    resampled: &[Vec<f64>],
    confidence: f64,
    f: impl Fn(&[f64]) -> f64,
) -> Option<Interval> {
    let estimate = f(full);
    if !estimate.is_finite() {
        return None;
    }
    let mut v: Vec<f64> = resampled
        .iter()
        .map(|s| f(s))
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return Some(Interval {
            estimate,
            low: estimate,
            high: estimate,
        });
    }
    let tail = (1.0 - confidence.clamp(0.0, 1.0)) / 2.0;
    Some(Interval {
        estimate,
        low: quantile(&mut v, tail),
        high: quantile(&mut v, 1.0 - tail),
    })
}

/// Column layout of the bootstrap: words, characters, bytes, then one token column per
/// tokenizer.
const WORDS: usize = 0;
const CHARS: usize = 1;
const BYTES: usize = 2;
const TOK0: usize = 3;

struct Stats {
    per_word: Vec<Option<Interval>>,
    per_char: Vec<Option<Interval>>,
    per_byte: Vec<Option<Interval>>,
    relative: Vec<Option<Interval>>,
    tokens: Vec<u64>,
}

/// Statistics of the rows `rows` (indices into the compared documents' columns).
fn stats_of(
    columns: &[Vec<f64>],
    rows: &[usize],
    k: usize,
    baseline: usize,
    b: &BootstrapSettings,
    seed: u64,
) -> Stats {
    let sub: Vec<Vec<f64>> = columns
        .iter()
        .map(|c| rows.iter().map(|&i| c[i]).collect())
        .collect();
    let full: Vec<f64> = sub.iter().map(|c| c.iter().sum()).collect();
    let res = bootstrap_sums(&sub, b.resamples, seed);
    let ratio = |num: usize, den: usize| move |s: &[f64]| s[num] / s[den];
    let mut st = Stats {
        per_word: Vec::new(),
        per_char: Vec::new(),
        per_byte: Vec::new(),
        relative: Vec::new(),
        tokens: Vec::new(),
    };
    for t in 0..k {
        let col = TOK0 + t;
        st.per_word
            .push(interval(&full, &res, b.confidence, ratio(col, WORDS)));
        st.per_char
            .push(interval(&full, &res, b.confidence, ratio(col, CHARS)));
        st.per_byte
            .push(interval(&full, &res, b.confidence, ratio(col, BYTES)));
        let base = TOK0 + baseline;
        st.relative.push(interval(&full, &res, b.confidence, |s| {
            s[col] / s[base] - 1.0
        }));
        st.tokens.push(full[col] as u64);
    }
    st
}

/// Build the record.
pub fn build(input: BuildInput<'_>) -> TokensRecord {
    let docs = input.docs;
    let toks = input.tokenizers;
    let k = toks.len();
    let b = &input.bootstrap;
    // Documents every tokenizer counted.
    let compared: Vec<usize> = (0..docs.len())
        .filter(|&i| {
            toks.iter()
                .all(|t| t.tokens.get(i).copied().flatten().is_some())
        })
        .collect();
    let mut columns: Vec<Vec<f64>> = vec![
        compared.iter().map(|&i| docs[i].words as f64).collect(),
        compared
            .iter()
            .map(|&i| docs[i].characters as f64)
            .collect(),
        compared.iter().map(|&i| docs[i].bytes as f64).collect(),
    ];
    for t in toks {
        columns.push(
            compared
                .iter()
                .map(|&i| t.tokens[i].unwrap_or(0) as f64)
                .collect(),
        );
    }
    let all_rows: Vec<usize> = (0..compared.len()).collect();
    let overall = stats_of(&columns, &all_rows, k, input.baseline, b, b.seed);

    // Labels in order of first appearance.
    let mut labels: Vec<String> = Vec::new();
    for d in docs {
        if let Some(l) = &d.label {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
    }
    let per_label: Vec<(String, Vec<usize>, Stats)> = labels
        .iter()
        .enumerate()
        .map(|(li, l)| {
            let rows: Vec<usize> = compared
                .iter()
                .enumerate()
                .filter(|(_, &i)| docs[i].label.as_deref() == Some(l.as_str()))
                .map(|(r, _)| r)
                .collect();
            let seed = b.seed.wrapping_add(1 + li as u64);
            let s = stats_of(&columns, &rows, k, input.baseline, b, seed);
            (l.clone(), rows, s)
        })
        .collect();

    let mut notes = Vec::new();
    let excluded = docs.len() - compared.len();
    if excluded > 0 {
        notes.push(format!(
            "{excluded} of {} documents were not counted by every tokenizer and are left out of every statistic, so that all tokenizers are compared on the same text.",
            docs.len()
        ));
    }
    let mut results = Vec::with_capacity(k);
    for (ti, t) in toks.iter().enumerate() {
        let counted = t.tokens.iter().filter(|x| x.is_some()).count() as u64;
        let checked: Vec<(usize, bool)> = t
            .round_trip
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|ok| (i, ok)))
            .collect();
        let lossy: Vec<usize> = checked.iter().filter(|x| !x.1).map(|x| x.0).collect();
        let round_trip = RoundTrip {
            status: if checked.is_empty() {
                RoundTripStatus::NotChecked
            } else if lossy.is_empty() {
                RoundTripStatus::Exact
            } else {
                RoundTripStatus::Lossy
            },
            documents_checked: checked.len() as u64,
            documents_lossy: lossy.len() as u64,
            first_lossy_document: lossy.first().map(|&i| docs[i].id.clone()),
            reason: checked.is_empty().then(|| {
                t.info
                    .no_round_trip
                    .clone()
                    .unwrap_or_else(|| "round trip not requested (--no-round-trip)".into())
            }),
        };
        if round_trip.status == RoundTripStatus::Lossy {
            notes.push(format!(
                "{}: decode(encode(text)) differs from the text in {} of {} documents (first: {}): its counts are not comparable with a lossless tokenizer's.",
                t.label,
                lossy.len(),
                checked.len(),
                round_trip.first_lossy_document.as_deref().unwrap_or("?")
            ));
        }
        let overheads: Vec<i64> = t
            .chat_tokens
            .iter()
            .zip(&t.tokens)
            .filter_map(|(c, n)| Some((*c)? as i64 - (*n)? as i64))
            .collect();
        let chat_template = match (&t.info.chat_template, overheads.is_empty()) {
            (Some(src), false) => Some(ChatOverhead {
                source: src.clone(),
                documents: overheads.len() as u64,
                per_message_tokens_mean: overheads.iter().sum::<i64>() as f64
                    / overheads.len() as f64,
                per_message_tokens_min: *overheads.iter().min().unwrap_or(&0),
                per_message_tokens_max: *overheads.iter().max().unwrap_or(&0),
            }),
            _ => None,
        };
        let kv_cache = t.info.kv.as_ref().and_then(|kv| {
            let dtype = input.kv_dtype.unwrap_or(kv.dtype);
            let per_token = 2
                * u64::from(kv.layers)
                * u64::from(kv.kv_heads)
                * u64::from(kv.head_dim)
                * u64::from(dtype.bytes());
            let tpw = overall.per_word[ti]?;
            let scale = per_token as f64 * 1000.0;
            Some(KvCacheCost {
                source: kv.source.clone(),
                layers: kv.layers,
                kv_heads: kv.kv_heads,
                head_dim: kv.head_dim,
                dtype,
                bytes_per_token: per_token,
                bytes_per_1k_words: Interval {
                    estimate: tpw.estimate * scale,
                    low: tpw.low * scale,
                    high: tpw.high * scale,
                },
            })
        });
        let tokens = overall.tokens[ti];
        let all_counted: u64 = t.tokens.iter().flatten().sum();
        results.push(TokenizerResult {
            label: t.label.clone(),
            identity: t.info.identity.clone(),
            documents_counted: counted,
            documents_failed: docs.len() as u64 - counted,
            errors: t.errors.clone(),
            tokens,
            tokens_per_document_mean: (!compared.is_empty())
                .then(|| tokens as f64 / compared.len() as f64),
            tokens_per_word: overall.per_word[ti],
            tokens_per_character: overall.per_char[ti],
            tokens_per_byte: overall.per_byte[ti],
            relative_to_baseline: (!compared.is_empty())
                .then_some(overall.relative[ti])
                .flatten(),
            round_trip,
            chat_template,
            per_label: per_label
                .iter()
                .filter(|(_, rows, _)| !rows.is_empty())
                .map(|(l, rows, s)| LabelResult {
                    label: l.clone(),
                    documents: rows.len() as u64,
                    tokens: s.tokens[ti],
                    tokens_per_word: s.per_word[ti],
                    tokens_per_character: s.per_char[ti],
                    tokens_per_byte: s.per_byte[ti],
                    relative_to_baseline: s.relative[ti],
                })
                .collect(),
            kv_cache,
            counting_elapsed_s: t.elapsed_s,
            counting_tokens_per_s: (t.elapsed_s > 0.0).then(|| all_counted as f64 / t.elapsed_s),
        });
    }
    let cost = input.prices.map(|p| price(p, &results));
    if let Some(c) = &cost {
        let priced: Vec<&str> = c.prices.iter().map(|p| p.tokenizer.as_str()).collect();
        let unpriced: Vec<&str> = results
            .iter()
            .map(|r| r.label.as_str())
            .filter(|l| !priced.contains(l))
            .collect();
        if !unpriced.is_empty() {
            notes.push(format!(
                "No price in the cost file for: {} (a [[cloud_api]] entry applies to the tokenizer its `tokenizer` key, else its `name`, names).",
                unpriced.join(", ")
            ));
        }
    }
    let sum = |f: fn(&DocStats) -> u64| docs.iter().map(f).sum::<u64>();
    let label_totals = labels
        .iter()
        .map(|l| {
            let ds = docs
                .iter()
                .filter(|d| d.label.as_deref() == Some(l.as_str()));
            let mut t = LabelTotals {
                label: l.clone(),
                documents: 0,
                words: 0,
                characters: 0,
                bytes: 0,
            };
            for d in ds {
                t.documents += 1;
                t.words += d.words;
                t.characters += d.characters;
                t.bytes += d.bytes;
            }
            t
        })
        .collect();
    TokensRecord {
        schema_version: TOKENS_SCHEMA_VERSION,
        tool: input.tool,
        host: input.host,
        started_at: input.started_at,
        elapsed_s: input.elapsed_s,
        threads: input.threads,
        corpus: CorpusRecord {
            name: input.corpus_name,
            license: input.license,
            documents: docs.len() as u64,
            documents_compared: compared.len() as u64,
            words: sum(|d| d.words),
            characters: sum(|d| d.characters),
            bytes: sum(|d| d.bytes),
            labels: label_totals,
        },
        word_definition: input.word_definition,
        baseline: toks
            .get(input.baseline)
            .map(|t| t.label.clone())
            .unwrap_or_default(),
        bootstrap: input.bootstrap,
        tokenizers: results,
        cost,
        notes,
    }
}

/// Add token-efficiency records to a charter (`charter report` given a `charter tokens` run):
/// their headline sentences, their sections, and, where a profiled run's model file is the
/// file a tokenizer came from (same sha256) and the run measured RAM per 1k tokens of live
/// context, that RAM per 1k words of the corpus.
pub fn attach(
    ch: &mut crate::charter::Charter,
    records: Vec<TokensRecord>,
    runs: &[crate::charter::LoadedRun],
) {
    for r in &records {
        ch.headline.extend(render::headline(r));
        for (run, rc) in runs.iter().zip(&ch.runs) {
            let shas: Vec<&str> = match &run.record.backend.weights {
                charter_record::WeightsProvenance::Files { files, .. } => {
                    files.iter().map(|f| f.sha256.as_str()).collect()
                }
                _ => Vec::new(),
            };
            let Some(per_1k_tokens) = rc.levels.iter().find_map(|l| l.ram_per_1k_tokens_bytes)
            else {
                continue;
            };
            for t in &r.tokenizers {
                let same_file = t
                    .identity
                    .sha256
                    .as_deref()
                    .is_some_and(|s| shas.contains(&s));
                if let (true, Some(tpw)) = (same_file, t.tokens_per_word) {
                    ch.headline.push(format!(
                        "RAM: {} measured {} per 1k tokens of live context; at {:.3} tokens per word on corpus `{}` that is {} per 1k words.",
                        rc.backend,
                        crate::summary::signed_human_bytes(per_1k_tokens),
                        tpw.estimate,
                        r.corpus.name,
                        crate::summary::signed_human_bytes(per_1k_tokens * tpw.estimate)
                    ));
                }
            }
        }
    }
    ch.tokens.extend(records);
}

/// Prices per tokenizer from a cost file's `[[cloud_api]]` entries.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceList {
    pub currency: String,
    pub example: bool,
    pub entries: Vec<CloudApi>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PricesOnly {
    #[serde(default)]
    example: bool,
    #[serde(default = "usd")]
    currency: String,
    #[serde(default)]
    cloud_api: Vec<CloudApi>,
}

fn usd() -> String {
    "USD".into()
}

impl PriceList {
    /// Read a cost file: a whole `cost.toml` (checked as `charter report --cost` checks it), or
    /// one holding only `currency`, `example` and `[[cloud_api]]` entries.
    pub fn from_path(path: &Path) -> Result<Self, CostError> {
        let text = std::fs::read_to_string(path).map_err(|source| CostError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text, path)
    }

    pub fn from_str(text: &str, path: &Path) -> Result<Self, CostError> {
        let invalid = |line, message: String| CostError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let whole = text.lines().any(|l| l.trim_start().starts_with("[onprem]"));
        let list = if whole {
            let c = CostConfig::from_str(text, path)?;
            PriceList {
                currency: c.currency,
                example: c.example,
                entries: c.cloud_api,
            }
        } else {
            let p: PricesOnly = toml::from_str(text).map_err(|e| {
                let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
                invalid(line, e.message().trim().to_string())
            })?;
            for (i, a) in p.cloud_api.iter().enumerate() {
                for (key, v) in [
                    ("input_per_1m", a.input_per_1m),
                    ("output_per_1m", a.output_per_1m),
                ] {
                    if !(v.is_finite() && v >= 0.0) {
                        return Err(invalid(
                            None,
                            format!("key `cloud_api[{i}].{key}` is {v}; expected a number ≥ 0"),
                        ));
                    }
                }
            }
            PriceList {
                currency: p.currency,
                example: p.example,
                entries: p.cloud_api,
            }
        };
        if list.entries.is_empty() {
            return Err(invalid(
                None,
                "no [[cloud_api]] entry: `charter tokens --cost` prices tokens with them".into(),
            ));
        }
        Ok(list)
    }

    /// The entries that price the tokenizer labelled `label`.
    pub fn for_label<'a>(&'a self, label: &'a str) -> impl Iterator<Item = &'a CloudApi> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.tokenizer.as_deref().unwrap_or(&e.name) == label)
    }
}

fn price(p: &PriceList, results: &[TokenizerResult]) -> TokensCost {
    let mut prices = Vec::new();
    for r in results {
        for e in p.for_label(&r.label) {
            let scale = |per_1m: f64| {
                r.tokens_per_word.map(|i| Interval {
                    estimate: i.estimate * per_1m,
                    low: i.low * per_1m,
                    high: i.high * per_1m,
                })
            };
            prices.push(TokenPrice {
                tokenizer: r.label.clone(),
                name: e.name.clone(),
                input_per_1m_tokens: e.input_per_1m,
                output_per_1m_tokens: e.output_per_1m,
                // tokens/word × 1M words × price per 1M tokens = tokens/word × price.
                input_per_1m_words: scale(e.input_per_1m),
                input_per_document_mean: r
                    .tokens_per_document_mean
                    .map(|t| t * e.input_per_1m / 1e6),
                output_per_1m_words: scale(e.output_per_1m),
                source: e.source.clone(),
                date: e.date.clone(),
            });
        }
    }
    TokensCost {
        currency: p.currency.clone(),
        example_figures: p.example,
        prices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(words: u64, label: Option<&str>) -> DocStats {
        DocStats {
            id: format!("d{words}"),
            label: label.map(str::to_string),
            words,
            characters: words * 5,
            bytes: words * 6,
        }
    }

    fn counts(label: &str, tokens: Vec<Option<u64>>) -> TokenizerCounts {
        let n = tokens.len();
        TokenizerCounts {
            label: label.into(),
            info: CounterInfo {
                identity: TokenizerIdentity {
                    kind: TokenizerKind::Tiktoken,
                    source: "test".into(),
                    sha256: None,
                    vocab_size: None,
                    model: None,
                    api_key_env: None,
                    count_method: "test".into(),
                },
                chat_template: None,
                no_round_trip: None,
                kv: None,
            },
            tokens,
            round_trip: vec![Some(true); n],
            chat_tokens: vec![None; n],
            errors: BTreeMap::new(),
            elapsed_s: 1.0,
        }
    }

    fn input<'a>(docs: &'a [DocStats], toks: &'a [TokenizerCounts]) -> BuildInput<'a> {
        BuildInput {
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
                logical_cores: 1,
                physical_cores: None,
                total_memory_bytes: 0,
            },
            started_at: "t".into(),
            elapsed_s: 1.0,
            threads: 1,
            corpus_name: "test".into(),
            license: None,
            word_definition: "test".into(),
            docs,
            tokenizers: toks,
            baseline: 0,
            bootstrap: BootstrapSettings {
                resamples: 400,
                seed: 7,
                confidence: 0.95,
            },
            prices: None,
            kv_dtype: None,
        }
    }

    /// Deterministic per-document token counts around `rate` tokens per word (±20 %).
    fn synthetic(n: usize, rate: f64) -> (Vec<DocStats>, Vec<Option<u64>>) {
        let docs: Vec<DocStats> = (0..n)
            .map(|i| doc(20 + (i as u64 * 7) % 60, None))
            .collect();
        let toks = docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let wobble = 0.8 + 0.4 * ((i * 7919) % 101) as f64 / 100.0;
                Some((d.words as f64 * rate * wobble).round() as u64)
            })
            .collect();
        (docs, toks)
    }

    #[test]
    fn a_tokenizer_against_itself_differs_by_exactly_zero() {
        let (docs, t) = synthetic(50, 1.3);
        let toks = [counts("a", t.clone()), counts("a-again", t)];
        let r = build(input(&docs, &toks));
        for res in &r.tokenizers {
            let rel = res.relative_to_baseline.unwrap();
            assert_eq!((rel.estimate, rel.low, rel.high), (0.0, 0.0, 0.0));
        }
        assert_eq!(r.baseline, "a");
    }

    #[test]
    fn the_interval_shrinks_with_corpus_size() {
        let width = |n: usize| {
            let (docs, t) = synthetic(n, 1.3);
            let (_, u) = synthetic(n, 1.0);
            let toks = [counts("a", t), counts("b", u)];
            let r = build(input(&docs, &toks));
            let tpw = r.tokenizers[0].tokens_per_word.unwrap();
            let rel = r.tokenizers[1].relative_to_baseline.unwrap();
            assert!(
                tpw.low <= tpw.estimate && tpw.estimate <= tpw.high,
                "{tpw:?}"
            );
            assert!((tpw.estimate - 1.3).abs() < 0.1, "{tpw:?}");
            (tpw.high - tpw.low, rel.high - rel.low)
        };
        let (w20, r20) = width(20);
        let (w200, r200) = width(200);
        let (w2000, r2000) = width(2000);
        assert!(w20 > w200 && w200 > w2000, "{w20} {w200} {w2000}");
        assert!(r20 > r200 && r200 > r2000, "{r20} {r200} {r2000}");
        // Roughly 1/√n: ten times the documents, about a third of the width.
        assert!(w2000 < w20 / 5.0, "{w20} {w2000}");
    }

    #[test]
    fn known_ratios_and_labels_and_failed_documents() {
        let docs = vec![
            doc(10, Some("en")),
            doc(10, Some("en")),
            doc(20, Some("de")),
            doc(30, Some("de")),
        ];
        // b needs 25 % fewer tokens than a on every document; its third document failed.
        let a = counts("a", vec![Some(20), Some(20), Some(40), Some(60)]);
        let mut b = counts("b", vec![Some(15), Some(15), None, Some(45)]);
        b.round_trip = vec![Some(true), Some(false), None, Some(true)];
        let toks = [a, b];
        let r = build(input(&docs, &toks));
        assert_eq!(r.corpus.documents_compared, 3);
        assert_eq!(r.tokenizers[0].tokens, 100);
        assert_eq!(r.tokenizers[1].tokens, 75);
        let rel = r.tokenizers[1].relative_to_baseline.unwrap();
        assert!((rel.estimate + 0.25).abs() < 1e-12, "{rel:?}");
        // Every resample has the same ratio: a degenerate interval.
        assert!((rel.low + 0.25).abs() < 1e-12 && (rel.high + 0.25).abs() < 1e-12);
        assert!((r.tokenizers[0].tokens_per_word.unwrap().estimate - 2.0).abs() < 1e-12);
        assert_eq!(r.tokenizers[1].documents_failed, 1);
        assert_eq!(r.tokenizers[1].round_trip.status, RoundTripStatus::Lossy);
        assert_eq!(
            r.tokenizers[1].round_trip.first_lossy_document.as_deref(),
            Some("d10")
        );
        let labels: Vec<(&str, u64)> = r.tokenizers[0]
            .per_label
            .iter()
            .map(|l| (l.label.as_str(), l.documents))
            .collect();
        assert_eq!(labels, [("en", 2), ("de", 1)]);
        assert!(r.notes.iter().any(|n| n.contains("1 of 4 documents")));
        assert!(r.notes.iter().any(|n| n.contains("not comparable")));
    }

    #[test]
    fn cost_and_kv_cache_scale_tokens_per_word() {
        let docs = vec![doc(100, None), doc(100, None)];
        let mut a = counts("a", vec![Some(150), Some(150)]);
        a.info.kv = Some(KvShape {
            source: "t".into(),
            layers: 30,
            kv_heads: 3,
            head_dim: 64,
            dtype: KvDtype::F16,
        });
        let toks = [a];
        let prices = PriceList::from_str(
            "currency = \"EUR\"\n[[cloud_api]]\nname = \"api\"\ntokenizer = \"a\"\ninput_per_1m = 2.0\noutput_per_1m = 8.0\nsource = \"s\"\ndate = \"d\"\n",
            Path::new("p.toml"),
        )
        .unwrap();
        let mut inp = input(&docs, &toks);
        inp.prices = Some(&prices);
        let r = build(inp);
        let kv = r.tokenizers[0].kv_cache.as_ref().unwrap();
        // 2 × 30 × 3 × 64 × 2 bytes = 23,040 bytes per token; 1.5 tokens per word.
        assert_eq!(kv.bytes_per_token, 23_040);
        assert!((kv.bytes_per_1k_words.estimate - 23_040.0 * 1.5 * 1000.0).abs() < 1e-6);
        let p = &r.cost.as_ref().unwrap().prices[0];
        assert!((p.input_per_1m_words.unwrap().estimate - 3.0).abs() < 1e-12);
        assert!((p.output_per_1m_words.unwrap().estimate - 12.0).abs() < 1e-12);
        assert!((p.input_per_document_mean.unwrap() - 150.0 * 2.0 / 1e6).abs() < 1e-15);
    }

    #[test]
    fn every_rendering_says_the_relative_difference() {
        use crate::export::{Export, Format, TokensDoc, Unsupported};
        let docs = vec![
            doc(10, Some("en")),
            doc(20, Some("de")),
            doc(30, Some("de")),
        ];
        let toks = [
            counts("a", vec![Some(20), Some(40), Some(60)]),
            counts("b", vec![Some(15), Some(30), Some(45)]),
        ];
        let r = build(input(&docs, &toks));
        let chart = render::chart(&r, None).unwrap();
        let doc = TokensDoc {
            record: &r,
            chart: Some(&chart),
        };
        let names: Vec<String> = doc.files().into_iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            ["tokens.json", "tokens.md", "tokens.html", "tokens.csv"]
        );
        for (name, format) in doc.files() {
            let text = doc.export(format).unwrap();
            if format != Format::Json && format != Format::Csv {
                assert!(
                    text.contains("b needs 25.0 % ± 0.0 % fewer tokens than a"),
                    "{name}: {text}"
                );
            }
        }
        let console = doc.export(Format::Console).unwrap();
        assert!(
            console.contains("a (baseline)") && console.contains("−25.0 %"),
            "{console}"
        );
        let csv = doc.export(Format::Csv).unwrap();
        // Header, then per tokenizer the whole corpus and its two labels.
        assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
        let html = doc.export(Format::Html).unwrap();
        assert!(html.contains("<svg") && !html.contains("http://") && !html.contains("https://"));
        let back: TokensRecord = serde_json::from_str(&doc.export(Format::Json).unwrap()).unwrap();
        assert_eq!(back.tokenizers[1].tokens, 90);
        assert_eq!(
            doc.export(Format::Junit),
            Err(Unsupported {
                document: "the token-efficiency record",
                format: Format::Junit
            })
        );
    }

    #[test]
    fn price_lists_are_checked() {
        let e = PriceList::from_str("currency = \"EUR\"\n", Path::new("p.toml")).unwrap_err();
        assert!(e.to_string().contains("p.toml"), "{e}");
        assert!(e.to_string().contains("no [[cloud_api]]"), "{e}");
        let e = PriceList::from_str(
            "[[cloud_api]]\nname = \"x\"\ninput_per_1m = -1.0\noutput_per_1m = 1.0\nsource = \"s\"\ndate = \"d\"\n",
            Path::new("p.toml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("cloud_api[0].input_per_1m"), "{e}");
        let whole = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../cost.example.toml"),
        )
        .unwrap();
        let p = PriceList::from_str(&whole, Path::new("cost.example.toml")).unwrap();
        assert!(p.example && !p.entries.is_empty());
    }
}
