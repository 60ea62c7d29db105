//! `charter report`, `charter compare` and `charter plan`: everything here reads run records
//! (no re-run) through `charter_reports`, and writes files or prints tables. `charter report`
//! also takes `charter tokens` directories, whose records become a token-efficiency section.

use std::path::{Path, PathBuf};

use charter_reports::charter::{self, LoadedRun};
use charter_reports::charts;
use charter_reports::cost::{self, CostConfig, HOURS_PER_MONTH};
use charter_reports::export::{self, CharterDoc, CompareDoc, Export, Format};
use charter_reports::hybrid_plan;

use crate::values::parse_positive;
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

/// The target in requests/s: `--target-rps`, or `--target-tps` ÷ output tokens per request.
fn target_rate(
    target_rps: Option<f64>,
    target_tps: Option<f64>,
    tokens_per_request: Option<f64>,
) -> Result<f64, CliError> {
    match (target_rps, target_tps) {
        (Some(r), None) => Ok(r),
        (None, Some(t)) => Ok(t / tokens_per_request.filter(|x| *x > 0.0).ok_or_else(|| {
            CliError::BadInput("--target-tps: the run has no output token throughput".into())
        })?),
        _ => Err(CliError::BadInput(
            "charter plan: give exactly one of --target-rps or --target-tps".into(),
        )),
    }
}

/// `charter plan --hybrid` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct HybridPlanArgs {
    /// Plan on-prem nodes plus cloud spill instead of an all-on-prem fleet.
    #[arg(long)]
    pub hybrid: bool,
    /// --hybrid: gamma shape of the target's arrivals (1 = Poisson, < 1 burstier).
    #[arg(long, default_value_t = 1.0, value_parser = parse_positive)]
    pub burstiness: f64,
    /// --hybrid: seed of the simulated arrivals.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// --hybrid: the cost file's `cloud_api` entry the spill is priced at [default: the
    /// hybrid run's second tier's name, or the only entry].
    #[arg(long, value_name = "NAME")]
    pub cloud_api: Option<String>,
    /// --hybrid: the most on-prem nodes tried [default: twice the nodes that take the
    /// target's mean load, + 2].
    #[arg(long, value_name = "N")]
    pub max_nodes: Option<u32>,
    /// --hybrid: write the chart of monthly cost against on-prem nodes (least-cost point
    /// marked) as `hybrid-plan-cost.svg` and `.png` into this directory.
    #[arg(long, value_name = "DIR")]
    pub chart_dir: Option<PathBuf>,
}

/// What one on-prem node does, as measured.
struct NodeBasis {
    what: String,
    slots: u32,
    service_s: f64,
    prompt_per_request: f64,
    output_per_request: f64,
    cloud_tier: Option<String>,
}

