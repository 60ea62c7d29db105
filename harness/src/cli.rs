//! Command-line interface (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::CliError;

const EXIT_CODES: &str = "\
Exit codes:
  0    the run finished (failed requests are recorded as data; they do not fail the run)
  1    charter itself failed (e.g. results could not be written)
  2    bad input (flags, model path or files, tokenizer); no run record is left behind
  130  interrupted (Ctrl-C); the partial record is written with \"complete\": false";

/// Benchmark and resource-profile LLM inference.
#[derive(Debug, Parser)]
#[command(name = "charter", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run load against a model and record latency and resource use.
    ///
    /// Closed loop (--concurrency), open loop (--rate with --arrivals), sweeps over several
    /// levels (comma-separated lists, or --sweep auto), and SLO search (--slo). A scenario file
    /// (--scenario) can describe all of it; flags given on the command line override it.
    ///
    /// Metric definitions (charter's metrics reference): TTFT = first non-empty token − start;
    /// ITL = (e2e − ttft) / (output tokens − 1); chunk gaps are the individual gaps between
    /// tokens, kept separately from ITL; open-loop latencies are also reported from each
    /// request's intended start (*_from_intended), and schedule lag = start − intended start.
    #[command(after_help = EXIT_CODES)]
    Profile(Box<ProfileArgs>),
    /// Serve an in-process backend as an OpenAI-compatible streaming endpoint
    /// (/v1/chat/completions, /v1/completions, /v1/models), e.g. to measure a model in-process
    /// and over HTTP side by side: `charter serve --preset tiny-15m --listen 127.0.0.1:8000`.
    #[command(after_help = EXIT_CODES)]
    Serve(Box<crate::serve::ServeArgs>),
    /// Check a scenario file without running it (exit 0 when valid, 2 otherwise).
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// The scenario TOML file.
        scenario: PathBuf,
    },
    /// Compare baseline runs with candidate runs and fail only on significant regressions.
    ///
    /// One value per trial (run, or --trials repeat) per metric; a regression needs an effect
    /// beyond the rule's threshold AND a significant two-sided Mann–Whitney U test.
    #[command(after_help = GATE_EXIT_CODES)]
    Gate(Box<GateArgs>),
    /// Render a resource charter (HTML, Markdown, JSON, CSV, PNG/SVG charts) from run records.
    #[command(after_help = EXIT_CODES)]
    Report {
        /// Run directories.
        #[arg(required = true, value_name = "RUN")]
        runs: Vec<PathBuf>,
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Cost model (see cost.example.toml): adds cost per 1M tokens, break-even and carbon.
        #[arg(long, value_name = "FILE")]
        cost: Option<PathBuf>,
    },
    /// Side-by-side table of runs (e.g. on-prem vs cloud, before vs after), with ratios.
    #[command(after_help = EXIT_CODES)]
    Compare {
        #[arg(required = true, num_args = 2.., value_name = "RUN")]
        runs: Vec<PathBuf>,
    },
    /// Nodes needed for a target load (with headroom and redundancy), and their monthly cost.
    #[command(after_help = EXIT_CODES)]
    Plan {
        /// A run (ideally a sweep or SLO search) giving one node's sustainable capacity.
        #[arg(value_name = "RUN")]
        run: PathBuf,
        /// Target requests per second.
        #[arg(long, value_parser = parse_positive)]
        target_rps: Option<f64>,
        /// Target output tokens per second.
        #[arg(long, value_parser = parse_positive)]
        target_tps: Option<f64>,
        /// Spare capacity on top of the target (0.25 = 25 %).
        #[arg(long, default_value_t = 0.25, value_parser = parse_non_negative)]
        headroom: f64,
        /// Extra nodes for redundancy (N+k).
        #[arg(long, default_value_t = 1)]
        redundancy: u32,
        /// Cost model for the monthly cost of the fleet.
        #[arg(long, value_name = "FILE")]
        cost: Option<PathBuf>,
    },
    /// List the built-in architecture presets (random weights, no download).
    Presets,
    /// Internal: one instance of `profile --isolation process` (started by charter itself;
    /// speaks JSON lines on stdin/stdout).
    #[command(hide = true)]
    Worker {
        /// Compute threads of this instance.
        #[arg(long)]
        threads: usize,
        /// The `charter profile` arguments that describe the backend.
        #[arg(last = true, allow_hyphen_values = true)]
        profile_args: Vec<std::ffi::OsString>,
    },
}

