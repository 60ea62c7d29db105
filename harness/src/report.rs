//! `charter report`, `charter compare` and `charter plan`: everything here reads run records
//! (no re-run) through `charter_reports`, and writes files or prints tables. `charter report`
//! also takes `charter tokens` directories, whose records become a token-efficiency section.

use std::path::{Path, PathBuf};

use charter_reports::charter::{self, LoadedRun};
use charter_reports::charts;
use charter_reports::cost::{self, CostConfig, HOURS_PER_MONTH};
use charter_reports::export::{self, CharterDoc, CompareDoc, Export, Format};

use crate::CliError;

fn load_runs(dirs: &[PathBuf]) -> Result<Vec<LoadedRun>, CliError> {
    dirs.iter()
        .map(|d| charter::load_run(d).map_err(|e| CliError::BadInput(e.to_string())))
        .collect()
}

fn load_cost(p: Option<&Path>) -> Result<Option<CostConfig>, CliError> {
    p.map(|p| CostConfig::from_path(p).map_err(|e| CliError::BadInput(e.to_string())))
        .transpose()
}

fn tool() -> String {
    format!("charter {}", env!("CARGO_PKG_VERSION"))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::BadInput(format!("{}: cannot write: {e}", path.display()))
}

/// `charter report RUN... --out DIR [--cost FILE]`.
pub fn report(runs: &[PathBuf], out: &Path, cost_file: Option<&Path>) -> Result<i32, CliError> {
    let (token_dirs, run_dirs): (Vec<PathBuf>, Vec<PathBuf>) = runs
        .iter()
        .cloned()
        .partition(|d| crate::tokens::is_tokens_dir(d));
    let tokens = token_dirs
        .iter()
        .map(|d| crate::tokens::read_record(d))
        .collect::<Result<Vec<_>, _>>()?;
    let runs = load_runs(&run_dirs)?;
    let cost_cfg = load_cost(cost_file)?;
    let mut ch = charter::build(&runs, cost_cfg.as_ref(), &tool());
    charter_reports::tokens::attach(&mut ch, tokens, &runs);
    let charts = charts::all(&runs, &ch)
        .map_err(|e| CliError::Failure(anyhow::anyhow!("drawing charts: {e}")))?;
    let chart_dir = out.join("charts");
    std::fs::create_dir_all(&chart_dir).map_err(io(out))?;
    charts::write_all(&charts, &chart_dir).map_err(io(&chart_dir))?;
    let doc = CharterDoc {
        charter: &ch,
        charts: &charts,
    };
    let mut written = Vec::new();
    for d in export::report_documents(doc, &runs) {
        for (name, format) in d.files() {
            let p = out.join(&name);
            std::fs::write(&p, d.export(format)?).map_err(io(&p))?;
            written.push(name);
        }
    }
    print!("{}", doc.export(Format::Console)?);
    println!(
        "\nwrote {}/{} and {} chart(s) in charts/ (SVG + PNG)",
        out.display(),
        written.join(", "),
        charts.len()
    );
    Ok(crate::EXIT_OK)
}

/// `charter compare RUN_A RUN_B...`: the main level of each run side by side, with ratios to
/// the first.
pub fn compare(runs: &[PathBuf]) -> Result<i32, CliError> {
    if runs.len() < 2 {
        return Err(CliError::BadInput(
            "charter compare: give at least two run directories".into(),
        ));
    }
    let loaded = load_runs(runs)?;
    let ch = charter::build(&loaded, None, &tool());
    print!("{}", CompareDoc::new(&ch).export(Format::Console)?);
    Ok(crate::EXIT_OK)
}

