//! The resource charter: what a planner reads. Built from run records alone (no re-run), it
//! answers in plain words first ("6 concurrent instances use 0.33 cores each…"), then per
//! backend and load level: CPU, RAM, GPU, energy, latency, throughput, errors, cost, and the
//! provenance of every number. Quantities the runs did not measure say so.

use std::collections::BTreeMap;
use std::path::Path;

use charter_record::{
    ContextPoint, EnergyMethod, ErrorKind, KvCacheRecord, LevelRecord, LevelRole, LoadProfile,
    RequestRow, RunRecord, SampleRow, SCHEMA_VERSION,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cost::{self, CostConfig, HOURS_PER_MONTH};
use crate::summary::human_bytes;

/// Version of the `charter.json` layout.
pub const CHARTER_SCHEMA_VERSION: u32 = 1;

/// A run directory read for reporting.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    pub dir: String,
    pub record: RunRecord,
    pub requests: Vec<RequestRow>,
    pub samples: Vec<SampleRow>,
    /// `context.csv` (live context tokens and RSS per sample); empty for runs without one.
    pub context: Vec<ContextPoint>,
}

/// A run directory that cannot be reported on, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RunReadError {
    #[error("{dir}: no run.json (expected a charter run directory)")]
    NoRecord { dir: String },
    #[error("{path}: {what}")]
    Invalid { path: String, what: String },
}

/// Read and check `DIR/run.json` (schema version included).
pub fn read_record(dir: &Path) -> Result<RunRecord, RunReadError> {
    let path = dir.join("run.json");
    let p = path.display().to_string();
    let bad = |what: String| RunReadError::Invalid {
        path: p.clone(),
        what,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => RunReadError::NoRecord {
            dir: dir.display().to_string(),
        },
        _ => bad(format!("cannot read: {e}")),
    })?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    match v.get("schema_version").and_then(|x| x.as_u64()) {
        Some(n) if n > u64::from(SCHEMA_VERSION) => {
            return Err(bad(format!(
                "schema version {n} is newer than this charter reads ({SCHEMA_VERSION}); upgrade charter"
            )))
        }
        None => return Err(bad("no schema_version: not a charter run record".into())),
        _ => {}
    }
    serde_json::from_value(v).map_err(|e| bad(format!("not a charter run record: {e}")))
}

/// Rows of `DIR/name` (header names matched to `T`'s fields); a missing file is no rows.
fn csv_rows<T: serde::de::DeserializeOwned>(
    dir: &Path,
    name: &str,
) -> Result<Vec<T>, RunReadError> {
    let p = dir.join(name);
    if !p.exists() {
        return Ok(Vec::new());
    }
    let bad = |e: csv::Error| RunReadError::Invalid {
        path: p.display().to_string(),
        what: e.to_string(),
    };
    let mut r = csv::Reader::from_path(&p).map_err(bad)?;
    r.deserialize::<T>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)
}

/// Read a run directory: the record, and the request, sample and context rows when present.
pub fn load_run(dir: &Path) -> Result<LoadedRun, RunReadError> {
    let record = read_record(dir)?;
    let requests: Vec<RequestRow> = csv_rows(dir, &record.files.requests_csv)?;
    let context: Vec<ContextPoint> = match &record.files.context_csv {
        Some(name) => csv_rows(dir, name)?,
        None => Vec::new(),
    };
    // By column name: per-core columns and columns of newer versions are ignored.
    let samples: Vec<SampleRow> = csv_rows(dir, &record.files.samples_csv)?;
    Ok(LoadedRun {
        dir: dir.display().to_string(),
        record,
        requests,
        samples,
        context,
    })
}

/// The whole charter (`charter.json`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Charter {
    pub schema_version: u32,
    pub generated_by: String,
    /// The answers, in plain words.
    pub headline: Vec<String>,
    pub runs: Vec<RunCharter>,
    pub cost: Vec<CostReport>,
    /// Assumptions behind derived numbers (prices, power method), with sources and dates.
    pub assumptions: Vec<String>,
    /// Token-efficiency records (`charter tokens` runs) reported alongside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<charter_record::tokens::TokensRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunCharter {
    pub run_dir: String,
    pub backend: String,
    pub backend_kind: String,
    pub complete: bool,
    pub levels: Vec<LevelCharter>,
    pub capacity: Option<Capacity>,
    pub provenance: Provenance,
}