const GATE_EXIT_CODES: &str = "\
Exit codes:
  0  pass (or improvement; or inconclusive without --fail-on-inconclusive)
  1  regression: a metric changed beyond its threshold, significantly
  2  error: bad rules file, missing or unreadable run, newer record schema
  3  inconclusive (only with --fail-on-inconclusive): too few trials, or the interval straddles the threshold";

/// Arguments of `charter gate`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GateArgs {
    #[command(subcommand)]
    pub command: Option<GateCommand>,
    /// Baseline run directories.
    #[arg(long, num_args = 1.., value_name = "RUN")]
    pub baseline: Vec<PathBuf>,
    /// Candidate run directories.
    #[arg(long, num_args = 1.., value_name = "RUN")]
    pub candidate: Vec<PathBuf>,
    /// Rules file (see reports/examples/gate.toml).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Which distinct measured load of the runs to gate (0 = the first).
    #[arg(long, default_value_t = 0)]
    pub load_index: usize,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML (one testcase per gated metric).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown table (also appended to $GITHUB_STEP_SUMMARY when it is set).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write Bencher Metric Format JSON.
    #[arg(long, value_name = "FILE")]
    pub bmf: Option<PathBuf>,
    /// Benchmark name used in the BMF output.
    #[arg(long, default_value = "charter")]
    pub benchmark: String,
    /// Exit 3 when any metric is inconclusive.
    #[arg(long)]
    pub fail_on_inconclusive: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum GateCommand {
    /// Estimate each metric's run-to-run noise from A/A trials (e.g. `charter profile
    /// --trials 10`) and suggest thresholds.
    Calibrate(CalibrateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// A/A run directories (the same configuration, repeated).
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// Calibrate the metrics of this rules file (default: a standard set).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Trials per side the gate will have.
    #[arg(long, default_value_t = 7)]
    pub trials_per_side: usize,
    /// Which distinct measured load to use (0 = the first).
    #[arg(long, default_value_t = 0)]
    pub load_index: usize,
}

/// Backends `charter profile` can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
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
}

impl BackendKind {
    pub fn is_remote(self) -> bool {
        matches!(self, BackendKind::Openai | BackendKind::Anthropic)
    }
}

/// Flags of the remote API backends (`--backend openai|anthropic`).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Remote API backends (--backend openai|anthropic)")]
pub struct RemoteArgs {
    /// Server base URL, e.g. `http://127.0.0.1:8000` or `https://api.openai.com/v1` (a base that
    /// ends in /v1 does not get a second one).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Environment variable holding the API key (the key itself is never a flag value, and
    /// never appears in records, logs or errors).
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,

    /// OpenAI endpoint [default: chat].
    #[arg(long, value_enum)]
    pub endpoint: Option<charter_backends::remote::Endpoint>,

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

    /// Speak HTTP/2 over plain TCP without negotiation (h2c).
    #[arg(long)]
    pub http2_prior_knowledge: bool,
}

impl RemoteArgs {
    /// Whether any remote-only flag was given.
    pub fn any_set(&self) -> bool {
        self.base_url.is_some()
            || self.api_key_env.is_some()
            || self.endpoint.is_some()
            || !self.headers.is_empty()
            || self.length_field.is_some()
            || self.no_include_usage
            || self.extra_body.is_some()
            || self.connect_timeout.is_some()
            || self.headers_timeout.is_some()
            || self.idle_timeout.is_some()
            || self.total_timeout.is_some()
            || self.max_event_bytes.is_some()
            || self.http2_prior_knowledge
    }

