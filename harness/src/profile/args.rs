//! The settings of `charter profile`, each defined once: a clap argument in the group of its
//! scenario section. The command line and scenario files read the same definitions (see
//! [`super::scenario`]): a setting's scenario key is its argument id (the field name) in the
//! section of its group, e.g. `--max-in-flight` is `[load] max_in_flight`. Every value is
//! optional so that a scenario file can supply it; defaults apply last, in
//! [`super::config`], and are given in brackets.
//!
//! The backend's own settings are in [`super::backend`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueHint};

use crate::values::*;

pub use super::backend::BackendArgs;

/// Arguments of `charter profile`: one group per scenario section.
#[derive(Debug, Clone, Default, Args)]
pub struct ProfileArgs {
    /// Scenario TOML describing backend, workload, load levels, SLOs, sampler and outputs; every
    /// flag is also a key of its section (`--max-in-flight 8` is `[load] max_in_flight = 8`), and
    /// flags given here override the file.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub scenario: Option<PathBuf>,

    #[command(flatten)]
    pub backend: BackendArgs,

    #[command(flatten)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    pub load: LoadArgs,

    #[command(flatten)]
    pub slo: SloArgs,

    #[command(flatten)]
    pub sampler: SamplerArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub shard: ShardArgs,
}

/// `[workload]`: what each request asks for.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "workload")]
#[command(next_help_heading = "Workload ([workload] in a scenario)")]
pub struct WorkloadArgs {
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

    /// Warm-up requests per level, excluded from its window [default: one per stream, or 2 in
    /// open loop; 0 for a trace].
    #[arg(long, value_name = "N", value_parser = whole::<u64>)]
    pub warmup: Option<u64>,

    /// Replay a request trace (Mooncake or Bailian JSONL, Azure LLM inference or BurstGPT CSV):
    /// one open-loop level whose arrivals are the trace's timestamps, prompts of its input
    /// lengths (rows sharing leading hash_ids blocks share those prompt tokens) and output caps
    /// of its output lengths; every row of the window once [default --requests].
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath,
          conflicts_with_all = ["prompts", "prompt_tokens", "shared_prefix_tokens"])]
    pub trace: Option<PathBuf>,

    /// Format of --trace [default: detected from its first line].
    #[arg(long, value_enum)]
    pub trace_format: Option<charter_workloads::TraceFormat>,

    /// Replay --trace this many times faster (arrival offsets divided by it) [default: 1].
    #[arg(long, value_name = "X", value_parser = parse_positive)]
    pub trace_speed: Option<f64>,

    /// Replay only the rows of --trace from START to END, in seconds from its first row
    /// (e.g. 60s..10m, ..90s, 120..); the first row replayed is issued at once.
    #[arg(long, value_name = "START..END")]
    pub trace_window: Option<charter_workloads::TraceWindow>,

    /// Tokens per hash_ids block of --trace [default: 512 for Mooncake, 16 for Bailian].
    #[arg(long, value_name = "N", value_parser = at_least_one::<u32>)]
    pub trace_block_tokens: Option<u32>,

    /// Replay a Bailian --trace as multi-turn sessions: rows linked by parent_chat_id are one
    /// conversation whose first turn arrives at its timestamp and whose later turns carry the
    /// history (earlier turns and the model's own responses), each sent after the previous
    /// response, at the trace's timestamp if that is later.
    #[arg(long)]
    pub trace_sessions: bool,

    /// Shared-prefix workload: every synthetic prompt starts with one of --prefix-groups system
    /// prompts of this many tokens (drawn by seed and request index), then its own
    /// --prompt-tokens; the hit rate an ideal prefix cache would reach is reported.
    #[arg(long, value_name = "P", value_parser = at_least_one::<u32>, conflicts_with = "prompts")]
    pub shared_prefix_tokens: Option<u32>,

    /// Distinct shared prefixes of --shared-prefix-tokens [default: 1].
    #[arg(long, value_name = "G", value_parser = at_least_one::<u32>)]
    pub prefix_groups: Option<u32>,

    /// Multi-turn sessions: N conversations per level, run as a closed loop over sessions
    /// (--concurrency sessions at once) or arriving at --rate sessions/s, each turn sent with
    /// the whole history (earlier user turns and the model's own responses); user turns from
    /// --prompts, or --conversations [default with --conversations: each conversation of the
    /// file once].
    #[arg(long, value_name = "N", value_parser = at_least_one::<u64>,
          conflicts_with_all = ["trace", "shared_prefix_tokens"])]
    pub sessions: Option<u64>,

    /// Turns per synthetic session: N or a distribution (same forms as --prompt-tokens)
    /// [default: 4].
    #[arg(long, value_name = "DIST", conflicts_with = "conversations")]
    pub turns: Option<charter_workloads::LengthDist>,

    /// Sessions: the user's think time between a response and the next turn: a duration (2s)
    /// or uniform:MIN:MAX, normal:MEAN:SD, lognormal:MEDIAN:SIGMA of durations [default: 0s].
    #[arg(long, value_name = "TIME")]
    pub think_time: Option<charter_workloads::ThinkTime>,

    /// Sessions from a conversation file (ShareGPT JSON, or JSONL of {"conversations": [...]}
    /// or {"messages": [...]} per line): each conversation's user turns in order, answered by
    /// the model (the file's own responses are not sent).
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath,
          conflicts_with_all = ["trace", "shared_prefix_tokens", "prompts"])]
    pub conversations: Option<PathBuf>,
}

