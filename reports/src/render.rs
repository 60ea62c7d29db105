//! Charter exporters: pure functions from a [`Charter`] (and charts) to bytes: Markdown, a
//! self-contained HTML page (inline CSS and SVG, no external assets), JSON, and CSV of the
//! per-level numbers for spreadsheets.

use std::fmt::Write;

use crate::charter::{Charter, CostReport, LevelCharter, RunCharter};
use crate::charts::Chart;
use crate::summary::human_bytes;

fn ms(v: Option<f64>) -> String {
    v.map(|x| {
        let m = x * 1e3;
        if m >= 100.0 {
            format!("{m:.0}")
        } else {
            format!("{m:.1}")
        }
    })
    .unwrap_or_else(|| "n/a".into())
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "n/a".into())
}

/// Power as the cost sections print it.
fn watts(v: Option<f64>) -> String {
    v.map(|w| format!("{w:.1} W"))
        .unwrap_or_else(|| "not measured".into())
}

fn bytes(v: Option<u64>) -> String {
    v.map(human_bytes).unwrap_or_else(|| "not measured".into())
}

const LEVEL_HEADERS: [&str; 18] = [
    "load",
    "trial",
    "done",
    "failed",
    "tok/s",
    "req/s",
    "TTFT p50 ms",
    "TTFT p99 ms",
    "ITL p50 ms",
    "E2E p99 ms",
    "cores mean",
    "cores/instance",
    "cores p95",
    "peak RSS",
    "RAM/1k tok",
    "GPU idle",
    "J/out tok",
    "notes",
];

fn level_cells(l: &LevelCharter) -> Vec<String> {
    let mut notes = Vec::new();
    if l.role != "measure" {
        notes.push(l.role.clone());
    }
    if l.client_bound {
        notes.push("client-bound".into());
    }
    if l.contended {
        notes.push(format!(
            "contended ({:.2} other cores)",
            l.other_cores_mean.unwrap_or_default()
        ));
    }
    if l.sustainable == Some(false) {
        notes.push("not sustainable".into());
    }
    if let Some(a) = l.slo_attainment {
        notes.push(format!("SLO {:.0}%", a * 100.0));
    }
    notes.extend(
        l.server_metrics
            .iter()
            .filter_map(crate::server_metrics::note),
    );
    vec![
        l.load.clone(),
        l.trial.to_string(),
        l.requests_completed.to_string(),
        l.requests_failed.to_string(),
        num(l.output_tokens_per_s, 1),
        num(l.requests_per_s, 2),
        ms(l.ttft_p50_s),
        ms(l.ttft_p99_s),
        ms(l.itl_p50_s),
        ms(l.e2e_p99_s),
        num(l.cpu_cores_mean, 2),
        num(l.cpu_cores_per_instance, 2),
        num(l.cpu_cores_p95, 2),
        bytes(l.rss_peak_bytes),
        match (l.ram_per_1k_tokens_bytes, &l.ram_per_1k_tokens_inconclusive) {
            (Some(b), _) => crate::summary::signed_human_bytes(b),
            (None, Some(_)) => "inconclusive".into(),
            (None, None) => "not measured".into(),
        },
        l.gpu_idle_fraction
            .map(|f| format!("{:.0}%", f * 100.0))
            .unwrap_or_else(|| "not measured".into()),
        l.energy_per_output_token_j
            .map(|j| format!("{j:.4}"))
            .unwrap_or_else(|| "not measured".into()),
        notes.join(", "),
    ]
}

/// A hybrid (or `--tier-header`) run's routing per level, one sentence each.
fn routing_sentences(r: &RunCharter) -> Vec<String> {
    r.levels
        .iter()
        .filter_map(|l| {
            let rt = l.routing.as_ref()?;
            let tiers: Vec<String> = rt
                .tiers
                .iter()
                .map(|(name, t)| {
                    format!(
                        "{name} {} request(s) ({} failed, TTFT p99 {} ms, E2E p99 {} ms)",
                        t.requests,
                        t.requests_failed,
                        ms(t.ttft.as_ref().map(|x| x.p99_s)),
                        ms(t.e2e.as_ref().map(|x| x.p99_s))
                    )
                })
                .collect();
            let spill = rt
                .spill_fraction
                .map(|f| {
                    format!(
                        "; {:.1} % spilled, {} failover(s), first spill {}",
                        f * 100.0,
                        rt.failovers,
                        rt.first_spill_after_s
                            .map(|t| format!("{t:.2} s into the window"))
                            .unwrap_or_else(|| "never".into())
                    )
                })
                .unwrap_or_default();
            Some(format!(
                "Routing, level {} ({}): {}{spill}.",
                l.index,
                l.load,
                tiers.join("; ")
            ))
        })
        .collect()
}

