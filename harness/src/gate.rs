//! `charter gate`: compare baseline runs with candidate runs under a rules file, one value per
//! trial (the unit of evidence: requests inside one run are correlated), and exit 0 pass,
//! 1 regression, 2 error, 3 inconclusive (with --fail-on-inconclusive). The statistics live in
//! `charter_reports::gate`; this module reads run directories and writes the outputs.
//! `charter gate calibrate` estimates each metric's run-to-run noise from A/A trials and
//! suggests thresholds.

use std::io::Write;
use std::path::{Path, PathBuf};

use charter_record::{LevelRole, RunRecord};
use charter_reports::export::{Export, Format, GateDoc};
use charter_reports::gate::{self, GateRules, MetricName, TrialValues};

use clap::{Args, Subcommand};

use crate::CliError;

pub(crate) const GATE_EXIT_CODES: &str = "\
Exit codes:
  0  pass (or improvement; or inconclusive without --fail-on-inconclusive)
  1  regression: a metric changed beyond its threshold, significantly
  2  error: bad rules file, missing or unreadable run, newer record schema
  3  inconclusive (only with --fail-on-inconclusive): too few trials, or the interval straddles the threshold";

/// Arguments of `charter gate`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct GateArgs {
    #[command(subcommand)]
    pub command: Option<GateCommand>,
    /// Baseline run directories.
    #[arg(long, num_args = 1.., value_name = "RUN")]
    pub baseline: Vec<PathBuf>,
    /// Candidate run directories.
    #[arg(long, num_args = 1.., value_name = "RUN")]
    pub candidate: Vec<PathBuf>,
    /// Rules file (see reports/examples/gate.toml).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Which distinct measured load of the runs to gate (0 = the first).
    #[arg(long, default_value_t = 0)]
    pub load_index: usize,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML (one testcase per gated metric).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown table (also appended to $GITHUB_STEP_SUMMARY when it is set).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write Bencher Metric Format JSON.
    #[arg(long, value_name = "FILE")]
    pub bmf: Option<PathBuf>,
    /// Benchmark name used in the BMF output.
    #[arg(long, default_value = "charter")]
    pub benchmark: String,
    /// Exit 3 when any metric is inconclusive.
    #[arg(long)]
    pub fail_on_inconclusive: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum GateCommand {
    /// Estimate each metric's run-to-run noise from A/A trials (e.g. `charter profile
    /// --trials 10`) and suggest thresholds.
    Calibrate(CalibrateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// A/A run directories (the same configuration, repeated).
    #[arg(required = true, value_name = "RUN")]
    pub runs: Vec<PathBuf>,
    /// Calibrate the metrics of this rules file (default: a standard set).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Trials per side the gate will have.
    #[arg(long, default_value_t = 7)]
    pub trials_per_side: usize,
    /// Which distinct measured load to use (0 = the first).
    #[arg(long, default_value_t = 0)]
    pub load_index: usize,
}

/// Read and check `DIR/run.json`: a finished run of a schema this charter reads.
pub fn read_run(dir: &Path) -> Result<RunRecord, CliError> {
    let rec = charter_reports::charter::read_record(dir)
        .map_err(|e| CliError::BadInput(e.to_string()))?;
    if !rec.complete {
        return Err(CliError::BadInput(format!(
            "{}: the run is not complete (status {:?}); gate only finished runs",
            dir.join("run.json").display(),
            rec.status
        )));
    }
    Ok(rec)
}

/// The trials of the `load_index`-th distinct load among the measured levels of `runs`.
pub fn trials(
    runs: &[(PathBuf, RunRecord)],
    load_index: usize,
) -> Result<(String, Vec<TrialValues>), CliError> {
    let mut loads: Vec<String> = Vec::new();
    for (_, r) in runs {
        for l in r.levels.iter().filter(|l| l.role == LevelRole::Measure) {
            let label = l.load.label();
            if !loads.contains(&label) {
                loads.push(label);
            }
        }
    }
    let Some(load) = loads.get(load_index).cloned() else {
        return Err(CliError::BadInput(format!(
            "--load-index {load_index}: the runs have {} distinct measured load(s): {}",
            loads.len(),
            loads.join("; ")
        )));
    };
    let t = runs
        .iter()
        .flat_map(|(_, r)| r.levels.iter())
        .filter(|l| l.role == LevelRole::Measure && l.load.label() == load)
        .map(|l| TrialValues::new(l.summary.clone(), l.resources.clone()))
        .collect();
    Ok((load, t))
}

fn read_all(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, RunRecord)>, CliError> {
    dirs.iter().map(|d| Ok((d.clone(), read_run(d)?))).collect()
}

fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text)
        .map_err(|e| CliError::BadInput(format!("{}: cannot write: {e}", path.display())))
}

