//! charter: benchmark and resource-profile LLM inference.
//!
//! This crate is the CLI, the runner and the samplers; the binary in `main.rs` only maps
//! [`main_with_args`] to an exit code, so tests drive the whole tool in-process.
//!
//! Exit codes (also in `charter --help` and the README):
//! - 0: the run finished (failed requests are data, recorded per request; they do not fail it)
//! - 1: charter itself failed (e.g. results could not be written)
//! - 2: bad input: flags, model path, model files, tokenizer; no run record is left behind
//! - 3: every measured request of a load level failed (e.g. a server that answers every request
//!   with an error); the first distinct error messages are printed, and the run's results are
//!   written as usual (run.json complete, requests.csv)
//! - 130: interrupted (Ctrl-C): the partial record is written with `"complete": false`

pub mod bench_engine;
pub mod cli;
pub mod clock;
pub mod exposition;
pub mod fuzzing;
pub mod gate;
pub mod host;
pub mod live;
pub mod merge;
pub mod profile;
mod progress;
pub mod report;
pub mod rundir;
pub mod runner;
pub mod sampler;
pub mod serve;
pub mod serve_metrics;
pub mod telemetry;
pub mod tokens;
pub mod values;
pub mod worker;

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches};

pub use cli::Cli;

/// Exit code: the run finished.
pub const EXIT_OK: i32 = 0;
/// Exit code: charter failed (I/O, internal error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: bad input.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code: every measured request of at least one load level failed; results were written.
pub const EXIT_ALL_FAILED: i32 = 3;
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

/// Parse `args` (program name first), run the command, print errors, return the exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let parsed = Cli::command()
        .try_get_matches_from(args)
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    let (cli, matches) = match parsed {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                EXIT_OK
            };
        }
    };
    let verbose = cli.verbose;
    match cli::run(cli, &matches) {
        Ok(code) => code,
        Err(e) => {
            match (&e, verbose) {
                (_, false) => eprintln!("charter: error: {}", one_line(&e.to_string())),
                // anyhow's alternate Debug: the message, each cause, and a backtrace if captured.
                (CliError::Failure(inner), true) => eprintln!("charter: error: {inner:?}"),
                (CliError::BadInput(m), true) => eprintln!("charter: error: {m}"),
            }
            e.exit_code()
        }
    }
}

/// An error message as one line: a backtrace some library appended (candle does whenever
/// RUST_BACKTRACE or RUST_LIB_BACKTRACE is set) is cut off, and the remaining lines are joined
/// with "; ". `charter -v` prints errors in full.
pub fn one_line(msg: &str) -> String {
    let mut parts = Vec::new();
    for line in msg.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if is_backtrace_line(t) {
            break;
        }
        parts.push(t);
    }
    parts.join("; ")
}

/// The first line of a printed `std::backtrace::Backtrace` (or of anyhow's "Stack backtrace:"
/// section): a frame `N: symbol`, or the header.
fn is_backtrace_line(t: &str) -> bool {
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("stack backtrace:") || lower.starts_with("backtrace:") {
        return true;
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && t[digits..].starts_with(": ") && t[digits + 2..].contains("::")
}