/// Multi-turn levels, one sentence each.
fn session_sentences(r: &RunCharter) -> Vec<String> {
    r.levels
        .iter()
        .filter_map(|l| {
            let s = l.sessions.as_ref()?;
            Some(crate::sessions::sentence(l.index, &l.load, s))
        })
        .collect()
}

/// A hybrid level's blended cost, in one sentence.
fn hybrid_cost_sentence(c: &CostReport) -> Option<String> {
    let h = c.hybrid.as_ref()?;
    let cloud: Vec<String> = h
        .cloud
        .iter()
        .map(|t| {
            let mut of = Vec::new();
            if let Some(c) = t.cached_input_tokens {
                of.push(format!("{c} cached input"));
            }
            if let Some(r) = t.reasoning_tokens {
                of.push(format!("{r} reasoning"));
            }
            let of = if of.is_empty() {
                String::new()
            } else {
                format!(" (of which {})", of.join(", "))
            };
            format!(
                "{} {} input + {} output tokens{of} = {}",
                t.tier,
                t.input_tokens,
                t.output_tokens,
                t.cost
                    .map(|v| format!("{v:.4} {}", c.currency))
                    .unwrap_or_else(|| "not priced".into())
            )
        })
        .collect();
    Some(format!(
        "Hybrid blend: on-prem tier {} served {} output tokens for {} over the window; cloud: {}; blended {}.",
        h.onprem_tier,
        h.onprem_output_tokens,
        h.onprem_cost
            .map(|v| format!("{v:.4} {}", c.currency))
            .unwrap_or_else(|| "not priced".into()),
        cloud.join("; "),
        match (h.per_1m_output, &h.issue) {
            (Some(v), _) => format!("{v:.3} {} per 1M output tokens", c.currency),
            (None, Some(i)) => format!("not computed: {i}"),
            (None, None) => "not computed".into(),
        }
    ))
}

/// What no level of any run measured, in words (`None` when everything was measured).
fn not_measured(ch: &Charter) -> Option<String> {
    let levels = || ch.runs.iter().flat_map(|r| r.levels.iter());
    let mut missing = Vec::new();
    if levels()
        .all(|l| l.ram_per_1k_tokens_bytes.is_none() && l.ram_per_1k_tokens_inconclusive.is_none())
    {
        missing.push("RAM per 1k tokens of context (no RSS-against-context fit in the records)");
    }
    if levels().all(|l| l.gpu_idle_fraction.is_none()) {
        missing.push("GPU utilisation and idle fraction (no NVML data)");
    }
    if levels().all(|l| l.energy_per_output_token_j.is_none()) {
        missing.push("energy per output token (no RAPL, NVML or declared-TDP estimate)");
    }
    (!missing.is_empty()).then(|| format!("Not measured in these runs: {}.", missing.join("; ")))
}

