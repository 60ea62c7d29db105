//! The typed run record (`run.json`) and the per-request and per-sample rows (`requests.csv`,
//! `samples.csv`). Raw SI numbers with the unit in the field name; `None` (JSON `null`) means
//! "not measured", never zero.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kinds::{Api, Arrivals, EnergyMethod, Isolation, LengthField, PlanKind};
use crate::observation::{
    ErrorKind, PromptTokenSource, StaleConnection, StopReason, TokenCountSource,
};
use crate::summary::{LatencySummary, ValueSummary};

/// Version of the `run.json` layout. Bump on any incompatible change.
///
/// 2: stop reasons, error kinds, token-count sources, energy methods, the plan, arrival
/// process, isolation and remote API fields are enums of the words version 1 wrote as free
/// strings, so version 1 records read as they are.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything charter knows about one run. Written at the start (`complete: false`), rewritten
/// when the run ends; a reader can rely on `complete` to tell a finished run from a partial one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunRecord {
    pub schema_version: u32,
    /// True only when the run ended as planned (all requests issued, or the duration elapsed).
    pub complete: bool,
    pub status: RunStatus,
    /// Wall-clock start (RFC 3339, UTC). All other times are seconds on the run's monotonic clock.
    pub started_at: String,
    pub tool: ToolInfo,
    pub host: HostInfo,
    pub backend: BackendRecord,
    pub workload: WorkloadRecord,
    /// One entry per load level, in the order they ran (a single run has one level).
    pub levels: Vec<LevelRecord>,
    /// Result of an SLO search (`--slo ... --search`), when one ran.
    pub search: Option<SearchRecord>,
    pub files: RunFiles,
    /// The server metrics endpoints scraped (`--server-metrics`, or tried by default for
    /// `--backend openai`), measured or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_metrics: Vec<crate::server_metrics::ServerMetricsSource>,
    /// This run is one shard of a sharded run (`--shard K/N`, or from the scheduler's
    /// environment); `charter merge` combines the shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
    /// This run directory was made by `charter merge` from shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeRecord>,
}

/// One shard of a sharded run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ShardRecord {
    /// 0-based shard index K.
    pub index: u32,
    /// Shard count N.
    pub count: u32,
    /// SHA-256 of the resolved settings that shape the load and its measurement (everything
    /// but the shard index and count, the start time and the output settings): the shards of
    /// one run share it. One-way: the settings text itself is not written.
    pub config_hash: String,
    /// Wall-clock time (Unix seconds) of this run's monotonic zero: a record time `t` happened
    /// at `epoch_unix_s + t`, to within the clock error below.
    pub epoch_unix_s: f64,
    /// `--start-at`, when given (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// How late the first level started after `--start-at` by the wall clock (negative never;
    /// large when the time was already past).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_late_s: Option<f64>,
    pub clock: ClockRecord,
}

/// The host clock's own error estimate when the shard started (Linux `adjtimex`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClockRecord {
    /// Whether the kernel considers the clock synchronised (NTP/PTP); `None` when unreadable.
    pub synchronised: Option<bool>,
    /// The kernel's maximum error bound of the clock (`timex.maxerror`), seconds.
    pub max_error_s: Option<f64>,
    /// The kernel's estimated error (`timex.esterror`), seconds.
    pub estimated_error_s: Option<f64>,
    /// Where the figures came from, or why they are missing.
    pub source: String,
}

/// What `charter merge` combined, and how far the shards' clocks can be trusted.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MergeRecord {
    pub config_hash: String,
    /// The shards in index order.
    pub shards: Vec<MergedShard>,
    /// Latest − earliest wall-clock start of the first level over the shards.
    pub start_spread_s: Option<f64>,
    /// Largest − smallest clock maximum error over the shards.
    pub clock_error_spread_s: Option<f64>,
    /// Worst-case offset between two shards' clocks: the sum of the two largest maximum
    /// errors (timestamps of different shards compare to within this).
    pub clock_offset_bound_s: Option<f64>,
    /// Shards whose clock was not synchronised (or unreadable): their timestamps may be off by
    /// more than the bound.
    pub unsynchronised_shards: Vec<u32>,
}

/// One shard as `charter merge` found it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MergedShard {
    pub index: u32,
    /// The shard's run directory as given to `charter merge`.
    pub dir: String,
    pub hostname: Option<String>,
    /// Seconds added to the shard's times to put them on the merged run's clock.
    pub time_offset_s: f64,
    pub start_late_s: Option<f64>,
    pub clock: ClockRecord,
    /// Per level (by index): the shard's own resources and client-bound flag.
    pub levels: Vec<MergedShardLevel>,
}

/// One level of one shard, kept beside the merged level.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MergedShardLevel {
    pub index: u32,
    /// Open loop: this shard's schedule offset 0 on the merged clock.
    pub schedule_start_s: Option<f64>,
    pub requests_completed: u64,
    pub requests_failed: u64,
    pub resources: ResourceSummary,
    pub client_bound: ClientBound,
}

/// Why a load level ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LevelRole {
    /// A level the user asked for (single run or sweep).
    Measure,
    /// A closed-loop level run to find saturation throughput (auto sweep, SLO search).
    SaturationProbe,
    /// A step of an SLO search.
    Search,
}

