//! The candle backend: quantized GGUF Llama models, safetensors Llama directories, and random
//! weight presets, run on the CPU in-process.
//!
//! Weights are loaded once and shared; each [`Stream`] has its own KV cache. Generation runs
//! on the caller's OS thread (the runner gives each stream a dedicated thread), inside a
//! per-stream rayon pool of `threads` threads so that "threads per instance" means what it says.

pub mod convert;
pub(crate) mod files;
pub mod gguf_llama;
pub mod pin;
pub use files::write_random_llama_dir;
pub mod presets;
pub mod tokenizer;

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::llama::{Cache, Config, Llama};
use gguf_llama::QuantizedLlama;
use tokenizers::Tokenizer;

use crate::chat::ChatTemplate;
use crate::prompting;
use crate::{
    Backend, BackendRecord, ErrorKind, GenOutcome, GenRequest, LoadError, Prompt, RequestError,
    StopReason, Stream, TokenEvent, TokenSink, TokenizerProvenance,
};

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ModelSource {
    /// A named architecture with deterministic random weights.
    Preset { name: String, seed: u64 },
    /// A `.gguf` file or a safetensors model directory.
    Path(PathBuf),
}

/// How to set the backend up.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CandleOptions {
    pub source: ModelSource,
    /// Compute threads per stream (instance), at least 1.
    pub threads: usize,
    /// GGUF weight formats without a fast kernel: converted (default) or kept (`--weights`).
    #[serde(default)]
    pub weights: convert::WeightFormat,
    /// Pin each stream's compute threads to cores (`--pin`), laid out for this many instances;
    /// `None`: threads are left to the OS scheduler.
    #[serde(default)]
    pub pin_instances: Option<usize>,
}

impl CandleOptions {
    /// Defaults for everything but the model and the threads.
    pub fn new(source: ModelSource, threads: usize) -> Self {
        Self {
            source,
            threads,
            weights: convert::WeightFormat::default(),
            pin_instances: None,
        }
    }
}

/// Set candle's thread count for this process. candle reads these variables when its pools are
/// first used, so this must run before any model computation and before other threads exist.
pub fn configure_threads(threads: usize) {
    let n = threads.max(1).to_string();
    // SAFETY-relevant: called from the main thread before the runner spawns any thread.
    std::env::set_var("RAYON_NUM_THREADS", &n);
    std::env::set_var("CANDLE_NUM_THREADS", &n);
}

enum Weights {
    Full { model: Arc<Llama>, config: Config },
    Quantized(QuantizedLlama),
}

/// A loaded candle model.
pub struct CandleBackend {
    weights: Weights,
    tokenizer: Option<Tokenizer>,
    chat_template: Option<Arc<ChatTemplate>>,
    eos: HashSet<u32>,
    prompt_ids: Vec<u32>,
    context_limit: usize,
    threads: usize,
    record: BackendRecord,
    /// Cores for each instance's compute threads (`--pin`).
    pin_plan: Option<pin::Plan>,
    /// Streams handed out so far: stream `i` is instance `i` of the pin plan.
    streams_made: std::sync::atomic::AtomicUsize,
}