/// The measured on-prem node of a hybrid run (its first tier, at the level where it served
/// most) or of a single-tier run (its capacity level).
fn node_basis(run: &LoadedRun, ch: &charter::Charter) -> Result<NodeBasis, CliError> {
    let r = &run.record;
    let per_request = |s: &charter_record::RunSummary| {
        let n = s.requests_completed.max(1) as f64;
        (s.prompt_tokens as f64 / n, s.output_tokens as f64 / n)
    };
    let bad = |what: String| CliError::BadInput(format!("{}: {what}", run.dir));
    if let Some(h) = &r.backend.hybrid {
        let onprem = &h.tiers[0];
        let slots = onprem.max_in_flight.ok_or_else(|| {
            bad(format!(
                "the on-prem tier `{}` has no max_in_flight (policy {}): nothing says how many requests a node serves at once",
                onprem.name, h.policy
            ))
        })?;
        let (l, served) = r
            .levels
            .iter()
            .filter_map(|l| {
                let t = l.summary.routing.as_ref()?.tiers.get(&onprem.name)?;
                Some((l, t))
            })
            .filter(|(_, t)| t.e2e.is_some())
            .max_by_key(|(_, t)| t.requests)
            .ok_or_else(|| {
                bad(format!(
                    "the on-prem tier `{}` completed no request",
                    onprem.name
                ))
            })?;
        let (prompt, output) = per_request(&l.summary);
        return Ok(NodeBasis {
            what: format!(
                "tier `{}` at level {} ({}): {} request(s)",
                onprem.name,
                l.index,
                l.load.label(),
                served.requests
            ),
            slots,
            service_s: served.e2e.as_ref().map_or(0.0, |e| e.mean_s),
            prompt_per_request: prompt,
            output_per_request: output,
            cloud_tier: h.tiers.get(1).map(|t| t.name.clone()),
        });
    }
    let cap = ch.runs[0]
        .capacity
        .as_ref()
        .ok_or_else(|| bad("no level completed requests; nothing to plan from".into()))?;
    let l = r
        .levels
        .iter()
        .find(|l| l.load.label() == cap.load)
        .ok_or_else(|| bad("no level completed requests; nothing to plan from".into()))?;
    let (prompt, output) = per_request(&l.summary);
    Ok(NodeBasis {
        what: format!("level {} ({}), {}", l.index, cap.load, cap.basis),
        slots: charter::instances(&l.load),
        service_s: l.summary.e2e.as_ref().map_or(0.0, |e| e.mean_s),
        prompt_per_request: prompt,
        output_per_request: output,
        cloud_tier: None,
    })
}