/// One load level: its own measured window, summary and resources.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LevelRecord {
    pub index: u32,
    /// Repeat number of this load (`--trials K` runs each level K times, interleaved).
    pub trial: u32,
    pub role: LevelRole,
    pub load: LoadProfile,
    pub window: Option<MeasuredWindow>,
    pub summary: RunSummary,
    pub resources: ResourceSummary,
    /// Open loop: completion rate ÷ offered rate, estimated as the span of scheduled starts ÷
    /// the span of completions (≈ 1 when the system keeps up); `None` in closed loop.
    pub completed_to_offered: Option<f64>,
    /// Open loop: completed ≥ 0.98 × offered and the SLO percentiles (if any) hold.
    pub sustainable: Option<bool>,
    pub client_bound: ClientBound,
    /// Whether other processes used the machine during the level.
    #[serde(default)]
    pub contention: Contention,
    /// The server's own metrics over the window (`--server-metrics`), one entry per source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_metrics: Vec<crate::server_metrics::LevelServerMetrics>,
    /// Ids of this level's requests: `first <= id < end` (in a sharded run the same range on
    /// every shard, each shard holding its own part of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_ids: Option<IdRange>,
    /// Open loop: when the arrival schedule's offset 0 fell, seconds on the run's clock (each
    /// request's intended start is this plus its scheduled offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_start_s: Option<f64>,
    /// Multi-turn sessions: per-turn TTFT and per-session measures of the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<crate::session::SessionSummary>,
}

/// A half-open range of request ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IdRange {
    pub first: u64,
    pub end: u64,
}

impl IdRange {
    pub fn contains(&self, id: u64) -> bool {
        (self.first..self.end).contains(&id)
    }
}

/// CPU used by processes other than charter, its workers and the processes it watches.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Contention {
    /// system busy − charter − workers − watched, in cores, per sample (negative noise clamped
    /// to 0); `None` when the system or process CPU was not measured.
    pub other_cores: Option<ValueSummary>,
    /// The mean `other_cores` above which the level is flagged.
    pub threshold_cores: f64,
    pub flagged: bool,
}

/// Whether the numbers describe charter rather than the system under test.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ClientBound {
    pub flagged: bool,
    /// Why it was flagged, in words (empty when not flagged).
    pub reasons: Vec<String>,
    /// The schedule-lag p99 above which a level is flagged.
    pub schedule_lag_threshold_s: f64,
    /// Open loop: how often a scheduled request found every in-flight slot busy and queued.
    pub max_in_flight_waits: u64,
    /// CPU cores charter's process may use (its affinity and cgroup quota): the saturation
    /// criterion's denominator.
    #[serde(default)]
    pub cores_available: Option<f64>,
}

/// Outcome of a bisection search for the highest open-loop rate meeting the SLO.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SearchRecord {
    pub slo: crate::slo::Slo,
    pub attainment_target: f64,
    /// Closed-loop saturation throughput (requests/s) that bounded the search.
    pub saturation_rate_per_s: Option<f64>,
    /// Highest rate tried that met the target; `None` if none did.
    pub best_rate_per_s: Option<f64>,
    /// Level index of that rate.
    pub best_level: Option<u32>,
    /// Attainment measured there, with its Wilson 95 % interval and sample size.
    pub best_attainment: Option<f64>,
    pub best_attainment_ci95: Option<(f64, f64)>,
    pub best_requests: Option<u64>,
    /// Lowest rate tried that missed the target (the search's upper bracket).
    pub lowest_failing_rate_per_s: Option<f64>,
    /// Why the search stopped, in words.
    pub stopped_because: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The run is in progress (or the process died before it could say otherwise).
    Running,
    /// The run finished as planned.
    Finished,
    /// Stopped early by the user (Ctrl-C); the record holds what was measured until then.
    Interrupted,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
    /// Commit the binary was built from, when known at build time.
    pub git_sha: Option<String>,
    /// Versions of the libraries that do the measured work (e.g. candle).
    pub libraries: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HostInfo {
    pub hostname: Option<String>,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    /// The machine's logical CPUs (all online ones, whatever charter's affinity; charter's own
    /// share is `client_bound.cores_available`).
    pub logical_cores: u32,
    pub physical_cores: Option<u32>,
    pub total_memory_bytes: u64,
}

/// What ran the model, and where its weights came from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BackendRecord {
    /// Backend family, e.g. `candle`.
    pub kind: String,
    /// Human-readable model name.
    pub model: String,
    pub architecture: String,
    pub weights: WeightsProvenance,
    /// Weight storage, e.g. `f32` or the GGUF quantisation types present.
    pub dtype: String,
    pub device: String,
    /// Compute threads each instance may use.
    pub threads_per_instance: u32,
    /// How the thread count is applied, in words.
    pub threads_note: String,
    pub parameters: Option<u64>,
    pub vocab_size: u32,
    pub context_limit_tokens: u32,
    pub eos_token_ids: Vec<u32>,
    pub tokenizer: Option<TokenizerProvenance>,
    /// Where the chat template applied to chat prompts came from (`None`: contents are joined).
    pub chat_template: Option<String>,
    /// Seconds spent loading or generating the weights, before the run and outside its
    /// timings (a weight conversion's own time is `weights_conversion.convert_s`).
    pub load_time_s: f64,
    /// Remote API backends (`openai`, `anthropic`): how the API was driven.
    #[serde(default)]
    pub remote: Option<RemoteRecord>,
    /// The KV cache per token as the model's configuration describes it (`None`: unknown, e.g.
    /// a remote model without `--model-config`).
    #[serde(default)]
    pub kv_cache: Option<KvCacheRecord>,
    /// The weights that ran were converted from the file's formats (candle: formats without a
    /// fast CPU kernel, `--weights`); `None`: they ran as the file stores them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_conversion: Option<WeightsConversionRecord>,
    /// Compute threads pinned to cores (`--pin`); `None`: left to the OS scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinning: Option<PinningRecord>,
    /// How a many-token forward (prefill) multiplies by quantized weights, where it differs
    /// from decode (candle GGUF: f32 gemm on weights dequantized per matrix); `None`: as decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_matmul: Option<String>,
    /// A hybrid backend's tiers and policy (the fields above are its first tier's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<crate::route::HybridRecord>,
}

