//! The ONNX Runtime backend, through `ort` with ONNX Runtime loaded at run time (see
//! [`runtime`]: `--ort-lib`, `ORT_DYLIB_PATH`, or the project cache that
//! `scripts/fetch-onnxruntime.sh` fills; nothing is hand-installed).
//!
//! Two modes, chosen from the model's signature or forced:
//!
//! - **any-model** ([`OnnxMode::Any`]): inputs are synthesised from the model's input metadata
//!   ([`inputs`]). One request is one inference call: the stream emits a single
//!   [`TokenEvent`] carrying one "token" when the call returns, so for this mode TTFT = e2e =
//!   call latency, request throughput = inferences/s, and output-token throughput equals it too.
//!   ITL is undefined (one token per request). What `onnxruntime_perf_test` measures, under
//!   charter's load profiles and samplers.
//! - **decoder** ([`OnnxMode::Decoder`]): a causal LM in Hugging Face Optimum's KV-cache layout
//!   ([`decoder`]); greedy or temperature/top-p generation (candle's sampler, so the same seed
//!   samples the same way as the candle backend), one event per generated token, EOS from
//!   `config.json`/`generation_config.json`, text I/O through `tokenizer.json`.
//!
//! Sessions: with [`SessionSharing::PerInstance`] every stream owns its own ONNX Runtime
//! session (weights loaded once per stream, its own intra-op pool); with
//! [`SessionSharing::Shared`] all streams use one session. `ort` 2.0 requires exclusive access
//! for `Session::run` (ONNX Runtime's EP internals are not all thread-safe), so calls on a
//! shared session are serialised by a mutex: the queueing is part of the measured latency.
//! Either way, `run` is called on the runner's stream threads (dedicated OS threads).

pub mod decoder;
pub mod inputs;
pub mod runtime;

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::{Device, Tensor};
use ort::ep::ExecutionProvider;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use tokenizers::Tokenizer;

use crate::prompting;
use crate::{
    Backend, BackendRecord, ErrorKind, GenOutcome, GenRequest, LoadError, RequestError, StopReason,
    Stream, TokenEvent, TokenSink, TokenizerProvenance, WeightsProvenance,
};
use decoder::DecoderLayout;
use inputs::{DimBindings, SynthInput};
use runtime::Runtime;

/// How to drive the model.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
pub enum OnnxMode {
    /// Any model: synthesised inputs, one request = one inference call.
    Any,
    /// Causal LM with KV cache (Optimum layout): token-by-token generation.
    Decoder,
}

impl OnnxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OnnxMode::Any => "any-model",
            OnnxMode::Decoder => "decoder",
        }
    }
}

/// One session for all streams, or one per stream.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum SessionSharing {
    /// One session; calls from concurrent streams are serialised (ort needs `&mut` to run).
    Shared,
    /// One session per stream (instance), each with its own intra-op thread pool.
    #[default]
    PerInstance,
}

impl SessionSharing {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionSharing::Shared => "shared",
            SessionSharing::PerInstance => "per-instance",
        }
    }
}

/// ONNX Runtime graph optimisation level.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum GraphOpt {
    Disable,
    Basic,
    Extended,
    #[default]
    All,
}

impl GraphOpt {
    pub fn as_str(self) -> &'static str {
        match self {
            GraphOpt::Disable => "disable",
            GraphOpt::Basic => "basic",
            GraphOpt::Extended => "extended",
            GraphOpt::All => "all",
        }
    }

    fn level(self) -> GraphOptimizationLevel {
        match self {
            GraphOpt::Disable => GraphOptimizationLevel::Disable,
            GraphOpt::Basic => GraphOptimizationLevel::Level1,
            GraphOpt::Extended => GraphOptimizationLevel::Level2,
            GraphOpt::All => GraphOptimizationLevel::All,
        }
    }
}

/// Execution provider to run the graph on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum ExecutionProviderKind {
    #[default]
    Cpu,
    Cuda,
    #[value(name = "tensorrt")]
    TensorRt,
}