/// Run `charter gate`; returns the exit code.
pub fn run(args: &GateArgs) -> Result<i32, CliError> {
    if let Some(GateCommand::Calibrate(c)) = &args.command {
        return calibrate(&c.runs, c.rules.as_deref(), c.trials_per_side, c.load_index);
    }
    let need = |what: &str| {
        CliError::BadInput(format!(
            "charter gate: {what} is required (see charter gate --help)"
        ))
    };
    if args.baseline.is_empty() {
        return Err(need("--baseline RUN..."));
    }
    if args.candidate.is_empty() {
        return Err(need("--candidate RUN..."));
    }
    let rules_path = args.rules.as_ref().ok_or_else(|| need("--rules FILE"))?;
    let mut rules =
        GateRules::from_path(rules_path).map_err(|e| CliError::BadInput(e.to_string()))?;
    if args.fail_on_inconclusive {
        rules.options.fail_on_inconclusive = true;
    }
    let baseline = read_all(&args.baseline)?;
    let candidate = read_all(&args.candidate)?;
    let (load, b) = trials(&baseline, args.load_index)?;
    let (load_c, c) = trials(&candidate, args.load_index)?;
    if load != load_c {
        return Err(CliError::BadInput(format!(
            "baseline load `{load}` and candidate load `{load_c}` differ: compare like with like (--load-index)"
        )));
    }
    let report = gate::gate(&rules, &b, &c);
    println!(
        "gate on load `{load}`: {} baseline and {} candidate trial(s)",
        b.len(),
        c.len()
    );
    let doc = GateDoc {
        report: &report,
        benchmark: &args.benchmark,
    };
    print!("{}", doc.export(Format::Console)?);
    let markdown = doc.export(Format::Markdown)?;
    for (path, format) in [
        (&args.json, Format::Json),
        (&args.junit, Format::Junit),
        (&args.markdown, Format::Markdown),
        (&args.bmf, Format::Bmf),
    ] {
        if let Some(p) = path {
            write_file(p, &doc.export(format)?)?;
        }
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&summary)
            .map_err(|e| {
                CliError::BadInput(format!(
                    "$GITHUB_STEP_SUMMARY {}: {e}",
                    summary.to_string_lossy()
                ))
            })?;
        f.write_all(markdown.as_bytes())
            .map_err(|e| CliError::BadInput(format!("$GITHUB_STEP_SUMMARY: {e}")))?;
    }
    Ok(report.exit_code)
}

/// Metrics calibrated when no rules file is given.
const DEFAULT_METRICS: &[&str] = &[
    "ttft.p50",
    "ttft.p95",
    "itl.p50",
    "itl.p95",
    "e2e.p95",
    "output_token_throughput",
    "cpu_cores.mean",
    "peak_rss_bytes",
];

/// Noise of each metric over A/A trials, and a threshold that a gate with `per_side` trials a
/// side can hold without crying wolf.
fn calibrate(
    runs: &[PathBuf],
    rules: Option<&Path>,
    per_side: usize,
    load_index: usize,
) -> Result<i32, CliError> {
    if runs.is_empty() {
        return Err(CliError::BadInput(
            "charter gate calibrate: give the A/A run directories (RUN...)".into(),
        ));
    }
    let records = read_all(runs)?;
    let (load, t) = trials(&records, load_index)?;
    if t.len() < 3 {
        return Err(CliError::BadInput(format!(
            "charter gate calibrate: {} trial(s) of `{load}`; expected at least 3 (run charter profile --trials 10)",
            t.len()
        )));
    }
    let metrics: Vec<MetricName> = match rules {
        Some(p) => GateRules::from_path(p)
            .map_err(|e| CliError::BadInput(e.to_string()))?
            .rules
            .into_iter()
            .map(|r| r.metric)
            .collect(),
        None => DEFAULT_METRICS
            .iter()
            .map(|m| m.parse().expect("known metric"))
            .collect(),
    };
    println!("calibration on load `{load}` from {} A/A trial(s), for gates with {per_side} trial(s) a side:", t.len());
    println!(
        "  {:<26} {:>12} {:>8} {:>10}  rule",
        "metric", "median", "cv", "threshold"
    );
    let mut lines = Vec::new();
    for m in &metrics {
        let values: Vec<f64> = t.iter().filter_map(|x| x.value(m)).collect();
        if values.len() < 3 {
            println!("  {:<26} not measured in these runs", m.to_string());
            continue;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let cv = if mean != 0.0 { sd / mean.abs() } else { 0.0 };
        let median = gate::stats::median(&values).unwrap_or(mean);
        // The gate passes only when the bootstrap interval of the median ratio stays inside the
        // threshold. That interval's half-width is about 1.96 × 1.25 × cv × √(2/n) (a median's
        // standard error is ~1.25 times the mean's); leave a 1.5× margin and round up.
        let half_width = 1.96 * 1.25 * cv * (2.0 / per_side as f64).sqrt();
        let threshold = ((1.5 * half_width * 100.0).ceil()).max(1.0);
        let higher_is_better = matches!(
            m,
            MetricName::OutputTokenThroughput | MetricName::RequestThroughput | MetricName::Goodput
        );
        let rule = if higher_is_better {
            format!("\"{m}\" = \"min -{threshold}%\"")
        } else {
            format!("\"{m}\" = \"max +{threshold}%\"")
        };
        println!(
            "  {:<26} {:>12.6} {:>7.2}% {:>9}%  {rule}",
            m.to_string(),
            median,
            cv * 100.0,
            threshold
        );
        lines.push(rule);
    }
    println!("\nsuggested [rules] (noise measured on this machine; review before use):\n[rules]");
    for l in lines {
        println!("{l}");
    }
    Ok(crate::EXIT_OK)
}