/// A converted copy of the weights that ran instead of the file's own formats. The source file
/// is `BackendRecord.weights`; it is never modified.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WeightsConversionRecord {
    /// What `--weights` asked for, e.g. `auto`, `q8_0`, `q4_k`.
    pub requested: String,
    /// Formats converted away, e.g. `["q4_1"]`.
    pub from: Vec<String>,
    /// The format converted tensors became, e.g. `q8_0`.
    pub to: String,
    pub tensors_converted: u32,
    /// Of the converted tensors, those whose rows do not fit the target's block size and became
    /// `q8_0` instead (only with a K-quant target).
    #[serde(default)]
    pub tensors_fallback_q8_0: u32,
    /// Tensors kept as the file stores them (formats with a fast kernel, norms).
    pub tensors_kept: u32,
    /// The converted file that was loaded, its size and sha256.
    pub file: FileDigest,
    /// Whether the converted copy already existed in the cache (same source sha256, target and
    /// conversion version) and was loaded without converting.
    pub reused_from_cache: bool,
    /// Seconds spent converting and writing the copy; `None` when it was reused. Not part of
    /// `load_time_s`.
    pub convert_s: Option<f64>,
    /// charter's conversion version (part of the cache key).
    pub conversion_version: u32,
}

impl WeightsConversionRecord {
    /// One line for consoles: `q4_1 converted to q8_0 (cached)`.
    pub fn describe(&self) -> String {
        let how = match self.convert_s {
            _ if self.reused_from_cache => "cached".to_string(),
            Some(s) => format!("converted in {s:.1} s"),
            None => "converted".to_string(),
        };
        let fallback = if self.tensors_fallback_q8_0 > 0 {
            format!(", {} tensors q8_0", self.tensors_fallback_q8_0)
        } else {
            String::new()
        };
        format!(
            "{} converted to {}{fallback} ({how})",
            self.from.join("+"),
            self.to
        )
    }
}

/// Where each instance's compute threads were pinned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PinningRecord {
    /// Logical CPUs per instance, by instance index: instance `i`'s `j`-th compute thread runs
    /// only on `cores[i][j]`.
    pub cores: Vec<Vec<u32>>,
    /// Which threads are pinned, and any that are shared, in words.
    pub note: String,
}

/// How a remote API backend drove the server (no secret: the API key's variable name only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RemoteRecord {
    pub api: Api,
    pub base_url: String,
    /// Path requested, e.g. `/v1/chat/completions`.
    pub endpoint: String,
    /// The output-length field sent.
    pub length_field: LengthField,
    /// Whether `stream_options.include_usage` was requested (OpenAI-style APIs).
    pub include_usage_requested: bool,
    /// Names (never values) of the extra request headers.
    pub extra_header_names: Vec<String>,
    /// Environment variable the API key was read from, when one was configured.
    pub api_key_env: Option<String>,
    /// Where output tokens are counted when the response carries no usage.
    pub token_count_fallback: String,
    /// HTTP client, runtime and connection handling, in words.
    pub client: String,
    /// How the per-request connection timings are measured, in words.
    pub connection_timing: String,
    pub connect_timeout_s: f64,
    pub headers_timeout_s: f64,
    pub idle_timeout_s: f64,
    pub total_timeout_s: Option<f64>,
    /// Retries per failed request (0: a failed request is recorded as it failed).
    pub retries: u32,
    /// Largest SSE event accepted; a larger one fails the request as `malformed`.
    pub max_event_bytes: u64,
    /// Largest response body accepted (an endless or runaway stream); a larger one fails the
    /// request as `malformed` once that many bytes have arrived. Absent in runs before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// Seconds a kept-alive connection may sit idle before charter closes it itself (shorter
    /// than servers' own keep-alive timeouts, so that a server rarely closes one first).
    #[serde(default)]
    pub pool_idle_timeout_s: Option<f64>,
    /// What happens when a kept-alive connection turns out closed by the server, in words.
    #[serde(default)]
    pub stale_connections: Option<String>,
    /// How prompts are sent and how their length is known, in words.
    #[serde(default)]
    pub prompts: Option<String>,
    /// Certificate checking when it is not the default (web PKI roots): an extra CA
    /// (`--ca-cert`), or none at all (`--insecure`, said loudly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// `--tier-header`: the response header recorded per request as the tier that served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_header: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WeightsProvenance {
    /// Deterministic random weights for a named architecture preset.
    RandomPreset { preset: String, seed: u64 },
    /// Weights read from files.
    Files {
        format: String,
        files: Vec<FileDigest>,
    },
    /// Weights behind a remote API: charter knows only the model name the server was asked for.
    Remote { model: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileDigest {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TokenizerProvenance {
    /// `tokenizer.json` path or `gguf-metadata`.
    pub source: String,
    /// The text used to verify that encode→decode round-trips.
    pub round_trip_checked: String,
}

/// The load that was offered.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WorkloadRecord {
    pub plan: PlanKind,
    /// Measured requests per level (`--requests`), if bounded by count.
    pub requests: Option<u64>,
    /// Repeats of each level (`--trials`), interleaved across levels.
    pub trials: u32,
    /// Measured window per level (`--duration`), if bounded by time.
    pub duration_s: Option<f64>,
    /// Warm-up requests before each level's window (`None`: the default, one per stream in
    /// closed loop and 2 in open loop; each level's summary says how many it excluded).
    pub warmup_requests: Option<u64>,
    /// Pause between levels, so one level's tail does not load the next.
    pub cooldown_s: f64,
    pub prompt: PromptSpec,
    /// Output cap per request: a number or a distribution (`uniform:32:128`).
    pub max_tokens: String,
    pub ignore_eos: bool,
    pub sampling: SamplingRecord,
    pub slo: Option<crate::slo::Slo>,
    pub slo_attainment_target: Option<f64>,
    /// Scenario file the run was described by, if any.
    pub scenario: Option<String>,
    /// The replayed trace (`--trace`): its arrivals, input and output lengths drive the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceRecord>,
    /// The shared-prefix workload (`--shared-prefix-tokens`, `--prefix-groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefixRecord>,
    /// Share of the prompt tokens of every request issued (warm-up included, in order) that an
    /// ideal prefix cache (unbounded, never evicting) would serve: the expected prefix-cache hit
    /// rate of a trace with hash ids or of a shared-prefix workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ideal_prefix_cache_hit_rate: Option<f64>,
    /// Multi-turn sessions (`--sessions`, `--conversations`): how many per level, where their
    /// user turns come from, the think time; `warmup_requests` then counts warm-up sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<String>,
}

/// Which trace a run replayed, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TraceRecord {
    pub path: String,
    /// `mooncake`, `bailian`, `azure` or `burstgpt`.
    pub format: String,
    pub sha256: String,
    /// Rows in the file.
    pub rows_in_file: u64,
    /// Rows in the window, replayed in time order.
    pub rows: u64,
    /// Time compression (`--trace-speed`): 2 replays twice as fast.
    pub speed: f64,
    /// The slice replayed (`--trace-window`, seconds from the file's first row), if any.
    pub window: Option<String>,
    /// Tokens per `hash_ids` block.
    pub block_tokens: u32,
    /// Seconds from the first to the last replayed row, after compression.
    pub replay_span_s: f64,
    /// `--trace-sessions`: the conversations replayed as multi-turn sessions (rows linked by
    /// `parent_chat_id`, first turn in the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversations: Option<u64>,
}

