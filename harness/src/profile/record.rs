//! The run record of `charter profile`: what it says before the first level (settings,
//! provenance, files), and how the finished record is shown on the console.

use charter_backends::Backend;
use charter_record::PlanKind;
use charter_reports::{
    HostInfo, PromptSpec, RunFiles, RunRecord, RunStatus, SamplingRecord, WorkloadRecord,
    SCHEMA_VERSION,
};
use charter_workloads::PromptSource;

use super::config::{Plan, ProfileConfig};
use crate::{host, rundir};

/// A level's resources as the backend lets them be read: under a remote backend the model and
/// its context live in the server, so a fit of charter's own memory against live context
/// tokens describes the client, not the model, and is left out (with the reason).
pub fn for_backend(backend: &dyn Backend, r: &mut charter_reports::ResourceSummary) {
    if backend.record().remote.is_some() {
        r.ram_per_1k_tokens = None;
        r.unmeasured.insert(
            "ram_per_1k_tokens".into(),
            "remote backend: the model's context lives in the server, not in charter's process (sample the server with --watch-pid or --watch-process)".into(),
        );
    }
}

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
        },
        levels: Vec::new(),
        search: None,
        files: RunFiles {
            requests_csv: rundir::REQUESTS_CSV.into(),
            samples_csv: rundir::SAMPLES_CSV.into(),
            instances_csv: Some(rundir::INSTANCES_CSV.into()),
            gpu_csv: Some(rundir::GPU_CSV.into()),
            context_csv: Some(rundir::CONTEXT_CSV.into()),
        },
    }
}
