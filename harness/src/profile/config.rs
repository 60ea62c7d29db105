//! The resolved configuration of `charter profile`: the settings (command line over scenario)
//! checked as a whole and turned into ready objects, with every default applied here and
//! nowhere else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use charter_backends::candle::ModelSource;
use charter_backends::BackendSpec;
use charter_reports::slo::Slo;
use charter_workloads::shard::shard_from_env;
use charter_workloads::{
    Arrivals, LengthDist, LoadLevel, PromptSource, PromptSpec, SessionPlan, SessionSource, Shard,
    SharedPrefix, StopCondition, ThinkTime, Trace, TraceOptions,
};

use sha2::Digest;

use super::args::SweepMode;
use super::backend::BackendKind;
use super::scenario::{Origins, Settings};
use crate::sampler::Isolation;
use crate::CliError;

/// What load to offer.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The given levels, in order (one level is a plain run; several are a sweep).
    Levels(Vec<LoadLevel>),
    /// Closed-loop saturation probe, then open-loop rates at fractions of saturation.
    Auto,
    /// Closed-loop saturation probe, then bisection for the highest rate meeting the SLO.
    Search,
}

/// Fractions of saturation throughput an automatic sweep runs.
pub const AUTO_SWEEP_FRACTIONS: &[f64] = &[0.2, 0.4, 0.6, 0.8, 0.9, 1.0];

/// Open-loop requests in flight without `--max-in-flight`.
const DEFAULT_MAX_IN_FLIGHT: u32 = 64;

/// What the sampler reads besides this process and the system.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    pub interval: Duration,
    pub nvml_lib: Option<PathBuf>,
    pub no_gpu: bool,
    pub powercap_root: PathBuf,
    pub cpu_tdp_w: Option<f64>,
    pub baseline: Option<Duration>,
    pub watch_pids: Vec<u32>,
    pub watch_processes: Vec<String>,
    /// Mean cores of other processes above which a level is contended.
    pub contention_threshold_cores: f64,
    /// `--server-metrics` endpoints (empty: the backend's default, if any).
    pub server_metrics: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ProfileConfig {
    pub backend: BackendSpec,
    pub seed: u64,
    pub plan: Plan,
    pub arrivals: Arrivals,
    pub burstiness: f64,
    pub max_in_flight: u32,
    /// Closed-loop concurrency of the saturation probe (auto sweep, search).
    pub probe_concurrency: u32,
    pub requests: Option<u64>,
    /// Repeats of each level (Levels plans only).
    pub trials: u32,
    pub duration: Option<Duration>,
    pub warmup: Option<u64>,
    pub cooldown: Duration,
    pub prompts: Option<PromptSpec>,
    /// `--trace`, read and sliced: its rows are the prompts and its timestamps the arrivals.
    pub trace: Option<Arc<Trace>>,
    /// `--shared-prefix-tokens` with `--prefix-groups` (the suffix is `prompt_tokens`).
    pub shared_prefix: Option<SharedPrefix>,
    /// `--sessions`/`--conversations`: every level runs multi-turn sessions.
    pub sessions: Option<Arc<SessionPlan>>,
    pub prompt_tokens: LengthDist,
    /// `--prompt-tokens` was given: without `--prompts`, that asks for synthetic prompts.
    pub prompt_tokens_explicit: bool,
    /// Explicit output cap (overrides a prompt file's own `max_tokens`).
    pub max_tokens: Option<LengthDist>,
    /// `--ram-probe` with its own output length (no `--max-tokens`): fitted to the model's
    /// context limit once the model is loaded ([`ProfileConfig::fit_probe_to_context`]).
    pub probe_max_tokens: bool,
    pub ignore_eos: bool,
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub slo: Option<Slo>,
    pub attainment: f64,
    pub search_steps: u32,
    pub lag_threshold: Duration,
    pub out: Option<PathBuf>,
    pub json: bool,
    pub no_progress: bool,
    /// `--metrics-listen`: where the run's live metrics are served.
    pub metrics_listen: Option<String>,
    pub scenario: Option<PathBuf>,
    pub isolation: Isolation,
    /// Run even when the resource guard refuses the plan.
    pub force: bool,
    pub sampler: SamplerConfig,
    /// Where each setting came from, for errors found after resolving (prompt files, ...).
    pub origins: Origins,
    /// This run's shard, when the run is sharded (`--shard`, or the scheduler's environment).
    pub shard: Option<Shard>,
    /// Wait for this wall-clock time before the first level.
    pub start_at: Option<SystemTime>,
}

