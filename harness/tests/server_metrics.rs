//! The server's own metrics: `charter serve`'s `/metrics`, `charter profile --server-metrics`
//! (scraped into `server_metrics.csv`, summarised per level), the default endpoint of
//! `--backend openai` when absent, a malformed exposition, and `--metrics-listen`.

mod common;
#[allow(dead_code)] // the faults and the other wires are for the other test files
#[path = "common/sse_server.rs"]
mod sse_server;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{request_rows, spawn, stderr, validated_record};
use sse_server::{Script, TestServer};

/// `server_metrics.csv` rows: (t_s, source, metric, value, error).
fn scrape_rows(dir: &Path) -> Vec<(f64, String, String, String, String)> {
    let mut r = csv::Reader::from_path(dir.join("server_metrics.csv")).unwrap();
    assert_eq!(
        r.headers().unwrap(),
        vec!["t_s", "source", "metric", "labels", "value", "error"]
    );
    r.records()
        .map(|x| {
            let x = x.unwrap();
            (
                x[0].parse().unwrap(),
                x[1].to_string(),
                x[2].to_string(),
                x[4].to_string(),
                x[5].to_string(),
            )
        })
        .collect()
}

/// A run against `charter serve --backend simulated` scraping its `/metrics`: the running
/// gauge never exceeds the concurrency (and shows requests running), and the generated-token
/// counter grows by exactly the output tokens the client recorded, in the CSV and in the
/// level's summary.
#[test]
fn scraped_server_metrics_match_what_the_server_did() {
    let srv = spawn(&[
        "serve",
        "--backend",
        "simulated",
        "--sim-ttft",
        "30ms",
        "--sim-itl",
        "10ms",
        "--listen",
        "127.0.0.1:0",
    ]);
    let metrics = format!("{}/metrics", srv.url);
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_charter"))
        .args([
            "profile",
            "--backend",
            "openai",
            "--base-url",
            &srv.url,
            "--model",
            "simulated",
            "--prompts",
            "synthetic",
            "--prompt-tokens",
            "8",
            "--max-tokens",
            "12",
            "--ignore-eos",
            "--concurrency",
            "3",
            "--requests",
            "9",
            "--warmup",
            "0",
            "--sample-interval",
            "20ms",
            "--server-metrics",
            &metrics,
            "--no-progress",
            "--out",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rec = validated_record(&run);
    let generated: u64 = request_rows(&run).iter().map(|r| r.output_tokens).sum();
    assert_eq!(generated, 9 * 12);

    let rows = scrape_rows(&run);
    assert!(rows.iter().all(|r| r.4.is_empty()), "no scrape failed");
    let values = |name: &str| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.2 == name)
            .map(|r| r.3.parse().unwrap())
            .collect()
    };
    let running = values("charter:requests_running");
    assert!(running.len() >= 3, "{} scrapes", running.len());
    assert!(running.iter().all(|&v| v <= 3.0), "{running:?}");
    assert!(running.iter().any(|&v| v >= 1.0), "{running:?}");
    let gen = values("charter:generation_tokens_total");
    assert_eq!(gen[gen.len() - 1] - gen[0], generated as f64);

    let source = &rec["server_metrics"][0];
    assert_eq!(source["url"], metrics);
    assert_eq!(source["measured"], true);
    assert_eq!(source["scrape_errors"], 0);
    assert_eq!(source["recognised"]["running"], "charter:requests_running");
    let level = &rec["levels"][0]["server_metrics"][0];
    assert!(level["running"]["max"].as_f64().unwrap() <= 3.0, "{level}");
    assert!(level["running"]["max"].as_f64().unwrap() >= 1.0, "{level}");
    assert_eq!(
        level["generation_tokens"]["delta"].as_f64(),
        Some(generated as f64),
        "{level}"
    );
    assert_eq!(
        level["prompt_tokens"]["delta"].as_f64(),
        Some(
            request_rows(&run)
                .iter()
                .map(|r| r.prompt_tokens)
                .sum::<u64>() as f64
        )
    );
    assert_eq!(rec["files"]["server_metrics_csv"], "server_metrics.csv");

    // The charter carries the level's server summary in its notes.
    let report = tmp.path().join("report");
    let o = common::charter(&[
        "report",
        "--out",
        report.to_str().unwrap(),
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let md = std::fs::read_to_string(report.join("charter.md")).unwrap();
    let max = level["running"]["p95"].as_f64().unwrap();
    assert!(
        md.contains(&format!("server: running p95 {max:.0}, waiting p95 ")),
        "{md}"
    );
}

/// `--backend openai` without `--server-metrics` tries `{base}/metrics` once; a server without
/// one is "not measured (reason)" in the console and the record, and the run goes on.
#[test]
fn an_absent_default_endpoint_is_not_measured() {
    let srv = TestServer::start(|_| Script::openai(1, 1, 3));
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let base = format!("{}/v1", srv.base_url());
    let o = common::charter(&[
        "profile",
        "--backend",
        "openai",
        "--base-url",
        &base,
        "--model",
        "m",
        "--requests",
        "2",
        "--no-progress",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let url = format!("{}/metrics", srv.base_url());
    let said = format!("{url} not measured (GET answered 404 Not Found)");
    assert!(stderr(&o).contains(&said), "{}", stderr(&o));
    let rec = validated_record(&run);
    assert_eq!(rec["levels"][0]["summary"]["requests_completed"], 2);
    let source = &rec["server_metrics"][0];
    assert_eq!(source["url"], url);
    assert_eq!(source["measured"], false);
    assert_eq!(
        source["reason"],
        "not measured (GET answered 404 Not Found)"
    );
    assert!(rec["files"].get("server_metrics_csv").is_none());
    assert!(!run.join("server_metrics.csv").exists());
    assert!(String::from_utf8_lossy(&o.stdout).contains("not measured"));
}

/// `--backend openai` without `--server-metrics` against `charter serve`: the default
/// `{base}/metrics` (the base URL given with `/v1`) is found, scraped, and its known metrics
/// recognised.
#[test]
fn the_default_endpoint_of_charter_serve_is_scraped() {
    let srv = spawn(&[
        "serve",
        "--backend",
        "simulated",
        "--sim-ttft",
        "5ms",
        "--sim-itl",
        "5ms",
        "--listen",
        "127.0.0.1:0",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let base = format!("{}/v1", srv.url);
    let o = common::charter(&[
        "profile",
        "--backend",
        "openai",
        "--base-url",
        &base,
        "--model",
        "simulated",
        "--prompts",
        "synthetic",
        "--prompt-tokens",
        "4",
        "--max-tokens",
        "4",
        "--requests",
        "4",
        "--sample-interval",
        "20ms",
        "--no-progress",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rec = validated_record(&run);
    let source = &rec["server_metrics"][0];
    assert_eq!(source["url"], format!("{}/metrics", srv.url), "{source:#}");
    assert_eq!(source["measured"], true, "{source:#}");
    assert!(source["scrapes"].as_u64().unwrap() >= 1, "{source:#}");
    assert_eq!(source["scrape_errors"], 0, "{source:#}");
    assert_eq!(source["recognised"]["running"], "charter:requests_running");
    assert!(run.join("server_metrics.csv").exists());
}

/// A scrape that is not a Prometheus exposition (here the scripted server's SSE stream) is an
/// error row naming the line, counted in the record; the run goes on. The API key goes with the
/// scrape to the backend's own host and into no file.
#[test]
fn a_malformed_exposition_is_an_error_row_and_the_run_goes_on() {
    const KEY: &str = "sk-server-metrics-secret-0123456789";
    let srv = TestServer::start(|_| Script::openai(1, 1, 3));
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let broken = format!("{}/broken-metrics", srv.base_url());
    let o = Command::new(env!("CARGO_BIN_EXE_charter"))
        .args([
            "profile",
            "--backend",
            "openai",
            "--base-url",
            &srv.base_url(),
            "--model",
            "m",
            "--api-key-env",
            "CHARTER_TEST_KEY",
            "--requests",
            "4",
            "--sample-interval",
            "50ms",
            "--server-metrics",
            &broken,
            "--no-progress",
            "--out",
            run.to_str().unwrap(),
        ])
        .env("CHARTER_TEST_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rec = validated_record(&run);
    assert_eq!(rec["levels"][0]["summary"]["requests_completed"], 4);
    let rows = scrape_rows(&run);
    assert!(!rows.is_empty());
    for r in &rows {
        assert!(
            r.4.starts_with("not a Prometheus exposition: line 1: expected"),
            "{r:?}"
        );
    }
    let source = &rec["server_metrics"][0];
    assert_eq!(source["scrape_errors"], rows.len() as u64);
    assert_eq!(source["scrapes"], 0);
    assert_eq!(source["measured"], false);
    assert!(source["reason"]
        .as_str()
        .unwrap()
        .starts_with("not measured (not a Prometheus exposition"));
    assert!(srv
        .credentials
        .lock()
        .unwrap()
        .iter()
        .all(|c| c == &format!("Bearer {KEY}")));
    // Every file the run wrote, in subdirectories too (binary histograms included).
    let mut dirs = vec![run.clone()];
    while let Some(d) = dirs.pop() {
        for f in std::fs::read_dir(&d).unwrap() {
            let path = f.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let key = &KEY.as_bytes()[..12];
            assert!(
                !bytes.windows(key.len()).any(|w| w == key),
                "{} holds the key",
                path.display()
            );
        }
    }
    assert!(!stderr(&o).contains(&KEY[..12]));
}

/// Counter values of one `--metrics-listen` scrape.
fn live_counters(url: &str) -> Option<(f64, f64, f64)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_at(rest.find('/')?);
    let mut tcp = std::net::TcpStream::connect(host).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).ok()?;
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    let v = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    Some((
        v("charter:profile_requests_completed_total")?,
        v("charter:profile_requests_failed_total")?,
        v("charter:profile_output_tokens_total")?,
    ))
}

/// `--metrics-listen`: scrapes during a run show counters that only grow; during the pause
/// after the first level they equal that level's counts in the record, and the output-token
/// counter equals its requests' output tokens.
#[test]
fn live_metrics_only_grow_and_match_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut child = spawn(&[
        "profile",
        "--backend",
        "simulated",
        "--sim-ttft",
        "5ms",
        "--sim-itl",
        "2ms",
        "--max-tokens",
        "10",
        "--concurrency",
        "2,2",
        "--requests",
        "8",
        "--warmup",
        "1",
        "--cooldown",
        "1500ms",
        "--metrics-listen",
        "127.0.0.1:0",
        "--no-progress",
        "--out",
        run.to_str().unwrap(),
    ]);
    let url = child.url.clone();
    let mut seen: Vec<(f64, f64, f64)> = Vec::new();
    let started = Instant::now();
    while child.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run hangs"
        );
        if let Some(c) = live_counters(&url) {
            seen.push(c);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.child.wait().unwrap().success());
    for w in seen.windows(2) {
        assert!(
            w[1].0 >= w[0].0 && w[1].1 >= w[0].1 && w[1].2 >= w[0].2,
            "{w:?}"
        );
    }
    let rec = validated_record(&run);
    let l0 = &rec["levels"][0]["summary"];
    let done = l0["requests_completed"].as_f64().unwrap();
    let failed = l0["requests_failed"].as_f64().unwrap();
    let measured_tokens: Vec<u64> = request_rows(&run)
        .iter()
        .filter(|r| !r.warmup)
        .map(|r| r.output_tokens)
        .collect();
    assert_eq!(measured_tokens.len(), 16);
    let l0_tokens: f64 = request_rows(&run)
        .iter()
        .filter(|r| !r.warmup && r.end_s <= rec["levels"][0]["window"]["end_s"].as_f64().unwrap())
        .map(|r| r.output_tokens as f64)
        .sum();
    assert_eq!(done + failed, 8.0);
    assert!(
        seen.contains(&(done, failed, l0_tokens)),
        "no scrape in the pause after level 0 showed {:?}: {seen:?}",
        (done, failed, l0_tokens)
    );
    let last = seen.last().expect("scraped at least once");
    assert!(last.0 <= 16.0 && last.2 <= measured_tokens.iter().sum::<u64>() as f64);
}
