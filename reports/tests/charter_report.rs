//! The charter exporters on a fixed run (a real tiny-preset sweep committed as a fixture):
//! snapshots of the text outputs, charts that really draw, and a self-contained HTML page. The
//! fixture predates `context.csv`; the chart tests add one (synthetic points on a known line) to
//! a copy of it, and a malformed one must be refused naming the file.

mod common;

use std::path::Path;

use charter_reports::charter::{self, LoadedRun};
use charter_reports::cost::CostConfig;
use charter_reports::{charts, render};
use common::{fixture, fixture_dir};

/// Bytes of RSS each 1k live context tokens add in the synthetic `context.csv`.
const SLOPE_PER_1K: f64 = 3e6;
const BASELINE: f64 = 75e6;

/// A copy of the fixture run in `tmp` with a `context.csv`: per level, 40 points on
/// RSS = 75 MB + 3 MB per 1k tokens (± 0.2 MB of deterministic noise), and on levels 0 and 1 the
/// record's `ram_per_1k_tokens` fit (level 2 has points but no fit). `context` is the file's text;
/// `None` writes the synthetic points.
fn fixture_with_context(tmp: &Path, context: Option<&str>) -> std::path::PathBuf {
    let src = fixture_dir();
    let dir = tmp.join("sweep");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["requests.csv", "samples.csv"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("run.json")).unwrap()).unwrap();
    rec["files"]["context_csv"] = "context.csv".into();
    let mut text = String::from("t_s,level,live_context_tokens,rss_bytes\n");
    let levels = rec["levels"].as_array_mut().unwrap();
    for (li, level) in levels.iter_mut().enumerate() {
        let (lo, hi) = (200 * (li as u64 + 1), 1500 * (li as u64 + 1));
        for k in 0..40u64 {
            let tokens = lo + (hi - lo) * k / 39;
            let noise = ((k * 7919 % 11) as f64 - 5.0) * 0.04e6;
            let rss = BASELINE + SLOPE_PER_1K * tokens as f64 / 1e3 + noise;
            text += &format!("{:.6},{li},{tokens},{}\n", k as f64 * 0.1, rss as u64);
        }
        if li < 2 {
            level["resources"]["ram_per_1k_tokens"] = serde_json::json!({
                "bytes_per_1k_tokens": SLOPE_PER_1K,
                "baseline_bytes": BASELINE,
                "r_squared": 0.99,
                "samples": 40,
                "live_tokens_min": lo,
                "live_tokens_max": hi,
                "method": "synthetic (test)",
            });
        }
    }
    std::fs::write(dir.join("run.json"), rec.to_string()).unwrap();
    std::fs::write(dir.join("context.csv"), context.unwrap_or(&text)).unwrap();
    dir
}

/// The fixture with a synthetic `context.csv`, and its charter.
fn build_with_context(tmp: &Path) -> (Vec<LoadedRun>, charter::Charter) {
    let mut run = charter::load_run(&fixture_with_context(tmp, None)).unwrap();
    run.dir = "fixtures/sweep".into();
    let runs = vec![run];
    let ch = charter::build(&runs, Some(&cost()), "charter (test)");
    (runs, ch)
}

fn cost() -> CostConfig {
    CostConfig::from_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../cost.example.toml"))
        .unwrap()
}

fn build() -> (Vec<LoadedRun>, charter::Charter) {
    let runs = vec![fixture()];
    let ch = charter::build(&runs, Some(&cost()), "charter (test)");
    (runs, ch)
}

#[test]
fn markdown_json_and_csv_snapshots() {
    let (_, ch) = build();
    insta::assert_snapshot!("charter_md", render::markdown(&ch, &[]));
    insta::assert_snapshot!("charter_json", render::json(&ch));
    insta::assert_snapshot!("levels_csv", render::levels_csv(&ch));
}

#[test]
fn headline_answers_in_plain_words() {
    let (_, ch) = build();
    let text = ch.headline.join("\n");
    assert!(text.contains("concurrent instance(s) used"), "{text}");
    assert!(text.contains("per instance"), "{text}");
    assert!(
        text.contains("not measured"),
        "unmeasured quantities say so: {text}"
    );
    assert!(text.contains("per 1M output tokens"), "{text}");
    let c = &ch.cost[0];
    assert!(c.options.iter().all(|o| o.per_1m_output.is_some()));
    assert!(c.power_method.starts_with("estimated"));
    assert_eq!(ch.runs[0].levels.len(), 3);
    assert!(ch.runs[0].capacity.is_some());
}

/// Every chart renders to SVG and to a PNG whose axis-label areas are not blank.
#[test]
fn every_chart_renders_png_and_svg_with_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let (runs, ch) = build_with_context(tmp.path());
    let all = charts::all(&runs, &ch).unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    for want in [
        "ttft-cdf",
        "itl-cdf",
        "e2e-cdf",
        "load-curve-0",
        "resources-0",
        "ram-vs-context-0",
        "cost-0",
        "break-even-0",
    ] {
        assert!(names.contains(&want), "missing chart {want}: {names:?}");
    }
    for c in &all {
        assert!(
            c.svg.starts_with("<svg") && c.svg.contains("</svg>") && c.svg.contains("<text"),
            "{}",
            c.name
        );
        let img = image::load_from_memory(&c.png).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (900, 480));
        // The title band (top 40 px) and the x-axis label band (bottom 45 px) hold text: some
        // pixels there must differ from the white background.
        let dark_in = |y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
                .filter(|&(x, y)| {
                    let p = img.get_pixel(x, y);
                    p[0] < 128 && p[1] < 128 && p[2] < 128
                })
                .count()
        };
        assert!(dark_in(0, 40) > 200, "{}: title not drawn", c.name);
        assert!(
            dark_in(435, 480) > 200,
            "{}: x-axis labels not drawn",
            c.name
        );
    }
}

