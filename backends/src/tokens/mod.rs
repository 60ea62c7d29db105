//! Token counters for `charter tokens`: a tokenizer named by a SPEC, loaded once and asked how
//! many tokens a text is (content only: no special tokens added), whether the text comes back
//! from its tokens unchanged, and how many tokens its chat template adds around a message.
//!
//! SPECs (`[NAME=]SPEC`; NAME labels the tokenizer in reports):
//! - `path/to/tokenizer.json` (or a directory holding one): Hugging Face tokenizers; a
//!   `tokenizer_config.json` beside it gives the chat template, a `config.json` the KV-cache
//!   shape;
//! - `path/to/model.gguf`: the tokenizer in the GGUF metadata (as the candle backend loads
//!   it), its chat template and KV-cache shape;
//! - `cl100k_base`, `o200k_base`: tiktoken encodings shipped inside `tiktoken-rs` (no download);
//! - `path/to/NAME.tiktoken`: a tiktoken ranks file, with the pre-tokenizer pattern of the
//!   encoding its file name names (`cl100k_base`, `o200k_base`, `r50k_base`, `p50k_base`);
//! - `anthropic:MODEL[@BASE_URL]`: Anthropic's `/v1/messages/count_tokens`;
//! - `vllm:MODEL@BASE_URL`: vLLM's `/tokenize` (and `/detokenize` for the round trip);
//! - `llamacpp:BASE_URL`: llama.cpp server's `/tokenize` (and `/detokenize`).
//!
//! SentencePiece `.model` files are refused with the reason: the only maintained pure-Rust
//! reader (`kitoken`, through `sentencepiece-model`) compiles protobuf definitions at build
//! time, ~30 more crates, for a format whose models also ship as `tokenizer.json` or GGUF.

mod local;
mod remote;

use std::path::{Path, PathBuf};

pub use charter_record::tokens::{CounterInfo, KvDtype, KvShape, TokenizerIdentity, TokenizerKind};

pub use local::{HfCounter, TiktokenCounter, TiktokenEncoding};
pub use remote::RemoteCounter;

/// A SPEC that cannot be used, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tokenizer SPEC `{spec}`: {what}")]
pub struct SpecError {
    pub spec: String,
    pub what: String,
}

/// A document that could not be counted (a failed request, an encoder error); credentials are
/// scrubbed from the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CountError(pub String);

/// One document's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Content tokens (no special tokens added).
    pub tokens: u64,
    /// decode(encode(text)) == text, when checked.
    pub round_trip: Option<bool>,
}

/// A loaded tokenizer.
pub trait TokenCounter: Send + Sync {
    fn info(&self) -> &CounterInfo;
    /// Content tokens of `text`; with `round_trip`, also whether the tokens decode to `text`.
    fn count(&self, text: &str, round_trip: bool) -> Result<Count, CountError>;
    /// Tokens of `text` as one user message through the chat template (with the assistant
    /// prompt after it); `None` without a template.
    fn count_chat(&self, text: &str) -> Option<Result<u64, CountError>>;
}

/// Where a SPEC points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecSource {
    HfJson(PathBuf),
    Gguf(PathBuf),
    Tiktoken(TiktokenEncoding),
    TiktokenFile {
        path: PathBuf,
        pattern: TiktokenEncoding,
    },
    Remote {
        kind: TokenizerKind,
        base_url: String,
        model: Option<String>,
    },
}

/// A parsed SPEC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerSpec {
    /// As given on the command line.
    pub spec: String,
    pub label: String,
    pub source: SpecSource,
}

const FORMS: &str = "expected a tokenizer.json, a .gguf file, a .tiktoken file, cl100k_base, o200k_base, anthropic:MODEL[@URL], vllm:MODEL@URL or llamacpp:URL, optionally prefixed by NAME=";

/// Default Anthropic API base.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