/// The shared-prefix workload: `groups` system prompts of `prefix_tokens` each; every request
/// draws one (uniformly, from the seed and its index) and appends its own tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SharedPrefixRecord {
    pub prefix_tokens: u32,
    pub groups: u32,
    /// The length distribution of each request's own tokens after the prefix.
    pub suffix_tokens: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadProfile {
    /// N streams, each issuing its next request when the previous one finishes.
    ClosedLoop { concurrency: u32 },
    /// Requests scheduled at `rate_per_s` regardless of completions.
    OpenLoop {
        rate_per_s: f64,
        arrivals: Arrivals,
        /// Gamma shape (1 = Poisson); recorded for every arrival kind.
        burstiness: f64,
        /// At most this many requests in flight; later ones wait (and the wait is schedule lag).
        /// With `sessions`, sessions in progress (each keeps its stream through think times).
        max_in_flight: u32,
        seed: u64,
        /// The arrivals are new multi-turn sessions, not requests: `rate_per_s` is sessions/s,
        /// and each session's later turns follow its previous response and think time.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sessions: bool,
    },
}

impl LoadProfile {
    /// Short text for tables: `c=4` or `4.00 req/s poisson`.
    pub fn label(&self) -> String {
        match self {
            LoadProfile::ClosedLoop { concurrency } => format!("concurrency {concurrency}"),
            LoadProfile::OpenLoop {
                rate_per_s,
                arrivals,
                sessions,
                ..
            } => {
                let unit = if *sessions { "sessions" } else { "req" };
                format!("{rate_per_s:.3} {unit}/s {arrivals}")
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PromptSpec {
    /// e.g. `synthetic-tokens (128 tokens)`, `corpus (42 prompts)`, `jsonl:PATH (N prompts)`.
    pub source: String,
    /// Licence of the prompt text when it ships with charter.
    pub license: Option<String>,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SamplingRecord {
    /// 0 means greedy (argmax).
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: u64,
}

/// The window the summary covers: first measured start to last measured completion.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MeasuredWindow {
    pub start_s: f64,
    pub end_s: f64,
    pub duration_s: f64,
    /// What was left out of the window, in words (e.g. warm-up requests).
    pub excluded: String,
}

/// Per-run metrics over the measured window (definitions: shared/docs/metrics.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    pub requests_completed: u64,
    pub requests_failed: u64,
    /// Requests stopped by an interruption (Ctrl-C); neither completed nor failed.
    pub requests_cancelled: u64,
    pub warmup_requests_excluded: u64,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub duration_s: Option<f64>,
    pub request_throughput_per_s: Option<f64>,
    pub output_token_throughput_per_s: Option<f64>,
    pub ttft: Option<LatencySummary>,
    pub ttft_from_intended: Option<LatencySummary>,
    pub e2e: Option<LatencySummary>,
    pub e2e_from_intended: Option<LatencySummary>,
    pub itl: Option<LatencySummary>,
    pub tpot_incl_first: Option<LatencySummary>,
    pub chunk_gaps: Option<LatencySummary>,
    pub schedule_lag: Option<LatencySummary>,
    /// First reasoning/thinking token − start, over the requests that reasoned.
    #[serde(default)]
    pub first_reasoning: Option<LatencySummary>,
    /// Reasoning tokens the API's usage reported, summed (`None`: no request's usage said).
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
    /// Prompt tokens ÷ TTFT per request: prefill speed (the first token's decode included).
    #[serde(default)]
    pub prefill_tokens_per_s: Option<ValueSummary>,
    /// How many requests used each decode rule (reasoning models; see `DecodeRule`).
    #[serde(default)]
    pub decode_rules: BTreeMap<DecodeRule, u64>,
    pub stop_reasons: BTreeMap<StopReason, u64>,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub token_count_sources: BTreeMap<TokenCountSource, u64>,
    /// Significant digits of the HDR histograms behind the latency summaries.
    pub histogram_sigfigs: u8,
    /// Requests that met every SLO bound (when an SLO was given).
    pub requests_good: Option<u64>,
    /// good / (completed + failed).
    pub slo_attainment: Option<f64>,
    /// Wilson 95 % interval of the attainment.
    pub slo_attainment_ci95: Option<(f64, f64)>,
    /// good requests / duration.
    pub goodput_per_s: Option<f64>,
    /// Whether every SLO term's percentile held over the level.
    pub slo_percentiles_hold: Option<bool>,
    /// Where the completed requests' prompt-token counts came from.
    #[serde(default)]
    pub prompt_token_sources: BTreeMap<PromptTokenSource, u64>,
    /// Remote: requests (completed or failed) whose kept-alive connection turned out closed by
    /// the server and that went out on a new connection instead (see `stale_connection` in
    /// requests.csv).
    #[serde(default)]
    pub stale_reconnects: u64,
    /// Remote: completed requests whose output exceeded the cap they sent (the server ignored
    /// the length field).
    #[serde(default)]
    pub cap_ignored: u64,
    /// Remote: the prompt tokens the server reported (`usage.prompt_tokens`) minus the
    /// intended length, over completed requests that have both.
    #[serde(default)]
    pub prompt_tokens_usage_vs_intended: Option<CountComparison>,
    /// Remote: the output tokens the server reported (`usage`) minus the configured
    /// tokenizer's count of the output text, over completed requests that have both.
    #[serde(default)]
    pub output_tokens_usage_vs_tokenizer: Option<CountComparison>,
    /// Which tiers served the level (hybrid backend, or `--tier-header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<crate::route::RoutingSummary>,
}

/// Two counts of the same tokens compared request by request (difference = first − second).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CountComparison {
    /// Requests that had both counts.
    pub requests: u64,
    /// Of those, requests whose counts differ.
    pub differing: u64,
    pub mean_difference: f64,
    pub min_difference: i64,
    pub max_difference: i64,
}

impl CountComparison {
    /// Add one request's pair of counts.
    pub fn add(&mut self, first: u64, second: u64) {
        let d = first as i64 - second as i64;
        if self.requests == 0 {
            self.min_difference = d;
            self.max_difference = d;
        } else {
            self.min_difference = self.min_difference.min(d);
            self.max_difference = self.max_difference.max(d);
        }
        self.mean_difference += (d as f64 - self.mean_difference) / (self.requests + 1) as f64;
        self.requests += 1;
        if d != 0 {
            self.differing += 1;
        }
    }
}

/// Sampled resource use over the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ResourceSummary {
    pub sampler: Option<SamplerInfo>,
    /// This process's CPU time ÷ wall time per sample interval, in cores.
    pub process_cpu_cores: Option<ValueSummary>,
    /// Busy cores of the whole system (sum of per-core busy shares).
    pub system_busy_cores: Option<ValueSummary>,
    pub rss_bytes: Option<ValueSummary>,
    /// Peak resident set size of the process from its start to the end of this level (VmHWM).
    pub peak_rss_bytes: Option<u64>,
    /// RSS after the model was loaded, before any traffic.
    pub ram_baseline_bytes: Option<u64>,
    /// Process CPU seconds spent inside the measured window.
    pub process_cpu_seconds: Option<f64>,
    /// CPU (and RSS, for worker processes) per instance: what "cores per instance" means.
    #[serde(default)]
    pub instances: Option<InstancesSummary>,
    /// The headline RAM-per-1k-tokens fit (memory against live context tokens: prompt +
    /// generated tokens held by in-flight requests): the heap for in-process instances, the
    /// workers' RSS with process isolation, a watched process's RSS for remote backends.
    #[serde(default)]
    pub ram_per_1k_tokens: Option<RamFit>,
    /// Every fit made, one per memory signal (the headline included).
    #[serde(default)]
    pub ram_fits: Vec<RamFit>,
    /// NVML GPU telemetry per device.
    #[serde(default)]
    pub gpus: Vec<GpuSummary>,
    /// Energy over the measured window (CPU package, GPU) and per output token / request.
    #[serde(default)]
    pub energy: Option<EnergySummary>,
    /// Processes outside charter sampled on request (`--watch-pid`, `--watch-process`).
    #[serde(default)]
    pub watched: Vec<ProcessResources>,
    /// Idle measurement before any traffic (`--baseline`), for gross − idle figures.
    #[serde(default)]
    pub idle_baseline: Option<IdleBaseline>,
    /// Quantities not measured in this level, with the reason (e.g. `gpu`: "unavailable:
    /// libnvidia-ml.so.1 not found"). Never a silent zero.
    #[serde(default)]
    pub unmeasured: BTreeMap<String, String>,
}

/// Per-instance resource use over the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct InstancesSummary {
    pub isolation: Isolation,
    /// How CPU and RAM were attributed to instances, in words.
    pub method: String,
    pub per_instance: Vec<ProcessResources>,
    /// Mean over instances of their CPU cores in the window.
    pub cpu_cores_per_instance_mean: Option<f64>,
    /// Mean over instances of their mean RSS (process isolation only).
    pub rss_bytes_per_instance_mean: Option<f64>,
    /// Σ instance CPU seconds ÷ process (or process tree) CPU seconds: the share of CPU time that
    /// could be attributed to an instance (the rest is the runner, sampler and shared pools).
    pub attributed_cpu_fraction: Option<f64>,
}