impl ExecutionProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionProviderKind::Cpu => "cpu",
            ExecutionProviderKind::Cuda => "cuda",
            ExecutionProviderKind::TensorRt => "tensorrt",
        }
    }

    /// ONNX Runtime's name for it.
    pub fn ort_name(self) -> &'static str {
        match self {
            ExecutionProviderKind::Cpu => "CPUExecutionProvider",
            ExecutionProviderKind::Cuda => "CUDAExecutionProvider",
            ExecutionProviderKind::TensorRt => "TensorrtExecutionProvider",
        }
    }
}

/// Session options, all recorded in the run record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionSettings {
    /// Threads inside one operator (ONNX Runtime counts the calling thread as one of them).
    pub intra_op_threads: usize,
    /// Threads running independent nodes in parallel; above 1 selects parallel execution.
    pub inter_op_threads: usize,
    /// Let idle pool threads spin before sleeping (ONNX Runtime's default: on).
    pub spinning: bool,
    pub graph_opt: GraphOpt,
    pub execution_provider: ExecutionProviderKind,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            intra_op_threads: 1,
            inter_op_threads: 1,
            spinning: true,
            graph_opt: GraphOpt::All,
            execution_provider: ExecutionProviderKind::Cpu,
        }
    }
}

impl SessionSettings {
    /// `intra_op_threads=2, inter_op_threads=1 (sequential), spinning=on, ...`.
    pub fn describe(&self) -> String {
        format!(
            "intra_op_threads={}, inter_op_threads={} ({} execution), spinning={}, graph_optimization={}, execution_provider={}",
            self.intra_op_threads,
            self.inter_op_threads,
            if self.inter_op_threads > 1 { "parallel" } else { "sequential" },
            if self.spinning { "on" } else { "off" },
            self.graph_opt.as_str(),
            self.execution_provider.as_str()
        )
    }
}

/// How to set the backend up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OnnxOptions {
    pub model: PathBuf,
    /// `--ort-lib`; `None`: `ORT_DYLIB_PATH`, then the project cache.
    pub ort_lib: Option<PathBuf>,
    /// `None`: decoder when the signature is the Optimum decoder layout, else any-model.
    pub mode: Option<OnnxMode>,
    /// Any-model mode: batch size for dynamic batch dimensions [default 1].
    pub batch: Option<usize>,
    /// Any-model mode: length for dynamic sequence dimensions [default 128].
    pub seq_len: Option<usize>,
    /// Any-model mode: values for named dynamic dimensions.
    pub dims: Vec<(String, usize)>,
    pub session: SessionSettings,
    pub sharing: SessionSharing,
    /// Decoder mode: `tokenizer.json` (default: next to the model, when present).
    pub tokenizer: Option<PathBuf>,
    /// Seed for synthesised inputs.
    pub seed: u64,
}

impl OnnxOptions {
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            ort_lib: None,
            mode: None,
            batch: None,
            seq_len: None,
            dims: Vec::new(),
            session: SessionSettings::default(),
            sharing: SessionSharing::default(),
            tokenizer: None,
            seed: 0,
        }
    }
}

/// Default `--seq-len` for any-model mode.
pub const DEFAULT_SEQ_LEN: usize = 128;