impl TokenizerSpec {
    /// Parse `[NAME=]SPEC` (files must exist).
    pub fn parse(spec: &str) -> Result<Self, SpecError> {
        let bad = |what: String| SpecError {
            spec: spec.to_string(),
            what,
        };
        let (label, body) = match spec.split_once('=') {
            Some((name, rest))
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || "._-+ ".contains(c)) =>
            {
                (Some(name.trim().to_string()), rest)
            }
            _ => (None, spec),
        };
        if body.trim().is_empty() {
            return Err(bad(format!("empty; {FORMS}")));
        }
        let url_ok = |u: &str| -> Result<String, SpecError> {
            let parsed = reqwest::Url::parse(u)
                .map_err(|_| bad(format!("`{u}` is not an http:// or https:// URL")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(bad(format!("`{u}` is not an http:// or https:// URL")));
            }
            Ok(u.trim_end_matches('/').to_string())
        };
        let source = if let Some(enc) = TiktokenEncoding::from_name(body) {
            SpecSource::Tiktoken(enc)
        } else if let Some(rest) = body.strip_prefix("anthropic:") {
            let (model, url) = match rest.split_once('@') {
                Some((m, u)) => (m, url_ok(u)?),
                None => (rest, ANTHROPIC_BASE_URL.to_string()),
            };
            if model.is_empty() {
                return Err(bad(
                    "anthropic: needs a model, e.g. anthropic:claude-sonnet-4-5".into(),
                ));
            }
            SpecSource::Remote {
                kind: TokenizerKind::AnthropicCountTokens,
                base_url: url,
                model: Some(model.to_string()),
            }
        } else if let Some(rest) = body.strip_prefix("vllm:") {
            let Some((model, url)) = rest.split_once('@') else {
                return Err(bad(
                    "vllm: needs MODEL@URL, e.g. vllm:Qwen/Qwen3-0.6B@http://127.0.0.1:8000".into(),
                ));
            };
            if model.is_empty() {
                return Err(bad("vllm: needs a model name before @".into()));
            }
            SpecSource::Remote {
                kind: TokenizerKind::VllmTokenize,
                base_url: url_ok(url)?,
                model: Some(model.to_string()),
            }
        } else if let Some(url) = body.strip_prefix("llamacpp:") {
            SpecSource::Remote {
                kind: TokenizerKind::LlamacppTokenize,
                base_url: url_ok(url)?,
                model: None,
            }
        } else {
            let path = PathBuf::from(body);
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if ext == "model" {
                return Err(bad("SentencePiece .model files are not read: no maintained pure-Rust reader without a build-time protobuf compiler; use the model's tokenizer.json or GGUF file instead".into()));
            }
            if !path.exists() {
                return Err(bad(format!("no such file or directory; {FORMS}")));
            }
            if path.is_dir() {
                let json = path.join("tokenizer.json");
                if !json.is_file() {
                    return Err(bad("directory without a tokenizer.json".into()));
                }
                SpecSource::HfJson(json)
            } else {
                match ext.as_str() {
                    "json" => SpecSource::HfJson(path),
                    "gguf" => SpecSource::Gguf(path),
                    "tiktoken" => {
                        let stem = path
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let pattern = TiktokenEncoding::pattern_for_file(&stem).ok_or_else(|| {
                            bad("cannot tell which pre-tokenizer pattern the ranks file uses: name it after its encoding (cl100k_base.tiktoken, o200k_base.tiktoken, r50k_base.tiktoken or p50k_base.tiktoken)".into())
                        })?;
                        SpecSource::TiktokenFile { path, pattern }
                    }
                    _ => return Err(bad(format!("unknown file type; {FORMS}"))),
                }
            }
        };
        let label = label.unwrap_or_else(|| default_label(&source));
        Ok(TokenizerSpec {
            spec: spec.to_string(),
            label,
            source,
        })
    }