/// `--trace` read and sliced as its settings say; the trace settings without `--trace` are an
/// error naming the first one given.
fn trace(s: &Settings) -> Result<Option<Arc<Trace>>, CliError> {
    let (w, o) = (&s.args.workload, &s.origins);
    let Some(path) = &w.trace else {
        let given = [
            ("trace_format", w.trace_format.is_some()),
            ("trace_speed", w.trace_speed.is_some()),
            ("trace_window", w.trace_window.is_some()),
            ("trace_block_tokens", w.trace_block_tokens.is_some()),
            ("trace_sessions", w.trace_sessions),
        ];
        return match given.iter().find(|(_, set)| *set) {
            Some((id, _)) => Err(o.bad(id, "applies only with --trace FILE")),
            None => Ok(None),
        };
    };
    let opts = TraceOptions {
        format: w.trace_format,
        speed: w.trace_speed.unwrap_or(1.0),
        window: w.trace_window,
        block_tokens: w.trace_block_tokens,
        sessions: w.trace_sessions,
    };
    Trace::load(path, opts)
        .map(|t| Some(Arc::new(t)))
        .map_err(|e| o.bad("trace", e))
}
/// `--sessions`/`--conversations`/`--trace-sessions` read and checked against the load
/// settings; the session settings without any of them are an error naming the first one given.
fn sessions(
    s: &Settings,
    trace: Option<&Arc<Trace>>,
) -> Result<Option<Arc<SessionPlan>>, CliError> {
    let (a, o) = (&s.args, &s.origins);
    let w = &a.workload;
    let source = match (&w.conversations, w.sessions, trace) {
        (_, _, Some(t)) if w.trace_sessions => {
            // The trace says how many conversations, how many turns and when.
            let given = [
                ("sessions", w.sessions.is_some()),
                ("turns", w.turns.is_some()),
                ("think_time", w.think_time.is_some()),
            ];
            if let Some((id, _)) = given.iter().find(|(_, set)| *set) {
                return Err(o.bad(id, "--trace-sessions takes the conversations, their turns and the gaps between them from the trace; drop it"));
            }
            SessionSource::Trace(Arc::clone(t))
        }
        (Some(path), _, _) => charter_workloads::sessions::load_conversations(path)
            .map_err(|e| o.bad("conversations", e))?,
        (None, Some(_), _) => SessionSource::Synthetic {
            turns: w.turns.unwrap_or(LengthDist::fixed(4)),
        },
        (None, None, _) => {
            let given = [
                ("turns", w.turns.is_some()),
                ("think_time", w.think_time.is_some()),
            ];
            return match given.iter().find(|(_, set)| *set) {
                Some((id, _)) => Err(o.bad(
                    id,
                    "applies only with --sessions N, --conversations FILE or --trace-sessions",
                )),
                None => Ok(None),
            };
        }
    };
    let load = &a.load;
    // Sessions run as a closed loop (--concurrency) or arrive at open-loop rates (--rate); a
    // sweep's saturation probe measures requests, not sessions.
    let refused = [
        ("sweep", load.sweep.is_some()),
        ("ram_probe", load.ram_probe),
        ("requests", load.requests.is_some()),
    ];
    if let Some((id, _)) = refused.iter().find(|(_, set)| *set) {
        let why = if *id == "requests" {
            "sessions are counted by --sessions (each runs all its turns); drop --requests"
        } else {
            "sessions run as a closed loop (--concurrency sessions at once) or arrive at --rate sessions/s; drop it"
        };
        return Err(o.bad(id, why));
    }
    let sessions = match (&source, w.sessions) {
        (SessionSource::Trace(t), _) => t.conversations.len() as u64,
        (_, Some(n)) => n,
        (SessionSource::Conversations { conversations, .. }, None) => conversations.len() as u64,
        (SessionSource::Synthetic { .. }, None) => {
            unreachable!("synthetic sessions need --sessions")
        }
    };
    Ok(Some(Arc::new(SessionPlan {
        source,
        sessions,
        think_time: w.think_time.unwrap_or(ThinkTime::Fixed(Duration::ZERO)),
    })))
}

