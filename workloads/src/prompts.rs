//! Prompt sources: synthetic token ids, the built-in corpus, JSONL files, ShareGPT files, shared
//! prefixes ([`crate::prefix`]) and trace rows ([`crate::trace`]).
//!
//! Files are read and checked completely before a run starts: an empty file, a malformed line
//! or an entry without a prompt is an error naming the file and line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use charter_backends::{ChatMessage, Prompt};
use rand::SeedableRng;

use crate::lengths::LengthDist;
use crate::prefix::{Block, SharedPrefix};
use crate::trace::{random_ids, Trace};

/// The built-in corpus (JSONL, one `{"prompt": ...}` per line); see `corpus/LICENSE.md`.
pub const CORPUS_JSONL: &str = include_str!("../corpus/prompts.jsonl");
/// Where the corpus text comes from and under which licence.
pub const CORPUS_LICENSE: &str =
    "charter built-in corpus: prompts written for charter by its authors, CC0-1.0";

/// One prompt from a file or the corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptEntry {
    pub prompt: Prompt,
    /// Output cap given by the file (JSONL `max_tokens`), if any.
    pub max_tokens: Option<u32>,
}

/// Where prompts come from.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptSource {
    /// `tokens` ids per prompt, drawn uniformly from the backend's non-special vocabulary.
    Synthetic { tokens: LengthDist },
    /// Prompts replayed in file order (request i uses entry i mod n).
    Entries {
        /// `corpus`, `jsonl:PATH` or `sharegpt:PATH`.
        name: String,
        entries: Vec<PromptEntry>,
    },
    /// Synthetic ids after one of a few shared prefixes.
    SharedPrefix(SharedPrefix),
    /// Trace rows: request i is row i (mod the rows), its output cap the row's output length.
    Trace(Arc<Trace>),
}

/// A prompt-file problem, naming the file and line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}{}: {what}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct PromptFileError {
    pub path: String,
    pub line: Option<usize>,
    pub what: String,
}

impl PromptSource {
    /// The built-in corpus, as single-turn user messages (chat-templated by backends that
    /// have a template, sent as messages by chat APIs).
    pub fn corpus() -> Self {
        let entries = parse_jsonl(CORPUS_JSONL, "built-in corpus")
            .expect("the built-in corpus is valid JSONL (tested)")
            .into_iter()
            .map(|e| PromptEntry {
                prompt: match e.prompt {
                    Prompt::Text(content) => Prompt::Chat(vec![ChatMessage {
                        role: "user".into(),
                        content,
                    }]),
                    other => other,
                },
                max_tokens: e.max_tokens,
            })
            .collect();
        PromptSource::Entries {
            name: "corpus".into(),
            entries,
        }
    }

    /// A JSONL file: `{"prompt": "...", "max_tokens": N}` or `{"messages": [...]}` per line.
    pub fn jsonl(path: &Path) -> Result<Self, PromptFileError> {
        let text = read(path)?;
        Ok(PromptSource::Entries {
            name: format!("jsonl:{}", path.display()),
            entries: parse_jsonl(&text, &path.display().to_string())?,
        })
    }

    /// A ShareGPT file: a JSON array of `{"conversations": [{"from": "human", "value": ...}, ...]}`.
    /// Each conversation up to its first human turn becomes a chat prompt.
    pub fn sharegpt(path: &Path) -> Result<Self, PromptFileError> {
        let text = read(path)?;
        Ok(PromptSource::Entries {
            name: format!("sharegpt:{}", path.display()),
            entries: parse_sharegpt(&text, &path.display().to_string())?,
        })
    }

    /// A short description for records.
    pub fn describe(&self) -> String {
        match self {
            PromptSource::Synthetic { tokens } => format!("synthetic-tokens ({tokens} tokens)"),
            PromptSource::Entries { name, entries } => {
                format!("{name} ({} prompts)", entries.len())
            }
            PromptSource::SharedPrefix(s) => format!(
                "shared-prefix ({} groups × {} prefix tokens, then synthetic-tokens ({} tokens))",
                s.groups, s.prefix_tokens, s.suffix
            ),
            PromptSource::Trace(t) => format!(
                "trace {}:{} ({} rows, synthetic tokens)",
                t.format,
                t.path.display(),
                t.rows.len()
            ),
        }
    }