impl CandleBackend {
    /// Load (or generate) the model. Call [`configure_threads`] first.
    pub fn load(opts: &CandleOptions) -> Result<Self, LoadError> {
        if opts.threads == 0 {
            return Err(LoadError::Setting {
                what: "--threads 0: expected at least 1 thread per instance".into(),
            });
        }
        let started = Instant::now();
        let loaded = match &opts.source {
            ModelSource::Preset { name, seed } => files::load_preset(name, *seed)?,
            ModelSource::Path(p) => files::load_path(p, opts.weights, &convert::cache_dir())?,
        };
        // A conversion is a one-off cost of the first load, reported on its own.
        let convert_s = loaded
            .conversion
            .as_ref()
            .and_then(|c| c.convert_s)
            .unwrap_or(0.0);
        let load_time_s = (started.elapsed().as_secs_f64() - convert_s).max(0.0);
        let files::Loaded {
            weights,
            tokenizer,
            tokenizer_source,
            chat_template,
            eos,
            vocab_size,
            context_limit,
            model_name,
            architecture,
            dtype,
            parameters,
            provenance,
            kv_cache,
            conversion,
        } = loaded;
        let pin_plan = opts
            .pin_instances
            .map(|n| pin::Plan::new(n, opts.threads, pin::online_cpus()));
        let tokenizer_record = match (&tokenizer, tokenizer_source) {
            (Some(tok), Some(src)) => {
                tokenizer::check_round_trip(tok, &src)?;
                Some(TokenizerProvenance {
                    source: src,
                    round_trip_checked: tokenizer::ROUND_TRIP_TEXT.to_string(),
                })
            }
            _ => None,
        };
        let prompt_ids = prompting::ordinary_token_ids(tokenizer.as_ref(), vocab_size, &eos);
        let mut eos_sorted: Vec<u32> = eos.iter().copied().collect();
        eos_sorted.sort_unstable();
        let record = BackendRecord {
            kind: "candle".into(),
            model: model_name,
            architecture,
            weights: provenance,
            dtype,
            device: "cpu".into(),
            threads_per_instance: opts.threads as u32,
            threads_note: "each stream computes inside its own rayon pool of this many threads; \
                           candle's quantized matmul pool is process-wide with the same size"
                .into(),
            parameters,
            vocab_size: vocab_size as u32,
            context_limit_tokens: context_limit as u32,
            eos_token_ids: eos_sorted,
            tokenizer: tokenizer_record,
            chat_template: chat_template.as_ref().map(|t| t.source.clone()),
            load_time_s,
            remote: None,
            kv_cache,
            weights_conversion: conversion.map(|c| c.record(opts.weights)),
            pinning: pin_plan.as_ref().map(pin::Plan::record),
            prefill_matmul: match &weights {
                Weights::Quantized(w) => Some(w.prefill_method()),
                Weights::Full { .. } => None,
            },
            hybrid: None,
        };
        Ok(Self {
            weights,
            tokenizer,
            chat_template: chat_template.map(Arc::new),
            eos,
            prompt_ids,
            context_limit,
            threads: opts.threads,
            record,
            pin_plan,
            streams_made: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The tokenizer, when the model has one (presets do not).
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// A stream with the concrete type (for benches and tests that need it).
    pub fn candle_stream(&self) -> Result<CandleStream, LoadError> {
        let state = match &self.weights {
            Weights::Full { model, config } => {
                let cache = Cache::new(true, DType::F32, config, &Device::Cpu).map_err(|e| {
                    LoadError::Candle {
                        context: "creating KV cache".into(),
                        source: e,
                    }
                })?;
                State::Full {
                    model: Arc::clone(model),
                    pristine: cache.clone(),
                    cache,
                }
            }
            Weights::Quantized(w) => State::Quantized(w.clone()),
        };
        let instance = self
            .streams_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cores: Option<Vec<usize>> = self.pin_plan.as_ref().map(|p| p.cores_of(instance));
        let pool_tids: Arc<Mutex<Vec<i32>>> = Arc::default();
        let pool = if self.threads > 1 {
            let tids = Arc::clone(&pool_tids);
            let pool_cores = cores.clone();
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.threads)
                    .thread_name(|i| format!("candle-compute-{i}"))
                    .start_handler(move |i| {
                        if let Some(c) = &pool_cores {
                            // Best effort: a failed pin leaves the thread unpinned, which the
                            // record's note (made from the plan) cannot see; it fails only
                            // for cores outside the process's allowed set.
                            let _ = pin::pin_current_thread(c[i % c.len()]);
                        }
                        if let Ok(mut t) = tids.lock() {
                            t.push(crate::current_tid());
                        }
                    })
                    .build()
                    .map_err(|e| LoadError::Setting {
                        what: format!("cannot start {} compute threads: {e}", self.threads),
                    })?,
            )
        } else {
            None
        };
        Ok(CandleStream {
            state,
            pool,
            pool_tids,
            caller_core: cores.map(|c| c[0]),
            caller_pinned: false,
            tokenizer: self.tokenizer.clone(),
            chat_template: self.chat_template.clone(),
            eos: self.eos.clone(),
            vocab_size: self.record.vocab_size as usize,
            context_limit: self.context_limit,
        })
    }
}

impl Backend for CandleBackend {
    fn record(&self) -> &BackendRecord {
        &self.record
    }

    fn prompt_token_ids(&self) -> &[u32] {
        &self.prompt_ids
    }

    fn accepts_text(&self) -> bool {
        self.tokenizer.is_some()
    }

    fn decode(&self, ids: &[u32]) -> Option<String> {
        self.tokenizer.as_ref()?.decode(ids, true).ok()
    }

    fn new_stream(&self) -> Result<Box<dyn Stream>, LoadError> {
        Ok(Box::new(self.candle_stream()?))
    }
}

enum State {
    Full {
        model: Arc<Llama>,
        cache: Cache,
        pristine: Cache,
    },
    Quantized(QuantizedLlama),
}

impl State {
    fn reset(&mut self) {
        match self {
            State::Full {
                cache, pristine, ..
            } => *cache = pristine.clone(),
            State::Quantized(w) => w.clear_kv_cache(),
        }
    }