/// RSS against live context: the points are read back, each fitted level's legend gives its
/// slope in MiB per 1k tokens and R², a level without a fit says so, and runs without
/// `context.csv` get no such chart.
#[test]
fn ram_vs_context_chart_plots_points_and_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let (runs, ch) = build_with_context(tmp.path());
    assert_eq!(runs[0].context.len(), 3 * 40);
    assert!(runs[0]
        .context
        .iter()
        .all(|p| p.level < 3 && p.rss_bytes.unwrap() > BASELINE as u64 - 1_000_000));
    let all = charts::ram_vs_context(&runs).unwrap();
    assert_eq!(all.len(), 1);
    let c = &all[0];
    assert_eq!(c.name, "ram-vs-context-0");
    assert!(
        c.title.starts_with("RSS vs live context tokens — "),
        "{}",
        c.title
    );
    let mib = SLOPE_PER_1K / 1048576.0;
    for want in [
        format!("level 0: {mib:.2} MiB per 1k tokens, R² 0.99"),
        format!("level 1: {mib:.2} MiB per 1k tokens, R² 0.99"),
        "level 2 (concurrency 4): no fit".to_string(),
        "live context tokens".to_string(),
        "RSS (MiB)".to_string(),
    ] {
        assert!(c.svg.contains(&want), "chart lacks {want:?}");
    }
    // 120 points, each a circle (legend markers add a few more).
    assert!(c.svg.matches("<circle").count() >= 120);
    // The charter lists it like every other chart.
    let md = render::markdown(&ch, &all);
    assert!(md.contains("](charts/ram-vs-context-0.png)"), "{md}");
    let html = render::html(&ch, &all);
    assert!(html.contains("<figcaption>RSS vs live context tokens"));

    let (old, _) = build();
    assert!(old[0].context.is_empty());
    assert!(charts::ram_vs_context(&old).unwrap().is_empty());
}

/// A `context.csv` that does not parse is refused naming the file; one named in the record but
/// absent reads as no points.
#[test]
fn context_csv_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture_with_context(
        tmp.path(),
        Some("t_s,level,live_context_tokens,rss_bytes\n0.1,0,many,80000000\n"),
    );
    let e = charter::load_run(&dir).unwrap_err();
    assert!(matches!(e, charter::RunReadError::Invalid { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("context.csv"), "{msg}");
    assert!(msg.contains("line: 2"), "the bad row is located: {msg}");

    std::fs::remove_file(dir.join("context.csv")).unwrap();
    assert!(charter::load_run(&dir).unwrap().context.is_empty());
}

/// The page is self-contained (no URL at all) and parses as well-formed markup.
#[test]
fn html_is_self_contained_and_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let (runs, ch) = build_with_context(tmp.path());
    let all = charts::all(&runs, &ch).unwrap();
    assert!(all.iter().any(|c| c.name == "ram-vs-context-0"));
    let html = render::html(&ch, &all);
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "external reference in the HTML"
    );
    assert!(!html.contains("<link") && !html.contains("<script src"));
    assert_eq!(html.matches("<svg").count(), all.len());
    let mut reader = quick_xml::Reader::from_str(&html);
    let mut depth = 0i64;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => depth += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("HTML does not parse at {}: {e}", reader.buffer_position()),
        }
        assert!(depth >= 0);
    }
    assert_eq!(depth, 0, "unbalanced tags");
}

#[test]
fn cost_file_errors_name_the_file_and_key() {
    let p = Path::new("cost.toml");
    let missing =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../cost.example.toml"))
            .unwrap()
            .replace("price_per_kwh = 0.10\n", "");
    let e = CostConfig::from_str(&missing, p).unwrap_err().to_string();
    assert!(
        e.contains("cost.toml") && e.contains("price_per_kwh"),
        "{e}"
    );
    let negative =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../cost.example.toml"))
            .unwrap()
            .replace("capex = 3200.0", "capex = -5.0");
    let e = CostConfig::from_str(&negative, p).unwrap_err().to_string();
    assert!(e.contains("onprem.capex") && e.contains("≥ 0"), "{e}");
}

#[test]
fn zero_throughput_is_a_clear_no_throughput() {
    let mut run = fixture();
    for l in &mut run.record.levels {
        l.summary.output_token_throughput_per_s = Some(0.0);
        l.summary.output_tokens = 0;
    }
    let ch = charter::build(&[run], Some(&cost()), "t");
    let on = ch.cost[0]
        .options
        .iter()
        .find(|o| o.kind == "onprem")
        .unwrap();
    assert_eq!(on.per_1m_output, None);
    assert!(on.issue.as_deref().unwrap().contains("no throughput"));
}