    /// Load the tokenizer (remote: build the client and send one probe request). `api_key_env`
    /// names the variable holding the key for remote endpoints.
    /// Load the counter; a remote one sends the key from `api_key_env` (over plain http:// to
    /// another host only with `allow_plaintext_key`).
    pub fn load(
        &self,
        api_key_env: Option<&str>,
        allow_plaintext_key: bool,
    ) -> Result<Box<dyn TokenCounter>, SpecError> {
        let wrap = |what: String| SpecError {
            spec: self.spec.clone(),
            what,
        };
        Ok(match &self.source {
            SpecSource::HfJson(p) => Box::new(HfCounter::from_json(p).map_err(wrap)?),
            SpecSource::Gguf(p) => Box::new(HfCounter::from_gguf(p).map_err(wrap)?),
            SpecSource::Tiktoken(e) => Box::new(TiktokenCounter::builtin(*e).map_err(wrap)?),
            SpecSource::TiktokenFile { path, pattern } => {
                Box::new(TiktokenCounter::from_file(path, *pattern).map_err(wrap)?)
            }
            SpecSource::Remote {
                kind,
                base_url,
                model,
            } => Box::new(
                RemoteCounter::new(
                    *kind,
                    base_url,
                    model.as_deref(),
                    api_key_env,
                    allow_plaintext_key,
                )
                .map_err(wrap)?,
            ),
        })
    }
}

fn default_label(source: &SpecSource) -> String {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string())
    };
    match source {
        // `tokenizer.json` says little: name it after its directory.
        SpecSource::HfJson(p) => match p.file_stem().map(|s| s.to_string_lossy()) {
            Some(s) if s == "tokenizer" => p
                .canonicalize()
                .ok()
                .and_then(|c| {
                    c.parent()?
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| "tokenizer".into()),
            _ => stem(p),
        },
        SpecSource::Gguf(p) | SpecSource::TiktokenFile { path: p, .. } => stem(p),
        SpecSource::Tiktoken(e) => e.name().into(),
        SpecSource::Remote { kind, model, .. } => match (kind, model) {
            (_, Some(m)) => m.clone(),
            (_, None) => format!("{}", kind),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_labels_and_defaults() {
        let s = TokenizerSpec::parse("cl100k_base").unwrap();
        assert_eq!(s.label, "cl100k_base");
        assert_eq!(s.source, SpecSource::Tiktoken(TiktokenEncoding::Cl100kBase));
        let s = TokenizerSpec::parse("gpt-4o=o200k_base").unwrap();
        assert_eq!(s.label, "gpt-4o");
        let s = TokenizerSpec::parse("anthropic:claude-x").unwrap();
        assert_eq!(
            s.source,
            SpecSource::Remote {
                kind: TokenizerKind::AnthropicCountTokens,
                base_url: ANTHROPIC_BASE_URL.into(),
                model: Some("claude-x".into())
            }
        );
        assert_eq!(s.label, "claude-x");
        let s = TokenizerSpec::parse("q=vllm:Qwen/Qwen3-0.6B@http://127.0.0.1:8000/").unwrap();
        assert_eq!(
            s.source,
            SpecSource::Remote {
                kind: TokenizerKind::VllmTokenize,
                base_url: "http://127.0.0.1:8000".into(),
                model: Some("Qwen/Qwen3-0.6B".into())
            }
        );
        let s = TokenizerSpec::parse("llamacpp:http://localhost:8080").unwrap();
        assert_eq!(s.label, "llamacpp_tokenize");
    }

    #[test]
    fn bad_specs_name_themselves() {
        for (spec, says) in [
            ("nope.json", "no such file"),
            ("tok.model", "SentencePiece"),
            ("vllm:model-without-url", "MODEL@URL"),
            ("llamacpp:ftp://x", "not an http"),
            ("anthropic:", "needs a model"),
            ("x=", "empty"),
        ] {
            let e = TokenizerSpec::parse(spec).unwrap_err();
            assert_eq!(e.spec, spec);
            assert!(e.to_string().contains(&format!("`{spec}`")), "{e}");
            assert!(e.to_string().contains(says), "{spec}: {e}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let odd = tmp.path().join("mine.tiktoken");
        std::fs::write(&odd, "").unwrap();
        let e = TokenizerSpec::parse(odd.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("name it after its encoding"), "{e}");
    }
}