/// Open a session on `model` with `settings` (the execution provider must be available; see
/// [`OnnxBackend::load`]).
pub fn open_session(
    rt: &Runtime,
    model: &Path,
    settings: &SessionSettings,
) -> Result<Session, LoadError> {
    let setting = |what: &str, e: String| LoadError::Setting {
        what: format!("ONNX Runtime session option {what}: {e}"),
    };
    let mut b = Session::builder(&rt.env).map_err(|e| setting("builder", e.to_string()))?;
    b = b
        .with_intra_threads(settings.intra_op_threads)
        .map_err(|e| setting("intra_op_threads", e.to_string()))?
        .with_inter_threads(settings.inter_op_threads)
        .map_err(|e| setting("inter_op_threads", e.to_string()))?
        .with_parallel_execution(settings.inter_op_threads > 1)
        .map_err(|e| setting("execution mode", e.to_string()))?
        .with_intra_op_spinning(settings.spinning)
        .map_err(|e| setting("spinning", e.to_string()))?
        .with_inter_op_spinning(settings.spinning)
        .map_err(|e| setting("spinning", e.to_string()))?
        .with_optimization_level(settings.graph_opt.level())
        .map_err(|e| setting("graph optimisation level", e.to_string()))?;
    let ep = match settings.execution_provider {
        ExecutionProviderKind::Cpu => None,
        ExecutionProviderKind::Cuda => Some(ort::ep::CUDA::default().build()),
        ExecutionProviderKind::TensorRt => Some(ort::ep::TensorRT::default().build()),
    };
    if let Some(ep) = ep {
        b = b
            .with_execution_providers([ep.error_on_failure()])
            .map_err(|e| LoadError::ExecutionProviderUnavailable {
                requested: settings.execution_provider.as_str().into(),
                library: rt.path.clone(),
                available: format!("{} ({e})", runtime::available_providers().join(", ")),
            })?;
    }
    b.commit_from_file(model).map_err(|e| LoadError::OnnxModel {
        path: model.to_path_buf(),
        what: format!("ONNX Runtime cannot load it: {e}"),
    })
}

fn check_provider(rt: &Runtime, kind: ExecutionProviderKind) -> Result<(), LoadError> {
    let available = match kind {
        ExecutionProviderKind::Cpu => return Ok(()),
        ExecutionProviderKind::Cuda => ort::ep::CUDA::is_available(),
        ExecutionProviderKind::TensorRt => ort::ep::TensorRT::is_available(),
    }
    .unwrap_or(false);
    if available {
        return Ok(());
    }
    Err(LoadError::ExecutionProviderUnavailable {
        requested: kind.as_str().into(),
        library: rt.path.clone(),
        available: runtime::available_providers().join(", "),
    })
}

/// A session used by one stream: its own, or the shared one.
enum SessionHandle {
    Own(Box<Session>),
    Shared(Arc<Mutex<Session>>),
}

