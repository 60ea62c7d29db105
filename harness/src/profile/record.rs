//! The run record of `charter profile`: what it says before the first level (settings,
//! provenance, files), and how the finished record is shown on the console.

use charter_backends::Backend;
use charter_record::PlanKind;
use charter_reports::{
    HostInfo, PromptSpec, RunFiles, RunRecord, RunStatus, SamplingRecord, SharedPrefixRecord,
    TraceRecord, WorkloadRecord, SCHEMA_VERSION,
};
use charter_workloads::PromptSource;

use super::config::{Plan, ProfileConfig};
use crate::{host, rundir};

/// The record as it is written before any traffic (`complete: false`).
pub fn initial(
    cfg: &ProfileConfig,
    host: &HostInfo,
    backend: &dyn Backend,
    prompts: &PromptSource,
) -> RunRecord {
    let plan = match &cfg.plan {
        Plan::Levels(l) if l.len() == 1 => PlanKind::Single,
        Plan::Levels(_) => PlanKind::List,
        Plan::Auto => PlanKind::Auto,
        Plan::Search => PlanKind::SloSearch,
    };
    let license = matches!(prompts, PromptSource::Entries { name, .. } if name == "corpus")
        .then(|| charter_workloads::prompts::CORPUS_LICENSE.to_string());
    RunRecord {
        schema_version: SCHEMA_VERSION,
        complete: false,
        status: RunStatus::Running,
        started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        tool: host::tool_info(),
        host: host.clone(),
        backend: backend.record().clone(),
        workload: WorkloadRecord {
            plan,
            requests: cfg.requests,
            trials: cfg.trials,
            duration_s: cfg.duration.map(|d| d.as_secs_f64()),
            warmup_requests: cfg.warmup,
            cooldown_s: cfg.cooldown.as_secs_f64(),
            prompt: PromptSpec {
                source: prompts.describe(),
                license,
                seed: cfg.seed,
            },
            max_tokens: match cfg.max_tokens {
                Some(d) => d.to_string(),
                None if matches!(prompts, PromptSource::Trace(_)) => {
                    "the trace's output lengths".into()
                }
                None if matches!(prompts, PromptSource::Entries { .. }) => {
                    format!(
                        "from the prompt file, else {}",
                        charter_workloads::DEFAULT_MAX_TOKENS
                    )
                }
                None => charter_workloads::DEFAULT_MAX_TOKENS.to_string(),
            },
            ignore_eos: cfg.ignore_eos,
            sampling: SamplingRecord {
                temperature: cfg.temperature,
                top_p: cfg.top_p,
                seed: cfg.seed,
            },
            slo: cfg.slo.clone(),
            slo_attainment_target: cfg.slo.as_ref().map(|_| cfg.attainment),
            scenario: cfg.scenario.as_ref().map(|p| p.display().to_string()),
            trace: cfg.trace.as_ref().map(|t| TraceRecord {
                path: t.path.display().to_string(),
                format: t.format.to_string(),
                sha256: t.sha256.clone(),
                rows_in_file: t.rows_in_file,
                rows: t.rows.len() as u64,
                speed: t.speed,
                window: t.window.map(|w| w.to_string()),
                block_tokens: t.block_tokens,
                replay_span_s: t.replay_span_s(),
                conversations: cfg.sessions.as_ref().map(|_| t.conversations.len() as u64),
            }),
            shared_prefix: cfg.shared_prefix.map(|p| SharedPrefixRecord {
                prefix_tokens: p.prefix_tokens,
                groups: p.groups,
                suffix_tokens: p.suffix.to_string(),
            }),
            ideal_prefix_cache_hit_rate: None,
            sessions: cfg.sessions.as_ref().map(|p| p.describe()),
        },
        levels: Vec::new(),
        search: None,
        files: RunFiles {
            requests_csv: rundir::REQUESTS_CSV.into(),
            samples_csv: rundir::SAMPLES_CSV.into(),
            instances_csv: Some(rundir::INSTANCES_CSV.into()),
            gpu_csv: Some(rundir::GPU_CSV.into()),
            context_csv: Some(rundir::CONTEXT_CSV.into()),
            server_metrics_csv: None,
            histograms_dir: Some(charter_reports::histograms::HISTOGRAMS_DIR.into()),
        },
        server_metrics: Vec::new(),
        shard: None,
        merge: None,
    }
}
