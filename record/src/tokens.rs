//! The token-efficiency record (`tokens.json`) of `charter tokens`: how many tokens the same
//! corpus costs under each tokenizer, per word, character and UTF-8 byte, with bootstrap
//! intervals over documents, relative to a baseline tokenizer, per document label, whether each
//! tokenizer round-trips, its chat-template overhead, and what that costs in money and KV-cache
//! RAM. Data only: the statistics are computed in charter-reports.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{HostInfo, ToolInfo};

/// Version of the `tokens.json` layout.
pub const TOKENS_SCHEMA_VERSION: u32 = 1;

/// What kind of tokenizer a SPEC named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// A Hugging Face `tokenizer.json`.
    HfTokenizerJson,
    /// The tokenizer embedded in a GGUF file's metadata.
    Gguf,
    /// A tiktoken encoding shipped inside charter (`cl100k_base`, `o200k_base`).
    Tiktoken,
    /// A tiktoken ranks file (`*.tiktoken`).
    TiktokenFile,
    /// Anthropic's `/v1/messages/count_tokens`.
    AnthropicCountTokens,
    /// vLLM's `/tokenize` (`{"model", "prompt"}` → `{"count", "tokens"}`).
    VllmTokenize,
    /// llama.cpp server's `/tokenize` (`{"content"}` → `{"tokens"}`).
    LlamacppTokenize,
}

impl TokenizerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenizerKind::HfTokenizerJson => "hf_tokenizer_json",
            TokenizerKind::Gguf => "gguf",
            TokenizerKind::Tiktoken => "tiktoken",
            TokenizerKind::TiktokenFile => "tiktoken_file",
            TokenizerKind::AnthropicCountTokens => "anthropic_count_tokens",
            TokenizerKind::VllmTokenize => "vllm_tokenize",
            TokenizerKind::LlamacppTokenize => "llamacpp_tokenize",
        }
    }

    /// Whether counts come from a server over HTTP.
    pub fn is_remote(self) -> bool {
        matches!(
            self,
            TokenizerKind::AnthropicCountTokens
                | TokenizerKind::VllmTokenize
                | TokenizerKind::LlamacppTokenize
        )
    }
}

/// Element type of a KV cache (for KV-cache RAM from a model's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum KvDtype {
    F32,
    F16,
    Bf16,
    /// 8-bit floats or integers (e.g. vLLM's `--kv-cache-dtype fp8`).
    Fp8,
}

impl KvDtype {
    pub fn as_str(self) -> &'static str {
        match self {
            KvDtype::F32 => "f32",
            KvDtype::F16 => "f16",
            KvDtype::Bf16 => "bf16",
            KvDtype::Fp8 => "fp8",
        }
    }

    pub fn bytes(self) -> u32 {
        match self {
            KvDtype::F32 => 4,
            KvDtype::F16 | KvDtype::Bf16 => 2,
            KvDtype::Fp8 => 1,
        }
    }
}

/// Whether decode(encode(text)) gave the text back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoundTripStatus {
    /// Every checked document came back unchanged.
    Exact,
    /// At least one document came back changed: the counts are not comparable.
    Lossy,
    /// Not checked (e.g. a count-only endpoint); the reason says why.
    NotChecked,
}

impl RoundTripStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoundTripStatus::Exact => "exact",
            RoundTripStatus::Lossy => "lossy",
            RoundTripStatus::NotChecked => "not checked",
        }
    }
}

crate::display_as_str!(TokenizerKind, KvDtype, RoundTripStatus);

/// A point estimate with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// The whole `tokens.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokensRecord {
    pub schema_version: u32,
    pub tool: ToolInfo,
    pub host: HostInfo,
    pub started_at: String,
    /// Wall time of the whole command.
    pub elapsed_s: f64,
    /// Threads that counted (documents are split between them).
    pub threads: u32,
    pub corpus: CorpusRecord,
    /// How words are counted, in words; per-word figures compare across languages only as far
    /// as this definition allows.
    pub word_definition: String,
    /// Label of the tokenizer the others are compared with.
    pub baseline: String,
    pub bootstrap: BootstrapSettings,
    pub tokenizers: Vec<TokenizerResult>,
    pub cost: Option<TokensCost>,
    /// Caveats in plain words (lossy tokenizers, excluded documents, ...).
    pub notes: Vec<String>,
}

/// The corpus as counted (characters are Unicode scalar values, bytes UTF-8).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CorpusRecord {
    /// `builtin`, or the file or directory given.
    pub name: String,
    pub license: Option<String>,
    pub documents: u64,
    /// Documents every tokenizer counted: all statistics are over these, so that the
    /// tokenizers are compared on the same text.
    pub documents_compared: u64,
    pub words: u64,
    pub characters: u64,
    pub bytes: u64,
    /// Per document label (language, class), when the corpus labels its documents.
    pub labels: Vec<LabelTotals>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LabelTotals {
    pub label: String,
    pub documents: u64,
    pub words: u64,
    pub characters: u64,
    pub bytes: u64,
}