/// `--sweep` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SweepMode {
    /// Find saturation throughput with a closed-loop probe, then run open-loop rates below it.
    Auto,
}

/// `[load]`: the load levels and how long each runs.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "load")]
#[command(next_help_heading = "Load ([load] in a scenario)")]
pub struct LoadArgs {
    /// Closed-loop streams; a comma-separated list sweeps them (e.g. 1,2,4,8) [default: 1].
    #[arg(short, long, value_delimiter = ',', num_args = 1.., value_parser = at_least_one::<u32>)]
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
    #[arg(long, value_parser = at_least_one::<u32>)]
    pub max_in_flight: Option<u32>,

    /// `auto`: find saturation throughput, then sweep open-loop rates below it.
    #[arg(long, value_enum, conflicts_with = "rate")]
    pub sweep: Option<SweepMode>,

    /// Measured requests per level [default: 4 per stream (closed loop) or 40 (open loop),
    /// unless --duration is given].
    #[arg(short = 'n', long, value_parser = at_least_one::<u64>)]
    pub requests: Option<u64>,

    /// Stop issuing measured requests after this long per level (e.g. 30s, 2m); with
    /// --requests, whichever comes first.
    #[arg(long, value_parser = parse_positive_duration)]
    pub duration: Option<Duration>,

    /// Pause between levels [default: 0 for one level, 1s for sweeps].
    #[arg(long, value_parser = parse_duration)]
    pub cooldown: Option<Duration>,

    /// Flag an open-loop level as client-bound when its schedule-lag p99 exceeds this
    /// [default: 5ms].
    #[arg(long, value_parser = parse_positive_duration)]
    pub lag_threshold: Option<Duration>,

    /// Repeat each load level this many times, interleaved (trial 0 of every level, then
    /// trial 1, ...): per-trial summaries are what `charter gate` compares [default: 1].
    #[arg(long, value_parser = at_least_one::<u32>)]
    pub trials: Option<u32>,

    /// Model instances, each serving one request at a time: sets the closed-loop concurrency
    /// (and caps open-loop requests in flight) [default: the concurrency].
    #[arg(long, value_parser = at_least_one::<u32>)]
    pub instances: Option<u32>,

    /// RAM probe: one stream (or --concurrency) whose context ramps from a 64-token synthetic
    /// prompt through 896 generated tokens (EOS ignored), 1 request, no warm-up, sampled every
    /// 20 ms: the workload that gives a supported RAM-per-1k-tokens fit. Flags given override
    /// its settings.
    #[arg(long, conflicts_with_all = ["rate", "sweep"])]
    pub ram_probe: bool,

    /// thread: instances are streams inside charter sharing the weights, CPU per instance from
    /// per-thread CPU time; process: each instance is a `charter worker` process with its own
    /// copy of the model, sampled separately (CPU and RSS) [default: thread].
    #[arg(long, value_enum)]
    pub isolation: Option<crate::sampler::Isolation>,

    /// Start the run even when the resource guard estimates that its largest level does not fit
    /// in this machine's available memory or thread limit (the estimate: streams × (KV cache at
    /// the longest context + 1 MiB per stream), plus weights copies with --isolation process).
    #[arg(long)]
    pub force: bool,
}

/// `[slo]`: service-level objectives and the search for the rate that meets them.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "slo")]
#[command(next_help_heading = "SLOs ([slo] in a scenario)")]
pub struct SloArgs {
    /// SLOs, e.g. ttft_p99=500ms,itl_p50=50ms: reported per level (attainment, goodput); without
    /// --rate/--concurrency lists they start a search for the highest rate meeting them. In a
    /// scenario, `terms = "..."` or one key per term (`ttft_p99 = "500ms"`).
    #[arg(long = "slo", value_name = "TERMS", value_parser = parse_slo)]
    pub terms: Option<charter_reports::slo::Slo>,

    /// Share of requests that must meet every SLO bound, in (0, 1] [default: 0.9].
    #[arg(long, value_parser = parse_fraction)]
    pub attainment: Option<f64>,

    /// Search for the highest open-loop rate meeting --slo (implied by --slo without levels).
    #[arg(long)]
    pub search: bool,

