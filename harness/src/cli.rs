//! The command line: the subcommands and their dispatch. Each command's own arguments live in
//! its module (`profile::args`, `serve`, `gate`); nothing imports this module but the crate root.

use std::path::PathBuf;

use clap::{ArgMatches, CommandFactory, Parser, Subcommand};

use crate::values::{parse_non_negative, parse_positive};
use crate::CliError;

const EXIT_CODES: &str = "\
Exit codes:
  0    the run finished (failed requests are recorded as data; they do not fail the run)
  1    charter itself failed (e.g. results could not be written)
  2    bad input (flags, model path or files, tokenizer); no run record is left behind
  3    every measured request of a load level failed (the first errors are printed); the
       results are written as usual
  130  interrupted (Ctrl-C); the partial record is written with \"complete\": false";

/// Benchmark and resource-profile LLM inference.
#[derive(Debug, Parser)]
#[command(name = "charter", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Errors in full: every line and cause, and a backtrace where RUST_BACKTRACE or
    /// RUST_LIB_BACKTRACE asks for one (`charter -v profile ...`). Without it an error is one
    /// line.
    #[arg(short, long)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run load against a model and record latency and resource use.
    ///
    /// Closed loop (--concurrency), open loop (--rate with --arrivals), sweeps over several
    /// levels (comma-separated lists, or --sweep auto), and SLO search (--slo). A scenario file
    /// (--scenario) can describe all of it; flags given on the command line override it.
    ///
    /// Metric definitions (charter's metrics reference): TTFT = first non-empty token − start;
    /// ITL = (e2e − ttft) / (output tokens − 1); chunk gaps are the individual gaps between
    /// tokens, kept separately from ITL; open-loop latencies are also reported from each
    /// request's intended start (*_from_intended), and schedule lag = start − intended start.
    #[command(after_help = EXIT_CODES)]
    Profile(Box<crate::profile::args::ProfileArgs>),
    /// Serve an in-process backend as an OpenAI-compatible streaming endpoint
    /// (/v1/chat/completions, /v1/completions, /v1/models), e.g. to measure a model in-process
    /// and over HTTP side by side: `charter serve --preset tiny-15m --listen 127.0.0.1:8000`.
    #[command(after_help = EXIT_CODES)]
    Serve(Box<crate::serve::ServeArgs>),
    /// Check a scenario file without running it (exit 0 when valid, 2 otherwise).
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// The scenario TOML file.
        scenario: PathBuf,
    },
    /// Compare baseline runs with candidate runs and fail only on significant regressions.
    ///
    /// One value per trial (run, or --trials repeat) per metric; a regression needs an effect
    /// beyond the rule's threshold AND a significant two-sided Mann–Whitney U test.
    #[command(after_help = crate::gate::GATE_EXIT_CODES)]
    Gate(Box<crate::gate::GateArgs>),
    /// Render a resource charter (HTML, Markdown, JSON, CSV, PNG/SVG charts) from run records.
    #[command(after_help = EXIT_CODES)]
    Report {
        /// Run directories (`charter tokens` output directories add a token-efficiency section).
        #[arg(required = true, value_name = "RUN")]
        runs: Vec<PathBuf>,
        /// Output directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Cost model (see cost.example.toml): adds cost per 1M tokens, break-even and carbon.
        #[arg(long, value_name = "FILE")]
        cost: Option<PathBuf>,
    },
    /// Side-by-side table of runs (e.g. on-prem vs cloud, before vs after), with ratios.
    #[command(after_help = EXIT_CODES)]
    Compare {
        #[arg(required = true, num_args = 2.., value_name = "RUN")]
        runs: Vec<PathBuf>,
    },
    /// Combine the shards of one sharded run (`profile --shard K/N`) into one run directory.
    ///
    /// Refuses shards of different settings (config hash), duplicate or missing shard indices.
    /// Latency histograms add exactly; throughput is recomputed over the union window;
    /// requests.csv gains a `shard` column; resources are summed and kept per shard.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// The shards' run directories.
        #[arg(required = true, value_name = "SHARD_DIR")]
        shards: Vec<PathBuf>,
        /// Output run directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Nodes needed for a target load (with headroom and redundancy), and their monthly cost.
    #[command(after_help = EXIT_CODES)]
    Plan {
        /// A run (ideally a sweep or SLO search) giving one node's sustainable capacity.
        #[arg(value_name = "RUN")]
        run: PathBuf,
        /// Target requests per second.
        #[arg(long, value_parser = parse_positive)]
        target_rps: Option<f64>,
        /// Target output tokens per second.
        #[arg(long, value_parser = parse_positive)]
        target_tps: Option<f64>,
        /// Spare capacity on top of the target (0.25 = 25 %).
        #[arg(long, default_value_t = 0.25, value_parser = parse_non_negative)]
        headroom: f64,
        /// Extra nodes for redundancy (N+k).
        #[arg(long, default_value_t = 1)]
        redundancy: u32,
        /// Cost model for the monthly cost of the fleet.
        #[arg(long, value_name = "FILE")]
        cost: Option<PathBuf>,
        /// On-prem nodes plus cloud spill (needs --cost): the node count with the least
        /// monthly cost when requests beyond the nodes' slots go to a cloud API (see the
        /// README's "charter plan --hybrid" for the model); --headroom and --redundancy do not
        /// apply (the cloud takes the excess).
        #[command(flatten)]
        hybrid: crate::report::HybridPlanArgs,
    },
    /// Token efficiency: how many tokens the same text costs under each tokenizer (per word,
    /// character and byte, with bootstrap intervals, relative to a baseline, per language),
    /// whether each round-trips, chat-template overhead, cost per 1M words and KV RAM per 1k
    /// words. `charter report` includes the result when given its directory.
    #[command(after_help = EXIT_CODES)]
    Tokens(Box<crate::tokens::TokensArgs>),
    /// The llama-bench table for one in-process model: load time, prefill tokens/s at prompt
    /// 128 and 512, decode tokens/s at 1 thread and at every core, peak RSS (candle GGUF,
    /// safetensors or preset; ONNX decoder). Each thread count runs in its own process.
    #[command(after_help = EXIT_CODES)]
    BenchEngine(Box<crate::bench_engine::BenchEngineArgs>),
    /// List the built-in architecture presets (random weights, no download).
    Presets,
    /// Internal: one instance of `profile --isolation process` (started by charter itself;
    /// reads the backend to load, then requests, as JSON lines on stdin).
    #[command(hide = true)]
    Worker,
    /// Internal: one thread count of `bench-engine` (started by charter itself).
    #[command(hide = true)]
    BenchEngineWorker,
}