/// Percentile bootstrap over documents (resampled with replacement; the same resamples for
/// every tokenizer, so comparisons are paired).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BootstrapSettings {
    pub resamples: u32,
    pub seed: u64,
    /// Two-sided coverage of the intervals, e.g. 0.95.
    pub confidence: f64,
}

/// What a tokenizer is and how it counts: known before anything is counted, kept in the
/// record as it was loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TokenizerIdentity {
    pub kind: TokenizerKind,
    /// File path, built-in encoding name, or endpoint URL (without credentials).
    pub source: String,
    pub sha256: Option<String>,
    pub vocab_size: Option<u64>,
    /// Model name sent to a remote endpoint.
    pub model: Option<String>,
    /// Name of the environment variable the API key came from (never the key).
    pub api_key_env: Option<String>,
    /// How a document's tokens were counted, in words.
    pub count_method: String,
}

/// The shape of a model's KV cache, from its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvShape {
    /// `gguf-metadata` or a config.json path.
    pub source: String,
    pub layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    /// The element type the model's config (or charter's own backend) uses.
    pub dtype: KvDtype,
}

/// What a loaded token counter is (charter-backends builds it, charter-reports reads it).
#[derive(Debug, Clone, PartialEq)]
pub struct CounterInfo {
    pub identity: TokenizerIdentity,
    /// Where the chat template comes from, when there is one.
    pub chat_template: Option<String>,
    /// Why the round trip cannot be checked, when it cannot.
    pub no_round_trip: Option<String>,
    pub kv: Option<KvShape>,
}

/// One tokenizer on the corpus.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokenizerResult {
    /// The name given with `NAME=SPEC`, else one derived from the SPEC.
    pub label: String,
    #[serde(flatten)]
    pub identity: TokenizerIdentity,
    pub documents_counted: u64,
    pub documents_failed: u64,
    /// Failure messages (credentials scrubbed) and how often each occurred.
    pub errors: BTreeMap<String, u64>,
    /// Content tokens over the compared documents.
    pub tokens: u64,
    pub tokens_per_document_mean: Option<f64>,
    pub tokens_per_word: Option<Interval>,
    pub tokens_per_character: Option<Interval>,
    pub tokens_per_byte: Option<Interval>,
    /// tokens ÷ baseline tokens − 1 on the same documents (−0.23 = 23 % fewer tokens).
    pub relative_to_baseline: Option<Interval>,
    pub round_trip: RoundTrip,
    /// Chat-template overhead, when the tokenizer has a template.
    pub chat_template: Option<ChatOverhead>,
    pub per_label: Vec<LabelResult>,
    /// KV-cache RAM the corpus' text would occupy, when the model's config is known.
    pub kv_cache: Option<KvCacheCost>,
    /// Wall time spent counting (round trips and chat templates included).
    pub counting_elapsed_s: f64,
    /// Content tokens counted per second of that wall time.
    pub counting_tokens_per_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RoundTrip {
    pub status: RoundTripStatus,
    pub documents_checked: u64,
    pub documents_lossy: u64,
    /// Id of the first document that did not come back unchanged.
    pub first_lossy_document: Option<String>,
    /// Why it was not checked.
    pub reason: Option<String>,
}

/// Tokens a chat template adds around one user message (with the assistant prompt that
/// follows it), measured as tokens(template([user: text])) − tokens(text).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ChatOverhead {
    /// Where the template came from (`gguf-metadata`, a tokenizer_config.json, the server).
    pub source: String,
    pub documents: u64,
    pub per_message_tokens_mean: f64,
    pub per_message_tokens_min: i64,
    pub per_message_tokens_max: i64,
}

/// Statistics of the documents carrying one label.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LabelResult {
    pub label: String,
    pub documents: u64,
    pub tokens: u64,
    pub tokens_per_word: Option<Interval>,
    pub tokens_per_character: Option<Interval>,
    pub tokens_per_byte: Option<Interval>,
    pub relative_to_baseline: Option<Interval>,
}

/// KV-cache bytes per token from the model's config, and per 1k words of this corpus.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct KvCacheCost {
    /// Where the config came from (GGUF metadata, a config.json path).
    pub source: String,
    pub layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub dtype: KvDtype,
    /// 2 (K and V) × layers × kv_heads × head_dim × bytes per element.
    pub bytes_per_token: u64,
    /// bytes_per_token × tokens per word × 1000, with the interval of tokens per word.
    pub bytes_per_1k_words: Interval,
}

/// Prices applied to the counts (`--cost`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokensCost {
    pub currency: String,
    pub example_figures: bool,
    pub prices: Vec<TokenPrice>,
}

/// One price list entry applied to one tokenizer's counts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokenPrice {
    /// The tokenizer's label.
    pub tokenizer: String,
    /// The price entry's name in the cost file.
    pub name: String,
    pub input_per_1m_tokens: f64,
    pub output_per_1m_tokens: f64,
    /// What 1M words of this corpus cost as input, with the interval of tokens per word.
    pub input_per_1m_words: Option<Interval>,
    /// What the mean document of this corpus costs as input.
    pub input_per_document_mean: Option<f64>,
    /// What 1M words would cost as output, if the model wrote text like this corpus.
    pub output_per_1m_words: Option<Interval>,
    pub source: String,
    pub date: String,
}