    /// Values given here win; `other` (a scenario file) fills the rest.
    pub fn or(self, other: RemoteArgs) -> RemoteArgs {
        RemoteArgs {
            base_url: self.base_url.or(other.base_url),
            api_key_env: self.api_key_env.or(other.api_key_env),
            endpoint: self.endpoint.or(other.endpoint),
            headers: if self.headers.is_empty() {
                other.headers
            } else {
                self.headers
            },
            length_field: self.length_field.or(other.length_field),
            no_include_usage: self.no_include_usage || other.no_include_usage,
            extra_body: self.extra_body.or(other.extra_body),
            connect_timeout: self.connect_timeout.or(other.connect_timeout),
            headers_timeout: self.headers_timeout.or(other.headers_timeout),
            idle_timeout: self.idle_timeout.or(other.idle_timeout),
            total_timeout: self.total_timeout.or(other.total_timeout),
            max_event_bytes: self.max_event_bytes.or(other.max_event_bytes),
            http2_prior_knowledge: self.http2_prior_knowledge || other.http2_prior_knowledge,
        }
    }
}

/// `NAME: VALUE` for `--header`.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((n, v)) if !n.trim().is_empty() => Ok((n.trim().to_string(), v.trim().to_string())),
        _ => Err("expected NAME: VALUE, e.g. 'X-Team: bench'".to_string()),
    }
}

/// A JSON object for `--extra-body`.
pub fn parse_json_object(s: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(format!(
            "`{s}`: expected a JSON object, e.g. '{{\"top_k\": 20}}'"
        )),
    }
}

/// `--onnx-spinning` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Flags of the ONNX Runtime backend (`--backend onnx`).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "ONNX Runtime backend (--backend onnx)")]
pub struct OnnxArgs {
    /// ONNX Runtime 1.31.x shared library [default: ORT_DYLIB_PATH, then
    /// .cache/onnxruntime/ (scripts/fetch-onnxruntime.sh)].
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,

    /// any: synthesised inputs, one request = one inference call; decoder: token generation
    /// with the KV cache (Optimum layout) [default: decoder when the signature has that layout].
    #[arg(long, value_enum)]
    pub onnx_mode: Option<charter_backends::onnx::OnnxMode>,

    /// Any-model mode: value of dynamic batch dimensions [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,

    /// Any-model mode: value of dynamic sequence dimensions [default: 128].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub seq_len: Option<u32>,

    /// Any-model mode: value of a named dynamic dimension, e.g. height=224 (comma-separated).
    #[arg(long, value_name = "NAME=N", value_delimiter = ',', value_parser = parse_dim)]
    pub onnx_dim: Vec<(String, usize)>,

    /// Threads inside one operator, per session [default: --threads, else logical cores ÷
    /// instances (per-instance sessions) or all logical cores (shared session)].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub intra_op_threads: Option<u32>,

    /// Threads running independent graph nodes; above 1 selects parallel execution [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub inter_op_threads: Option<u32>,

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
    pub onnx_sessions: Option<charter_backends::onnx::SessionSharing>,

    /// Decoder mode: tokenizer.json for text prompts [default: tokenizer.json next to the model].
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
}

impl OnnxArgs {
    /// Whether any ONNX flag was given.
    pub fn any_set(&self) -> bool {
        self.ort_lib.is_some()
            || self.onnx_mode.is_some()
            || self.batch.is_some()
            || self.seq_len.is_some()
            || !self.onnx_dim.is_empty()
            || self.intra_op_threads.is_some()
            || self.inter_op_threads.is_some()
            || self.onnx_spinning.is_some()
            || self.graph_opt.is_some()
            || self.execution_provider.is_some()
            || self.onnx_sessions.is_some()
            || self.tokenizer.is_some()
    }

