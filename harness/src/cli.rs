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
    /// Run a closed-loop load against a model and record latency and resource use.
    ///
    /// Metric definitions (TTFT, ITL, E2E, chunk gaps, throughput) follow charter's metrics
    /// reference: TTFT = first non-empty token − start; ITL = (e2e − ttft) / (output tokens − 1);
    /// chunk gaps are the individual gaps between tokens, kept separately from ITL.
    #[command(after_help = EXIT_CODES)]
    Profile(ProfileArgs),
    /// List the built-in architecture presets (random weights, no download).
    Presets,
}

/// Arguments of `charter profile`.
#[derive(Debug, Clone, Args)]
pub struct ProfileArgs {
    /// Model to load: a .gguf file (quantized Llama family) or a safetensors directory
    /// (config.json + *.safetensors + tokenizer.json). Without it, --preset is used.
    #[arg(long, value_name = "PATH", conflicts_with = "preset")]
    pub model: Option<PathBuf>,

    /// Built-in architecture with deterministic random weights (see `charter presets`).
    #[arg(long, value_name = "NAME", default_value = charter_backends::candle::presets::DEFAULT_PRESET)]
    pub preset: String,

    /// Seed for preset weights, synthetic prompts and sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Compute threads per instance (stream) [default: logical cores ÷ concurrency, at least 1].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Concurrent closed-loop streams (instances), each with its own KV cache.
    #[arg(short, long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,

    /// Measured requests to issue [default: 4 per stream, unless --duration is given].
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Stop issuing measured requests after this long (e.g. 30s, 2m); with --requests,
    /// whichever comes first.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Synthetic prompt length in tokens (ids drawn from the non-special vocabulary).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..))]
    pub prompt_tokens: u32,

    /// Maximum output tokens per request.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,

    /// Keep generating through end-of-sequence tokens (fixed output lengths).
    #[arg(long)]
    pub ignore_eos: bool,

    /// Warm-up requests run before the measured window and excluded from it
    /// [default: one per stream].
    #[arg(long, value_name = "N")]
    pub warmup: Option<u64>,

    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,

    /// Nucleus sampling threshold (with --temperature > 0).
    #[arg(long)]
    pub top_p: Option<f64>,

    /// Run directory [default: runs/<UTC timestamp>-<model>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Print the summary as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Resource sampling interval (e.g. 100ms = 10 Hz).
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub sample_interval: Duration,

    /// Never draw a progress bar (plain progress lines are printed when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl ProfileArgs {
    /// Checks clap cannot express.
    pub fn validate(&self) -> Result<(), CliError> {
        if self.threads == Some(0) {
            return Err(CliError::BadInput(
                "--threads 0: expected at least 1 thread per instance".into(),
            ));
        }
        if let Some(d) = self.duration {
            if d.is_zero() {
                return Err(CliError::BadInput(
                    "--duration 0s: expected a positive duration".into(),
                ));
            }
        }
        if self.sample_interval < Duration::from_millis(1) {
            return Err(CliError::BadInput(format!(
                "--sample-interval {:?}: expected at least 1ms",
                self.sample_interval
            )));
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(CliError::BadInput(format!(
                "--temperature {}: expected a number ≥ 0",
                self.temperature
            )));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(CliError::BadInput(format!(
                    "--top-p {p}: expected a number in (0, 1]"
                )));
            }
        }
        Ok(())
    }
}

/// Run a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32, CliError> {
    match cli.command {
        Command::Profile(args) => crate::profile::profile(&args),
        Command::Presets => {
            for p in charter_backends::candle::presets::PRESETS {
                println!("{:<14} {}", p.name, p.description);
            }
            Ok(crate::EXIT_OK)
        }
    }
}