impl SessionHandle {
    fn with<R>(&mut self, f: impl FnOnce(&mut Session) -> R) -> R {
        match self {
            SessionHandle::Own(s) => f(s),
            SessionHandle::Shared(m) => f(&mut m.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }
}

enum Mode {
    Any {
        inputs: Arc<Vec<SynthInput>>,
        prompt_tokens: u64,
    },
    Decoder {
        layout: Arc<DecoderLayout>,
        tokenizer: Option<Arc<Tokenizer>>,
        eos: HashSet<u32>,
        context: Option<usize>,
        vocab: usize,
    },
}

/// A loaded ONNX model.
pub struct OnnxBackend {
    model: PathBuf,
    runtime: Runtime,
    settings: SessionSettings,
    sharing: SessionSharing,
    mode: Mode,
    shared: Option<Arc<Mutex<Session>>>,
    /// Per-instance sessions: the one opened at load time, handed to the first stream.
    spare: Mutex<Option<Session>>,
    prompt_ids: Vec<u32>,
    record: BackendRecord,
}

fn weights_provenance(model: &Path) -> Result<WeightsProvenance, LoadError> {
    let mut files = vec![
        crate::file_digest(model).map_err(|e| LoadError::Unreadable {
            path: model.to_path_buf(),
            source: e,
        })?,
    ];
    // External-data files exported next to the graph (`model.onnx.data`, `model.onnx_data`).
    if let Some(name) = model.file_name().map(|n| n.to_string_lossy().into_owned()) {
        for ext in [format!("{name}.data"), format!("{name}_data")] {
            let p = model.with_file_name(ext);
            if p.is_file() {
                files.push(crate::file_digest(&p).map_err(|e| LoadError::Unreadable {
                    path: p.clone(),
                    source: e,
                })?);
            }
        }
    }
    Ok(WeightsProvenance::Files {
        format: "onnx".into(),
        files,
    })
}

impl OnnxBackend {
    /// Find and load ONNX Runtime, open the model, and prepare the chosen mode.
    pub fn load(opts: &OnnxOptions) -> Result<Self, LoadError> {
        let started = Instant::now();
        let model = &opts.model;
        let bad = |what: String| LoadError::Setting { what };
        if opts.session.intra_op_threads == 0 || opts.session.inter_op_threads == 0 {
            return Err(bad(
                "--intra-op-threads/--inter-op-threads 0: expected at least 1".into(),
            ));
        }
        if opts.batch == Some(0) || opts.seq_len == Some(0) {
            return Err(bad("--batch/--seq-len 0: expected at least 1".into()));
        }
        if !model.is_file() {
            return Err(LoadError::OnnxModel {
                path: model.clone(),
                what: "not found (expected an .onnx file)".into(),
            });
        }
        let runtime = runtime::init(opts.ort_lib.as_deref())?;
        check_provider(&runtime, opts.session.execution_provider)?;
        let session = open_session(&runtime, model, &opts.session)?;
        let looks_decoder = decoder::looks_like_decoder(session.inputs(), session.outputs());
        let mode_kind = opts.mode.unwrap_or(if looks_decoder {
            OnnxMode::Decoder
        } else {
            OnnxMode::Any
        });
        let model_err = |what: String| LoadError::OnnxModel {
            path: model.clone(),
            what,
        };
        let file_name = model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| model.display().to_string());
        let (mode, prompt_ids, record_parts) = match mode_kind {
            OnnxMode::Any => {
                if opts.tokenizer.is_some() {
                    return Err(bad(
                        "--tokenizer applies to decoder mode; any-model mode synthesises its inputs"
                            .into(),
                    ));
                }
                let bindings = DimBindings {
                    batch: opts.batch.unwrap_or(1),
                    seq_len: opts.seq_len.unwrap_or(DEFAULT_SEQ_LEN),
                    named: opts.dims.clone(),
                };
                let synth = inputs::synthesise(model, session.inputs(), &bindings, opts.seed)?;
                if synth.is_empty() {
                    return Err(model_err("the model has no inputs to synthesise".into()));
                }
                let prompt_tokens = if synth.iter().any(|i| i.uses_seq_len) {
                    (bindings.batch * bindings.seq_len) as u64
                } else {
                    0
                };
                let described: Vec<String> = synth.iter().map(SynthInput::describe).collect();
                let parts = RecordParts {
                    model: format!(
                        "{file_name} (any-model mode; inputs: {})",
                        described.join(", ")
                    ),
                    architecture: format!(
                        "onnx graph: {} inputs, {} outputs (any-model mode: one request = one inference call)",
                        session.inputs().len(),
                        session.outputs().len()
                    ),
                    dtype: "as stored in the ONNX graph (not inspected)".into(),
                    vocab: 0,
                    context: bindings.seq_len as u32,
                    eos: Vec::new(),
                    tokenizer: None,
                };
                (
                    Mode::Any {
                        inputs: Arc::new(synth),
                        prompt_tokens,
                    },
                    (0..inputs::TOKEN_ID_RANGE as u32).collect(),
                    parts,
                )
            }
            OnnxMode::Decoder => {
                if opts.batch.is_some() || opts.seq_len.is_some() || !opts.dims.is_empty() {
                    return Err(bad(
                        "--batch/--seq-len/--onnx-dim apply to any-model mode; decoder mode runs one sequence per stream (use --concurrency) with prompt lengths from --prompt-tokens"
                            .into(),
                    ));
                }
                let layout = decoder::layout(session.inputs(), session.outputs())
                    .map_err(|w| model_err(format!("decoder mode: {w}")))?;
                let side = decoder::side_config(model).map_err(model_err)?;
                let vocab = layout.vocab.or(side.vocab).ok_or_else(|| {
                    model_err("decoder mode: the vocabulary size is neither fixed in the logits shape nor in config.json".into())
                })?;
                let tok_path = opts.tokenizer.clone().or_else(|| {
                    let p = model.with_file_name("tokenizer.json");
                    p.is_file().then_some(p)
                });
                let (tokenizer, tokenizer_record) = match tok_path {
                    Some(p) => {
                        let tok = crate::candle::tokenizer::from_path(&p)?;
                        let name = p.display().to_string();
                        crate::candle::tokenizer::check_round_trip(&tok, &name)?;
                        (
                            Some(tok),
                            Some(TokenizerProvenance {
                                source: name,
                                round_trip_checked: crate::candle::tokenizer::ROUND_TRIP_TEXT
                                    .to_string(),
                            }),
                        )
                    }
                    None => (None, None),
                };
                let eos: HashSet<u32> = side.eos.iter().copied().collect();
                let prompt_ids = prompting::ordinary_token_ids(tokenizer.as_ref(), vocab, &eos);
                let parts = RecordParts {
                    model: format!("{file_name} (decoder mode)"),
                    architecture: layout.describe(),
                    dtype: "f32 KV cache; weights as stored in the ONNX graph (not inspected)"
                        .into(),
                    vocab: vocab as u32,
                    context: side.context.map(|c| c as u32).unwrap_or(u32::MAX),
                    eos: side.eos.clone(),
                    tokenizer: tokenizer_record,
                };
                (
                    Mode::Decoder {
                        layout: Arc::new(layout),
                        tokenizer: tokenizer.map(Arc::new),
                        eos,
                        context: side.context,
                        vocab,
                    },
                    prompt_ids,
                    parts,
                )
            }
        };
        let weights = weights_provenance(model)?;
        let (shared, spare) = match opts.sharing {
            SessionSharing::Shared => (Some(Arc::new(Mutex::new(session))), None),
            SessionSharing::PerInstance => (None, Some(session)),
        };
        let any_note = if mode_kind == OnnxMode::Any {
            "; any-model mode: one request = one inference call, reported as one token when it returns (TTFT = e2e = call latency; request throughput = inferences/s)"
        } else {
            ""
        };
        let record = BackendRecord {
            kind: "onnx".into(),
            model: record_parts.model,
            architecture: record_parts.architecture,
            weights,
            dtype: record_parts.dtype,
            device: format!(
                "{}: {}; onnxruntime {} from {} ({}); ort 2.0.0-rc.15",
                opts.session.execution_provider.as_str(),
                opts.session.execution_provider.ort_name(),
                runtime.version,
                runtime.path.display(),
                runtime.source.as_str()
            ),
            threads_per_instance: opts.session.intra_op_threads as u32,
            threads_note: format!(
                "onnx session settings: sessions={} ({}), {}; Session::run is called on the runner's stream threads{any_note}",
                opts.sharing.as_str(),
                match opts.sharing {
                    SessionSharing::Shared =>
                        "one session for all streams; ort needs exclusive access to run, so concurrent calls are serialised and their queueing is in the latency",
                    SessionSharing::PerInstance =>
                        "one session per stream, each with its own intra-op pool and its own copy of the weights",
                },
                opts.session.describe()
            ),
            parameters: None,
            vocab_size: record_parts.vocab,
            context_limit_tokens: record_parts.context,
            eos_token_ids: record_parts.eos,
            tokenizer: record_parts.tokenizer,
            chat_template: None,
            load_time_s: started.elapsed().as_secs_f64(),
            remote: None,
            kv_cache: match &mode {
                Mode::Decoder { layout, .. } => Some(layout.kv_cache()),
                Mode::Any { .. } => None,
            },
            weights_conversion: None,
            pinning: None,
            prefill_matmul: None,
            hybrid: None,
        };
        Ok(Self {
            model: model.clone(),
            runtime,
            settings: opts.session.clone(),
            sharing: opts.sharing,
            mode,
            shared,
            spare: Mutex::new(spare),
            prompt_ids,
            record,
        })
    }

    /// Which mode the backend runs in.
    pub fn mode(&self) -> OnnxMode {
        match self.mode {
            Mode::Any { .. } => OnnxMode::Any,
            Mode::Decoder { .. } => OnnxMode::Decoder,
        }
    }

    /// Any-model mode: the synthesised inputs (every stream feeds these).
    pub fn synthesised_inputs(&self) -> Option<&[SynthInput]> {
        match &self.mode {
            Mode::Any { inputs, .. } => Some(inputs),
            Mode::Decoder { .. } => None,
        }
    }

    /// Decoder mode: the layout found in the signature.
    pub fn decoder_layout(&self) -> Option<&DecoderLayout> {
        match &self.mode {
            Mode::Decoder { layout, .. } => Some(layout),
            Mode::Any { .. } => None,
        }
    }

    /// One session for all streams, or one per stream.
    pub fn sharing(&self) -> SessionSharing {
        self.sharing
    }

    /// The ONNX Runtime library in use.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn session(&self) -> Result<SessionHandle, LoadError> {
        if let Some(s) = &self.shared {
            return Ok(SessionHandle::Shared(Arc::clone(s)));
        }
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(SessionHandle::Own(Box::new(match spare {
            Some(s) => s,
            None => open_session(&self.runtime, &self.model, &self.settings)?,
        })))
    }