/// One load level, every number in SI units; `None` = not measured.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LevelCharter {
    pub index: u32,
    pub trial: u32,
    pub role: String,
    pub load: String,
    /// Concurrent instances (streams) the level allowed.
    pub instances: u32,
    pub requests_completed: u64,
    pub requests_failed: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub output_tokens_per_s: Option<f64>,
    pub requests_per_s: Option<f64>,
    pub goodput_per_s: Option<f64>,
    pub slo_attainment: Option<f64>,
    pub ttft_p50_s: Option<f64>,
    pub ttft_p90_s: Option<f64>,
    pub ttft_p99_s: Option<f64>,
    pub itl_p50_s: Option<f64>,
    pub itl_p99_s: Option<f64>,
    pub e2e_p50_s: Option<f64>,
    pub e2e_p99_s: Option<f64>,
    pub cpu_cores_mean: Option<f64>,
    pub cpu_cores_p95: Option<f64>,
    pub cpu_cores_per_instance: Option<f64>,
    pub system_busy_cores_mean: Option<f64>,
    pub rss_peak_bytes: Option<u64>,
    pub ram_baseline_bytes: Option<u64>,
    /// Slope of the RSS-against-live-context fit, bytes per 1k tokens.
    pub ram_per_1k_tokens_bytes: Option<f64>,
    /// The memory signal of that fit (`heap`, `rss`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_per_1k_tokens_signal: Option<String>,
    /// Why the level's RAM fit is not a finding (an inconclusive fit has no amount above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram_per_1k_tokens_inconclusive: Option<String>,
    /// The KV cache per token as the model's configuration describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_bytes_per_token: Option<u64>,
    /// Processes other than charter's used this many cores on average (mean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cores_mean: Option<f64>,
    /// Other processes used the machine beyond the threshold during the level.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub contended: bool,
    /// Mean GPU utilisation over devices, as a fraction.
    pub gpu_utilisation: Option<f64>,
    pub gpu_idle_fraction: Option<f64>,
    /// Measured (RAPL / NVML) or estimated (declared TDP) energy per output token; the method
    /// is in the run record.
    pub energy_per_output_token_j: Option<f64>,
    pub sustainable: Option<bool>,
    pub client_bound: bool,
    /// Which tiers served the level (hybrid backend, or `--tier-header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<charter_record::RoutingSummary>,
    /// The server's own metrics over the level (`--server-metrics`), one entry per source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_metrics: Vec<charter_record::LevelServerMetrics>,
    /// Multi-turn sessions: TTFT by turn and per-session measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<charter_record::SessionSummary>,
}

/// Highest load the runs sustained.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Capacity {
    pub load: String,
    pub requests_per_s: f64,
    pub output_tokens_per_s: Option<f64>,
    pub cpu_cores_mean: Option<f64>,
    /// How it was chosen, in words.
    pub basis: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Provenance {
    pub tool: String,
    pub git_sha: Option<String>,
    pub host: String,
    pub started_at: String,
    pub sampler_method: Option<String>,
    pub sampler_interval_s: Option<f64>,
    pub sampler_overhead_fraction_of_core: Option<f64>,
    pub histogram_sigfigs: u8,
    pub weights: String,
    pub threads_per_instance: u32,
}

/// Cost of one run's throughput under each pricing option.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CostReport {
    pub run_dir: String,
    pub backend: String,
    pub currency: String,
    pub example_figures: bool,
    /// The level whose throughput is priced, and which throughput (goodput when an SLO was set).
    pub basis: String,
    pub tokens_per_s: f64,
    /// Power used for energy cost and carbon, and how it was obtained (`None`: neither
    /// measured nor estimable, so the on-prem option has no energy cost and says so).
    pub power_w: Option<f64>,
    pub power_method: String,
    pub options: Vec<CostOption>,
    pub onprem_fixed_per_month: f64,
    pub onprem_variable_per_1m: Option<f64>,
    /// Output tokens one node produces in a month at this throughput and utilisation.
    pub node_tokens_per_month: f64,
    pub break_even: Vec<BreakEven>,
    pub carbon_g_per_1m: Option<f64>,
    /// A hybrid run: the priced level's blend of on-prem and cloud tiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<HybridCost>,
}

/// The cost of a hybrid level's traffic: the first tier is the on-prem node, paid by the hour
/// over the level's window (÷ utilisation, as the on-prem option), later tiers are cloud APIs
/// paid per token at the `cloud_api` entry with the tier's name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HybridCost {
    pub onprem_tier: String,
    pub onprem_output_tokens: u64,
    /// The node's cost for the window (`None`: no power measurement or estimate).
    pub onprem_cost: Option<f64>,
    pub cloud: Vec<CloudTierCost>,
    /// (on-prem cost + cloud cost) ÷ all output tokens × 1M (`None`: a part is not priced).
    pub per_1m_output: Option<f64>,
    /// Why there is no blended figure.
    pub issue: Option<String>,
}

