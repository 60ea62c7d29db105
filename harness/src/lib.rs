//! charter: benchmark and resource-profile LLM inference.
//!
//! This crate is the CLI, the runner and the samplers; the binary in `main.rs` only maps
//! [`main_with_args`] to an exit code, so tests drive the whole tool in-process.
//!
//! Exit codes (also in `charter --help` and the README):
//! - 0: the run finished (failed requests are data, recorded per request; they do not fail it)
//! - 1: charter itself failed (e.g. results could not be written)
//! - 2: bad input: flags, model path, model files, tokenizer; no run record is left behind
//! - 130: interrupted (Ctrl-C): the partial record is written with `"complete": false`

pub mod cli;
pub mod config;
pub mod gate;
pub mod host;
pub mod profile;
mod progress;
pub mod report;
pub mod resources;
pub mod rundir;
pub mod runner;
pub mod sampler;
pub mod scenario;
pub mod serve;
pub mod telemetry;
pub mod worker;

use std::ffi::OsString;
use std::sync::OnceLock;

use clap::Parser;

pub use cli::Cli;

/// Exit code: the run finished.
pub const EXIT_OK: i32 = 0;
/// Exit code: charter failed (I/O, internal error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: bad input.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code: interrupted by Ctrl-C; partial results were written.
pub const EXIT_INTERRUPTED: i32 = 130;

/// An error that knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user asked for something that cannot be done as asked.
    #[error("{0}")]
    BadInput(String),
    /// charter itself failed.
    #[error("{0:#}")]
    Failure(anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::BadInput(_) => EXIT_BAD_INPUT,
            CliError::Failure(_) => EXIT_FAILURE,
        }
    }
}

impl From<charter_backends::LoadError> for CliError {
    fn from(e: charter_backends::LoadError) -> Self {
        CliError::BadInput(e.to_string())
    }
}

/// A document asked for a format it cannot render: a bug in charter, not bad input.
impl From<charter_reports::export::Unsupported> for CliError {
    fn from(e: charter_reports::export::Unsupported) -> Self {
        CliError::Failure(e.into())
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Failure(e)
    }
}

/// The command line charter was started with (worker processes get the same profile arguments).
static ARGS: OnceLock<Vec<OsString>> = OnceLock::new();

/// The arguments after the `profile` subcommand of this process's command line.
pub fn profile_args() -> Vec<OsString> {
    let args = ARGS.get().cloned().unwrap_or_default();
    match args.iter().position(|a| a == "profile") {
        Some(i) => args[i + 1..].to_vec(),
        None => Vec::new(),
    }
}

/// Parse `args` (program name first), run the command, print errors, return the exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let _ = ARGS.set(args.clone());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                EXIT_OK
            };
        }
    };
    match cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("charter: error: {e}");
            e.exit_code()
        }
    }
}
