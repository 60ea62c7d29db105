//! The backend's settings (`[backend]` in a scenario; shared by `charter profile` and `charter
//! serve`) and their resolution into a [`BackendSpec`] with every default applied.
//!
//! Settings of one backend kind live in that kind's group ([`CandleArgs`], [`SimulatedArgs`],
//! [`OnnxArgs`], [`RemoteArgs`]); giving one of them with another kind is refused by one generic check.

use std::path::PathBuf;
use std::time::Duration;

use charter_backends::candle::convert::WeightFormat;
use charter_backends::candle::{presets, CandleOptions, ModelSource};
use charter_backends::hybrid::{HybridOptions, TierOptions};
use charter_backends::onnx::{OnnxOptions, SessionSettings, SessionSharing};
use charter_backends::remote::{Api, Endpoint, RemoteOptions, Timeouts};
use charter_backends::simulated::SimulatedTimings;
use charter_backends::{BackendSpec, HybridPolicy};
use clap::{Args, ValueHint};

use super::scenario::Origins;
use crate::values::*;
use crate::CliError;

/// Backends charter can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// candle in-process: GGUF, safetensors directory, or random-weight preset.
    Candle,
    /// SIMULATED test tool: fixed sleeps (--sim-ttft, --sim-itl); not a model.
    Simulated,
    /// ONNX Runtime (through ort; library from --ort-lib, ORT_DYLIB_PATH or
    /// scripts/fetch-onnxruntime.sh): any model (synthesised inputs) or an Optimum decoder.
    Onnx,
    /// OpenAI-compatible HTTP API, streaming (OpenAI, vLLM, TGI, llama.cpp, Ollama, charter
    /// serve): --base-url, --model NAME, --api-key-env VAR, --endpoint chat|completions.
    Openai,
    /// Anthropic messages API, streaming: --base-url, --model NAME, --api-key-env VAR.
    Anthropic,
    /// Tiers of the backends above (--tier, in routing order) and a policy routing each
    /// request to one of them (--hybrid-policy).
    Hybrid,
}

impl BackendKind {
    pub fn is_remote(self) -> bool {
        matches!(self, BackendKind::Openai | BackendKind::Anthropic)
    }

    /// How a scenario names this kind, beside the flag.
    fn named(self) -> &'static str {
        match self {
            BackendKind::Candle => "--backend candle (kind = \"candle\" in a scenario)",
            BackendKind::Simulated => "--backend simulated (kind = \"simulated\" in a scenario)",
            BackendKind::Onnx => "--backend onnx (kind = \"onnx\" in a scenario)",
            BackendKind::Openai | BackendKind::Anthropic => {
                "--backend openai|anthropic (kind = \"openai\" or \"anthropic\" in a scenario)"
            }
            BackendKind::Hybrid => "--backend hybrid (kind = \"hybrid\" in a scenario)",
        }
    }
}

/// `[backend]`: what runs the model.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "backend")]
#[command(next_help_heading = "Backend ([backend] in a scenario)")]
pub struct BackendArgs {
    /// Backend [default: candle].
    #[arg(long = "backend", value_enum)]
    pub kind: Option<BackendKind>,

    /// Model to load: a .gguf file (quantized Llama family) or a safetensors directory
    /// (config.json + *.safetensors + tokenizer.json); with --backend onnx, an .onnx file;
    /// with --backend openai|anthropic, the model name the server serves.
    /// Without it, --preset is used.
    #[arg(long, value_name = "PATH", conflicts_with = "preset", value_hint = ValueHint::AnyPath)]
    pub model: Option<PathBuf>,

    /// Built-in architecture with deterministic random weights [default: tiny-15m]
    /// (see `charter presets`).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,

    /// Seed for preset weights, prompts, arrivals and sampling [default: 0].
    #[arg(long, value_parser = whole::<u64>)]
    pub seed: Option<u64>,