    /// Values given here win; `other` (a scenario file) fills the rest.
    pub fn or(self, other: OnnxArgs) -> OnnxArgs {
        OnnxArgs {
            ort_lib: self.ort_lib.or(other.ort_lib),
            onnx_mode: self.onnx_mode.or(other.onnx_mode),
            batch: self.batch.or(other.batch),
            seq_len: self.seq_len.or(other.seq_len),
            onnx_dim: if self.onnx_dim.is_empty() {
                other.onnx_dim
            } else {
                self.onnx_dim
            },
            intra_op_threads: self.intra_op_threads.or(other.intra_op_threads),
            inter_op_threads: self.inter_op_threads.or(other.inter_op_threads),
            onnx_spinning: self.onnx_spinning.or(other.onnx_spinning),
            graph_opt: self.graph_opt.or(other.graph_opt),
            execution_provider: self.execution_provider.or(other.execution_provider),
            onnx_sessions: self.onnx_sessions.or(other.onnx_sessions),
            tokenizer: self.tokenizer.or(other.tokenizer),
        }
    }
}

/// `NAME=N` for `--onnx-dim`.
pub fn parse_dim(s: &str) -> Result<(String, usize), String> {
    match s.split_once('=') {
        Some((name, n)) if !name.trim().is_empty() => match n.trim().parse::<usize>() {
            Ok(v) if v > 0 => Ok((name.trim().to_string(), v)),
            _ => Err(format!("`{s}`: expected NAME=N with N ≥ 1")),
        },
        _ => Err(format!("`{s}`: expected NAME=N, e.g. height=224")),
    }
}

/// `--sweep` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepMode {
    /// Find saturation throughput with a closed-loop probe, then run open-loop rates below it.
    Auto,
}

/// Arguments of `charter profile`. Every value is optional so that a scenario file can supply
/// it; defaults apply last and are given in brackets.
#[derive(Debug, Clone, Default, Args)]
pub struct ProfileArgs {
    /// Scenario TOML describing backend, workload, load levels, SLOs, sampler and outputs.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,

    /// Backend [default: candle].
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,

    /// Model to load: a .gguf file (quantized Llama family) or a safetensors directory
    /// (config.json + *.safetensors + tokenizer.json); with --backend onnx, an .onnx file;
    /// with --backend openai|anthropic, the model name the server serves.
    /// Without it, --preset is used.
    #[arg(long, value_name = "PATH", conflicts_with = "preset")]
    pub model: Option<PathBuf>,

    /// Built-in architecture with deterministic random weights [default: tiny-15m]
    /// (see `charter presets`).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,

    /// Seed for preset weights, prompts, arrivals and sampling [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Compute threads per instance [default: logical cores ÷ instances, at least 1].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Closed-loop streams; a comma-separated list sweeps them (e.g. 1,2,4,8) [default: 1].
    #[arg(short, long, value_delimiter = ',', num_args = 1.., value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<Vec<u32>>,

