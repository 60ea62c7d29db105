//! Renderings of a [`GateReport`]: console table, JSON, JUnit XML (one testcase per gated
//! metric, for CI test tabs), Markdown (for `$GITHUB_STEP_SUMMARY`) and Bencher Metric Format.
//! Pure functions from report to text; the caller decides where the text goes.

use std::io;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use serde_json::{Map, Value};

use super::{GateReport, MetricVerdict, Verdict};

/// Human-readable value with a unit suited to its size.
fn fmt_value(v: Option<f64>, unit: &str) -> String {
    let Some(v) = v else {
        return "-".into();
    };
    if !v.is_finite() {
        return format!("{v}");
    }
    match unit {
        "s" if v.abs() < 1e-3 => format!("{:.1} µs", v * 1e6),
        "s" if v.abs() < 1.0 => format!("{:.2} ms", v * 1e3),
        "s" => format!("{v:.3} s"),
        "bytes" if v.abs() >= (1u64 << 30) as f64 => format!("{:.2} GiB", v / (1u64 << 30) as f64),
        "bytes" => format!("{:.1} MiB", v / (1u64 << 20) as f64),
        "fraction" => format!("{:.2}%", v * 100.0),
        "cores" => format!("{v:.2} cores"),
        "tokens/s" => format!("{v:.1} tok/s"),
        "requests/s" => format!("{v:.3} req/s"),
        other => format!("{v:.4} {other}"),
    }
}

fn fmt_change(ratio: Option<f64>) -> String {
    match ratio {
        Some(r) if r.is_finite() => format!("{:+.1}%", (r - 1.0) * 100.0),
        Some(_) => "+inf%".into(),
        None => "-".into(),
    }
}

fn fmt_ci(m: &MetricVerdict) -> String {
    match (m.ci_low, m.ci_high) {
        (Some(lo), Some(hi)) => format!("[{}, {}]", fmt_change(Some(lo)), fmt_change(Some(hi))),
        _ => "-".into(),
    }
}

fn fmt_p(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 1e-4 => format!("{p:.1e}"),
        Some(p) => format!("{p:.4}"),
        None => "-".into(),
    }
}

fn headline(report: &GateReport) -> String {
    format!(
        "charter gate: {} (exit {}); {} baseline and {} candidate trials, alpha {}, {}% intervals",
        report.verdict.as_str(),
        report.exit_code,
        report.baseline_trials,
        report.candidate_trials,
        report.options.alpha,
        report.options.confidence * 100.0
    )
}