    /// Compute threads per instance [default: logical cores ÷ instances, at least 1].
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>)]
    pub threads: Option<usize>,

    /// Tokenizer: a tokenizer.json, or a .gguf model file (its embedded tokenizer). ONNX decoder
    /// mode: encodes text prompts and decodes output [default: tokenizer.json next to the
    /// model]. Remote APIs (must be the server's tokenizer): synthetic prompts become text of
    /// exactly --prompt-tokens tokens (without it: N common words, an estimate), text prompts
    /// are counted, and output tokens are counted (the count used when the server sends no
    /// usage, compared with usage when it does). candle: not used (the model brings its own).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub tokenizer: Option<PathBuf>,

    // Last: their help headings apply to the flags after them.
    #[command(flatten)]
    pub candle: CandleArgs,

    #[command(flatten)]
    pub sim: SimulatedArgs,

    #[command(flatten)]
    pub onnx: OnnxArgs,

    #[command(flatten)]
    pub remote: RemoteArgs,

    #[command(flatten)]
    pub hybrid: HybridArgs,
}

/// Settings of the candle backend.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "candle backend (--backend candle, the default)")]
pub struct CandleArgs {
    /// GGUF weight formats without a SIMD kernel in candle (q4_1, q5_0, q5_1): auto converts
    /// them to q8_0 once (a copy cached under .cache/converted, keyed by the file's sha256;
    /// the file itself is never changed), keep runs them as stored, q8_0 / q4_k convert to
    /// that format [default: auto].
    #[arg(long, value_enum)]
    pub weights: Option<WeightFormat>,

    /// Pin each instance's compute threads to their own cores (instance i, thread j on
    /// allowed CPU (i × threads + j) mod cores); recorded in run.json.
    #[arg(long)]
    pub pin: bool,
}

/// Settings of the simulated backend.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Simulated backend (--backend simulated; a test tool)")]
pub struct SimulatedArgs {
    /// Simulated backend: time to first token [default: 20ms].
    #[arg(long, value_parser = parse_duration)]
    pub sim_ttft: Option<Duration>,

    /// Simulated backend: time between tokens [default: 5ms].
    #[arg(long, value_parser = parse_duration)]
    pub sim_itl: Option<Duration>,

    /// Simulated backend: share of every wait spent busy on a CPU, in [0, 1] [default: 0].
    #[arg(long, value_parser = parse_unit_interval)]
    pub sim_cpu: Option<f64>,
}

/// `--onnx-spinning` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Settings of the ONNX Runtime backend.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "ONNX Runtime backend (--backend onnx)")]
pub struct OnnxArgs {
    /// ONNX Runtime 1.31.x shared library [default: ORT_DYLIB_PATH, then
    /// .cache/onnxruntime/ (scripts/fetch-onnxruntime.sh)].
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub ort_lib: Option<PathBuf>,

    /// any: synthesised inputs, one request = one inference call; decoder: token generation
    /// with the KV cache (Optimum layout) [default: decoder when the signature has that layout].
    #[arg(long, value_enum)]
    pub onnx_mode: Option<charter_backends::onnx::OnnxMode>,

    /// Any-model mode: value of dynamic batch dimensions [default: 1].
    #[arg(long, value_parser = at_least_one::<usize>)]
    pub batch: Option<usize>,

    /// Any-model mode: value of dynamic sequence dimensions [default: 128].
    #[arg(long, value_parser = at_least_one::<usize>)]
    pub seq_len: Option<usize>,

    /// Any-model mode: value of a named dynamic dimension, e.g. height=224 (comma-separated).
    #[arg(long, value_name = "NAME=N", value_delimiter = ',', value_parser = parse_dim)]
    pub onnx_dim: Vec<(String, usize)>,

    /// Threads inside one operator, per session [default: --threads, else logical cores ÷
    /// instances (per-instance sessions) or all logical cores (shared session)].
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>)]
    pub intra_op_threads: Option<usize>,

    /// Threads running independent graph nodes; above 1 selects parallel execution [default: 1].
    #[arg(long, value_name = "N", value_parser = at_least_one::<usize>)]
    pub inter_op_threads: Option<usize>,

    /// Let idle ONNX Runtime pool threads spin before sleeping [default: on].
    #[arg(long, value_enum)]
    pub onnx_spinning: Option<OnOff>,

    /// Graph optimisation level [default: all].
    #[arg(long, value_enum)]
    pub graph_opt: Option<charter_backends::onnx::GraphOpt>,

    /// Execution provider; cuda and tensorrt need a GPU build of ONNX Runtime [default: cpu].
    #[arg(long, value_enum)]
    pub execution_provider: Option<charter_backends::onnx::ExecutionProviderKind>,

    /// One session per stream, or one shared by all streams (calls serialised)
    /// [default: per-instance].
    #[arg(long, value_enum)]
    pub onnx_sessions: Option<SessionSharing>,
}