    /// Prompt (and file-given output cap) of request `index`: deterministic in `(seed, index)`.
    pub fn prompt(&self, index: u64, seed: u64, vocab: &[u32]) -> (Prompt, Option<u32>) {
        match self {
            PromptSource::Synthetic { tokens } => {
                let mut rng = request_rng(seed, index);
                let n = tokens.sample(&mut rng);
                (Prompt::Tokens(random_ids(&mut rng, n, vocab)), None)
            }
            PromptSource::Entries { entries, .. } => {
                let e = &entries[(index % entries.len() as u64) as usize];
                (e.prompt.clone(), e.max_tokens)
            }
            PromptSource::SharedPrefix(s) => {
                (Prompt::Tokens(s.prompt_ids(index, seed, vocab)), None)
            }
            PromptSource::Trace(t) => (
                Prompt::Tokens(t.prompt_ids(index, seed, vocab)),
                Some(t.row(index).output_tokens),
            ),
        }
    }

    /// Request `index`'s prompt as blocks with prefix keys, for the ideal prefix cache
    /// ([`crate::prefix::IdealPrefixCache`]); `None` for sources without shared prefixes.
    pub fn prefix_blocks(&self, index: u64, seed: u64) -> Option<Vec<Block>> {
        match self {
            PromptSource::SharedPrefix(s) => Some(s.blocks(index, seed).to_vec()),
            PromptSource::Trace(t) => Some(t.blocks(index)),
            _ => None,
        }
    }

    /// The share of prompt tokens an ideal prefix cache would serve over requests
    /// `0..requests` in order; `None` for sources without shared prefixes.
    pub fn ideal_prefix_hit_rate(&self, requests: u64, seed: u64) -> Option<f64> {
        let mut cache = crate::prefix::IdealPrefixCache::default();
        for i in 0..requests {
            cache.add(&self.prefix_blocks(i, seed)?);
        }
        cache.hit_rate()
    }

    pub fn needs_tokenizer(&self) -> bool {
        matches!(self, PromptSource::Entries { .. })
    }
}

/// A per-request RNG: independent streams for each request index.
pub fn request_rng(seed: u64, index: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(
        seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

fn read(path: &Path) -> Result<String, PromptFileError> {
    std::fs::read_to_string(path).map_err(|e| PromptFileError {
        path: path.display().to_string(),
        line: None,
        what: format!("cannot read prompt file: {e}"),
    })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlLine {
    prompt: Option<String>,
    messages: Option<Vec<ChatMessage>>,
    max_tokens: Option<u32>,
}

fn parse_jsonl(text: &str, origin: &str) -> Result<Vec<PromptEntry>, PromptFileError> {
    let err = |line: usize, what: String| PromptFileError {
        path: origin.to_string(),
        line: Some(line),
        what,
    };
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let l: JsonlLine = serde_json::from_str(raw).map_err(|e| {
            // serde counts within this one line: report the column only.
            let what = e.to_string().replace(" at line 1 column ", " at column ");
            err(line, format!("malformed JSONL line: {what} (expected {{\"prompt\": \"...\", \"max_tokens\": N}} or {{\"messages\": [{{\"role\": ..., \"content\": ...}}]}})"))
        })?;
        let prompt = match (l.prompt, l.messages) {
            (Some(p), None) if !p.is_empty() => Prompt::Text(p),
            (None, Some(m)) if !m.is_empty() => Prompt::Chat(m),
            (Some(_), Some(_)) => {
                return Err(err(
                    line,
                    "has both `prompt` and `messages`; expected one".into(),
                ))
            }
            _ => return Err(err(line, "has no non-empty `prompt` or `messages`".into())),
        };
        if l.max_tokens == Some(0) {
            return Err(err(line, "`max_tokens` is 0; expected at least 1".into()));
        }
        out.push(PromptEntry {
            prompt,
            max_tokens: l.max_tokens,
        });
    }
    if out.is_empty() {
        return Err(PromptFileError {
            path: origin.to_string(),
            line: None,
            what: "prompt file is empty; expected at least one prompt".into(),
        });
    }
    Ok(out)
}

#[derive(serde::Deserialize)]
struct ShareGptConversation {
    conversations: Vec<ShareGptTurn>,
}

#[derive(serde::Deserialize)]
struct ShareGptTurn {
    from: String,
    value: String,
}

fn parse_sharegpt(text: &str, origin: &str) -> Result<Vec<PromptEntry>, PromptFileError> {
    let convs: Vec<ShareGptConversation> = serde_json::from_str(text).map_err(|e| PromptFileError {
        path: origin.to_string(),
        line: Some(e.line()),
        what: format!(
            "malformed ShareGPT file: {e} (expected a JSON array of {{\"conversations\": [{{\"from\": \"human\", \"value\": \"...\"}}, ...]}})"
        ),
    })?;
    let mut out = Vec::new();
    for c in convs {
        let mut messages = Vec::new();
        for t in &c.conversations {
            let role = match t.from.as_str() {
                "human" | "user" => "user",
                "gpt" | "assistant" | "chatgpt" | "bard" => "assistant",
                "system" => "system",
                _ => continue,
            };
            messages.push(ChatMessage {
                role: role.into(),
                content: t.value.clone(),
            });
            if role == "user" {
                break;
            }
        }
        if messages
            .last()
            .is_some_and(|m| m.role == "user" && !m.content.is_empty())
        {
            out.push(PromptEntry {
                prompt: Prompt::Chat(messages),
                max_tokens: None,
            });
        }
    }
    if out.is_empty() {
        return Err(PromptFileError {
            path: origin.to_string(),
            line: None,
            what: "no conversation with a human turn; expected at least one".into(),
        });
    }
    Ok(out)
}

/// Where a `--prompts` value points.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptSpec {
    Synthetic,
    Corpus,
    Jsonl(PathBuf),
    ShareGpt(PathBuf),
}

impl std::str::FromStr for PromptSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "synthetic" => PromptSpec::Synthetic,
            "corpus" => PromptSpec::Corpus,
            _ => {
                if let Some(p) = s.strip_prefix("sharegpt:") {
                    PromptSpec::ShareGpt(PathBuf::from(p))
                } else if let Some(p) = s.strip_prefix("jsonl:") {
                    PromptSpec::Jsonl(PathBuf::from(p))
                } else if s.ends_with(".jsonl") {
                    PromptSpec::Jsonl(PathBuf::from(s))
                } else {
                    return Err(format!(
                        "`{s}`: expected synthetic, corpus, a .jsonl file (or jsonl:PATH), or sharegpt:PATH"
                    ));
                }
            }
        })
    }
}