/// CPU and RAM of one instance or watched process over the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ProcessResources {
    /// Instance index, or the watched process's name.
    pub label: String,
    pub pid: Option<u32>,
    /// CPU seconds in the window (cumulative counter difference).
    pub cpu_seconds: Option<f64>,
    /// cpu_seconds ÷ window seconds.
    pub cpu_cores: Option<f64>,
    /// Per-sample CPU cores (mean, p95, max over the window's samples).
    pub cpu_cores_samples: Option<ValueSummary>,
    pub rss_bytes: Option<ValueSummary>,
}

/// Memory = baseline + slope × live context tokens, fitted by least squares over a level's
/// samples. A fit is a finding only when it is supported (enough samples, live context spanning
/// at least 2×, R² ≥ 0.8); otherwise `bytes_per_1k_tokens` is `None` and `inconclusive` says
/// why (the raw slope stays in `fitted_bytes_per_1k_tokens` for diagnosis).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RamFit {
    /// The finding: bytes per 1k live tokens, when the fit is supported.
    pub bytes_per_1k_tokens: Option<f64>,
    /// The least-squares slope whether or not it is supported.
    #[serde(default)]
    pub fitted_bytes_per_1k_tokens: Option<f64>,
    /// Intercept: fitted memory with no live context.
    pub baseline_bytes: f64,
    pub r_squared: f64,
    pub samples: u64,
    pub live_tokens_min: u64,
    pub live_tokens_max: u64,
    /// The memory signal fitted.
    #[serde(default)]
    pub signal: Option<MemorySignal>,
    /// Why the fit is not a finding (`None`: it is supported).
    #[serde(default)]
    pub inconclusive: Option<String>,
    /// What was fitted and how live tokens were known, in words.
    pub method: String,
}