/// How far ahead `--start-at` may be without `--wait`.
pub const START_AT_HORIZON: Duration = Duration::from_secs(3600);

/// The RAM probe's synthetic prompt and output lengths (a model with a shorter context gets
/// what fits).
const PROBE_PROMPT_TOKENS: u32 = 64;
const PROBE_MAX_TOKENS: u32 = 896;

impl ProfileConfig {
    /// The RAM probe's output length, shortened to what the loaded model's context holds
    /// after its prompt; `Some(tokens)` when it was shortened.
    pub fn fit_probe_to_context(&mut self, context_limit_tokens: u32) -> Option<u32> {
        if !self.probe_max_tokens {
            return None;
        }
        let LengthDist::Fixed { tokens: prompt } = self.prompt_tokens else {
            return None;
        };
        let room = context_limit_tokens.saturating_sub(prompt);
        (2..PROBE_MAX_TOKENS).contains(&room).then(|| {
            self.max_tokens = Some(LengthDist::fixed(room));
            room
        })
    }

    /// Check the settings as a whole and apply defaults. `logical_cores` sizes the default
    /// compute threads per instance (cores ÷ the most instances any level runs).
    pub fn resolve(s: &Settings, logical_cores: u32) -> Result<Self, CliError> {
        let (a, o) = (&s.args, &s.origins);
        let (load, slo) = (&a.load, &a.slo);
        let kind = a.backend.kind();
        if load.isolation == Some(Isolation::Process) && kind.is_remote() {
            return Err(o.bad("isolation", "--isolation process starts in-process model instances; a remote API backend has none (sample the server with --watch-pid or --watch-process instead)"));
        }
        if load.isolation == Some(Isolation::Process) && kind == BackendKind::Hybrid {
            return Err(o.bad("isolation", "--isolation process does not route between tiers: a hybrid backend runs its tiers' instances in charter (expected --isolation thread)"));
        }
        if load.isolation == Some(Isolation::Process) && a.backend.candle.pin {
            return Err(o.bad("pin", "applies only to --isolation thread (each worker process would lay out the same cores)"));
        }
        let search = slo.search
            || (slo.terms.is_some()
                && load.rate.is_none()
                && load.concurrency.is_none()
                && load.sweep.is_none()
                && a.workload.trace.is_none());
        if search && slo.terms.is_none() {
            return Err(o.bad(
                "search",
                "a search needs SLO terms: --slo (e.g. --slo ttft_p99=500ms; ttft_p99 = \"500ms\" in [slo])",
            ));
        }
        if search && load.ram_probe {
            return Err(o.bad(
                "ram_probe",
                "the RAM probe runs one closed-loop level; it does not combine with an SLO search",
            ));
        }
        if search && load.rate.is_some() {
            return Err(o.bad("rate", "--search chooses its own rates: drop --rate"));
        }
        if search && load.sweep.is_some() {
            return Err(o.bad("sweep", "--search chooses its own rates: drop --sweep"));
        }
        let probe_single = match &load.concurrency {
            Some(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        };
        if (search || load.sweep.is_some()) && load.concurrency.is_some() && probe_single.is_none()
        {
            return Err(o.bad(
                "concurrency",
                "--sweep auto/--search take at most one --concurrency (the saturation probe's)",
            ));
        }
        let mut concurrency = load.concurrency.clone();
        let mut max_in_flight = load.max_in_flight;
        if let Some(n) = load.instances {
            if load.rate.is_some() || search || load.sweep.is_some() {
                if max_in_flight.is_some_and(|m| m != n) {
                    return Err(o.bad_value(
                        "instances",
                        n,
                        format!(
                            "caps requests in flight at {n}: drop --max-in-flight or make it {n}"
                        ),
                    ));
                }
                max_in_flight = Some(n);
            } else {
                match &concurrency {
                    Some(c) if c != &vec![n] => {
                        return Err(o.bad_value("instances", n, format!("each instance serves one request at a time, so the concurrency is {n}; drop --concurrency or make it {n}")));
                    }
                    _ => concurrency = Some(vec![n]),
                }
            }
        }
        let max_in_flight = max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        let arrivals = load.arrivals.unwrap_or(Arrivals::Poisson);
        let burstiness = load.burstiness.unwrap_or(1.0);
        let trace = trace(s)?;
        let sessions = sessions(s, trace.as_ref())?;
        if sessions.is_some() && search {
            return Err(o.bad("slo", "an SLO search bisects request rates below a closed-loop probe of requests, not session arrival rates; give --concurrency or --rate (sessions/s) levels to report the SLO per level"));
        }
        if trace.is_some() {
            let levels = [
                ("concurrency", load.concurrency.is_some()),
                ("rate", load.rate.is_some()),
                ("sweep", load.sweep.is_some()),
                ("search", search),
                ("ram_probe", load.ram_probe),
            ];
            if let Some((id, _)) = levels.iter().find(|(_, set)| *set) {
                return Err(o.bad(id, "--trace replays the trace's own arrivals as one open-loop level; drop one of them"));
            }
        }
        let plan = if let Some(t) = &trace {
            // Trace sessions: the level's rate is the conversations' (first turns') mean rate.
            let rate = match sessions.as_deref() {
                Some(SessionPlan {
                    source: SessionSource::Trace(_),
                    ..
                }) => t.conversation_rate(),
                _ => t.mean_rate(),
            };
            Plan::Levels(vec![LoadLevel::Open {
                rate,
                arrivals: Arrivals::Trace,
                burstiness: 1.0,
                max_in_flight,
            }])
        } else if search {
            Plan::Search
        } else if load.sweep == Some(SweepMode::Auto) {
            Plan::Auto
        } else if let Some(rates) = &load.rate {
            Plan::Levels(
                rates
                    .iter()
                    .map(|&rate| LoadLevel::Open {
                        rate,
                        arrivals,
                        burstiness,
                        max_in_flight,
                    })
                    .collect(),
            )
        } else {
            let cs = concurrency.clone().unwrap_or_else(|| vec![1]);
            Plan::Levels(
                cs.into_iter()
                    .map(|c| LoadLevel::Closed { concurrency: c })
                    .collect(),
            )
        };
        if load.trials.unwrap_or(1) > 1 && !matches!(plan, Plan::Levels(_)) {
            return Err(o.bad(
                "trials",
                "trials repeat given levels; they do not combine with --sweep auto or --search",
            ));
        }
        let probe_concurrency = probe_single.unwrap_or(max_in_flight);
        let shard = match a.shard.shard {
            Some(s) => Some(s),
            None => shard_from_env(a.shard.shards, |name| std::env::var(name).ok())
                .map_err(|e| o.bad("shards", e))?,
        };
        if let Some(shard) = shard.filter(|s| s.count > 1) {
            check_shardable(&plan, load.requests, shard, o)?;
        }
        if let Some(at) = a.shard.start_at {
            let ahead = at.duration_since(SystemTime::now()).unwrap_or_default();
            if ahead > START_AT_HORIZON && !a.shard.wait {
                return Err(o.bad_value(
                    "start_at",
                    humantime::format_rfc3339_seconds(at),
                    format!(
                        "is {} ahead (more than {}): add --wait if that is meant",
                        humantime::format_duration(Duration::from_secs(ahead.as_secs())),
                        humantime::format_duration(START_AT_HORIZON)
                    ),
                ));
            }
        }
        let max_instances = match &plan {
            Plan::Levels(l) => l
                .iter()
                .map(|l| match l {
                    LoadLevel::Closed { concurrency } => *concurrency,
                    LoadLevel::Open { max_in_flight, .. } => *max_in_flight,
                })
                .max()
                .unwrap_or(1),
            _ => probe_concurrency.max(max_in_flight),
        };
        let threads = (logical_cores / max_instances).max(1) as usize;
        let backend = a.backend.resolve(o, threads, max_instances as usize)?;
        let levels = match &plan {
            Plan::Levels(l) => l.len(),
            _ => 2,
        };
        let w = &a.workload;
        let sm = &a.sampler;
        // The RAM probe's settings, where the user gave none.
        let probe = load.ram_probe;
        let prompt_tokens = w
            .prompt_tokens
            .or(probe.then(|| LengthDist::fixed(PROBE_PROMPT_TOKENS)));
        if w.prefix_groups.is_some() && w.shared_prefix_tokens.is_none() {
            return Err(o.bad(
                "prefix_groups",
                "applies only with --shared-prefix-tokens (the length of each group's prefix)",
            ));
        }
        let shared_prefix = w.shared_prefix_tokens.map(|p| SharedPrefix {
            prefix_tokens: p,
            groups: w.prefix_groups.unwrap_or(1),
            suffix: prompt_tokens.unwrap_or(LengthDist::fixed(128)),
        });
        Ok(Self {
            backend,
            seed: a.backend.seed.unwrap_or(0),
            plan,
            arrivals,
            burstiness,
            max_in_flight,
            probe_concurrency,
            requests: load.requests.or(probe.then_some(1)),
            trials: load.trials.unwrap_or(1),
            duration: load.duration,
            warmup: w.warmup.or(probe.then_some(0)),
            cooldown: load.cooldown.unwrap_or(if levels > 1 {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            }),
            prompts: w.prompts.clone(),
            shared_prefix,
            prompt_tokens: prompt_tokens.unwrap_or(LengthDist::fixed(128)),
            prompt_tokens_explicit: prompt_tokens.is_some(),
            max_tokens: w
                .max_tokens
                .or(probe.then(|| LengthDist::fixed(PROBE_MAX_TOKENS))),
            probe_max_tokens: probe && w.max_tokens.is_none(),
            // A trace's output lengths are what its requests generated: replayed exactly.
            ignore_eos: w.ignore_eos || probe || trace.is_some(),
            trace,
            sessions,
            temperature: w.temperature.unwrap_or(0.0),
            top_p: w.top_p,
            slo: slo.terms.clone(),
            attainment: slo.attainment.unwrap_or(0.9),
            search_steps: slo.search_steps.unwrap_or(6),
            lag_threshold: load.lag_threshold.unwrap_or(Duration::from_millis(5)),
            out: a.output.dir.clone(),
            json: a.output.json,
            no_progress: a.output.no_progress,
            metrics_listen: a.output.metrics_listen.clone(),
            scenario: a.scenario.clone(),
            isolation: load.isolation.unwrap_or_default(),
            force: load.force,
            sampler: SamplerConfig {
                interval: sm.interval.unwrap_or(Duration::from_millis(if probe {
                    20
                } else {
                    100
                })),
                nvml_lib: sm.nvml_lib.clone(),
                no_gpu: sm.no_gpu,
                powercap_root: sm
                    .powercap_root
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/sys/class/powercap")),
                cpu_tdp_w: sm.cpu_tdp,
                baseline: sm.baseline,
                watch_pids: sm.watch_pid.clone().unwrap_or_default(),
                watch_processes: sm.watch_process.clone().unwrap_or_default(),
                contention_threshold_cores: sm.contention_threshold.unwrap_or(
                    charter_reports::resources::flags::DEFAULT_CONTENTION_THRESHOLD_CORES,
                ),
                server_metrics: sm.server_metrics.clone().unwrap_or_default(),
            },
            origins: o.clone(),
            shard,
            start_at: a.shard.start_at,
        })
    }

    /// This run's shard (the whole run when unsharded).
    pub fn shard(&self) -> Shard {
        self.shard.unwrap_or(Shard::WHOLE)
    }

    /// SHA-256 (hex) of the settings that shape the offered load and its measurement: shards of
    /// one run share it, and `charter merge` refuses shards that do not. Left out: the shard
    /// index and count, the start time, and what only changes where results go or how they are
    /// printed. Every field is named here, so a new setting has to be placed on one side.
    pub fn config_hash(&self) -> String {
        let Self {
            backend,
            seed,
            plan,
            arrivals,
            burstiness,
            max_in_flight,
            probe_concurrency,
            requests,
            trials,
            duration,
            warmup,
            cooldown,
            prompts,
            prompt_tokens,
            prompt_tokens_explicit,
            max_tokens,
            probe_max_tokens,
            ignore_eos,
            temperature,
            top_p,
            slo,
            attainment,
            search_steps,
            lag_threshold,
            isolation,
            sampler,
            out: _,
            json: _,
            no_progress: _,
            scenario: _,
            force: _,
            origins: _,
            shard: _,
            start_at: _,
            trace,
            shared_prefix,
            sessions,
            metrics_listen: _,
        } = self;
        // A trace by its content and how it is replayed (its rows follow from those).
        let trace = trace.as_ref().map(|t| {
            format!(
                "{}|{:?}|{}|{:?}|{}|{}",
                t.sha256,
                t.format,
                t.speed,
                t.window,
                t.block_tokens,
                t.conversations.len()
            )
        });
        // Trace sessions follow from the trace (hashed above), not from its rows' Debug text.
        let sessions = sessions.as_ref().map(|p| match &p.source {
            SessionSource::Trace(_) => "trace sessions".to_string(),
            _ => format!("{p:?}"),
        });
        // Debug text is a stable, complete rendering of these values within one charter version
        // (the record's tool version tells versions apart).
        let settings = format!(
            "{backend:?}|{seed}|{plan:?}|{arrivals:?}|{burstiness:?}|{max_in_flight}|\
             {probe_concurrency}|{requests:?}|{trials}|{duration:?}|{warmup:?}|{cooldown:?}|\
             {prompts:?}|{prompt_tokens:?}|{prompt_tokens_explicit}|{max_tokens:?}|\
             {probe_max_tokens}|{ignore_eos}|{temperature:?}|{top_p:?}|{slo:?}|{attainment:?}|\
             {search_steps}|{lag_threshold:?}|{isolation:?}|{:?}|{:?}|{trace:?}|\
             {shared_prefix:?}|{sessions:?}",
            sampler.interval, sampler.baseline
        );
        hex::encode(sha2::Sha256::digest(settings.as_bytes()))
    }

    /// Warm-up requests and the stop condition of the measured window of `load`: `--warmup`
    /// [default: one per stream in closed loop, 2 in open loop]; `--requests` and/or
    /// `--duration` [default: 4 per stream in closed loop, 40 in open loop].
    pub fn level_bounds(&self, load: LoadLevel) -> (u64, StopCondition) {
        if let Some(plan) = &self.sessions {
            // Sessions: whole warm-up sessions (none unless asked), then the plan's sessions.
            let stop = StopCondition {
                requests: Some(plan.sessions),
                duration: self.duration,
            };
            return (self.warmup.unwrap_or(0), stop);
        }
        let (default_warmup, default_requests) = match (load, &self.trace) {
            (LoadLevel::Closed { concurrency }, _) => {
                (u64::from(concurrency), 4 * u64::from(concurrency))
            }
            // A trace: every row of its window once, none of them excluded unless asked.
            (LoadLevel::Open { .. }, Some(t)) => {
                let warmup = self.warmup.unwrap_or(0);
                (0, (t.rows.len() as u64).saturating_sub(warmup).max(1))
            }
            (LoadLevel::Open { .. }, None) => (2, 40),
        };
        let stop = StopCondition {
            requests: match (self.requests, self.duration) {
                (None, None) => Some(default_requests),
                (r, _) => r,
            },
            duration: self.duration,
        };
        (self.warmup.unwrap_or(default_warmup), stop)
    }

    /// An open-loop level at `rate` with the configured arrivals.
    pub fn open_level(&self, rate: f64) -> LoadLevel {
        LoadLevel::Open {
            rate,
            arrivals: self.arrivals,
            burstiness: self.burstiness,
            max_in_flight: self.max_in_flight,
        }
    }

    /// Check inputs that exist outside the command line (model path, processes, libraries,
    /// prompt files) without loading the model.
    pub fn check_inputs(&self) -> Result<(), CliError> {
        let o = &self.origins;
        for &pid in &self.sampler.watch_pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(o.bad_value("watch_pid", pid, "no such process"));
            }
        }
        for name in &self.sampler.watch_processes {
            if crate::sampler::find_processes(name).is_empty() {
                return Err(o.bad_value(
                    "watch_process",
                    name,
                    "no running process has that command name",
                ));
            }
        }
        if let Some(p) = &self.sampler.nvml_lib {
            if !p.exists() {
                return Err(o.bad_value(
                    "nvml_lib",
                    p.display(),
                    "file not found (expected an NVML shared library such as libnvidia-ml.so.1)",
                ));
            }
        }
        if let BackendSpec::Candle(c) = &self.backend {
            if let ModelSource::Path(p) = &c.source {
                if !p.exists() {
                    return Err(charter_backends::LoadError::NotFound { path: p.clone() }.into());
                }
            }
        }
        if let Some(spec) = &self.prompts {
            // Presets have no tokenizer; GGUF files and safetensors directories do (checked on
            // load), and the simulated backend takes any prompt.
            let accepts_text = !matches!(
                &self.backend,
                BackendSpec::Candle(c) if matches!(c.source, ModelSource::Preset { .. })
            );
            self.prompt_source(spec, accepts_text)?;
        }
        Ok(())
    }

    /// The prompt source asked for, else the corpus when the backend takes text and no prompt
    /// length was given, else synthetic token ids.
    pub fn prompt_source_for(&self, accepts_text: bool) -> Result<PromptSource, CliError> {
        if let Some(plan) = &self.sessions {
            if matches!(plan.source, SessionSource::Conversations { .. }) && !accepts_text {
                return Err(self.origins.bad(
                    "conversations",
                    "this model has no tokenizer (random-weight presets take synthetic sessions: --sessions N --prompts synthetic)",
                ));
            }
        }
        if let Some(t) = &self.trace {
            return Ok(PromptSource::Trace(Arc::clone(t)));
        }
        if let Some(p) = self.shared_prefix {
            return Ok(PromptSource::SharedPrefix(p));
        }
        let default = if accepts_text && !self.prompt_tokens_explicit {
            PromptSpec::Corpus
        } else {
            PromptSpec::Synthetic
        };
        self.prompt_source(self.prompts.as_ref().unwrap_or(&default), accepts_text)
    }

    fn prompt_source(
        &self,
        spec: &PromptSpec,
        accepts_text: bool,
    ) -> Result<PromptSource, CliError> {
        let o = &self.origins;
        let src = match spec {
            PromptSpec::Synthetic => PromptSource::Synthetic {
                tokens: self.prompt_tokens,
            },
            PromptSpec::Corpus => PromptSource::corpus(),
            PromptSpec::Jsonl(p) => PromptSource::jsonl(p).map_err(|e| o.bad("prompts", e))?,
            PromptSpec::ShareGpt(p) => {
                PromptSource::sharegpt(p).map_err(|e| o.bad("prompts", e))?
            }
        };
        if src.needs_tokenizer() && !accepts_text {
            return Err(o.bad_value(
                "prompts",
                src.describe(),
                "this model has no tokenizer (random-weight presets take --prompts synthetic)",
            ));
        }
        Ok(src)
    }

    /// One line for `charter validate`.
    pub fn describe(&self) -> String {
        let plan = match &self.plan {
            Plan::Levels(l) if l.len() == 1 => "1 level".to_string(),
            Plan::Levels(l) => format!("sweep of {} levels", l.len()),
            Plan::Auto => "automatic sweep".into(),
            Plan::Search => format!(
                "SLO search ({}, attainment ≥ {})",
                self.slo.as_ref().map(|s| s.to_string()).unwrap_or_default(),
                self.attainment
            ),
        };
        format!("{}, {plan}", self.backend.describe())
    }
}

/// A sharded run offers fixed levels, and each closed-loop shard needs a stream and a request.
fn check_shardable(
    plan: &Plan,
    requests: Option<u64>,
    shard: Shard,
    o: &Origins,
) -> Result<(), CliError> {
    let n = shard.count;
    let Plan::Levels(levels) = plan else {
        return Err(o.bad(
            "shard",
            format!("shard {shard}: a sharded run takes fixed levels (--rate or --concurrency lists); run --sweep auto or an SLO search across shards as one sharded run per probed level (docs/distributed.md)"),
        ));
    };
    for level in levels {
        if let LoadLevel::Closed { concurrency } = level {
            if *concurrency < n {
                return Err(o.bad_value(
                    "concurrency",
                    concurrency,
                    format!("fewer streams than the {n} shards: each shard needs at least one"),
                ));
            }
            if requests.is_some_and(|r| r < u64::from(n)) {
                return Err(o.bad_value(
                    "requests",
                    requests.unwrap_or_default(),
                    format!("fewer requests than the {n} shards"),
                ));
            }
        }
    }
    Ok(())
}