/// Settings of the remote API backends.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Remote API backends (--backend openai|anthropic)")]
pub struct RemoteArgs {
    /// Server base URL, e.g. `http://127.0.0.1:8000` or `https://api.openai.com/v1` (a base that
    /// ends in /v1 does not get a second one).
    #[arg(long, value_name = "URL", value_hint = ValueHint::Url)]
    pub base_url: Option<String>,

    /// Environment variable holding the API key (the key itself is never a flag value, and
    /// never appears in records, logs or errors).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,

    /// OpenAI endpoint [default: chat].
    #[arg(long, value_enum)]
    pub endpoint: Option<Endpoint>,

    /// Extra request header `NAME: VALUE` (repeatable; only names are recorded).
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,

    /// Request field carrying the output cap: max-tokens (honoured by every OpenAI-compatible
    /// server, the only one llama.cpp's server reads) or max-completion-tokens [default:
    /// max-tokens].
    #[arg(long, value_enum)]
    pub length_field: Option<charter_backends::remote::LengthField>,

    /// Do not ask for stream_options.include_usage (for servers that reject it).
    #[arg(long)]
    pub no_include_usage: bool,

    /// JSON object merged into every request body, e.g. '{"top_k": 20}'.
    #[arg(long, value_name = "JSON", value_parser = parse_json_object)]
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,

    /// Timeout for opening a connection (DNS, TCP, TLS) [default: 10s].
    #[arg(long, value_parser = parse_positive_duration)]
    pub connect_timeout: Option<Duration>,

    /// Timeout from the start of a request to its response headers [default: 300s].
    #[arg(long, value_parser = parse_positive_duration)]
    pub headers_timeout: Option<Duration>,

    /// Longest gap without a byte of the response body [default: 60s].
    #[arg(long, value_parser = parse_positive_duration)]
    pub idle_timeout: Option<Duration>,

    /// Timeout for a whole request [default: none].
    #[arg(long, value_parser = parse_positive_duration)]
    pub total_timeout: Option<Duration>,

    /// Largest SSE event accepted; a larger one fails its request as malformed [default:
    /// 1048576].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_event_bytes: Option<u64>,

    /// Largest response body read; an endless or runaway stream fails its request as malformed
    /// once this many bytes have arrived [default: 268435456].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_response_bytes: Option<u64>,

    /// Speak HTTP/2 over plain TCP without negotiation (h2c).
    #[arg(long)]
    pub http2_prior_knowledge: bool,

    /// Send the API key (or an Authorization, x-api-key or Cookie --header) over plain http://
    /// to a host that is not this machine; refused (exit 2) without it.
    #[arg(long)]
    pub allow_plaintext_key: bool,

    /// PEM file of certificates to trust beside the web PKI roots (a private CA, a self-signed
    /// server).
    #[arg(long, value_name = "PEM", value_hint = ValueHint::FilePath)]
    pub ca_cert: Option<PathBuf>,

    /// Do not verify TLS certificates at all (said loudly on the console, recorded in the run
    /// as backend.remote.tls).
    #[arg(long)]
    pub insecure: bool,

    /// Close a kept-alive connection that sat idle this long, before the server does (uvicorn
    /// closes them after 5s, gunicorn 2s, nginx 75s) [default: 4s].
    #[arg(long, value_parser = parse_positive_duration)]
    pub pool_idle_timeout: Option<Duration>,

    /// Completions endpoint: send synthetic prompts as token ids of --tokenizer's vocabulary
    /// (which must be the server's) instead of text.
    #[arg(long)]
    pub prompt_ids: bool,

    /// The served model's config.json (Hugging Face) or .gguf: its KV-cache bytes per token,
    /// printed beside the RAM fit of a watched server (--watch-pid).
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub model_config: Option<PathBuf>,
    /// Response header naming the upstream that served each request (a gateway's, e.g.
    /// LiteLLM's x-litellm-model-api-base): recorded per request as its tier, and summarised
    /// per tier as a hybrid backend's tiers are.
    #[arg(long, value_name = "NAME")]
    pub tier_header: Option<String>,
}

