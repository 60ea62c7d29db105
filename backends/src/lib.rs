//! Inference backends for charter.
//!
//! A [`Backend`] owns a loaded model and hands out [`Stream`]s: one per concurrent request
//! stream, each with its own state (KV cache) over shared weights. A stream generates tokens for
//! a [`GenRequest`] and reports each one as a [`TokenEvent`] stamped on the monotonic clock the
//! moment it exists. Backends never compute latency metrics: the runner derives TTFT, ITL and
//! the rest from these events, the same way for every backend.
//!
//! Backends: [`candle`] (GGUF, safetensors, random presets), [`onnx`] (ONNX Runtime through
//! `ort`, loaded at run time), [`remote`] (OpenAI-compatible and Anthropic streaming HTTP APIs)
//! and [`simulated`] (a labelled test tool).

pub mod candle;
pub mod chat;
mod error;
mod hashing;
pub mod hybrid;
pub mod onnx;
mod prompting;
pub mod remote;
pub mod secrets;
pub mod simulated;
pub mod testing;
pub mod tokens;

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use charter_record::{
    BackendRecord, ErrorKind, GenOutcome, HybridPolicy, KvCacheRecord, PromptTokenSource,
    RequestError, Route, SpillReason, StaleConnection, StopReason, TokenCountSource,
    TokenizerProvenance, WeightsProvenance, WireInfo,
};
pub use chat::{ChatMessage, ChatTemplate};
pub use error::LoadError;
pub use hashing::file_digest;

/// What to generate from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Prompt {
    /// Token ids, used as they are.
    Tokens(Vec<u32>),
    /// Text, encoded with the backend's tokenizer (no special tokens added).
    Text(String),
    /// Chat messages, rendered with the model's chat template where it has one (and sent as
    /// messages by remote APIs).
    Chat(Vec<ChatMessage>),
}

/// Sampling settings for one request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 selects greedy decoding (argmax).
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: u64,
}

impl Sampling {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_p: None,
            seed: 0,
        }
    }
}

/// One generation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenRequest {
    pub prompt: Prompt,
    pub max_tokens: u32,
    /// Keep generating through end-of-sequence tokens (fixed output lengths for benchmarking).
    pub ignore_eos: bool,
    pub sampling: Sampling,
}

/// Content tokens that became available at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent {
    pub at: Instant,
    pub tokens: u32,
    /// The token's id when the event is one token of an in-process model (lets `charter serve`
    /// stream its text); `None` otherwise.
    pub id: Option<u32>,
}

/// Called with each token event; return `ControlFlow::Break(())` to stop generation early.
pub type TokenSink<'a> = dyn FnMut(TokenEvent) -> ControlFlow<()> + Send + 'a;

/// A loaded model that can serve several concurrent streams.
pub trait Backend: Send + Sync {
    /// Description and provenance for the run record.
    fn record(&self) -> &BackendRecord;
    /// Token ids a synthetic prompt may use (the vocabulary without special tokens).
    fn prompt_token_ids(&self) -> &[u32];
    /// Whether text and chat prompts can be used (the backend has a tokenizer).
    fn accepts_text(&self) -> bool;
    /// Decode ids to text, when the backend has a tokenizer.
    fn decode(&self, ids: &[u32]) -> Option<String>;
    /// The text this backend sends for a synthetic prompt of `ids` when it sends text (remote
    /// APIs: words that are one token each); `None` where token ids are used as they are.
    /// Multi-turn sessions put it in a chat history beside the model's own responses.
    fn synthetic_text(&self, _ids: &[u32]) -> Option<String> {
        None
    }
    /// A new stream with its own state (KV cache) over the shared weights.
    fn new_stream(&self) -> Result<Box<dyn Stream>, LoadError>;
}

/// Where a stream computes, so the sampler can attribute CPU time to its instance.
#[derive(Debug, Clone)]
pub enum ComputeSite {
    /// On the thread that calls [`Stream::generate`], plus these OS threads (Linux thread ids,
    /// filled in as the stream's own pool threads start).
    Threads(Arc<Mutex<Vec<i32>>>),
    /// In another process (a `charter worker`).
    Process(u32),
}