/// A memory signal a RAM-per-token fit can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemorySignal {
    /// charter's heap in use (glibc mallinfo2): follows allocations and frees.
    Heap,
    /// charter's resident set size (lags freed memory: glibc keeps freed pages).
    Rss,
    /// The sum of the worker processes' RSS (`--isolation process`).
    WorkersRss,
    /// A watched process's RSS (e.g. a local inference server).
    WatchedRss,
}

impl MemorySignal {
    pub fn as_str(self) -> &'static str {
        match self {
            MemorySignal::Heap => "heap",
            MemorySignal::Rss => "rss",
            MemorySignal::WorkersRss => "workers_rss",
            MemorySignal::WatchedRss => "watched_rss",
        }
    }

    /// In words, for tables: "heap in use", "RSS", ...
    pub fn describe(self) -> &'static str {
        match self {
            MemorySignal::Heap => "heap in use",
            MemorySignal::Rss => "RSS",
            MemorySignal::WorkersRss => "workers' RSS",
            MemorySignal::WatchedRss => "watched process RSS",
        }
    }
}

/// The KV cache as the model's configuration describes it: what one token of live context
/// costs by construction (2 × layers × KV heads × head dim × bytes per element).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KvCacheRecord {
    /// Element type of the cache, e.g. `f32`.
    pub dtype: String,
    pub layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub bytes_per_token: u64,
    /// Where the numbers come from (e.g. `gguf metadata`, `config.json`, `preset`).
    pub source: String,
}

impl KvCacheRecord {
    pub fn new(
        dtype: &str,
        dtype_bytes: u64,
        layers: u32,
        kv_heads: u32,
        head_dim: u32,
        source: &str,
    ) -> Self {
        Self {
            dtype: dtype.into(),
            layers,
            kv_heads,
            head_dim,
            bytes_per_token: 2
                * u64::from(layers)
                * u64::from(kv_heads)
                * u64::from(head_dim)
                * dtype_bytes,
            source: source.into(),
        }
    }
}

/// One GPU over the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct GpuSummary {
    pub index: u32,
    pub name: String,
    pub utilization_pct: Option<ValueSummary>,
    pub memory_used_bytes: Option<ValueSummary>,
    pub memory_total_bytes: Option<u64>,
    pub power_w: Option<ValueSummary>,
    pub temperature_c: Option<ValueSummary>,
    pub sm_clock_mhz: Option<ValueSummary>,
    pub energy_j: Option<f64>,
    /// `counter` (total-energy counter delta) or `integrated` (sampled power).
    pub energy_method: Option<EnergyMethod>,
    /// Share of samples with utilisation below `idle_threshold_pct`.
    pub idle_fraction: Option<f64>,
    pub idle_threshold_pct: f64,
    /// Peak GPU memory of charter's instances (and watched processes) on this device.
    pub process_memory_bytes_max: Option<u64>,
}