/// Settings of the hybrid backend.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Hybrid backend (--backend hybrid)")]
pub struct HybridArgs {
    /// One tier, in routing order (repeat it; at least two): `[backend]` keys of that tier as a
    /// TOML inline table, plus `name`, `max_in_flight` (in-flight and queue-wait policies: the
    /// most requests it serves at once; every tier but the last needs one), and for queue-wait
    /// `resume_below`, `max_waiting`, `resume_waiting` and `metrics_url` (the tier's /metrics
    /// [default: {base}/metrics of an openai tier], or "none"), e.g. '{kind = "openai", base_url
    /// = "http://onprem:8000", model = "m", name = "onprem", max_in_flight = 8}'. In a
    /// scenario: `[[backend.tier]]` tables.
    #[arg(long, value_name = "TABLE", value_parser = TierTable::parse)]
    pub tier: Vec<TierTable>,

    /// Routing between the tiers [default: in-flight]; queue-wait spills with hysteresis on the
    /// tier's queue: while its server's /metrics report more than `max_waiting` [default: 0]
    /// waiting requests, until `resume_waiting` [default: half of max_waiting] or fewer; without
    /// a reading, from reaching `max_in_flight` until its in-flight count drains to
    /// `resume_below` [default: half of max_in_flight].
    #[arg(long, value_enum)]
    pub hybrid_policy: Option<HybridPolicy>,
    /// ttft-slo policy: a tier whose predicted time to first token exceeds this spills to the
    /// next one (e.g. 500ms).
    #[arg(long, value_parser = parse_positive_duration)]
    pub spill_ttft: Option<Duration>,

    /// ttft-slo policy: how long a first token counts in a tier's prediction [default: 10s].
    #[arg(long, value_parser = parse_positive_duration)]
    pub spill_window: Option<Duration>,
}

/// One `--tier`: a TOML table of a tier's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TierTable(pub toml::Table);

impl TierTable {
    /// `{kind = "openai", ...}`: a TOML inline table.
    pub fn parse(s: &str) -> Result<Self, String> {
        let doc: toml::Table = toml::from_str(&format!("tier = {}", s.trim())).map_err(|e| {
            format!(
                "`{s}`: expected a TOML inline table such as {{kind = \"simulated\", name = \"onprem\", max_in_flight = 4}} ({})",
                e.message().trim()
            )
        })?;
        match doc.get("tier") {
            Some(toml::Value::Table(t)) => Ok(Self(t.clone())),
            _ => Err(format!(
                "`{s}`: expected a TOML inline table such as {{kind = \"simulated\", name = \"onprem\"}}"
            )),
        }
    }
}

impl std::fmt::Display for TierTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", toml::Value::Table(self.0.clone()))
    }
}