    /// A stream with the concrete type.
    pub fn onnx_stream(&self) -> Result<OnnxStream, LoadError> {
        let session = self.session()?;
        Ok(OnnxStream(match &self.mode {
            Mode::Any {
                inputs,
                prompt_tokens,
            } => StreamKind::Any {
                session,
                inputs: Arc::clone(inputs),
                prompt_tokens: *prompt_tokens,
            },
            Mode::Decoder {
                layout,
                tokenizer,
                eos,
                context,
                vocab,
            } => StreamKind::Decoder(DecoderStream {
                session,
                layout: Arc::clone(layout),
                tokenizer: tokenizer.clone(),
                eos: eos.clone(),
                context: *context,
                vocab: *vocab,
            }),
        }))
    }

    /// Decoder mode: greedy generation recomputing the whole sequence at every step, without
    /// the KV cache (a check on the cached path; slow).
    pub fn greedy_without_cache(&self, prompt: &[u32], n: usize) -> Result<Vec<u32>, String> {
        let layout = self
            .decoder_layout()
            .ok_or("greedy_without_cache needs decoder mode")?;
        let mut session = self.session().map_err(|e| e.to_string())?;
        let out = session.with(|s| decoder::greedy_without_cache(s, layout, prompt, n));
        if let (SessionHandle::Own(s), true) = (session, self.shared.is_none()) {
            self.spare
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(*s);
        }
        out
    }
}