/// `charter plan RUN --hybrid --target-rps R --cost FILE`: the on-prem node count with the
/// least monthly cost when the rest spills to a cloud API (model: [`charter_reports::hybrid_plan`]).
pub fn plan_hybrid(
    run: &Path,
    target_rps: Option<f64>,
    target_tps: Option<f64>,
    args: &HybridPlanArgs,
    cost_file: Option<&Path>,
) -> Result<i32, CliError> {
    let cfg = load_cost(cost_file)?.ok_or_else(|| {
        CliError::BadInput(
            "charter plan --hybrid needs --cost FILE (the node's and the cloud API's prices)"
                .into(),
        )
    })?;
    let loaded = load_runs(&[run.to_path_buf()])?;
    let ch = charter::build(&loaded, None, &tool());
    let basis = node_basis(&loaded[0], &ch)?;
    if !(basis.service_s > 0.0 && basis.slots > 0) {
        return Err(CliError::BadInput(format!(
            "{}: the on-prem node has no measured service time or slots",
            run.display()
        )));
    }
    let rps = target_rate(target_rps, target_tps, Some(basis.output_per_request))?;
    let names: Vec<&str> = cfg.cloud_api.iter().map(|a| a.name.as_str()).collect();
    let wanted = args.cloud_api.clone().or(basis.cloud_tier.clone());
    let api = match &wanted {
        Some(n) => cfg.cloud_api.iter().find(|a| &a.name == n),
        None if cfg.cloud_api.len() == 1 => cfg.cloud_api.first(),
        None => None,
    }
    .ok_or_else(|| {
        CliError::BadInput(format!(
            "--cloud-api {}: expected one of the cost file's cloud_api names: {}",
            wanted.as_deref().unwrap_or("(not given)"),
            names.join(", ")
        ))
    })?;
    let cloud_per_request = (basis.prompt_per_request * api.input_per_1m
        + basis.output_per_request * api.output_per_1m)
        / 1e6;
    // Energy at the measured CPU load of a single-tier run; a hybrid run's on-prem tier is
    // usually a server charter does not sample: its node is assumed fully loaded.
    let logical = f64::from(loaded[0].record.host.logical_cores);
    let measured_cores = ch.runs[0]
        .capacity
        .as_ref()
        .and_then(|c| c.cpu_cores_mean)
        .filter(|_| loaded[0].record.backend.hybrid.is_none());
    let (watts, power_basis) = match measured_cores {
        Some(c) => (
            cfg.energy.estimated_watts(c, logical),
            "estimated from the run's CPU load",
        ),
        None => (
            cfg.energy.estimated_watts(logical, logical),
            "assumed at full TDP",
        ),
    };
    let node_per_hour = cfg.onprem.fixed_per_hour() + cfg.energy.cost_per_hour(watts);
    let per_node_rps = f64::from(basis.slots) / basis.service_s;
    let max_nodes = args
        .max_nodes
        .unwrap_or_else(|| ((rps / per_node_rps).ceil() as u32).saturating_mul(2) + 2);
    let n = (rps * 3600.0).clamp(1000.0, 200_000.0) as usize;
    let starts: Vec<f64> = charter_workloads::arrivals::Schedule::new(
        rps,
        charter_record::Arrivals::Gamma,
        args.burstiness,
        args.seed,
    )
    .map_err(|e| CliError::BadInput(format!("charter plan --hybrid: {e}")))?
    .take(n)
    .collect();
    let input = hybrid_plan::HybridPlanInput {
        starts,
        rate_per_s: rps,
        slots_per_node: basis.slots,
        service_s: basis.service_s,
        node_per_hour,
        cloud_per_request,
        output_tokens_per_request: basis.output_per_request,
        max_nodes,
    };
    let (rows, best) = hybrid_plan::plan(&input);
    println!("on-prem node: {} (from {})", run.display(), basis.what);
    println!(
        "  {} slot(s) × {:.4} s mean service = {per_node_rps:.3} requests/s; {:.2}/h ({:.2} fixed + {watts:.0} W {power_basis})",
        basis.slots,
        basis.service_s,
        node_per_hour,
        cfg.onprem.fixed_per_hour()
    );
    println!(
        "cloud spill: `{}` at {:.3} in / {:.3} out per 1M tokens: {:.1} in + {:.1} out tokens per request = {:.6} per request",
        api.name,
        api.input_per_1m,
        api.output_per_1m,
        basis.prompt_per_request,
        basis.output_per_request,
        cloud_per_request
    );
    println!(
        "target: {rps:.3} requests/s, gamma burstiness {}, seed {}: {n} simulated arrivals, in-flight spill beyond nodes × slots",
        args.burstiness, args.seed
    );
    println!(
        "\nmonthly cost ({}{}):",
        cfg.currency,
        if cfg.example { ", EXAMPLE prices" } else { "" }
    );
    println!("  nodes  spill %   on-prem     cloud     total   per 1M out");
    for (i, r) in rows.iter().enumerate() {
        println!(
            "  {:>5}  {:>6.2}  {:>9.2} {:>9.2} {:>9.2}   {:>9}{}",
            r.nodes,
            r.spill_fraction * 100.0,
            r.onprem_per_month,
            r.cloud_per_month,
            r.total_per_month,
            r.per_1m_output.map_or("-".into(), |v| format!("{v:.3}")),
            if i == best { "  ← least cost" } else { "" }
        );
    }
    let b = &rows[best];
    println!(
        "\nplan: {} on-prem node(s), {:.1} % spilled to `{}`: {:.2} per month{}",
        b.nodes,
        b.spill_fraction * 100.0,
        api.name,
        b.total_per_month,
        b.per_1m_output.map_or(String::new(), |v| format!(
            " ({v:.3} per 1M output tokens, blended)"
        ))
    );
    if let Some(dir) = &args.chart_dir {
        let chart = charts::hybrid_plan_cost(&rows, best, &cfg.currency)
            .map_err(|e| CliError::Failure(anyhow::anyhow!("drawing the plan's chart: {e}")))?;
        std::fs::create_dir_all(dir)
            .and_then(|()| charts::write_all(std::slice::from_ref(&chart), dir))
            .map_err(|e| {
                CliError::Failure(anyhow::anyhow!(
                    "--chart-dir {}: cannot write the chart ({e})",
                    dir.display()
                ))
            })?;
        println!("chart: {}", dir.join("hybrid-plan-cost.svg").display());
    }
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
    let rps = target_rate(target_rps, target_tps, tokens_per_request)?;
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