    /// Most levels an SLO search runs [default: 6].
    #[arg(long, value_parser = at_least_one::<u32>)]
    pub search_steps: Option<u32>,
}

/// `[sampler]`: resource telemetry.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "sampler")]
#[command(next_help_heading = "Sampler and telemetry ([sampler] in a scenario)")]
pub struct SamplerArgs {
    /// Resource sampling interval, at least 1ms [default: 100ms = 10 Hz].
    #[arg(long = "sample-interval", value_parser = parse_positive_duration)]
    pub interval: Option<Duration>,

    /// NVML library to load instead of libnvidia-ml.so.1 from the dynamic loader's path.
    #[arg(long, value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub nvml_lib: Option<PathBuf>,

    /// Do not sample GPUs (NVML).
    #[arg(long)]
    pub no_gpu: bool,

    /// Root of the Linux powercap tree for RAPL CPU energy [default: /sys/class/powercap].
    #[arg(long, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub powercap_root: Option<PathBuf>,

    /// Declared CPU TDP in watts: when RAPL is unreadable, CPU energy is estimated as TDP ×
    /// measured busy share (labelled `estimated`).
    #[arg(long, value_name = "WATTS", value_parser = parse_positive)]
    pub cpu_tdp: Option<f64>,

    /// Measure the idle machine (power, CPU, RSS) for this long after loading, before any
    /// traffic; energy is then also reported net of idle power (e.g. 10s).
    #[arg(long, value_parser = parse_positive_duration)]
    pub baseline: Option<Duration>,

    /// Also sample this process (CPU, RSS, GPU memory), e.g. a local inference server that
    /// charter drives over HTTP; repeatable.
    #[arg(long, value_name = "PID", value_parser = at_least_one::<u32>)]
    pub watch_pid: Option<Vec<u32>>,

    /// Also sample every process with this command name (e.g. llama-server); repeatable.
    #[arg(long, value_name = "NAME")]
    pub watch_process: Option<Vec<String>>,

    /// Scrape this Prometheus metrics endpoint of the server (e.g.
    /// http://127.0.0.1:8000/metrics) at the sampler's interval into server_metrics.csv and
    /// summarise its known gauges and counters per level; repeatable. `none`: not even the
    /// default [default: for --backend openai, {base}/metrics, tried once at the start].
    #[arg(long, value_name = "URL")]
    pub server_metrics: Option<Vec<String>>,

    /// Flag a level as contended when processes other than charter, its workers and the
    /// watched ones used more than this many cores on average [default: 0.25].
    #[arg(long, value_name = "CORES", value_parser = parse_non_negative)]
    pub contention_threshold: Option<f64>,
}

/// `[output]`: where results go and how they are printed.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "output")]
#[command(next_help_heading = "Output ([output] in a scenario)")]
pub struct OutputArgs {
    /// Run directory, relative to the current directory also in a scenario [default:
    /// runs/<UTC timestamp>-<model>].
    // No path hint: a scenario's input paths are taken from its directory, this output one is
    // not.
    #[arg(long = "out", value_name = "DIR", value_hint = ValueHint::Unknown)]
    pub dir: Option<PathBuf>,

    /// Print the summary as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Serve the run's live metrics (requests done/failed, in flight, latency histograms,
    /// output tokens, throughput) in the Prometheus text format at http://ADDR/metrics, e.g.
    /// 127.0.0.1:9400 (port 0: any free port; the address is printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// Never draw a progress bar (plain progress lines are printed when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

/// `[distributed]`: one shard of a run split over several load generators (see docs/distributed.md).
#[derive(Debug, Clone, Default, Args)]
#[group(id = "distributed")]
#[command(next_help_heading = "Sharding ([distributed] in a scenario)")]
pub struct ShardArgs {
    /// Run shard K of N (e.g. 0/4): open loop, arrival i of the shared seeded schedule when
    /// i mod N = K; closed loop, ⌊c/N⌋ or ⌈c/N⌉ of the streams and requests [default: from
    /// JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID, else unsharded].
    #[arg(long, value_name = "K/N")]
    pub shard: Option<charter_workloads::Shard>,

    /// The shard count N when the index comes from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID
    /// [default: JOB_COMPLETIONS or SLURM_ARRAY_TASK_COUNT].
    #[arg(long, value_name = "N", conflicts_with = "shard", value_parser = at_least_one::<u32>)]
    pub shards: Option<u32>,

    /// Start barrier without a coordinator: wait for this wall-clock time (RFC 3339, UTC, e.g.
    /// 2026-11-29T18:00:00Z) before the first level, then run on the monotonic clock. A time in
    /// the past starts at once; one more than an hour ahead needs --wait.
    #[arg(long, value_name = "RFC3339", value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,

    /// Allow --start-at more than an hour ahead.
    #[arg(long)]
    pub wait: bool,
}
