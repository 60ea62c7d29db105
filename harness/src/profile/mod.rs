//! `charter profile`: settings in, run directory out.
//!
//! - [`args`]: the settings, one clap group per scenario section; [`backend`]: the backend's
//!   settings and their resolution into a `BackendSpec`;
//! - [`scenario`]: scenario files read through the same definitions, merged under the command
//!   line;
//! - [`config`]: the settings checked as a whole, every default applied;
//! - [`session`]: the plan loop and one level; [`record`]: the run record's settings part;
//!   [`failures`]: loud failures (a level whose every request failed, exit code 3);
//! - [`guard`]: the plan's largest level sized against the machine before it starts.

pub mod args;
pub mod backend;
pub mod config;
mod failures;
pub mod guard;
pub mod record;
pub mod scenario;
mod session;

use charter_backends::Backend;

use crate::rundir::{self, RunDir};
use crate::sampler::Isolation;
use crate::worker::ProcessBackend;
use crate::{host, CliError};
use config::ProfileConfig;
use scenario::Settings;
use session::Session;

/// Run `charter profile` with `settings`; returns the exit code.
pub fn profile(settings: &Settings) -> Result<i32, CliError> {
    let host = host::host_info();
    let mut cfg = ProfileConfig::resolve(settings, host::cores_available() as u32)?;
    cfg.check_inputs()?;
    session::install_ctrlc();
    let dir = RunDir::create(
        cfg.out
            .clone()
            .unwrap_or_else(|| rundir::default_path(&cfg.backend.label())),
    )?;
    let loaded: Result<Box<dyn Backend>, CliError> = match cfg.isolation {
        Isolation::Thread => cfg.backend.load().map_err(CliError::from),
        Isolation::Process => {
            ProcessBackend::start(&cfg.backend).map(|b| Box::new(b) as Box<dyn Backend>)
        }
    };
    let prepared = loaded.and_then(|backend| {
        let limit = backend.record().context_limit_tokens;
        if let Some(n) = cfg.fit_probe_to_context(limit) {
            eprintln!(
                "charter: --ram-probe: the model's context holds {limit} tokens, so the probe generates {n} after its prompt"
            );
        }
        let prompts = cfg.prompt_source_for(backend.accepts_text())?;
        Ok((backend, prompts))
    });
    let (backend, prompts) = match prepared {
        Ok(p) => p,
        Err(e) => {
            dir.discard();
            return Err(e);
        }
    };
    let estimate = guard::estimate(&cfg, backend.record(), &prompts);
    if let Some(why) = estimate.refusal() {
        if cfg.force {
            eprintln!("charter: warning: --force: {why}");
        } else {
            dir.discard();
            let n = estimate.streams;
            return Err(cfg.origins.bad_value(estimate.setting, n, why));
        }
    }
    let result = Session::new(&cfg, &host, backend.as_ref(), prompts, &dir).and_then(|s| s.run());
    if let Err(CliError::BadInput(_)) = &result {
        dir.discard();
    }
    result
}

/// `charter validate FILE`: the scenario resolved and its inputs checked, without loading the
/// model; returns a one-line description.
pub fn validate(path: &std::path::Path) -> Result<String, CliError> {
    let settings = Settings::from_file(path)?;
    let cfg = ProfileConfig::resolve(&settings, host::cores_available() as u32)?;
    cfg.check_inputs()?;
    Ok(cfg.describe())
}