    /// Open-loop rate in requests/s; a comma-separated list sweeps them (e.g. 0.5,1,2,4).
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "concurrency", value_parser = parse_rate)]
    pub rate: Option<Vec<f64>>,

    /// Open-loop arrival process [default: poisson].
    #[arg(long, value_enum)]
    pub arrivals: Option<charter_workloads::Arrivals>,

    /// Gamma shape for --arrivals gamma: 1 = Poisson, < 1 burstier, > 1 smoother [default: 1].
    #[arg(long, value_parser = parse_positive)]
    pub burstiness: Option<f64>,

    /// Open loop: at most this many requests in flight; later arrivals wait, and the wait counts
    /// as schedule lag [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: Option<u32>,

    /// `auto`: find saturation throughput, then sweep open-loop rates below it.
    #[arg(long, value_enum, conflicts_with_all = ["rate"])]
    pub sweep: Option<SweepMode>,

    /// SLOs, e.g. ttft_p99=500ms,itl_p50=50ms: reported per level (attainment, goodput); without
    /// --rate/--concurrency lists they start a search for the highest rate meeting them.
    #[arg(long, value_parser = parse_slo)]
    pub slo: Option<charter_record::Slo>,

    /// Share of requests that must meet every SLO bound, in (0, 1] [default: 0.9].
    #[arg(long, value_parser = parse_fraction)]
    pub attainment: Option<f64>,

    /// Search for the highest open-loop rate meeting --slo (implied by --slo without levels).
    #[arg(long)]
    pub search: bool,

    /// Most levels an SLO search runs [default: 6].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub search_steps: Option<u32>,

    /// Measured requests per level [default: 4 per stream (closed loop) or 40 (open loop),
    /// unless --duration is given].
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Stop issuing measured requests after this long per level (e.g. 30s, 2m); with
    /// --requests, whichever comes first.
    #[arg(long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Warm-up requests per level, excluded from its window [default: one per stream, or 2 in
    /// open loop].
    #[arg(long, value_name = "N")]
    pub warmup: Option<u64>,

    /// Pause between levels [default: 0 for one level, 1s for sweeps].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub cooldown: Option<Duration>,

    /// Prompt source: synthetic, corpus (built-in), FILE.jsonl / jsonl:FILE, sharegpt:FILE
    /// [default: corpus when the model has a tokenizer and --prompt-tokens is not given, else
    /// synthetic].
    #[arg(long, value_name = "SOURCE")]
    pub prompts: Option<charter_workloads::PromptSpec>,

    /// Synthetic prompt length: N, uniform:MIN:MAX, normal:MEAN:SD, lognormal:MEDIAN:SIGMA
    /// [default: 128].
    #[arg(long, value_name = "DIST")]
    pub prompt_tokens: Option<charter_workloads::LengthDist>,

    /// Output cap per request (same forms as --prompt-tokens; a prompt file's own max_tokens
    /// wins) [default: 64].
    #[arg(long, value_name = "DIST")]
    pub max_tokens: Option<charter_workloads::LengthDist>,

    /// Keep generating through end-of-sequence tokens (fixed output lengths).
    #[arg(long)]
    pub ignore_eos: bool,

    /// Sampling temperature; 0 is greedy [default: 0].
    #[arg(long, value_parser = parse_non_negative)]
    pub temperature: Option<f64>,

    /// Nucleus sampling threshold (with --temperature > 0), in (0, 1].
    #[arg(long, value_parser = parse_fraction)]
    pub top_p: Option<f64>,

    /// Flag an open-loop level as client-bound when its schedule-lag p99 exceeds this
    /// [default: 5ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub lag_threshold: Option<Duration>,

    /// Simulated backend: time to first token [default: 20ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub sim_ttft: Option<Duration>,

    /// Simulated backend: time between tokens [default: 5ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub sim_itl: Option<Duration>,

    /// Repeat each load level this many times, interleaved (trial 0 of every level, then
    /// trial 1, ...): per-trial summaries are what `charter gate` compares [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub trials: Option<u32>,

    /// Run directory [default: runs/<UTC timestamp>-<model>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Print the summary as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Resource sampling interval, at least 1ms [default: 100ms = 10 Hz].
    #[arg(long, value_parser = parse_positive_duration)]
    pub sample_interval: Option<Duration>,

    /// Never draw a progress bar (plain progress lines are printed when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,

    /// Model instances, each serving one request at a time: sets the closed-loop concurrency
    /// (and caps open-loop requests in flight) [default: the concurrency].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Instances and telemetry")]
    pub instances: Option<u32>,

    /// thread: instances are streams inside charter sharing the weights, CPU per instance from
    /// per-thread CPU time; process: each instance is a `charter worker` process with its own
    /// copy of the model, sampled separately (CPU and RSS) [default: thread].
    #[arg(long, value_enum, help_heading = "Instances and telemetry")]
    pub isolation: Option<crate::sampler::Isolation>,

    /// NVML library to load instead of libnvidia-ml.so.1 from the dynamic loader's path.
    #[arg(long, value_name = "PATH", help_heading = "Instances and telemetry")]
    pub nvml_lib: Option<PathBuf>,

    /// Do not sample GPUs (NVML).
    #[arg(long, help_heading = "Instances and telemetry")]
    pub no_gpu: bool,

    /// Root of the Linux powercap tree for RAPL CPU energy [default: /sys/class/powercap].
    #[arg(long, value_name = "DIR", help_heading = "Instances and telemetry")]
    pub powercap_root: Option<PathBuf>,

    /// Declared CPU TDP in watts: when RAPL is unreadable, CPU energy is estimated as TDP ×
    /// measured busy share (labelled `estimated`).
    #[arg(long, value_name = "WATTS", value_parser = parse_positive, help_heading = "Instances and telemetry")]
    pub cpu_tdp: Option<f64>,

    /// Measure the idle machine (power, CPU, RSS) for this long after loading, before any
    /// traffic; energy is then also reported net of idle power (e.g. 10s).
    #[arg(long, value_parser = parse_positive_duration, help_heading = "Instances and telemetry")]
    pub baseline: Option<Duration>,

    /// Also sample this process (CPU, RSS, GPU memory), e.g. a local inference server that
    /// charter drives over HTTP; repeatable.
    #[arg(long, value_name = "PID", help_heading = "Instances and telemetry")]
    pub watch_pid: Option<Vec<u32>>,

    /// Also sample every process with this command name (e.g. llama-server); repeatable.
    #[arg(long, value_name = "NAME", help_heading = "Instances and telemetry")]
    pub watch_process: Option<Vec<String>>,

    /// Simulated backend: share of every wait spent busy on a CPU, in [0, 1] [default: 0].
    #[arg(long, value_parser = parse_unit_interval)]
    pub sim_cpu: Option<f64>,

    // Last: their help headings apply to the flags after them.
    #[command(flatten)]
    pub remote: RemoteArgs,

    #[command(flatten)]
    pub onnx: OnnxArgs,
}