/// Run a parsed command line (`matches` are what `cli` was parsed from); returns the exit code.
pub fn run(cli: Cli, matches: &ArgMatches) -> Result<i32, CliError> {
    match cli.command {
        Command::Profile(_) => {
            let m = matches
                .subcommand_matches("profile")
                .expect("profile matches");
            crate::profile::profile(&crate::profile::scenario::Settings::from_matches(m)?)
        }
        Command::Serve(args) => {
            let m = matches.subcommand_matches("serve").expect("serve matches");
            let cmd = Cli::command();
            let serve = cmd.find_subcommand("serve").expect("serve command");
            let origins = crate::profile::scenario::Origins::from_command_line(serve, m);
            crate::serve::serve(&args, &origins)
        }
        Command::Validate { scenario } => {
            let described = crate::profile::validate(&scenario)?;
            println!("{}: valid — {described}", scenario.display());
            Ok(crate::EXIT_OK)
        }
        Command::Gate(args) => crate::gate::run(&args),
        Command::Report { runs, out, cost } => crate::report::report(&runs, &out, cost.as_deref()),
        Command::Merge { shards, out } => crate::merge::merge(&shards, &out),
        Command::Compare { runs } => crate::report::compare(&runs),
        Command::Plan {
            run,
            target_rps,
            target_tps,
            headroom,
            redundancy,
            cost,
            hybrid,
        } => {
            if hybrid.hybrid {
                crate::report::plan_hybrid(&run, target_rps, target_tps, &hybrid, cost.as_deref())
            } else {
                crate::report::plan(
                    &run,
                    target_rps,
                    target_tps,
                    headroom,
                    redundancy,
                    cost.as_deref(),
                )
            }
        }
        Command::Tokens(args) => crate::tokens::run(&args),
        Command::Presets => {
            for p in charter_backends::candle::presets::PRESETS {
                println!("{:<14} {}", p.name, p.description);
            }
            Ok(crate::EXIT_OK)
        }
        Command::Worker => crate::worker::run_worker(),
        Command::BenchEngine(args) => {
            let m = matches
                .subcommand_matches("bench-engine")
                .expect("bench-engine matches");
            let cmd = Cli::command();
            let sub = cmd
                .find_subcommand("bench-engine")
                .expect("bench-engine command");
            let origins = crate::profile::scenario::Origins::from_command_line(sub, m);
            crate::bench_engine::run(&args, &origins)
        }
        Command::BenchEngineWorker => crate::bench_engine::run_worker(),
    }
}