/// `charter.md`.
pub fn markdown(ch: &Charter, charts: &[Chart]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Resource charter\n");
    for h in &ch.headline {
        let _ = writeln!(o, "- {h}");
    }
    for r in &ch.runs {
        let _ = writeln!(o, "\n## {} ({})\n", r.backend, r.backend_kind);
        let _ = writeln!(o, "| {} |", LEVEL_HEADERS.join(" | "));
        let _ = writeln!(o, "|{}|", vec!["---"; LEVEL_HEADERS.len()].join("|"));
        for l in &r.levels {
            let _ = writeln!(o, "| {} |", level_cells(l).join(" | "));
        }
        if let Some(c) = &r.capacity {
            let _ = writeln!(
                o,
                "\nCapacity: {} — {:.2} requests/s ({}).",
                c.load, c.requests_per_s, c.basis
            );
        }
        for line in routing_sentences(r).into_iter().chain(session_sentences(r)) {
            let _ = writeln!(o, "\n{line}");
        }
        let p = &r.provenance;
        let _ = writeln!(
            o,
            "\nProvenance: {}{}; host {}; started {}; weights {}; {} thread(s) per instance; sampler {} every {} s (own cost {} of a core); latency histograms {} significant digits. Run directory `{}`.",
            p.tool,
            p.git_sha.as_ref().map(|s| format!(" ({})", &s[..12.min(s.len())])).unwrap_or_default(),
            p.host,
            p.started_at,
            p.weights,
            p.threads_per_instance,
            p.sampler_method.as_deref().unwrap_or("n/a"),
            num(p.sampler_interval_s, 3),
            p.sampler_overhead_fraction_of_core.map(|f| format!("{:.3}%", f * 100.0)).unwrap_or_else(|| "n/a".into()),
            p.histogram_sigfigs,
            r.run_dir
        );
    }
    if let Some(n) = not_measured(ch) {
        let _ = writeln!(o, "\n{n}");
    }
    for c in &ch.cost {
        let _ = writeln!(o, "\n## Cost — {}\n", c.backend);
        let _ = writeln!(
            o,
            "Priced on {}: {:.1} output tokens/s; power {} ({}).\n",
            c.basis,
            c.tokens_per_s,
            watts(c.power_w),
            c.power_method
        );
        let _ = writeln!(
            o,
            "| option | {} per 1M output tokens |\n|---|---|",
            c.currency
        );
        for op in &c.options {
            let v = op
                .per_1m_output
                .map(|v| format!("{v:.3}"))
                .or(op.issue.clone())
                .unwrap_or_default();
            let _ = writeln!(o, "| {} | {v} |", op.name);
        }
        for b in &c.break_even {
            match (b.tokens_per_month, b.months) {
                (Some(t), _) => {
                    let _ = writeln!(
                        o,
                        "\nBreak-even against {}: {:.1} M output tokens per month.",
                        b.against,
                        t / 1e6
                    );
                }
                (_, Some(m)) => {
                    let _ = writeln!(
                        o,
                        "\nBreak-even against {}: one node's capex is recovered in {m:.1} months.",
                        b.against
                    );
                }
                _ => {
                    let _ = writeln!(o, "\nBreak-even against {}: never (it is cheaper per unit than on-prem's running cost).", b.against);
                }
            }
        }
        if let Some(g) = c.carbon_g_per_1m {
            let _ = writeln!(
                o,
                "\nCarbon: {g:.1} gCO2e per 1M output tokens (from the estimated power)."
            );
        }
        if let Some(h) = hybrid_cost_sentence(c) {
            let _ = writeln!(o, "\n{h}");
        }
    }
    for t in &ch.tokens {
        let _ = write!(o, "\n{}", crate::tokens::render::markdown_section(t, 2));
    }
    if !ch.assumptions.is_empty() {
        let _ = writeln!(o, "\n## Assumptions\n");
        for a in &ch.assumptions {
            let _ = writeln!(o, "- {a}");
        }
    }
    if !charts.is_empty() {
        let _ = writeln!(o, "\n## Charts\n");
        for c in charts {
            let _ = writeln!(o, "![{}](charts/{}.png)", c.title, c.name);
        }
    }
    let _ = writeln!(
        o,
        "\n_Generated by {} from run records only._",
        ch.generated_by
    );
    o
}

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) const CSS: &str = "body{font-family:-apple-system,Segoe UI,DejaVu Sans,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;color:#1b1f24;line-height:1.45;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
.headline{background:#f6f8fa;border-left:4px solid #1f77b4;padding:.6rem 1rem;margin:1rem 0}.headline li{margin:.25rem 0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem;width:100%}th,td{border:1px solid #d0d7de;padding:.3rem .45rem;text-align:right}
th{background:#f6f8fa;font-weight:600}td:first-child,th:first-child,td:last-child{text-align:left}
.muted{color:#57606a;font-size:.85rem}.warn{color:#9a6700}figure{margin:1.2rem 0}figcaption{font-size:.85rem;color:#57606a}svg{max-width:100%;height:auto}";

/// `charter.html`: one self-contained page (no external references).
pub fn html(ch: &Charter, charts: &[Chart]) -> String {
    let mut o = String::new();
    let _ = write!(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>Resource charter</title><style>{CSS}</style></head><body>\n");
    let _ = writeln!(
        o,
        "<h1>Resource charter</h1><p class=\"muted\">{} · from run records only</p>",
        esc(&ch.generated_by)
    );
    let _ = writeln!(o, "<div class=\"headline\"><ul>");
    for h in &ch.headline {
        let _ = writeln!(o, "<li>{}</li>", esc(h));
    }
    let _ = writeln!(o, "</ul></div>");
    for r in &ch.runs {
        let _ = writeln!(
            o,
            "<h2>{} <span class=\"muted\">({})</span></h2>",
            esc(&r.backend),
            esc(&r.backend_kind)
        );
        if !r.complete {
            let _ = writeln!(o, "<p class=\"warn\">This run did not complete: its numbers are partial (see the headline).</p>");
        }
        let _ = write!(o, "<table><tr>");
        for h in LEVEL_HEADERS {
            let _ = write!(o, "<th>{}</th>", esc(h));
        }
        let _ = writeln!(o, "</tr>");
        for l in &r.levels {
            let _ = write!(o, "<tr>");
            for c in level_cells(l) {
                let _ = write!(o, "<td>{}</td>", esc(&c));
            }
            let _ = writeln!(o, "</tr>");
        }
        let _ = writeln!(o, "</table>");
        for line in routing_sentences(r).into_iter().chain(session_sentences(r)) {
            let _ = writeln!(o, "<p>{}</p>", esc(&line));
        }
        if let Some(c) = &r.capacity {
            let _ = writeln!(
                o,
                "<p>Capacity: <b>{}</b> — {:.2} requests/s <span class=\"muted\">({})</span></p>",
                esc(&c.load),
                c.requests_per_s,
                esc(&c.basis)
            );
        }
        let p = &r.provenance;
        let _ = writeln!(
            o,
            "<p class=\"muted\">Provenance: {} {} · host {} · started {} · weights {} · {} thread(s)/instance · sampler: {} every {} s, own cost {} of a core · histograms {} significant digits · <code>{}</code></p>",
            esc(&p.tool),
            esc(p.git_sha.as_deref().map(|s| &s[..12.min(s.len())]).unwrap_or("")),
            esc(&p.host),
            esc(&p.started_at),
            esc(&p.weights),
            p.threads_per_instance,
            esc(p.sampler_method.as_deref().unwrap_or("n/a")),
            num(p.sampler_interval_s, 3),
            p.sampler_overhead_fraction_of_core.map(|f| format!("{:.3}%", f * 100.0)).unwrap_or_else(|| "n/a".into()),
            p.histogram_sigfigs,
            esc(&r.run_dir)
        );
    }
    if let Some(n) = not_measured(ch) {
        let _ = writeln!(o, "<p class=\"muted\">{}</p>", esc(&n));
    }
    for c in &ch.cost {
        let _ = writeln!(o, "<h2>Cost — {}</h2>", esc(&c.backend));
        let _ = writeln!(
            o,
            "<p>Priced on {}: {:.1} output tokens/s; power {} <span class=\"muted\">({})</span>{}</p>",
            esc(&c.basis),
            c.tokens_per_s,
            watts(c.power_w),
            esc(&c.power_method),
            if c.example_figures { " <b class=\"warn\">Example prices.</b>" } else { "" }
        );
        let _ = writeln!(
            o,
            "<table><tr><th>option</th><th>{} per 1M output tokens</th></tr>",
            esc(&c.currency)
        );
        for op in &c.options {
            let v = op
                .per_1m_output
                .map(|v| format!("{v:.3}"))
                .or(op.issue.clone())
                .unwrap_or_default();
            let _ = writeln!(o, "<tr><td>{}</td><td>{}</td></tr>", esc(&op.name), esc(&v));
        }
        let _ = writeln!(o, "</table><ul>");
        for b in &c.break_even {
            let text = match (b.tokens_per_month, b.months) {
                (Some(t), _) => format!(
                    "Break-even against {}: {:.1} M output tokens per month.",
                    b.against,
                    t / 1e6
                ),
                (_, Some(m)) => format!(
                    "Break-even against {}: one node's capex is recovered in {m:.1} months.",
                    b.against
                ),
                _ => format!("Break-even against {}: never.", b.against),
            };
            let _ = writeln!(o, "<li>{}</li>", esc(&text));
        }
        if let Some(h) = hybrid_cost_sentence(c) {
            let _ = writeln!(o, "<li>{}</li>", esc(&h));
        }
        if let Some(g) = c.carbon_g_per_1m {
            let _ = writeln!(
                o,
                "<li>Carbon: {g:.1} gCO2e per 1M output tokens (estimated power).</li>"
            );
        }
        let _ = writeln!(o, "</ul>");
    }
    for t in &ch.tokens {
        o.push_str(&crate::tokens::render::html_section(t, None));
    }
    if !ch.assumptions.is_empty() {
        let _ = writeln!(o, "<h2>Assumptions</h2><ul>");
        for a in &ch.assumptions {
            let _ = writeln!(o, "<li>{}</li>", esc(a));
        }
        let _ = writeln!(o, "</ul>");
    }
    if !charts.is_empty() {
        let _ = writeln!(o, "<h2>Charts</h2>");
        for c in charts {
            let _ = writeln!(
                o,
                "<figure>{}<figcaption>{}</figcaption></figure>",
                inline_svg(&c.svg),
                esc(&c.title)
            );
        }
    }
    let _ = writeln!(o, "</body></html>");
    o
}

/// A plotters SVG document as an inline `<svg>` element.
pub(crate) fn inline_svg(svg: &str) -> String {
    // plotters writes a complete SVG document; drop its XML prolog to inline it.
    let svg = svg.trim_start_matches(|ch: char| ch != '<');
    let svg = match svg.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map(|x| x.1).unwrap_or(rest),
        None => svg,
    };
    // Inline SVG needs no namespace declaration in HTML; dropping it leaves the page
    // without a single URL.
    svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
}

/// `charter.json`.
pub fn json(ch: &Charter) -> String {
    serde_json::to_string_pretty(ch).expect("charter serialises") + "\n"
}

/// `levels.csv`: one row per run and level, for spreadsheets.
pub fn levels_csv(ch: &Charter) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "run_dir",
        "backend",
        "level",
        "trial",
        "role",
        "load",
        "instances",
        "requests_completed",
        "requests_failed",
        "output_tokens_per_s",
        "requests_per_s",
        "goodput_per_s",
        "slo_attainment",
        "ttft_p50_s",
        "ttft_p90_s",
        "ttft_p99_s",
        "itl_p50_s",
        "itl_p99_s",
        "e2e_p50_s",
        "e2e_p99_s",
        "cpu_cores_mean",
        "cpu_cores_p95",
        "cpu_cores_per_instance",
        "rss_peak_bytes",
        "ram_baseline_bytes",
        "sustainable",
        "client_bound",
    ]);
    let f = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in &ch.runs {
        for l in &r.levels {
            let _ = w.write_record([
                r.run_dir.clone(),
                r.backend.clone(),
                l.index.to_string(),
                l.trial.to_string(),
                l.role.clone(),
                l.load.clone(),
                l.instances.to_string(),
                l.requests_completed.to_string(),
                l.requests_failed.to_string(),
                f(l.output_tokens_per_s),
                f(l.requests_per_s),
                f(l.goodput_per_s),
                f(l.slo_attainment),
                f(l.ttft_p50_s),
                f(l.ttft_p90_s),
                f(l.ttft_p99_s),
                f(l.itl_p50_s),
                f(l.itl_p99_s),
                f(l.e2e_p50_s),
                f(l.e2e_p99_s),
                f(l.cpu_cores_mean),
                f(l.cpu_cores_p95),
                f(l.cpu_cores_per_instance),
                l.rss_peak_bytes.map(|v| v.to_string()).unwrap_or_default(),
                l.ram_baseline_bytes
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                l.sustainable.map(|v| v.to_string()).unwrap_or_default(),
                l.client_bound.to_string(),
            ]);
        }
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}