/// The calling thread's Linux thread id (what `/proc/self/task/<tid>` names).
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// One request stream. Generation runs on the calling OS thread.
pub trait Stream: Send {
    fn generate(
        &mut self,
        request: &GenRequest,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError>;

    /// Where this stream computes [default: only on the calling thread].
    fn compute_site(&self) -> ComputeSite {
        ComputeSite::Threads(Arc::default())
    }

    /// How the last request was routed between tiers (a hybrid backend's streams); `None` for
    /// a backend that is one tier.
    fn take_route(&mut self) -> Option<Route> {
        None
    }
}

/// Which backend to load, with every option resolved: what `charter profile` and `charter serve`
/// build from their settings, and what a `charter worker` process is sent (as JSON) to load its
/// own copy. Never written to records or logs: remote options may carry header values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackendSpec {
    /// candle in-process: GGUF, safetensors directory, or random-weight preset.
    Candle(candle::CandleOptions),
    /// ONNX Runtime in-process.
    Onnx(onnx::OnnxOptions),
    /// An OpenAI-compatible or Anthropic HTTP API.
    Remote(remote::RemoteOptions),
    /// The SIMULATED test tool.
    Simulated(simulated::SimulatedTimings),
    /// Tiers of the backends above and a policy routing each request to one of them.
    Hybrid(hybrid::HybridOptions),
}

impl BackendSpec {
    /// Load the model (or connect the client).
    pub fn load(&self) -> Result<Box<dyn Backend>, LoadError> {
        Ok(match self {
            BackendSpec::Candle(o) => {
                candle::configure_threads(o.threads);
                Box::new(candle::CandleBackend::load(o)?)
            }
            BackendSpec::Onnx(o) => Box::new(onnx::OnnxBackend::load(o)?),
            BackendSpec::Remote(o) => Box::new(remote::RemoteBackend::new(o)?),
            BackendSpec::Simulated(t) => Box::new(simulated::SimulatedBackend::new(*t)),
            BackendSpec::Hybrid(h) => Box::new(hybrid::HybridBackend::load(h)?),
        })
    }

    /// Whether the model runs outside charter (no in-process instances to sample).
    pub fn is_remote(&self) -> bool {
        match self {
            BackendSpec::Remote(_) => true,
            BackendSpec::Hybrid(h) => h.tiers.iter().all(|t| t.spec.is_remote()),
            _ => false,
        }
    }

    /// A short name for run directories: the model file's stem, the preset, or the API and
    /// served model name.
    pub fn label(&self) -> String {
        let stem = |p: &std::path::Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
        match self {
            BackendSpec::Candle(o) => match &o.source {
                candle::ModelSource::Path(p) => stem(p).unwrap_or_else(|| "model".into()),
                candle::ModelSource::Preset { name, .. } => name.clone(),
            },
            BackendSpec::Simulated(_) => "simulated".into(),
            BackendSpec::Remote(o) => format!("{}-{}", o.api.as_str(), o.model.replace('/', "_")),
            BackendSpec::Hybrid(h) => {
                let names: Vec<&str> = h.tiers.iter().map(|t| t.name.as_str()).collect();
                format!("hybrid-{}", names.join("-"))
            }
            // `model.onnx` says little: Optimum exports name the directory after the model.
            BackendSpec::Onnx(o) => match stem(&o.model) {
                Some(s) if !s.starts_with("model") && !s.starts_with("decoder_model") => s,
                _ => o
                    .model
                    .canonicalize()
                    .ok()
                    .and_then(|p| {
                        p.parent()?
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                    })
                    .unwrap_or_else(|| "onnx".into()),
            },
        }
    }

    /// One line saying what will be loaded (for `charter validate`).
    pub fn describe(&self) -> String {
        match self {
            BackendSpec::Candle(o) => match &o.source {
                candle::ModelSource::Preset { name, .. } => format!("candle preset {name}"),
                candle::ModelSource::Path(p) => format!("candle {}", p.display()),
            },
            BackendSpec::Simulated(_) => "simulated backend".into(),
            BackendSpec::Onnx(o) => format!("onnx {}", o.model.display()),
            BackendSpec::Remote(o) => format!("{} {} at {}", o.api.as_str(), o.model, o.base_url),
            BackendSpec::Hybrid(h) => format!(
                "hybrid ({}): {}",
                h.policy,
                h.tiers
                    .iter()
                    .map(|t| format!("{} = {}", t.name, t.spec.describe()))
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
        }
    }
}
