//! The export seam: every document renders each file it lists, through the same functions the
//! snapshots pin (so the outputs stay byte-identical), and refuses formats it has none of.

mod common;

use charter_reports::charter::{self, LoadedRun};
use charter_reports::export::{
    report_documents, CharterDoc, CompareDoc, Export, Format, GateDoc, ProfileDoc, Unsupported,
};
use charter_reports::gate::{
    self, evaluate, GateOptions, GateReport, Latency, MetricName, Rule, Stat,
};
use charter_reports::{render, summary};
use common::fixture;

#[test]
fn charter_doc_renders_the_pinned_outputs() {
    let runs = vec![fixture()];
    let ch = charter::build(&runs, None, "charter (test)");
    let doc = CharterDoc {
        charter: &ch,
        charts: &[],
    };
    let files = doc.files();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["charter.html", "charter.md", "charter.json", "levels.csv"]
    );
    let want = [
        render::html(&ch, &[]),
        render::markdown(&ch, &[]),
        render::json(&ch),
        render::levels_csv(&ch),
    ];
    for ((name, format), want) in files.iter().zip(want) {
        assert_eq!(doc.export(*format).unwrap(), want, "{name}");
    }
    let console = doc.export(Format::Console).unwrap();
    assert_eq!(console.lines().count(), ch.headline.len());
    assert!(console.lines().all(|l| l.starts_with("- ")), "{console}");
    assert_eq!(
        doc.export(Format::Junit),
        Err(Unsupported {
            document: "the charter",
            format: Format::Junit
        })
    );
}

/// Every file a report directory lists renders, and no two documents claim one name.
#[test]
fn report_directory_files_all_render_under_distinct_names() {
    let runs = vec![fixture(), fixture()];
    let ch = charter::build(&runs, None, "charter (test)");
    let doc = CharterDoc {
        charter: &ch,
        charts: &[],
    };
    let mut names = Vec::new();
    for d in report_documents(doc, &runs) {
        for (name, format) in d.files() {
            assert!(d.export(format).is_ok(), "{name} ({format})");
            names.push(name);
        }
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
}

#[test]
fn gate_doc_renders_every_gate_output() {
    let o = GateOptions {
        bootstrap_resamples: 200,
        ..GateOptions::default()
    };
    let base = [0.100, 0.101, 0.099, 0.102, 0.098, 0.1005, 0.0995];
    let rule = Rule::parse(MetricName::Latency(Latency::Ttft, Stat::P95), "max +5%").unwrap();
    let report = GateReport::new(vec![evaluate(&rule, &base, &base, &o)], o, 7, 7);
    let doc = GateDoc {
        report: &report,
        benchmark: "tiny c=1",
    };
    for (format, want) in [
        (Format::Console, gate::to_console(&report)),
        (Format::Json, gate::to_json(&report)),
        (Format::Junit, gate::to_junit_xml(&report)),
        (Format::Markdown, gate::to_markdown(&report)),
        (Format::Bmf, gate::to_bmf(&report, "tiny c=1")),
    ] {
        assert_eq!(doc.export(format).unwrap(), want, "{format}");
    }
    assert!(doc.export(Format::Html).is_err());
    assert!(
        doc.files().is_empty(),
        "gate outputs go where the user says"
    );
}

#[test]
fn profile_doc_is_the_console_summary_or_one_json_object() {
    let run = fixture();
    let doc = ProfileDoc {
        record: &run.record,
        run_dir: "runs/x",
    };
    assert_eq!(
        doc.export(Format::Console).unwrap(),
        summary::render_console(&run.record, "runs/x")
    );
    let text = doc.export(Format::Json).unwrap();
    assert!(text.ends_with("}\n"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["run_dir"], "runs/x");
    assert_eq!(v["complete"], true);
    assert_eq!(v["levels"].as_array().unwrap().len(), 3);
    for key in ["status", "backend", "threads_per_instance", "search"] {
        assert!(v.get(key).is_some(), "{key} missing");
    }
}

/// A second run with a long name, slower TTFT and one level without a p99: ratios, `n/a` and
/// truncated names all show.
fn compared_runs() -> Vec<LoadedRun> {
    let a = fixture();
    let mut b = fixture();
    b.record.backend.model = "a-much-longer-model-name-that-is-truncated".into();
    for l in &mut b.record.levels {
        if let Some(t) = l.summary.ttft_from_intended.as_mut() {
            t.p99_s *= 2.0;
        }
        l.summary.itl = None;
    }
    vec![a, b]
}

#[test]
fn compare_console_snapshot() {
    let ch = charter::build(&compared_runs(), None, "charter (test)");
    let doc = CompareDoc::new(&ch);
    assert_eq!(doc.rows[3].metric, "TTFT p99 (ms)");
    assert_eq!(doc.rows[3].ratios[1], Some(2.0));
    insta::assert_snapshot!("compare_console", doc.export(Format::Console).unwrap());
}