struct RecordParts {
    model: String,
    architecture: String,
    dtype: String,
    vocab: u32,
    context: u32,
    eos: Vec<u32>,
    tokenizer: Option<TokenizerProvenance>,
}

impl Backend for OnnxBackend {
    fn record(&self) -> &BackendRecord {
        &self.record
    }

    fn prompt_token_ids(&self) -> &[u32] {
        &self.prompt_ids
    }

    fn accepts_text(&self) -> bool {
        matches!(
            &self.mode,
            Mode::Decoder {
                tokenizer: Some(_),
                ..
            }
        )
    }

    fn decode(&self, ids: &[u32]) -> Option<String> {
        match &self.mode {
            Mode::Decoder {
                tokenizer: Some(t), ..
            } => t.decode(ids, true).ok(),
            _ => None,
        }
    }

    fn new_stream(&self) -> Result<Box<dyn Stream>, LoadError> {
        Ok(Box::new(self.onnx_stream()?))
    }
}

/// One stream over an [`OnnxBackend`].
pub struct OnnxStream(StreamKind);

enum StreamKind {
    Any {
        session: SessionHandle,
        inputs: Arc<Vec<SynthInput>>,
        prompt_tokens: u64,
    },
    Decoder(DecoderStream),
}

/// Decoder-mode stream state (the KV cache lives inside one `generate` call).
struct DecoderStream {
    session: SessionHandle,
    layout: Arc<DecoderLayout>,
    tokenizer: Option<Arc<Tokenizer>>,
    eos: HashSet<u32>,
    context: Option<usize>,
    vocab: usize,
}