/// `charter plan RUN --target-rps R | --target-tps T`: nodes needed and their monthly cost.
pub fn plan(
    run: &Path,
    target_rps: Option<f64>,
    target_tps: Option<f64>,
    headroom: f64,
    redundancy: u32,
    cost_file: Option<&Path>,
) -> Result<i32, CliError> {
    let loaded = load_runs(&[run.to_path_buf()])?;
    let ch = charter::build(&loaded, None, &tool());
    let rc = &ch.runs[0];
    let cap = rc.capacity.as_ref().ok_or_else(|| {
        CliError::BadInput(format!(
            "{}: no level completed requests; nothing to plan from",
            run.display()
        ))
    })?;
    let tokens_per_request = cap.output_tokens_per_s.map(|t| t / cap.requests_per_s);
    let rps = match (target_rps, target_tps) {
        (Some(r), None) => r,
        (None, Some(t)) => {
            t / tokens_per_request.filter(|x| *x > 0.0).ok_or_else(|| {
                CliError::BadInput("--target-tps: the run has no output token throughput".into())
            })?
        }
        _ => {
            return Err(CliError::BadInput(
                "charter plan: give exactly one of --target-rps or --target-tps".into(),
            ))
        }
    };
    let per_node = cap.requests_per_s;
    if per_node.is_nan() || per_node <= 0.0 {
        return Err(CliError::BadInput(
            "charter plan: the run's capacity is zero requests/s".into(),
        ));
    }
    let needed = (rps * (1.0 + headroom) / per_node).ceil() as u32;
    let nodes = needed + redundancy;
    println!(
        "capacity per node: {per_node:.3} requests/s at {} ({})",
        cap.load, cap.basis
    );
    println!(
        "target {rps:.3} requests/s × (1 + {:.0}% headroom) ÷ {per_node:.3} = {needed} node(s), + {redundancy} for redundancy = {nodes} node(s)",
        headroom * 100.0
    );
    if let Some(cfg) = load_cost(cost_file)? {
        let fixed = cfg.onprem.fixed_per_hour() * HOURS_PER_MONTH * f64::from(nodes);
        let logical = f64::from(loaded[0].record.host.logical_cores);
        // Each serving node runs at target ÷ (needed × capacity) of its measured load.
        let load_share = (rps / (f64::from(needed) * per_node)).min(1.0);
        println!(
            "\nmonthly cost ({}{}):",
            cfg.currency,
            if cfg.example { ", EXAMPLE prices" } else { "" }
        );
        match cap.cpu_cores_mean {
            Some(cores) => {
                let watts = cfg.energy.estimated_watts(cores * load_share, logical);
                let energy = cfg.energy.cost_per_hour(watts) * HOURS_PER_MONTH * f64::from(nodes);
                println!(
                    "  on-prem: {:.2} fixed + {:.2} energy (estimated {watts:.0} W per node) = {:.2}",
                    fixed,
                    energy,
                    fixed + energy
                );
            }
            None => println!(
                "  on-prem: {fixed:.2} fixed + energy not measured (the run has no CPU measurement to estimate power from)"
            ),
        }
        for c in &cfg.cloud_instance {
            println!(
                "  {}: {nodes} × {:.4}/h × {HOURS_PER_MONTH:.0} h = {:.2}",
                c.name,
                c.price_per_hour,
                c.price_per_hour * HOURS_PER_MONTH * f64::from(nodes)
            );
        }
        if let Some(tpr) = tokens_per_request {
            let out_tokens = rps * tpr * 3600.0 * HOURS_PER_MONTH;
            let s = &loaded[0]
                .record
                .levels
                .iter()
                .find(|l| l.load.label() == cap.load)
                .map(|l| &l.summary);
            let ratio = s
                .map(|s| {
                    if s.output_tokens > 0 {
                        s.prompt_tokens as f64 / s.output_tokens as f64
                    } else {
                        0.0
                    }
                })
                .unwrap_or(0.0);
            for a in &cfg.cloud_api {
                let per_1m = cost::api_per_million_output(a, ratio);
                println!(
                    "  {}: {:.1} M output tokens × {per_1m:.3}/1M = {:.2}",
                    a.name,
                    out_tokens / 1e6,
                    out_tokens / 1e6 * per_1m
                );
            }
        }
    }
    Ok(crate::EXIT_OK)
}