/// One cloud tier's tokens and their price.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CloudTierCost {
    pub tier: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of the input, tokens read from the API's prompt cache (at `cached_input_per_1m` where
    /// the entry has it); of the output, reasoning tokens (at `reasoning_per_1m` where it has
    /// it), as the API's usage reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    /// At the `cloud_api` entry named like the tier (`None`: no such entry).
    pub cost: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CostOption {
    pub name: String,
    /// `onprem`, `cloud_instance` or `cloud_api`.
    pub kind: String,
    pub per_1m_output: Option<f64>,
    /// Why there is no number (e.g. no throughput).
    pub issue: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BreakEven {
    pub against: String,
    /// Monthly output tokens at which on-prem costs the same (`None`: never).
    pub tokens_per_month: Option<f64>,
    /// Months to recover one node's capex against a flat monthly price (`None`: never).
    pub months: Option<f64>,
    pub cloud_per_1m: Option<f64>,
    pub cloud_per_month: Option<f64>,
}

/// Requests a level keeps in flight at most: its concurrency, or its open-loop cap.
pub fn instances(load: &LoadProfile) -> u32 {
    match load {
        LoadProfile::ClosedLoop { concurrency } => *concurrency,
        LoadProfile::OpenLoop { max_in_flight, .. } => *max_in_flight,
    }
}

fn level_charter(l: &LevelRecord, kv: Option<&KvCacheRecord>) -> LevelCharter {
    let s = &l.summary;
    let r = &l.resources;
    let n = instances(&l.load);
    let cores = r.process_cpu_cores.as_ref();
    LevelCharter {
        index: l.index,
        trial: l.trial,
        role: match l.role {
            LevelRole::Measure => "measure",
            LevelRole::SaturationProbe => "saturation probe",
            LevelRole::Search => "search",
        }
        .into(),
        load: l.load.label(),
        instances: n,
        requests_completed: s.requests_completed,
        requests_failed: s.requests_failed,
        errors: s.errors.clone(),
        output_tokens_per_s: s.output_token_throughput_per_s,
        requests_per_s: s.request_throughput_per_s,
        goodput_per_s: s.goodput_per_s,
        slo_attainment: s.slo_attainment,
        ttft_p50_s: s.ttft_from_intended.as_ref().map(|x| x.p50_s),
        ttft_p90_s: s.ttft_from_intended.as_ref().map(|x| x.p90_s),
        ttft_p99_s: s.ttft_from_intended.as_ref().map(|x| x.p99_s),
        itl_p50_s: s.itl.as_ref().map(|x| x.p50_s),
        itl_p99_s: s.itl.as_ref().map(|x| x.p99_s),
        e2e_p50_s: s.e2e_from_intended.as_ref().map(|x| x.p50_s),
        e2e_p99_s: s.e2e_from_intended.as_ref().map(|x| x.p99_s),
        cpu_cores_mean: cores.map(|c| c.mean),
        cpu_cores_p95: cores.map(|c| c.p95),
        cpu_cores_per_instance: r
            .instances
            .as_ref()
            .and_then(|i| i.cpu_cores_per_instance_mean)
            .or_else(|| cores.map(|c| c.mean / f64::from(n.max(1)))),
        system_busy_cores_mean: r.system_busy_cores.as_ref().map(|c| c.mean),
        rss_peak_bytes: r
            .rss_bytes
            .as_ref()
            .map(|v| v.max as u64)
            .or(r.peak_rss_bytes),
        ram_baseline_bytes: r.ram_baseline_bytes,
        ram_per_1k_tokens_bytes: r
            .ram_per_1k_tokens
            .as_ref()
            .and_then(|f| f.bytes_per_1k_tokens),
        ram_per_1k_tokens_signal: r
            .ram_per_1k_tokens
            .as_ref()
            .and_then(|f| f.signal)
            .map(|s| s.as_str().to_string()),
        ram_per_1k_tokens_inconclusive: r
            .ram_per_1k_tokens
            .as_ref()
            .and_then(|f| f.inconclusive.clone()),
        kv_cache_bytes_per_token: kv.map(|k| k.bytes_per_token),
        other_cores_mean: l.contention.other_cores.as_ref().map(|o| o.mean),
        contended: l.contention.flagged,
        routing: l.summary.routing.clone(),
        gpu_utilisation: crate::stats::mean(
            r.gpus
                .iter()
                .filter_map(|g| g.utilization_pct.as_ref().map(|u| u.mean / 100.0)),
        ),
        gpu_idle_fraction: crate::stats::mean(r.gpus.iter().filter_map(|g| g.idle_fraction)),
        energy_per_output_token_j: r.energy.as_ref().and_then(|e| e.per_output_token_j),
        sustainable: l.sustainable,
        client_bound: l.client_bound.flagged,
        server_metrics: l.server_metrics.clone(),
        sessions: l.sessions.clone(),
    }
}

/// The level a run is priced and summarised by: the highest-throughput measured level that was
/// not marked unsustainable.
fn main_level(r: &RunRecord) -> Option<&LevelRecord> {
    r.levels
        .iter()
        .filter(|l| l.role != LevelRole::SaturationProbe && l.sustainable != Some(false))
        .filter(|l| l.summary.requests_completed > 0)
        .max_by(|a, b| {
            let t = |l: &LevelRecord| l.summary.output_token_throughput_per_s.unwrap_or(0.0);
            t(a).total_cmp(&t(b))
        })
}

fn capacity(r: &RunRecord) -> Option<Capacity> {
    let l = main_level(r)?;
    let basis = if r.levels.len() == 1 {
        "the only level measured (no sweep: not a proven maximum)".to_string()
    } else if r.levels.iter().any(|l| l.sustainable.is_some()) {
        "highest-throughput open-loop level that kept up with its offered rate (completed ≥ 0.98 × offered) and held its SLO percentiles".to_string()
    } else {
        "highest-throughput level of the sweep".to_string()
    };
    Some(Capacity {
        load: l.load.label(),
        requests_per_s: l.summary.request_throughput_per_s?,
        output_tokens_per_s: l.summary.output_token_throughput_per_s,
        cpu_cores_mean: l.resources.process_cpu_cores.as_ref().map(|c| c.mean),
        basis,
    })
}

fn cost_report(run: &LoadedRun, cfg: &CostConfig) -> Option<CostReport> {
    let r = &run.record;
    let l = main_level(r)?;
    let s = &l.summary;
    let (tokens_per_s, which) = match (s.goodput_per_s, s.requests_completed) {
        (Some(g), n) if n > 0 && s.output_token_throughput_per_s.is_some() => {
            // Goodput in tokens: good requests' share of the output token rate.
            let share = g / s.request_throughput_per_s.unwrap_or(g).max(1e-12);
            (
                s.output_token_throughput_per_s.unwrap_or(0.0) * share.min(1.0),
                "goodput (output tokens of requests meeting the SLO)",
            )
        }
        _ => (
            s.output_token_throughput_per_s.unwrap_or(0.0),
            "output token throughput (no SLO set)",
        ),
    };
    let busy = l.resources.system_busy_cores.as_ref().map(|c| c.mean);
    // Measured power (RAPL and/or NVML over the window) wins over the TDP estimate.
    let measured = l.resources.energy.as_ref().and_then(|e| {
        let methods: Vec<&str> = [e.cpu_method, e.gpu_method]
            .into_iter()
            .flatten()
            .map(EnergyMethod::as_str)
            .collect();
        let secs = l.window.as_ref()?.duration_s;
        let total = e.total_j?;
        (e.cpu_method == Some(EnergyMethod::Rapl) && secs > 0.0)
            .then(|| (total / secs, methods.join(" + ")))
    });
    let (power_w, power_method) = match (measured, busy) {
        (Some((w, methods)), _) => (
            Some(w + cfg.energy.rest_of_node_w),
            format!(
                "measured: {w:.1} W average over the window ({methods}) + declared rest of node {} W",
                cfg.energy.rest_of_node_w
            ),
        ),
        (None, Some(busy)) => (
            Some(
                cfg.energy
                    .estimated_watts(busy, f64::from(r.host.logical_cores)),
            ),
            format!(
                "estimated: declared CPU TDP {} W × measured busy share ({busy:.2} of {} cores) + declared rest of node {} W (no RAPL measurement in the run)",
                cfg.energy.cpu_tdp_w, r.host.logical_cores, cfg.energy.rest_of_node_w
            ),
        ),
        (None, None) => (
            None,
            "not measured: no RAPL energy and no measured busy cores to estimate from".into(),
        ),
    };
    let fixed_h = cfg.onprem.fixed_per_hour();
    let energy_h = power_w.map(|w| cfg.energy.cost_per_hour(w));
    let u = cfg.utilisation;
    let mut options = Vec::new();
    let mut push = |name: String, kind: &str, v: Result<f64, String>| {
        let (per_1m_output, issue) = match v {
            Ok(x) => (Some(x), None),
            Err(e) => (None, Some(e)),
        };
        options.push(CostOption {
            name,
            kind: kind.into(),
            per_1m_output,
            issue,
        });
    };
    push(
        "on-prem node".into(),
        "onprem",
        match energy_h {
            Some(e) => cost::per_million(fixed_h + e, tokens_per_s, u).map_err(|e| e.to_string()),
            None => Err("energy cost not measured (no power measurement or estimate)".into()),
        },
    );
    for c in &cfg.cloud_instance {
        push(
            c.name.clone(),
            "cloud_instance",
            cost::per_million(c.price_per_hour, tokens_per_s, u).map_err(|e| e.to_string()),
        );
    }
    let (pin, pout): (u64, u64) = (s.prompt_tokens, s.output_tokens);
    let ratio = if pout > 0 {
        pin as f64 / pout as f64
    } else {
        0.0
    };
    for a in &cfg.cloud_api {
        push(
            a.name.clone(),
            "cloud_api",
            Ok(cost::api_per_million_output(a, ratio)),
        );
    }
    // Energy is paid only while loaded; the node's fixed cost every hour.
    let variable = energy_h.and_then(|e| cost::per_million(e, tokens_per_s, 1.0).ok());
    let fixed_month = fixed_h * HOURS_PER_MONTH;
    let running_month = energy_h.map(|e| cfg.onprem.opex_per_year / 12.0 + e * HOURS_PER_MONTH * u);
    let mut break_even = Vec::new();
    for a in &cfg.cloud_api {
        let price = cost::api_per_million_output(a, ratio);
        break_even.push(BreakEven {
            against: a.name.clone(),
            tokens_per_month: variable
                .and_then(|v| cost::break_even_tokens_per_month(fixed_month, v, price)),
            months: None,
            cloud_per_1m: Some(price),
            cloud_per_month: None,
        });
    }
    for c in &cfg.cloud_instance {
        let per_month = c.price_per_hour * HOURS_PER_MONTH;
        break_even.push(BreakEven {
            against: c.name.clone(),
            tokens_per_month: None,
            months: running_month
                .and_then(|m| cost::break_even_months(cfg.onprem.capex, per_month, m)),
            cloud_per_1m: None,
            cloud_per_month: Some(per_month),
        });
    }
    let kwh_per_1m = power_w
        .filter(|_| tokens_per_s > 0.0)
        .map(|w| w / 1000.0 * cfg.energy.pue / (tokens_per_s * 3600.0) * 1e6);
    Some(CostReport {
        run_dir: run.dir.clone(),
        backend: r.backend.model.clone(),
        currency: cfg.currency.clone(),
        example_figures: cfg.example,
        basis: format!("level {} ({}), {which}", l.index, l.load.label()),
        tokens_per_s,
        power_w,
        power_method,
        options,
        onprem_fixed_per_month: fixed_month,
        onprem_variable_per_1m: variable,
        node_tokens_per_month: tokens_per_s * 3600.0 * HOURS_PER_MONTH * u,
        break_even,
        carbon_g_per_1m: kwh_per_1m.map(|k| k * cfg.energy.carbon_g_per_kwh),
        hybrid: r.backend.hybrid.as_ref().and_then(|h| {
            let names: Vec<String> = h.tiers.iter().map(|t| t.name.clone()).collect();
            Some(hybrid_cost(
                &names,
                l.summary.routing.as_ref()?,
                l.window.as_ref()?.duration_s,
                cfg,
                energy_h.map(|e| fixed_h + e),
            ))
        }),
    })
}

/// A cloud tier's tokens at an API's prices: cached input tokens at the cached price and
/// reasoning tokens (counted in the output, as OpenAI reports them) at the reasoning price where
/// the entry has them, the rest at the input and output prices.
fn tier_tokens_cost(s: &charter_record::TierSummary, a: &cost::CloudApi) -> f64 {
    let cached = s.cached_prompt_tokens.unwrap_or(0).min(s.prompt_tokens);
    let reasoning = s.reasoning_tokens.unwrap_or(0).min(s.output_tokens);
    let input = (s.prompt_tokens - cached) as f64 * a.input_per_1m
        + cached as f64 * a.cached_input_per_1m.unwrap_or(a.input_per_1m);
    let output = (s.output_tokens - reasoning) as f64 * a.output_per_1m
        + reasoning as f64 * a.reasoning_per_1m.unwrap_or(a.output_per_1m);
    (input + output) / 1e6
}

/// The blended cost of a hybrid level (see [`HybridCost`]): `tiers` in routing order, the
/// level's routing over a window of `window_s`, and the on-prem node's cost per hour.
fn hybrid_cost(
    tiers: &[String],
    routing: &charter_record::RoutingSummary,
    window_s: f64,
    cfg: &CostConfig,
    onprem_per_hour: Option<f64>,
) -> HybridCost {
    let served = |name: &str| routing.tiers.get(name).cloned().unwrap_or_default();
    let onprem = served(&tiers[0]);
    let onprem_cost = onprem_per_hour.map(|h| h * window_s / 3600.0 / cfg.utilisation);
    let cloud: Vec<CloudTierCost> = tiers[1..]
        .iter()
        .map(|t| {
            let s = served(t);
            CloudTierCost {
                tier: t.clone(),
                input_tokens: s.prompt_tokens,
                output_tokens: s.output_tokens,
                cached_input_tokens: s.cached_prompt_tokens,
                reasoning_tokens: s.reasoning_tokens,
                cost: cfg
                    .cloud_api
                    .iter()
                    .find(|a| &a.name == t)
                    .map(|a| tier_tokens_cost(&s, a)),
            }
        })
        .collect();
    let output: u64 = onprem.output_tokens + cloud.iter().map(|c| c.output_tokens).sum::<u64>();
    let unpriced: Vec<&str> = cloud
        .iter()
        .filter(|c| c.cost.is_none())
        .map(|c| c.tier.as_str())
        .collect();
    let issue = if onprem_cost.is_none() {
        Some("on-prem energy cost not measured (no power measurement or estimate)".to_string())
    } else if !unpriced.is_empty() {
        Some(format!(
            "no cloud_api entry in the cost file named like tier(s) {}",
            unpriced.join(", ")
        ))
    } else if output == 0 {
        Some("no output tokens".into())
    } else {
        None
    };
    let per_1m_output = match (issue.is_none(), onprem_cost) {
        (true, Some(o)) => {
            let cloud_cost: f64 = cloud.iter().filter_map(|c| c.cost).sum();
            Some((o + cloud_cost) / output as f64 * 1e6)
        }
        _ => None,
    };
    HybridCost {
        onprem_tier: tiers[0].clone(),
        onprem_output_tokens: onprem.output_tokens,
        onprem_cost,
        cloud,
        per_1m_output,
        issue,
    }
}

/// What a run that did not complete left: why it stopped, the levels its record summarises and
/// the request rows streamed to `requests.csv` (kept as each request finished).
fn partial_run(run: &LoadedRun, rc: &RunCharter) -> String {
    let r = &run.record;
    let why = match r.status {
        charter_record::RunStatus::Interrupted => "was interrupted (Ctrl-C)",
        _ => "ended before it finished (killed, crashed, or its results could not be written)",
    };
    let ok = run
        .requests
        .iter()
        .filter(|q| q.error_kind.is_none())
        .count();
    format!(
        "{}: PARTIAL RUN: it {why}; run.json summarises {} finished level(s); {} holds {} request row(s), {ok} without an error",
        rc.backend,
        r.levels.len(),
        r.files.requests_csv,
        run.requests.len(),
    )
}

fn headline(run: &LoadedRun, rc: &RunCharter) -> Vec<String> {
    let mut out = Vec::new();
    let r = &run.record;
    if !r.complete {
        out.push(partial_run(run, rc));
    }
    let Some(l) = main_level(r) else {
        out.push(format!(
            "{}: no level completed a request; nothing to chart.",
            rc.backend
        ));
        return out;
    };
    let lc = level_charter(l, r.backend.kv_cache.as_ref());
    let n = lc.instances;
    let what = match &l.load {
        LoadProfile::ClosedLoop { .. } => format!("{n} concurrent instance(s)"),
        LoadProfile::OpenLoop { rate_per_s, .. } => {
            format!("{rate_per_s:.2} requests/s (up to {n} in flight)")
        }
    };
    match (lc.cpu_cores_mean, lc.cpu_cores_per_instance, lc.cpu_cores_p95) {
        (Some(total), Some(each), Some(p95)) => out.push(format!(
            "{}: {what} used {total:.2} CPU cores in total ({each:.2} per instance; p95 {p95:.2}) on {} ({} logical cores).",
            rc.backend,
            r.host.cpu_model.as_deref().unwrap_or("this host"),
            r.host.logical_cores
        )),
        _ => out.push(format!("{}: CPU use not measured (level shorter than one sample interval).", rc.backend)),
    }
    if let (Some(peak), Some(base)) = (lc.rss_peak_bytes, lc.ram_baseline_bytes) {
        let kv = r.backend.kv_cache.as_ref();
        let per_token = match (
            &l.resources.ram_per_1k_tokens,
            l.resources.unmeasured.get("ram_per_1k_tokens"),
        ) {
            (Some(f), _) if f.bytes_per_1k_tokens.is_some() => format!(
                "each additional 1k tokens of live context added about {}",
                crate::summary::ram_fit_words(f, kv)
            ),
            (Some(f), _) => format!(
                "RAM per 1k tokens of context: {}",
                crate::summary::ram_fit_words(f, kv)
            ),
            (None, Some(why)) => format!("RAM per 1k tokens of context: not measured ({why})"),
            (None, None) => "RAM per 1k tokens of context: not measured in this run".into(),
        };
        out.push(format!(
            "RAM: {} resident at peak, {} right after loading the model; {per_token}.",
            human_bytes(peak),
            human_bytes(base)
        ));
    }
    if let (Some(t), Some(p99)) = (lc.output_tokens_per_s, lc.ttft_p99_s) {
        out.push(format!(
            "Throughput {t:.1} output tokens/s; time to first token p99 {:.0} ms; inter-token latency p50 {}.",
            p99 * 1e3,
            lc.itl_p50_s.map(|v| format!("{:.1} ms", v * 1e3)).unwrap_or_else(|| "n/a".into())
        ));
    }
    if l.resources.gpus.is_empty() {
        out.push(format!(
            "GPU utilisation: not measured ({}).",
            l.resources
                .unmeasured
                .get("gpu")
                .map(String::as_str)
                .unwrap_or("no NVML data in this run")
        ));
    }
    for g in &l.resources.gpus {
        out.push(format!(
            "GPU {} ({}): {} utilisation on average; the GPU remained idle (< {} %) for {} of the measured samples.",
            g.index,
            g.name,
            g.utilization_pct.as_ref().map(|u| format!("{:.0} %", u.mean)).unwrap_or_else(|| "unknown".into()),
            g.idle_threshold_pct,
            g.idle_fraction.map(|f| format!("{:.0} %", f * 100.0)).unwrap_or_else(|| "an unknown share".into())
        ));
    }
    match &l.resources.energy {
        Some(e) => out.push(format!(
            "Energy: {} per output token (CPU {}, GPU {}).",
            e.per_output_token_j
                .map(|j| format!("{j:.4} J"))
                .unwrap_or_else(|| "n/a".into()),
            e.cpu_j
                .zip(e.cpu_method.as_ref())
                .map(|(j, m)| format!("{j:.1} J, {m}"))
                .unwrap_or_else(|| "not measured".into()),
            e.gpu_j
                .zip(e.gpu_method.as_ref())
                .map(|(j, m)| format!("{j:.1} J, {m}"))
                .unwrap_or_else(|| "not measured".into()),
        )),
        None => out.push(format!(
            "Energy: not measured ({}).",
            l.resources
                .unmeasured
                .get("cpu_energy")
                .map(String::as_str)
                .unwrap_or("no RAPL or NVML data in this run")
        )),
    }
    if let Some(c) = &rc.capacity {
        if r.levels.len() > 1 {
            out.push(format!(
                "Highest sustained load: {} ({:.2} requests/s{}).",
                c.load,
                c.requests_per_s,
                c.output_tokens_per_s
                    .map(|t| format!(", {t:.1} output tokens/s"))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

/// Build the charter from loaded runs and an optional cost model.
pub fn build(runs: &[LoadedRun], cost_cfg: Option<&CostConfig>, tool: &str) -> Charter {
    let mut headline_lines = Vec::new();
    let mut rcs = Vec::new();
    let mut costs = Vec::new();
    for run in runs {
        let r = &run.record;
        let sampler = r.levels.iter().find_map(|l| l.resources.sampler.clone());
        let rc = RunCharter {
            run_dir: run.dir.clone(),
            backend: r.backend.model.clone(),
            backend_kind: r.backend.kind.clone(),
            complete: r.complete,
            levels: r
                .levels
                .iter()
                .map(|l| level_charter(l, r.backend.kv_cache.as_ref()))
                .collect(),
            capacity: capacity(r),
            provenance: Provenance {
                tool: format!("{} {}", r.tool.name, r.tool.version),
                git_sha: r.tool.git_sha.clone(),
                host: format!(
                    "{} · {} · {} logical cores · {}",
                    r.host.hostname.as_deref().unwrap_or("?"),
                    r.host.cpu_model.as_deref().unwrap_or("unknown CPU"),
                    r.host.logical_cores,
                    human_bytes(r.host.total_memory_bytes)
                ),
                started_at: r.started_at.clone(),
                sampler_method: sampler.as_ref().map(|s| s.method.clone()),
                sampler_interval_s: sampler.as_ref().map(|s| s.interval_s),
                sampler_overhead_fraction_of_core: sampler
                    .as_ref()
                    .map(|s| s.overhead_fraction_of_core),
                histogram_sigfigs: r
                    .levels
                    .first()
                    .map(|l| l.summary.histogram_sigfigs)
                    .unwrap_or(3),
                weights: match &r.backend.weights {
                    crate::WeightsProvenance::RandomPreset { preset, seed } => {
                        format!("random preset {preset}, seed {seed}")
                    }
                    crate::WeightsProvenance::Remote { model } => {
                        format!("behind a remote API (model `{model}`)")
                    }
                    crate::WeightsProvenance::Files { format, files } => format!(
                        "{format}: {}",
                        files
                            .iter()
                            .map(|f| format!(
                                "{} (sha256 {})",
                                f.path,
                                &f.sha256[..12.min(f.sha256.len())]
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
                threads_per_instance: r.backend.threads_per_instance,
            },
        };
        headline_lines.extend(headline(run, &rc));
        if let Some(cfg) = cost_cfg {
            if let Some(c) = cost_report(run, cfg) {
                if let Some(on) = c
                    .options
                    .iter()
                    .find(|o| o.kind == "onprem")
                    .and_then(|o| o.per_1m_output)
                {
                    let cheapest_cloud = c
                        .options
                        .iter()
                        .filter(|o| o.kind != "onprem")
                        .filter_map(|o| o.per_1m_output.map(|v| (v, o.name.clone())))
                        .min_by(|a, b| a.0.total_cmp(&b.0));
                    headline_lines.push(format!(
                        "Cost: {on:.2} {} per 1M output tokens on-prem{}{}.",
                        c.currency,
                        cheapest_cloud
                            .map(|(v, n)| format!(" vs {v:.2} on {n}"))
                            .unwrap_or_default(),
                        if c.example_figures {
                            " (example prices)"
                        } else {
                            ""
                        }
                    ));
                }
                costs.push(c);
            }
        }
        rcs.push(rc);
    }
    let mut assumptions = Vec::new();
    if let Some(c) = cost_cfg {
        assumptions.push(format!(
            "On-prem node: capex {} {}, {} years, interest {}, opex {}/year (source: {}, {}).",
            c.onprem.capex,
            c.currency,
            c.onprem.amortisation_years,
            c.onprem.interest_rate,
            c.onprem.opex_per_year,
            c.onprem.source,
            c.onprem.date
        ));
        assumptions.push(format!(
            "Energy: {} {}/kWh, PUE {}, {} gCO2e/kWh; power estimated from declared TDP {} W (source: {}, {}).",
            c.energy.price_per_kwh, c.currency, c.energy.pue, c.energy.carbon_g_per_kwh, c.energy.cpu_tdp_w, c.energy.source, c.energy.date
        ));
        assumptions.push(format!(
            "Utilisation (loaded share of paid hours): {:.0} %.",
            c.utilisation * 100.0
        ));
        for i in &c.cloud_instance {
            assumptions.push(format!(
                "{}: {} {}/hour (source: {}, {}).",
                i.name, i.price_per_hour, c.currency, i.source, i.date
            ));
        }
        for a in &c.cloud_api {
            assumptions.push(format!(
                "{}: input {} / output {} {} per 1M tokens (source: {}, {}).",
                a.name, a.input_per_1m, a.output_per_1m, c.currency, a.source, a.date
            ));
        }
        if c.example {
            assumptions.push("These prices are EXAMPLE figures, not quotes.".into());
        }
    }
    Charter {
        schema_version: CHARTER_SCHEMA_VERSION,
        generated_by: tool.to_string(),
        headline: headline_lines,
        runs: rcs,
        cost: costs,
        assumptions,
        tokens: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use charter_record::{RoutingSummary, TierSummary};

    use super::*;

    #[test]
    fn a_hybrid_blend_is_the_nodes_window_cost_plus_the_clouds_tokens() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../cost.example.toml"),
        )
        .unwrap();
        let mut cfg = CostConfig::from_str(&text, Path::new("cost.example.toml")).unwrap();
        cfg.utilisation = 0.5;
        cfg.cloud_api[0].name = "cloud".into();
        cfg.cloud_api[0].input_per_1m = 2.0;
        cfg.cloud_api[0].output_per_1m = 8.0;
        let tier = |prompt, output| TierSummary {
            requests: 10,
            prompt_tokens: prompt,
            output_tokens: output,
            ..Default::default()
        };
        let routing = RoutingSummary {
            tiers: [
                ("onprem".to_string(), tier(30_000, 60_000)),
                ("cloud".to_string(), tier(10_000, 40_000)),
            ]
            .into(),
            ..Default::default()
        };
        let names = ["onprem".to_string(), "cloud".to_string()];
        // A node at 3.60 per hour over a 600 s window at 50 % utilisation: 3.6 × 600/3600 / 0.5
        // = 1.20; cloud: (10,000 × 2 + 40,000 × 8) / 1M = 0.34; over 100,000 output tokens:
        // (1.20 + 0.34) / 0.1 M = 15.40 per 1M.
        let h = hybrid_cost(&names, &routing, 600.0, &cfg, Some(3.6));
        assert!((h.onprem_cost.unwrap() - 1.20).abs() < 1e-9, "{h:?}");
        assert!((h.cloud[0].cost.unwrap() - 0.34).abs() < 1e-9, "{h:?}");
        assert!((h.per_1m_output.unwrap() - 15.40).abs() < 1e-9, "{h:?}");
        assert_eq!(h.issue, None);

        // A cloud tier without a price in the sheet: no blended figure, and why.
        let other = ["onprem".to_string(), "elsewhere".to_string()];
        let h = hybrid_cost(&other, &routing, 600.0, &cfg, Some(3.6));
        assert_eq!(h.per_1m_output, None);
        assert!(h.issue.unwrap().contains("elsewhere"));
        // Without the node's power: no on-prem cost, no blend.
        let h = hybrid_cost(&names, &routing, 600.0, &cfg, None);
        assert!(h.per_1m_output.is_none() && h.onprem_cost.is_none());

        // Cached input and reasoning output at their own prices where the sheet has them:
        // 4,000 of the 10,000 input tokens cached at 0.5, 10,000 of the 40,000 output tokens
        // reasoning at 12: (6,000 × 2 + 4,000 × 0.5 + 30,000 × 8 + 10,000 × 12) / 1M = 0.374.
        let mut routing = routing;
        let cloud = routing.tiers.get_mut("cloud").unwrap();
        cloud.cached_prompt_tokens = Some(4_000);
        cloud.reasoning_tokens = Some(10_000);
        cfg.cloud_api[0].cached_input_per_1m = Some(0.5);
        cfg.cloud_api[0].reasoning_per_1m = Some(12.0);
        let h = hybrid_cost(&names, &routing, 600.0, &cfg, Some(3.6));
        assert!((h.cloud[0].cost.unwrap() - 0.374).abs() < 1e-9, "{h:?}");
        assert_eq!(h.cloud[0].cached_input_tokens, Some(4_000));
        // Without those prices, they cost what other input and output tokens cost (0.34).
        cfg.cloud_api[0].cached_input_per_1m = None;
        cfg.cloud_api[0].reasoning_per_1m = None;
        let h = hybrid_cost(&names, &routing, 600.0, &cfg, Some(3.6));
        assert!((h.cloud[0].cost.unwrap() - 0.34).abs() < 1e-9, "{h:?}");
    }
}