/// Run one inference over the synthesised inputs. Shared by the stream and the raw bench loop
/// so both feed ONNX Runtime exactly the same way.
pub fn run_once(session: &mut Session, inputs: &[SynthInput]) -> ort::Result<()> {
    let feed = inputs
        .iter()
        .map(|i| Ok((i.name.as_str(), i.value()?)))
        .collect::<ort::Result<Vec<(&str, SessionInputValue<'_>)>>>()?;
    let outputs = session.run(feed)?;
    drop(outputs);
    Ok(())
}

impl DecoderStream {
    fn generate(
        &mut self,
        req: &GenRequest,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError> {
        let prompt = prompting::encode(&req.prompt, self.tokenizer.as_deref(), None)?;
        prompting::check(&prompt, req.max_tokens, self.vocab, self.context)?;
        let prompt_tokens = prompt.len() as u64;
        let fail = |kind, message: String, out: usize| RequestError {
            kind,
            message,
            prompt_tokens,
            output_tokens: out as u64,
            wire: None,
        };
        let mut sampler = prompting::sampler(&req.sampling);
        let layout = Arc::clone(&self.layout);
        let eos = &self.eos;
        let mut out = Vec::with_capacity(req.max_tokens as usize);
        let stop_reason = self.session.with(|session| {
            let mut cache = decoder::Cache::empty(&layout)
                .map_err(|e| fail(ErrorKind::Compute, e.to_string(), 0))?;
            let mut input = prompt.clone();
            loop {
                if out.len() >= req.max_tokens as usize {
                    return Ok(StopReason::MaxTokens);
                }
                let logits = decoder::step(session, &layout, &mut cache, &input)
                    .map_err(|m| fail(ErrorKind::Compute, m, out.len()))?;
                let next = Tensor::from_vec(logits, self.vocab, &Device::Cpu)
                    .and_then(|t| sampler.sample(&t))
                    .map_err(|e| fail(ErrorKind::Compute, e.to_string(), out.len()))?;
                let at = Instant::now();
                if !req.ignore_eos && eos.contains(&next) {
                    return Ok(StopReason::Eos);
                }
                out.push(next);
                if on_token(TokenEvent {
                    at,
                    tokens: 1,
                    id: Some(next),
                })
                .is_break()
                {
                    return Ok(StopReason::Cancelled);
                }
                input.clear();
                input.push(next);
            }
        })?;
        Ok(GenOutcome {
            prompt_tokens,
            output_tokens: out.len() as u64,
            stop_reason,
            output_token_ids: out,
            ..Default::default()
        })
    }
}

impl Stream for OnnxStream {
    fn generate(
        &mut self,
        request: &GenRequest,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError> {
        match &mut self.0 {
            StreamKind::Any {
                session,
                inputs,
                prompt_tokens,
            } => {
                let prompt_tokens = *prompt_tokens;
                session
                    .with(|s| run_once(s, inputs))
                    .map_err(|e| RequestError {
                        kind: ErrorKind::Compute,
                        message: e.to_string(),
                        prompt_tokens,
                        output_tokens: 0,
                        wire: None,
                    })?;
                let at = Instant::now();
                let stop_reason = match on_token(TokenEvent {
                    at,
                    tokens: 1,
                    id: None,
                }) {
                    ControlFlow::Break(()) => StopReason::Cancelled,
                    ControlFlow::Continue(()) => StopReason::MaxTokens,
                };
                Ok(GenOutcome {
                    prompt_tokens,
                    output_tokens: 1,
                    stop_reason,
                    output_token_ids: Vec::new(),
                    ..Default::default()
                })
            }
            StreamKind::Decoder(d) => d.generate(request, on_token),
        }
    }
}