    /// Logits (vocab,) for the last position of `ids`, placed at `pos`.
    fn forward(&mut self, ids: &[u32], pos: usize) -> candle_core::Result<Tensor> {
        let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
        let logits = match self {
            State::Full { model, cache, .. } => model.forward(&input, pos, cache)?,
            State::Quantized(w) => w.forward(&input, pos)?,
        };
        logits.squeeze(0)
    }
}

/// One stream over a [`CandleBackend`]'s weights.
pub struct CandleStream {
    state: State,
    pool: Option<rayon::ThreadPool>,
    /// Thread ids of `pool`'s threads (for per-instance CPU attribution).
    pool_tids: Arc<Mutex<Vec<i32>>>,
    /// `--pin` with one thread: the core the calling thread (which computes) is pinned to on
    /// its first request.
    caller_core: Option<usize>,
    caller_pinned: bool,
    tokenizer: Option<Tokenizer>,
    chat_template: Option<Arc<ChatTemplate>>,
    eos: HashSet<u32>,
    vocab_size: usize,
    context_limit: usize,
}

impl CandleStream {
    fn run(
        &mut self,
        req: &GenRequest,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError> {
        let prompt = prompting::encode(
            &req.prompt,
            self.tokenizer.as_ref(),
            self.chat_template.as_deref(),
        )?;
        prompting::check(
            &prompt,
            req.max_tokens,
            self.vocab_size,
            Some(self.context_limit),
        )?;
        let prompt_tokens = prompt.len() as u64;
        let fail = |kind, message: String, out: usize| RequestError {
            kind,
            message,
            prompt_tokens,
            output_tokens: out as u64,
            wire: None,
        };
        let mut sampler = prompting::sampler(&req.sampling);
        self.state.reset();
        let mut out = Vec::with_capacity(req.max_tokens as usize);
        let mut pos = 0usize;
        let mut input: &[u32] = &prompt;
        let mut last = [0u32; 1];
        let stop_reason = loop {
            if out.len() >= req.max_tokens as usize {
                break StopReason::MaxTokens;
            }
            let next = self
                .state
                .forward(input, pos)
                .and_then(|logits| sampler.sample(&logits))
                .map_err(|e| fail(ErrorKind::Compute, e.to_string(), out.len()))?;
            let at = Instant::now();
            pos += input.len();
            if !req.ignore_eos && self.eos.contains(&next) {
                break StopReason::Eos;
            }
            out.push(next);
            if on_token(TokenEvent {
                at,
                tokens: 1,
                id: Some(next),
            })
            .is_break()
            {
                break StopReason::Cancelled;
            }
            last[0] = next;
            input = &last;
        };
        Ok(GenOutcome {
            prompt_tokens,
            output_tokens: out.len() as u64,
            stop_reason,
            output_token_ids: out,
            ..Default::default()
        })
    }
}

impl Stream for CandleStream {
    fn generate(
        &mut self,
        request: &GenRequest,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError> {
        if let (None, Some(core), false) = (&self.pool, self.caller_core, self.caller_pinned) {
            // One thread: the runner's stream thread computes; pin it where it runs.
            let _ = pin::pin_current_thread(core);
            self.caller_pinned = true;
        }
        match self.pool.take() {
            Some(pool) => {
                let r = pool.install(|| self.run(request, on_token));
                self.pool = Some(pool);
                r
            }
            None => self.run(request, on_token),
        }
    }

    fn compute_site(&self) -> crate::ComputeSite {
        crate::ComputeSite::Threads(Arc::clone(&self.pool_tids))
    }
}

/// Generate greedily from text and return the decoded output (tests and smoke checks).
pub fn generate_text(
    backend: &CandleBackend,
    prompt: &str,
    max_tokens: u32,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut stream = backend.candle_stream()?;
    let req = GenRequest {
        prompt: Prompt::Text(prompt.to_string()),
        max_tokens,
        ignore_eos: false,
        sampling: crate::Sampling::greedy(),
    };
    let outcome = stream.generate(&req, &mut |_| ControlFlow::Continue(()))?;
    backend
        .decode(&outcome.output_token_ids)
        .ok_or_else(|| "model has no tokenizer".into())
}

pub(crate) fn path_str(p: &Path) -> String {
    p.display().to_string()
}
