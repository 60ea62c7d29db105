//! The console summary printed at the end of `charter profile`.

use std::fmt::Write;

use crate::record::{RunRecord, RunStatus};
use crate::stats::LatencySummary;

fn ms(v: f64) -> String {
    let ms = v * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "n/a".into())
}

/// Format a byte count with binary units (for display only; records keep bytes).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn latency_row(out: &mut String, name: &str, s: &Option<LatencySummary>) {
    match s {
        Some(s) => {
            let _ = writeln!(
                out,
                "  {name:<16} {:>9} {:>9} {:>9} {:>9} {:>9}   (n={})",
                ms(s.p50_s),
                ms(s.p90_s),
                ms(s.p99_s),
                ms(s.max_s),
                ms(s.mean_s),
                s.count
            );
        }
        None => {
            let _ = writeln!(out, "  {name:<16} {:>9}", "n/a");
        }
    }
}

/// Render the human summary of a run record; `run_dir` is where the record was written.
pub fn render_console(r: &RunRecord, run_dir: &str) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let status = match r.status {
        RunStatus::Finished => "finished",
        RunStatus::Interrupted => "INTERRUPTED (partial results)",
        RunStatus::Running => "running",
    };
    let _ = writeln!(
        out,
        "charter profile: {} on {} ({} thread(s)/instance) — {status}",
        r.backend.model, r.backend.kind, r.backend.threads_per_instance
    );
    let load = match &r.workload.load {
        crate::record::LoadProfile::ClosedLoop { concurrency } => {
            format!("closed loop, concurrency {concurrency}")
        }
    };
    let _ = writeln!(
        out,
        "  load: {load}; prompt {} tokens, max {} output tokens; {} warm-up request(s) excluded",
        r.workload.prompt.tokens, r.workload.max_tokens, s.warmup_requests_excluded
    );
    let _ = writeln!(
        out,
        "  requests: {} completed, {} failed{}   window: {} s",
        s.requests_completed,
        s.requests_failed,
        if s.requests_cancelled > 0 {
            format!(", {} cancelled", s.requests_cancelled)
        } else {
            String::new()
        },
        opt(s.duration_s, |v| format!("{v:.2}"))
    );
    if !s.errors.is_empty() {
        let errs: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(out, "  errors: {}", errs.join(", "));
    }
    let _ = writeln!(
        out,
        "  throughput: {} output tokens/s, {} requests/s",
        opt(s.output_token_throughput_per_s, |v| format!("{v:.1}")),
        opt(s.request_throughput_per_s, |v| format!("{v:.3}"))
    );
    let _ = writeln!(
        out,
        "\n  latency (ms)     {:>9} {:>9} {:>9} {:>9} {:>9}",
        "p50", "p90", "p99", "max", "mean"
    );
    latency_row(&mut out, "TTFT", &s.ttft);
    latency_row(&mut out, "ITL", &s.itl);
    latency_row(&mut out, "E2E", &s.e2e);
    latency_row(&mut out, "chunk gaps", &s.chunk_gaps);
    let res = &r.resources;
    let _ = writeln!(out);
    match &res.process_cpu_cores {
        Some(c) => {
            let _ = writeln!(
                out,
                "  CPU cores used: mean {:.2}, p95 {:.2} (of {} logical); system busy mean {}",
                c.mean,
                c.p95,
                r.host.logical_cores,
                opt(res.system_busy_cores.as_ref().map(|v| v.mean), |v| format!(
                    "{v:.2}"
                ))
            );
        }
        None => {
            let _ = writeln!(out, "  CPU cores used: not measured");
        }
    }
    let _ = writeln!(
        out,
        "  RSS: peak {}, baseline after load {}",
        res.peak_rss_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "not measured".into()),
        res.ram_baseline_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "not measured".into())
    );
    if let Some(sm) = &res.sampler {
        let _ = writeln!(
            out,
            "  sampler: {} samples every {} ms, cost {:.3}% of one core",
            sm.samples,
            ms(sm.interval_s),
            sm.overhead_fraction_of_core * 100.0
        );
    }
    let _ = writeln!(out, "\n  run record: {run_dir}/run.json");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