impl std::fmt::Display for PromptSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PromptSpec::Synthetic => f.write_str("synthetic"),
            PromptSpec::Corpus => f.write_str("corpus"),
            PromptSpec::Jsonl(p) => write!(f, "jsonl:{}", p.display()),
            PromptSpec::ShareGpt(p) => write!(f, "sharegpt:{}", p.display()),
        }
    }
}

impl PromptSpec {
    /// The same source with a relative prompt-file path taken from `base` (a scenario's
    /// directory).
    pub fn rebased(&self, base: &std::path::Path) -> PromptSpec {
        match self {
            PromptSpec::Jsonl(p) => PromptSpec::Jsonl(base.join(p)),
            PromptSpec::ShareGpt(p) => PromptSpec::ShareGpt(base.join(p)),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_valid_and_sizeable() {
        let PromptSource::Entries { entries, .. } = PromptSource::corpus() else {
            panic!("corpus is entries")
        };
        assert!(entries.len() >= 30, "{}", entries.len());
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let e = parse_jsonl("{\"prompt\": \"a\"}\n{not json}\n", "f.jsonl").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.to_string().starts_with("f.jsonl:2: malformed JSONL line"));
        let e = parse_jsonl("\n\n", "empty.jsonl").unwrap_err();
        assert!(e.to_string().contains("empty"));
        let e = parse_jsonl("{\"max_tokens\": 3}", "f.jsonl").unwrap_err();
        assert!(e.to_string().contains("no non-empty `prompt`"));
        let ok = parse_jsonl(
            "{\"prompt\": \"hi\", \"max_tokens\": 5}\n{\"messages\": [{\"role\": \"user\", \"content\": \"yo\"}]}",
            "f",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].max_tokens, Some(5));
        assert!(matches!(&ok[1].prompt, Prompt::Chat(m) if m[0].content == "yo"));
    }

    #[test]
    fn sharegpt_takes_up_to_first_human_turn() {
        let text = r#"[{"id":"a","conversations":[{"from":"system","value":"be brief"},{"from":"human","value":"hello"},{"from":"gpt","value":"hi"}]},
                       {"conversations":[{"from":"gpt","value":"orphan"}]}]"#;
        let e = parse_sharegpt(text, "s.json").unwrap();
        assert_eq!(e.len(), 1);
        let Prompt::Chat(m) = &e[0].prompt else {
            panic!()
        };
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].content, "hello");
        assert!(parse_sharegpt("[]", "s.json").is_err());
        assert!(parse_sharegpt("{", "s.json").unwrap_err().line.is_some());
    }

    #[test]
    fn synthetic_prompts_are_deterministic_and_follow_lengths() {
        let vocab: Vec<u32> = (10..500).collect();
        let src = PromptSource::Synthetic {
            tokens: LengthDist::Uniform { min: 5, max: 9 },
        };
        let (a, _) = src.prompt(5, 3, &vocab);
        assert_eq!(a, src.prompt(5, 3, &vocab).0);
        let Prompt::Tokens(ids) = a else { panic!() };
        assert!((5..=9).contains(&ids.len()));
        assert!(ids.iter().all(|t| (10..500).contains(t)));
    }
}
