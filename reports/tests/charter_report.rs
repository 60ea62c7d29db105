//! The charter exporters on a fixed run (a real tiny-preset sweep committed as a fixture):
//! snapshots of the text outputs, charts that really draw, and a self-contained HTML page.

use std::path::Path;

use charter_reports::charter::{self, LoadedRun};
use charter_reports::cost::CostConfig;
use charter_reports::{charts, render};

fn fixture() -> LoadedRun {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sweep");
    let mut run = charter::load_run(&dir).unwrap();
    run.dir = "fixtures/sweep".into(); // stable across machines, for snapshots
    run
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
    let (runs, ch) = build();
    let all = charts::all(&runs, &ch).unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    for want in [
        "ttft-cdf",
        "itl-cdf",
        "e2e-cdf",
        "load-curve-0",
        "resources-0",
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

/// The page is self-contained (no URL at all) and parses as well-formed markup.
#[test]
fn html_is_self_contained_and_parses() {
    let (runs, ch) = build();
    let all = charts::all(&runs, &ch).unwrap();
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