/// Energy over the measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct EnergySummary {
    pub cpu_j: Option<f64>,
    /// `rapl` (package counters), `estimated` (declared TDP × measured load), or absent.
    pub cpu_method: Option<EnergyMethod>,
    pub gpu_j: Option<f64>,
    /// `counter` when every device's energy is, else `integrated`.
    pub gpu_method: Option<EnergyMethod>,
    /// The energy of every part the machine has: CPU, plus GPUs when NVML found devices.
    /// `None` when a part that exists was not measured (never a missing part counted as 0 J).
    pub total_j: Option<f64>,
    /// The parts `total_j` covers (`cpu`, `gpu`).
    #[serde(default)]
    pub total_covers: Vec<String>,
    /// total_j minus idle power × window seconds (when `--baseline` measured idle power).
    pub net_j: Option<f64>,
    pub per_output_token_j: Option<f64>,
    pub per_request_j: Option<f64>,
    pub net_per_output_token_j: Option<f64>,
}

/// Idle state before traffic.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct IdleBaseline {
    pub duration_s: f64,
    pub process_cpu_cores: Option<f64>,
    pub system_busy_cores: Option<f64>,
    pub rss_bytes: Option<f64>,
    pub cpu_power_w: Option<f64>,
    pub gpu_power_w: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SamplerInfo {
    /// How each quantity is read, in words.
    pub method: String,
    pub interval_s: f64,
    pub samples: u64,
    /// CPU time the sampler thread itself used.
    pub cpu_time_s: f64,
    pub wall_s: f64,
    /// Sampler CPU time ÷ wall time: the share of one core the sampler cost.
    pub overhead_fraction_of_core: f64,
    /// Sources that were asked for but could not be read, with the reason.
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunFiles {
    pub requests_csv: String,
    pub samples_csv: String,
    /// Per-instance / watched-process readings (long format).
    #[serde(default)]
    pub instances_csv: Option<String>,
    /// NVML readings per device (long format).
    #[serde(default)]
    pub gpu_csv: Option<String>,
    /// Live context tokens and RSS per sample.
    #[serde(default)]
    pub context_csv: Option<String>,
    /// Server metrics scrapes (long format), when a source was scraped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_metrics_csv: Option<String>,
    /// Per-level HDR histograms of every latency metric, HdrHistogram V2 compressed format:
    /// `<dir>/level-<index>/<metric>.hdr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms_dir: Option<String>,
}

/// One row of `requests.csv`, written as soon as the request finishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    pub id: u64,
    pub instance: u32,
    /// Warm-up requests are recorded but excluded from the summary.
    pub warmup: bool,
    pub intended_start_s: f64,
    pub start_s: f64,
    pub end_s: f64,
    pub schedule_lag_s: f64,
    pub ttft_s: Option<f64>,
    pub ttft_from_intended_s: Option<f64>,
    pub e2e_s: Option<f64>,
    pub e2e_from_intended_s: Option<f64>,
    pub decode_time_s: Option<f64>,
    pub itl_s: Option<f64>,
    pub tpot_incl_first_s: Option<f64>,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub token_count_source: TokenCountSource,
    /// Empty on error.
    pub stop_reason: Option<StopReason>,
    pub error_kind: Option<ErrorKind>,
    pub error_message: Option<String>,
    /// Remote APIs: HTTP status of the response (empty: in-process, or no response arrived).
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Remote: time to open a new connection (TCP connect, plus TLS for https); empty when
    /// the request reused a kept-alive connection.
    #[serde(default)]
    pub connect_s: Option<f64>,
    /// Remote: whether the request went over a kept-alive connection.
    #[serde(default)]
    pub connection_reused: Option<bool>,
    /// Remote: start → response headers received (includes connect, when there was one).
    #[serde(default)]
    pub response_headers_s: Option<f64>,
    /// start → first reasoning/thinking delta (never counted as the first token).
    #[serde(default)]
    pub first_reasoning_s: Option<f64>,
    /// Non-empty reasoning/thinking deltas received.
    #[serde(default)]
    pub reasoning_chunks: Option<u64>,
    /// Reasoning tokens the API's usage reported (included in `output_tokens` when the API
    /// counts them there, as OpenAI does).
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
    /// Prompt tokens the API's usage says were read from its prompt cache (part of
    /// `prompt_tokens`).
    #[serde(default)]
    pub cached_prompt_tokens: Option<u64>,
    /// HTTP 429: the delay the server asked for in `Retry-After`.
    #[serde(default)]
    pub retry_after_s: Option<f64>,
    /// Remote: the response's HTTP version (`HTTP/1.1`, `HTTP/2.0`).
    #[serde(default)]
    pub http_version: Option<String>,
    /// Which tokens decode time, ITL and TPOT count (empty: no token arrived).
    #[serde(default)]
    pub decode_rule: Option<DecodeRule>,
    /// prompt_tokens ÷ ttft.
    #[serde(default)]
    pub prefill_tokens_per_s: Option<f64>,
    /// Where `prompt_tokens` came from: `backend` (in-process), or for remote APIs `usage`
    /// (the server's report), `tokenizer`, `ids` or `estimate` (charter's own count).
    #[serde(default)]
    pub prompt_token_source: PromptTokenSource,
    /// Remote: the prompt length charter meant to send (synthetic prompts: the requested
    /// length), and how it knows it (`tokenizer`, `ids`, or `estimate` without a tokenizer).
    #[serde(default)]
    pub prompt_tokens_intended: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_intended_source: Option<PromptTokenSource>,
    /// Remote: `usage.prompt_tokens` as the server reported it (empty: no usage).
    #[serde(default)]
    pub prompt_tokens_usage: Option<u64>,
    /// Remote: output tokens as the server's usage reported them (empty: no usage).
    #[serde(default)]
    pub output_tokens_usage: Option<u64>,
    /// Remote: output tokens counted with `--tokenizer` over the output text (empty: no
    /// tokenizer).
    #[serde(default)]
    pub output_tokens_tokenizer: Option<u64>,
    /// Remote: the output cap sent with the request.
    #[serde(default)]
    pub max_tokens_sent: Option<u32>,
    /// Remote: the output exceeded the cap that was sent (the server ignored the length field).
    #[serde(default)]
    pub cap_ignored: Option<bool>,
    /// Remote: the kept-alive connection this request was to use had been closed by the
    /// server: `found_closed` (noticed before sending) or `resent` (written to the closed
    /// connection, no byte of a response came back, sent again once on a new connection).
    #[serde(default)]
    pub stale_connection: Option<StaleConnection>,
    /// Hybrid backend: the tier that served the request; `--tier-header`: the header's value.
    #[serde(default)]
    pub tier: Option<String>,
    /// Hybrid backend: attempts made (2 after a failover).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// Hybrid backend: why the request went past the first tier.
    #[serde(default)]
    pub spill_reason: Option<crate::route::SpillReason>,
    /// Hybrid backend: the failed first attempt of a failover (`tier: kind: message`).
    #[serde(default)]
    pub failed_attempt: Option<String>,
    /// Multi-turn sessions: the session's index in its level (empty: not a session run).
    #[serde(default)]
    pub session: Option<u64>,
    /// Multi-turn sessions: the turn, 1 for the first.
    #[serde(default)]
    pub turn: Option<u32>,
    /// Multi-turn sessions: the think time drawn before this turn (empty for the first turn).
    #[serde(default)]
    pub think_time_s: Option<f64>,
}