/// Plain-text table for a terminal, followed by the reason for every metric that did not pass.
pub fn to_console(report: &GateReport) -> String {
    let header = [
        "metric",
        "rule",
        "verdict",
        "n",
        "baseline",
        "candidate",
        "change",
        "interval",
        "p",
    ];
    let rows: Vec<[String; 9]> = report
        .metrics
        .iter()
        .map(|m| {
            [
                m.metric.to_string(),
                m.rule.clone(),
                m.verdict.as_str().to_uppercase(),
                format!("{}/{}", m.n_baseline, m.n_candidate),
                fmt_value(m.baseline_median, &m.unit),
                fmt_value(m.candidate_median, &m.unit),
                fmt_change(m.ratio),
                fmt_ci(m),
                fmt_p(m.p_value),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = headline(report) + "\n\n";
    out += &line(&header.map(String::from));
    for row in &rows {
        out += &line(row);
    }
    let notes: Vec<&MetricVerdict> = report
        .metrics
        .iter()
        .filter(|m| m.verdict != Verdict::Pass)
        .collect();
    if !notes.is_empty() {
        out += "\n";
        for m in notes {
            out += &format!("{} {}: {}\n", m.metric, m.verdict.as_str(), m.reason);
        }
    }
    out
}

/// The report as pretty-printed JSON (non-finite numbers become `null`).
pub fn to_json(report: &GateReport) -> String {
    // Plain structs with string keys: serialisation cannot fail.
    serde_json::to_string_pretty(report).expect("GateReport serialises to JSON") + "\n"
}

/// JUnit XML: `<testsuites>` holding one `<testsuite name="charter gate">` with one
/// `<testcase>` per gated metric. Regressions are `<failure>`s, inconclusive metrics are
/// `<skipped>` (so they show without failing the job unless the exit code says so).
pub fn to_junit_xml(report: &GateReport) -> String {
    let bytes = write_junit(report).expect("writing XML into memory cannot fail");
    // Everything written came from `&str`s, so the bytes are UTF-8.
    String::from_utf8_lossy(&bytes).into_owned()
}

fn write_junit(report: &GateReport) -> io::Result<Vec<u8>> {
    let tests = report.metrics.len().to_string();
    let failures = report.count(Verdict::Regression).to_string();
    let skipped = report.count(Verdict::Inconclusive).to_string();
    let counts = [
        ("tests", tests.as_str()),
        ("failures", failures.as_str()),
        ("errors", "0"),
        ("skipped", skipped.as_str()),
    ];
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("testsuites")
        .with_attribute(("name", "charter gate"))
        .with_attributes(counts)
        .write_inner_content(|w| {
            w.create_element("testsuite")
                .with_attribute(("name", "charter gate"))
                .with_attributes(counts)
                .write_inner_content(|w| {
                    for m in &report.metrics {
                        write_testcase(w, m)?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}

fn write_testcase(w: &mut Writer<Vec<u8>>, m: &MetricVerdict) -> io::Result<()> {
    let name = format!("{} {}", m.metric, m.rule);
    let case = w
        .create_element("testcase")
        .with_attribute(("name", name.as_str()))
        .with_attribute(("classname", "charter gate"));
    let details = format!(
        "baseline median {} (n={}), candidate median {} (n={}), change {}, {}% interval {}, \
         p = {} ({}), alpha {}, threshold {}",
        fmt_value(m.baseline_median, &m.unit),
        m.n_baseline,
        fmt_value(m.candidate_median, &m.unit),
        m.n_candidate,
        fmt_change(m.ratio),
        m.confidence * 100.0,
        fmt_ci(m),
        fmt_p(m.p_value),
        m.p_method.map_or("no test", |x| x.as_str()),
        m.alpha,
        m.rule
    );
    match m.verdict {
        Verdict::Regression => {
            let message = format!("{}: {}", m.metric, m.reason);
            case.write_inner_content(|w| {
                w.create_element("failure")
                    .with_attribute(("message", message.as_str()))
                    .with_attribute(("type", "regression"))
                    .write_text_content(BytesText::new(&details))?;
                Ok(())
            })?;
        }
        Verdict::Inconclusive => {
            let message = format!("inconclusive: {}", m.reason);
            case.write_inner_content(|w| {
                w.create_element("skipped")
                    .with_attribute(("message", message.as_str()))
                    .write_empty()?;
                w.create_element("system-out")
                    .write_text_content(BytesText::new(&details))?;
                Ok(())
            })?;
        }
        Verdict::Pass | Verdict::Improvement => {
            let out = format!("{}: {}. {details}", m.verdict.as_str(), m.reason);
            case.write_inner_content(|w| {
                w.create_element("system-out")
                    .write_text_content(BytesText::new(&out))?;
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown section for `$GITHUB_STEP_SUMMARY`: headline, one table row per metric.
pub fn to_markdown(report: &GateReport) -> String {
    let mut out = format!(
        "### charter gate: {}\n\n{} baseline and {} candidate trials; Mann–Whitney U alpha {}; \
         {}% bootstrap intervals of the median ratio; exit code {}.\n\n",
        report.verdict.as_str(),
        report.baseline_trials,
        report.candidate_trials,
        report.options.alpha,
        report.options.confidence * 100.0,
        report.exit_code
    );
    out += "| metric | rule | verdict | n (base/cand) | baseline median | candidate median \
            | change | interval of change | p | reason |\n";
    out += "|---|---|---|---|---:|---:|---:|---|---:|---|\n";
    for m in &report.metrics {
        let verdict = match m.verdict {
            Verdict::Regression | Verdict::Inconclusive => {
                format!("**{}**", m.verdict.as_str())
            }
            v => v.as_str().to_owned(),
        };
        let cells = [
            format!("`{}`", m.metric),
            format!("`{}`", m.rule),
            verdict,
            format!("{}/{}", m.n_baseline, m.n_candidate),
            fmt_value(m.baseline_median, &m.unit),
            fmt_value(m.candidate_median, &m.unit),
            fmt_change(m.ratio),
            fmt_ci(m),
            fmt_p(m.p_value),
            m.reason.clone(),
        ];
        let cells: Vec<String> = cells.iter().map(|c| md_cell(c)).collect();
        out += &format!("| {} |\n", cells.join(" | "));
    }
    out
}

/// Bencher Metric Format: `{"<benchmark>": {"<measure slug>": {"value", "lower_value",
/// "upper_value"}}}` with the candidate median and its bootstrap interval, in SI units.
/// Metrics without a finite candidate median are left out.
pub fn to_bmf(report: &GateReport, benchmark: &str) -> String {
    let mut measures = Map::new();
    for m in &report.metrics {
        let Some(value) = m.candidate_median.filter(|v| v.is_finite()) else {
            continue;
        };
        let mut metric = Map::new();
        metric.insert("value".into(), Value::from(value));
        if let (Some(lo), Some(hi)) = (m.candidate_low, m.candidate_high) {
            if lo.is_finite() && hi.is_finite() {
                metric.insert("lower_value".into(), Value::from(lo));
                metric.insert("upper_value".into(), Value::from(hi));
            }
        }
        measures.insert(m.metric.slug(), Value::Object(metric));
    }
    let mut root = Map::new();
    root.insert(benchmark.to_owned(), Value::Object(measures));
    serde_json::to_string_pretty(&Value::Object(root)).expect("a JSON value serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{evaluate, GateOptions, GateReport, Latency, MetricName, Rule, Stat};

    fn report() -> GateReport {
        let o = GateOptions {
            bootstrap_resamples: 200,
            ..GateOptions::default()
        };
        let base = [0.100, 0.101, 0.099, 0.102, 0.098, 0.1005, 0.0995];
        let worse: Vec<f64> = base.iter().map(|x| x * 1.3).collect();
        let r1 = Rule::parse(MetricName::Latency(Latency::Ttft, Stat::P95), "max +5%").unwrap();
        let r2 = Rule::parse(MetricName::EnergyPerToken, "max +5%").unwrap();
        let r3 = Rule::parse(MetricName::PeakRssBytes, "max +10%").unwrap();
        let rss = [1e9; 7];
        let m = vec![
            evaluate(&r1, &base, &worse, &o),
            evaluate(&r2, &[], &[], &o),
            evaluate(&r3, &rss, &rss, &o),
        ];
        GateReport::new(m, o, 7, 7)
    }

    #[test]
    fn console_and_markdown_show_every_metric() {
        let r = report();
        let text = to_console(&r);
        assert!(
            text.starts_with("charter gate: regression (exit 1)"),
            "{text}"
        );
        for needle in [
            "ttft.p95",
            "REGRESSION",
            "energy_per_token",
            "INCONCLUSIVE",
            "PASS",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        assert!(text.contains("+30.0%"), "{text}");
        assert!(text.contains("not measured in these runs"), "{text}");
        let md = to_markdown(&r);
        assert_eq!(
            md.lines().filter(|l| l.starts_with("| `")).count(),
            3,
            "{md}"
        );
        assert!(md.contains("**regression**"), "{md}");
    }

    #[test]
    fn json_round_trips() {
        let r = report();
        let back: GateReport = serde_json::from_str(&to_json(&r)).unwrap();
        assert_eq!(back.metrics.len(), 3);
        assert_eq!(back.verdict, Verdict::Regression);
        assert_eq!(back.metrics[0].metric, r.metrics[0].metric);
    }

    #[test]
    fn value_formatting() {
        assert_eq!(fmt_value(Some(0.1234), "s"), "123.40 ms");
        assert_eq!(fmt_value(Some(0.0000123), "s"), "12.3 µs");
        assert_eq!(
            fmt_value(Some(2.0 * (1u64 << 30) as f64), "bytes"),
            "2.00 GiB"
        );
        assert_eq!(fmt_value(None, "s"), "-");
        assert_eq!(fmt_change(Some(f64::INFINITY)), "+inf%");
        assert_eq!(md_cell("a|b"), "a\\|b");
    }
}