/// Arguments of one kind-specific group, by id.
fn ids_of<A: Args>() -> Vec<String> {
    A::augment_args(clap::Command::new("ids"))
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

impl BackendArgs {
    /// The backend's kind [default: candle].
    pub fn kind(&self) -> BackendKind {
        self.kind.unwrap_or(BackendKind::Candle)
    }

    /// Every setting that applies to the kind, checked, with defaults applied. `threads` is
    /// the default compute threads per instance (used unless `--threads` is given);
    /// `instances` the most instances that will run (what `--pin` lays cores out for).
    pub fn resolve(
        &self,
        o: &Origins,
        threads: usize,
        instances: usize,
    ) -> Result<BackendSpec, CliError> {
        let kind = self.kind();
        // A kind's own settings with another kind: refused, naming the first one given.
        for (group, what, owner) in [
            (
                ids_of::<CandleArgs>(),
                "candle settings",
                BackendKind::Candle,
            ),
            (
                ids_of::<SimulatedArgs>(),
                "simulated-backend settings",
                BackendKind::Simulated,
            ),
            (
                ids_of::<OnnxArgs>(),
                "ONNX Runtime settings",
                BackendKind::Onnx,
            ),
            (
                ids_of::<RemoteArgs>(),
                "remote API settings",
                BackendKind::Openai,
            ),
            (
                ids_of::<HybridArgs>(),
                "hybrid-backend settings",
                BackendKind::Hybrid,
            ),
        ] {
            let same = kind == owner || (kind.is_remote() && owner.is_remote());
            if let Some(id) = group.iter().find(|id| !same && o.is_set(id)) {
                let place = if kind == BackendKind::Hybrid {
                    " (a hybrid backend's tiers take them in their --tier tables)"
                } else {
                    ""
                };
                return Err(o.bad(id, format!("{what} apply only to {}{place}", owner.named())));
            }
        }
        if kind == BackendKind::Hybrid {
            if let Some(id) = ["model", "tokenizer"].into_iter().find(|id| o.is_set(id)) {
                return Err(o.bad(
                    id,
                    "a hybrid backend takes it in each --tier table, not beside them",
                ));
            }
            return self.resolve_hybrid(o, threads, instances);
        }
        if self.tokenizer.is_some() && !(kind == BackendKind::Onnx || kind.is_remote()) {
            return Err(o.bad(
                "tokenizer",
                "applies only to --backend onnx|openai|anthropic (a GGUF or safetensors model brings its own tokenizer)",
            ));
        }
        if self.preset.is_some() && kind != BackendKind::Candle {
            return Err(o.bad(
                "preset",
                format!("applies only to {}", BackendKind::Candle.named()),
            ));
        }
        let threads = self.threads.unwrap_or(threads);
        Ok(match kind {
            BackendKind::Candle => {
                let source = match &self.model {
                    Some(p) => ModelSource::Path(p.clone()),
                    None => {
                        let name = self
                            .preset
                            .clone()
                            .unwrap_or_else(|| presets::DEFAULT_PRESET.into());
                        if presets::find(&name).is_none() {
                            return Err(o.bad_value(
                                "preset",
                                &name,
                                format!(
                                    "unknown preset `{name}` (expected one of: {})",
                                    presets::names()
                                ),
                            ));
                        }
                        ModelSource::Preset {
                            name,
                            seed: self.seed.unwrap_or(0),
                        }
                    }
                };
                let mut opts = CandleOptions::new(source, threads);
                opts.weights = self.candle.weights.unwrap_or_default();
                opts.pin_instances = self.candle.pin.then_some(instances);
                BackendSpec::Candle(opts)
            }
            BackendKind::Simulated => {
                if self.model.is_some() {
                    return Err(o.bad("model", "the simulated backend takes no model"));
                }
                let s = &self.sim;
                BackendSpec::Simulated(SimulatedTimings {
                    ttft: s.sim_ttft.unwrap_or(Duration::from_millis(20)),
                    itl: s.sim_itl.unwrap_or(Duration::from_millis(5)),
                    cpu_fraction: s.sim_cpu.unwrap_or(0.0),
                })
            }
            BackendKind::Onnx => {
                let Some(model) = self.model.clone() else {
                    return Err(o.bad("model", "--backend onnx needs --model PATH.onnx"));
                };
                let a = &self.onnx;
                let sharing = a.onnx_sessions.unwrap_or_default();
                // A shared session serves one call at a time, so by default it gets every core.
                let default_intra = match sharing {
                    SessionSharing::Shared => std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1),
                    SessionSharing::PerInstance => threads,
                };
                let mut opts = OnnxOptions::new(model);
                opts.ort_lib = a.ort_lib.clone();
                opts.mode = a.onnx_mode;
                opts.batch = a.batch;
                opts.seq_len = a.seq_len;
                opts.dims = a.onnx_dim.clone();
                opts.session = SessionSettings {
                    intra_op_threads: a.intra_op_threads.or(self.threads).unwrap_or(default_intra),
                    inter_op_threads: a.inter_op_threads.unwrap_or(1),
                    spinning: a.onnx_spinning != Some(OnOff::Off),
                    graph_opt: a.graph_opt.unwrap_or_default(),
                    execution_provider: a.execution_provider.unwrap_or_default(),
                };
                opts.sharing = sharing;
                opts.tokenizer = self.tokenizer.clone();
                opts.seed = self.seed.unwrap_or(0);
                BackendSpec::Onnx(opts)
            }
            BackendKind::Openai | BackendKind::Anthropic => {
                let (api, flag) = if kind == BackendKind::Openai {
                    (Api::Openai, "openai")
                } else {
                    (Api::Anthropic, "anthropic")
                };
                let r = &self.remote;
                let Some(base_url) = r.base_url.clone() else {
                    return Err(o.bad(
                        "base_url",
                        format!(
                            "--backend {flag} needs --base-url URL (e.g. http://127.0.0.1:8000)"
                        ),
                    ));
                };
                let Some(model) = self
                    .model
                    .as_ref()
                    .map(|m| m.to_string_lossy().into_owned())
                else {
                    return Err(o.bad(
                        "model",
                        format!("--backend {flag} needs --model NAME (the model name the server serves)"),
                    ));
                };
                if api == Api::Anthropic && r.endpoint == Some(Endpoint::Completions) {
                    return Err(o.bad(
                        "endpoint",
                        "--backend anthropic has only the messages endpoint",
                    ));
                }
                let d = Timeouts::default();
                let mut opts = RemoteOptions::new(api, base_url, model);
                opts.endpoint = r.endpoint.unwrap_or_default();
                opts.api_key_env = r.api_key_env.clone();
                opts.headers = r.headers.clone();
                opts.length_field = r.length_field.unwrap_or_default();
                opts.include_usage = !r.no_include_usage;
                opts.extra_body = r.extra_body.clone();
                opts.timeouts = Timeouts {
                    connect: r.connect_timeout.unwrap_or(d.connect),
                    headers: r.headers_timeout.unwrap_or(d.headers),
                    idle: r.idle_timeout.unwrap_or(d.idle),
                    total: r.total_timeout,
                };
                if r.prompt_ids {
                    if api != Api::Openai || opts.endpoint != Endpoint::Completions {
                        return Err(o.bad(
                            "prompt_ids",
                            "applies only to --endpoint completions (chat messages are text)",
                        ));
                    }
                    if self.tokenizer.is_none() {
                        return Err(o.bad(
                            "prompt_ids",
                            "needs --tokenizer: the ids are drawn from its vocabulary, which must be the server's",
                        ));
                    }
                }
                opts.prompt_ids = r.prompt_ids;
                opts.pool_idle_timeout = r
                    .pool_idle_timeout
                    .unwrap_or(charter_backends::remote::DEFAULT_POOL_IDLE_TIMEOUT);
                opts.tokenizer = self.tokenizer.clone();
                if let Some(m) = r.max_event_bytes {
                    opts.max_event_bytes = m as usize;
                }
                if let Some(m) = r.max_response_bytes {
                    opts.max_response_bytes = m;
                }
                opts.http2_prior_knowledge = r.http2_prior_knowledge;
                opts.model_config = r.model_config.clone();
                opts.allow_plaintext_key = r.allow_plaintext_key;
                opts.ca_cert = r.ca_cert.clone();
                opts.insecure = r.insecure;
                opts.tier_header = r.tier_header.clone();
                BackendSpec::Remote(opts)
            }
            BackendKind::Hybrid => unreachable!("resolved above"),
        })
    }

    /// `--backend hybrid`: each tier table resolved as a backend of its own.
    fn resolve_hybrid(
        &self,
        o: &Origins,
        threads: usize,
        instances: usize,
    ) -> Result<BackendSpec, CliError> {
        let h = &self.hybrid;
        if h.tier.len() < 2 {
            return Err(o.bad(
                "tier",
                format!(
                    "--backend hybrid needs at least two --tier tables, in routing order (found {})",
                    h.tier.len()
                ),
            ));
        }
        let policy = h.hybrid_policy.unwrap_or(HybridPolicy::InFlight);
        let last = h.tier.len() - 1;
        let mut tiers: Vec<TierOptions> = Vec::new();
        for (i, TierTable(table)) in h.tier.iter().enumerate() {
            let label = format!("{} #{}", o.name("tier"), i + 1);
            let bad = |key: &str, what: String| {
                CliError::BadInput(format!("{label}: key `{key}`: {what}"))
            };
            let (args, origins) = super::scenario::tier_settings(table, &label)?;
            if args.kind() == BackendKind::Hybrid {
                return Err(bad(
                    "kind",
                    "a tier cannot itself be hybrid; expected candle, simulated, onnx, openai or anthropic".into(),
                ));
            }
            let name = match table.get("name") {
                None => format!("tier{}", i + 1),
                Some(toml::Value::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
                Some(_) => return Err(bad("name", "expected a non-empty string".into())),
            };
            if tiers.iter().any(|t| t.name == name) {
                return Err(bad(
                    "name",
                    format!("`{name}` names an earlier tier too; expected distinct names"),
                ));
            }
            let max_in_flight = match table.get("max_in_flight") {
                None => None,
                Some(toml::Value::Integer(k)) if *k >= 1 && *k <= i64::from(u32::MAX) => {
                    Some(*k as u32)
                }
                Some(v) => {
                    return Err(bad(
                        "max_in_flight",
                        format!("`{v}`: expected an integer ≥ 1"),
                    ))
                }
            };
            let by_count = matches!(policy, HybridPolicy::InFlight | HybridPolicy::QueueWait);
            match (by_count, max_in_flight) {
                (true, None) if i < last => {
                    return Err(bad(
                        "max_in_flight",
                        format!("missing: with --hybrid-policy {policy} every tier but the last needs one (tier `{name}`)"),
                    ))
                }
                (false, Some(_)) => {
                    return Err(bad(
                        "max_in_flight",
                        "applies only to --hybrid-policy in-flight or queue-wait".into(),
                    ))
                }
                _ => {}
            }
            let resume_below = match (table.get("resume_below"), policy, max_in_flight) {
                (None, HybridPolicy::QueueWait, Some(k)) => Some(k / 2),
                (None, _, _) => None,
                (Some(_), p, _) if p != HybridPolicy::QueueWait => {
                    return Err(bad(
                        "resume_below",
                        "applies only to --hybrid-policy queue-wait".into(),
                    ))
                }
                (Some(toml::Value::Integer(j)), _, Some(k)) if *j >= 0 && *j < i64::from(k) => {
                    Some(*j as u32)
                }
                (Some(v), _, k) => {
                    return Err(bad(
                        "resume_below",
                        format!(
                            "`{v}`: expected an integer from 0 to below max_in_flight ({})",
                            k.map_or("unset".to_string(), |k| k.to_string())
                        ),
                    ))
                }
            };
            let queue_wait = policy == HybridPolicy::QueueWait;
            let count = |key: &str| match table.get(key) {
                Some(_) if !queue_wait => Err(bad(
                    key,
                    "applies only to --hybrid-policy queue-wait".into(),
                )),
                Some(toml::Value::Integer(k)) if *k >= 0 && *k < i64::from(u32::MAX) => {
                    Ok(Some(*k as u32))
                }
                Some(v) => Err(bad(key, format!("`{v}`: expected an integer ≥ 0"))),
                None => Ok(None),
            };
            let max_waiting = count("max_waiting")?.or(queue_wait.then_some(0));
            let resume_waiting = count("resume_waiting")?.or(max_waiting.map(|w| w / 2));
            if let (Some(r), Some(w)) = (resume_waiting, max_waiting) {
                if r > w {
                    return Err(bad(
                        "resume_waiting",
                        format!("`{r}`: expected an integer from 0 to max_waiting ({w})"),
                    ));
                }
            }
            let metrics_url = match table.get("metrics_url") {
                None => None,
                Some(_) if !queue_wait => {
                    return Err(bad(
                        "metrics_url",
                        "applies only to --hybrid-policy queue-wait".into(),
                    ))
                }
                Some(toml::Value::String(u))
                    if u == crate::telemetry::server_metrics::NONE
                        || reqwest::Url::parse(u).is_ok_and(|u| {
                            matches!(u.scheme(), "http" | "https") && u.host().is_some()
                        }) =>
                {
                    Some(u.clone())
                }
                Some(v) => {
                    return Err(bad(
                        "metrics_url",
                        format!("`{v}`: expected an http:// or https:// URL such as http://127.0.0.1:8000/metrics, or \"none\""),
                    ))
                }
            };
            let spec = args.resolve(&origins, threads, instances)?;
            tiers.push(TierOptions {
                name,
                max_in_flight,
                resume_below,
                max_waiting,
                resume_waiting,
                metrics_url,
                server_waiting: Default::default(),
                spec,
            });
        }
        let ttft_policy = policy == HybridPolicy::TtftSlo;
        if ttft_policy && h.spill_ttft.is_none() {
            return Err(o.bad(
                "spill_ttft",
                "--hybrid-policy ttft-slo needs --spill-ttft DURATION (the TTFT above which a tier spills)",
            ));
        }
        if let Some(id) = ["spill_ttft", "spill_window"]
            .into_iter()
            .find(|id| !ttft_policy && o.is_set(id))
        {
            return Err(o.bad(id, "applies only to --hybrid-policy ttft-slo"));
        }
        Ok(BackendSpec::Hybrid(HybridOptions {
            policy,
            tiers,
            spill_ttft: h.spill_ttft,
            spill_window: h
                .spill_window
                .unwrap_or(charter_backends::hybrid::DEFAULT_SPILL_WINDOW),
        }))
    }
}
