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

/// A remote run's console notes say what its counts rest on; an in-process run has none.
#[test]
fn remote_notes_say_what_counts_rest_on() {
    use charter_record::{Api, LengthField, PromptTokenSource, TokenCountSource};
    use charter_reports::record::{CountComparison, RemoteRecord};
    assert!(summary::remote_notes(&common::fixture().record).is_empty());
    let mut run = common::fixture();
    let r = &mut run.record;
    r.backend.tokenizer = None;
    r.backend.remote = Some(RemoteRecord {
        api: Api::Openai,
        base_url: "http://127.0.0.1:8000/".into(),
        endpoint: "/v1/chat/completions".into(),
        length_field: LengthField::MaxCompletionTokens,
        include_usage_requested: true,
        extra_header_names: Vec::new(),
        api_key_env: None,
        token_count_fallback: "chunks".into(),
        client: String::new(),
        connection_timing: String::new(),
        connect_timeout_s: 10.0,
        headers_timeout_s: 300.0,
        idle_timeout_s: 60.0,
        total_timeout_s: None,
        retries: 0,
        max_event_bytes: 1 << 20,
        max_response_bytes: None,
        pool_idle_timeout_s: Some(4.0),
        stale_connections: None,
        prompts: None,
        tls: None,
        tier_header: None,
    });
    for l in &mut r.levels {
        let n = l.summary.requests_completed;
        l.summary.token_count_sources = [(TokenCountSource::Chunks, n)].into();
        l.summary.prompt_token_sources = [(PromptTokenSource::Estimate, n)].into();
    }
    let s = &mut r.levels[0].summary;
    s.cap_ignored = 2;
    s.stale_reconnects = 1;
    s.prompt_tokens_usage_vs_intended = Some(CountComparison {
        requests: 4,
        differing: 4,
        mean_difference: 51.5,
        min_difference: 45,
        max_difference: 58,
    });
    let notes = summary::remote_notes(r).join("\n");
    assert_eq!(
        notes
            .matches("usage requested but never sent by the server; counts from chunks (output), estimate (prompt)")
            .count(),
        1,
        "{notes}"
    );
    assert!(notes.contains("prompt lengths are estimates"), "{notes}");
    assert!(
        notes.contains("level 0 WARNING: 2 of")
            && notes.contains("(try --length-field max-tokens)"),
        "{notes}"
    );
    assert!(
        notes.contains("in 4 of 4 requests: +51.5 tokens on average (+45 to +58); the intended lengths are estimates (no --tokenizer), and the server's count includes its chat template"),
        "{notes}"
    );
    assert!(
        notes.contains("level 0: 1 request(s) found their kept-alive connection closed"),
        "{notes}"
    );
    assert!(!notes.contains("level 1 WARNING"), "{notes}");
}