/// Which tokens a request's decode time and ITL count, so that numerator and denominator cover
/// the same tokens (reasoning models; `shared/docs/metrics.md`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DecodeRule {
    /// The API reasoned without separating its tokens in usage (Anthropic thinking): decode
    /// from the first output token of any kind, over all output tokens − 1.
    AllOutput,
    /// The API's usage separates reasoning tokens: decode from the first content token, over
    /// content tokens (output − reasoning) − 1.
    Content,
    /// No reasoning reported, or counts of content only: decode from the first content token,
    /// over output tokens − 1.
    Output,
}

impl DecodeRule {
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeRule::Output => "output",
            DecodeRule::AllOutput => "all_output",
            DecodeRule::Content => "content",
        }
    }
}

/// One row of `samples.csv`: the scalar readings of one sampler tick (per-core busy shares
/// follow as `core{i}_busy`). `None` (an empty cell) is a reading that could not be taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleRow {
    /// Seconds on the run's clock.
    pub t_s: f64,
    /// This process's cumulative CPU seconds.
    pub process_cpu_s: Option<f64>,
    /// This process's CPU seconds since the previous tick ÷ wall seconds.
    pub process_cpu_cores: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// The process's heap in use (glibc `mallinfo2`: in-use chunks + mmapped blocks): a signal
    /// that follows freed memory, which RSS does not.
    #[serde(default)]
    pub heap_bytes: Option<u64>,
    /// Busy cores of the whole machine since the previous tick (sum of per-core shares).
    pub system_busy_cores: Option<f64>,
    /// Cumulative CPU package energy (RAPL) since the sampler started, J.
    #[serde(default)]
    pub cpu_energy_j: Option<f64>,
}

/// Everything one sampler tick read: the `samples.csv` row, per-core busy shares, instances
/// and watched processes (`instances.csv`) and GPUs (`gpu.csv`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub row: SampleRow,
    /// Busy share of each core since the previous tick (empty when /proc/stat is unreadable).
    pub core_busy: Vec<f64>,
    pub targets: Vec<TargetSample>,
    pub gpus: Vec<GpuSample>,
}

/// What the sampler reads per process besides charter itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A model instance (runner threads and their compute pools, or a worker process).
    Instance(u32),
    /// A watched process (`--watch-pid`, `--watch-process`), by its index.
    Watched(usize),
}

/// One target's reading at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSample {
    pub target: Target,
    pub pid: Option<u32>,
    /// Cumulative CPU seconds (`None` until it could first be read).
    pub cpu_s: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// False once the process is gone (its last values are kept).
    pub alive: bool,
}

/// One GPU's reading at one tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuSample {
    pub device: u32,
    pub utilization_pct: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub power_mw: Option<f64>,
    /// The device's cumulative energy counter, mJ.
    pub energy_mj: Option<f64>,
    pub temperature_c: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    /// GPU memory used by the sampled processes (charter, its workers, watched ones).
    pub process_memory_bytes: Option<u64>,
}

/// One row of `context.csv`: a resource sample taken while requests were in flight, with the
/// live context tokens (prompt + generated, summed over in-flight requests) and the RSS that the
/// level's `ram_per_1k_tokens` fit used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextPoint {
    pub t_s: f64,
    /// Level index (`LevelRecord::index`).
    pub level: u32,
    pub live_context_tokens: u64,
    /// The RSS fitted (the process's, or the sum of the worker processes').
    pub rss_bytes: Option<u64>,
    /// The process's heap in use (in-process instances only).
    #[serde(default)]
    pub heap_bytes: Option<u64>,
}