pub fn parse_unit_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}`: expected a number from 0 to 1")),
    }
}

pub fn parse_rate(s: &str) -> Result<f64, String> {
    parse_positive(s).map_err(|_| format!("`{s}`: expected a positive number of requests/s"))
}

pub fn parse_positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}`: expected a positive number")),
    }
}

pub fn parse_non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}`: expected a number ≥ 0")),
    }
}

pub fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("`{s}`: expected a number in (0, 1]")),
    }
}

pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "`{s}`: expected a positive duration such as 500ms or 30s"
        )),
    }
}

pub fn parse_slo(s: &str) -> Result<charter_record::Slo, String> {
    s.parse()
}

/// Run a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    match cli.command {
        Command::Profile(args) => crate::profile::profile(&args),
        Command::Serve(args) => crate::serve::serve(&args),
        Command::Validate { scenario } => {
            let args = ProfileArgs {
                scenario: Some(scenario.clone()),
                ..Default::default()
            };
            let cfg = crate::config::ProfileConfig::resolve(&args)?;
            cfg.check_inputs()?;
            println!("{}: valid — {}", scenario.display(), cfg.describe());
            Ok(crate::EXIT_OK)
        }
        Command::Gate(args) => crate::gate::run(&args),
        Command::Report { runs, out, cost } => crate::report::report(&runs, &out, cost.as_deref()),
        Command::Compare { runs } => crate::report::compare(&runs),
        Command::Plan {
            run,
            target_rps,
            target_tps,
            headroom,
            redundancy,
            cost,
        } => crate::report::plan(
            &run,
            target_rps,
            target_tps,
            headroom,
            redundancy,
            cost.as_deref(),
        ),
        Command::Presets => {
            for p in charter_backends::candle::presets::PRESETS {
                println!("{:<14} {}", p.name, p.description);
            }
            Ok(crate::EXIT_OK)
        }
        Command::Worker {
            threads,
            profile_args,
        } => crate::worker::run_worker(threads, &profile_args),
    }
}
