//! Per-instance CPU and RAM, the RAM-per-token fit, watched processes and the idle baseline,
//! through the real `charter profile` binary.

mod common;

use std::path::Path;

use common::{charter, stderr, validated_record};
use serde_json::Value;

/// Simulated timings of the busy-worker runs: every wait burns half of itself in CPU time.
const TTFT_MS: f64 = 10.0;
const ITL_MS: f64 = 10.0;
const BUSY: f64 = 0.5;

/// CPU seconds the simulated backend burns for the requests in `dir`'s requests.csv.
fn expected_cpu_s(dir: &Path) -> f64 {
    common::request_rows(dir)
        .iter()
        .map(|r| {
            let n = r.output_tokens as f64;
            if n == 0.0 {
                0.0
            } else {
                BUSY * (TTFT_MS + (n - 1.0) * ITL_MS) / 1e3
            }
        })
        .sum()
}

fn busy_workers(isolation: &str) -> (Value, f64) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = charter(&[
        "profile",
        "--backend",
        "simulated",
        "--sim-ttft",
        "10ms",
        "--sim-itl",
        "10ms",
        "--sim-cpu",
        "0.5",
        "--isolation",
        isolation,
        "--instances",
        "2",
        "--max-tokens",
        "8",
        "--duration",
        "2s",
        "--requests",
        "100000",
        "--warmup",
        "0",
        "--sample-interval",
        "20ms",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rec = validated_record(&out);
    let expected = expected_cpu_s(&out);
    // Keep the tempdir alive until the record is read.
    drop(dir);
    (rec, expected)
}

fn check_instances(rec: &Value, expected_total: f64, isolation: &str) {
    let inst = &rec["levels"][0]["resources"]["instances"];
    assert_eq!(inst["isolation"], isolation);
    let per = inst["per_instance"].as_array().unwrap();
    assert_eq!(per.len(), 2, "{inst:#}");
    // Closed loop with identical requests: each instance did half the work, ± one request.
    let each = expected_total / 2.0;
    for p in per {
        let cpu = p["cpu_seconds"].as_f64().unwrap();
        let err = (cpu - each).abs() / each;
        assert!(
            err < 0.15,
            "{isolation}: {} measured {cpu:.3} CPU-s, expected {each:.3} (error {:.1} %)",
            p["label"],
            err * 100.0
        );
        assert!(p["cpu_cores"].as_f64().unwrap() > 0.0);
        if isolation == "process" {
            assert!(p["pid"].as_u64().is_some());
            assert!(p["rss_bytes"]["mean"].as_f64().unwrap() > 1e6);
        } else {
            assert!(p["rss_bytes"].is_null(), "threads share the process RSS");
        }
    }
    assert!(inst["cpu_cores_per_instance_mean"].as_f64().unwrap() > 0.0);
}

#[test]
fn two_busy_worker_processes_are_each_measured_within_15_percent() {
    let (rec, expected) = busy_workers("process");
    check_instances(&rec, expected, "process");
    assert!(
        rec["levels"][0]["resources"]["instances"]["rss_bytes_per_instance_mean"]
            .as_f64()
            .is_some()
    );
}

#[test]
fn two_busy_worker_threads_are_each_measured_within_15_percent() {
    let (rec, expected) = busy_workers("thread");
    check_instances(&rec, expected, "thread");
}

#[test]
fn candle_ram_per_1k_tokens_has_a_positive_slope() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = charter(&[
        "profile",
        "--preset",
        "tiny-15m",
        "--threads",
        "1",
        "--concurrency",
        "2",
        "--prompt-tokens",
        "uniform:16:200",
        "--max-tokens",
        "120",
        "--ignore-eos",
        "--requests",
        "6",
        "--warmup",
        "0",
        "--sample-interval",
        "10ms",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rec = validated_record(&out);
    let fit = &rec["levels"][0]["resources"]["ram_per_1k_tokens"];
    let slope = fit["bytes_per_1k_tokens"].as_f64().unwrap();
    let r2 = fit["r_squared"].as_f64().unwrap();
    assert!(
        slope > 0.0,
        "slope {slope} B per 1k tokens, R² {r2}: {fit:#}"
    );
    assert!((0.0..=1.0).contains(&r2));
    assert!(fit["samples"].as_u64().unwrap() >= 10);
    // The console says it too, and context.csv holds the fit's input.
    assert!(common::stdout(&o).contains("RAM per 1k tokens of context:"));
    let ctx = std::fs::read_to_string(out.join("context.csv")).unwrap();
    assert!(ctx.starts_with("t_s,level,live_context_tokens,rss_bytes"));
    assert!(ctx.lines().count() > 10);
}

#[test]
fn a_watched_process_and_the_idle_baseline_are_recorded() {
    // A busy shell loop stands in for a local inference server.
    let mut child = std::process::Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = charter(&[
        "profile",
        "--backend",
        "simulated",
        "--sim-ttft",
        "5ms",
        "--sim-itl",
        "5ms",
        "--max-tokens",
        "40",
        "--requests",
        "4",
        "--warmup",
        "0",
        "--baseline",
        "500ms",
        "--watch-pid",
        &pid,
        "--cpu-tdp",
        "65",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(o.status.success(), "{}", stderr(&o));
    let rec = validated_record(&out);
    let res = &rec["levels"][0]["resources"];
    let w = &res["watched"][0];
    assert!(w["label"].as_str().unwrap().contains(&pid), "{w:#}");
    assert!(
        w["cpu_cores"].as_f64().unwrap() > 0.2,
        "a busy loop uses CPU: {w:#}"
    );
    assert!(w["rss_bytes"]["mean"].as_f64().unwrap() > 0.0);
    let idle = &res["idle_baseline"];
    assert!(idle["duration_s"].as_f64().unwrap() >= 0.3, "{idle:#}");
    assert!(idle["process_cpu_cores"].as_f64().unwrap() < 0.5);
    // No RAPL here: CPU energy is the declared-TDP estimate, labelled.
    let e = &res["energy"];
    if res["unmeasured"].get("cpu_energy").is_none() && e["cpu_method"] == "rapl" {
        assert!(e["cpu_j"].as_f64().unwrap() > 0.0);
    } else {
        assert_eq!(e["cpu_method"], "estimated", "{res:#}");
        assert!(e["cpu_j"].as_f64().unwrap() > 0.0);
        assert!(e["per_output_token_j"].as_f64().unwrap() > 0.0);
    }
    let console = common::stdout(&o);
    assert!(console.contains("watched sh"), "{console}");
}

#[test]
fn bad_watch_targets_exit_2_naming_them() {
    let o = charter(&["profile", "--watch-pid", "999999999", "--requests", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--watch-pid 999999999"),
        "{}",
        stderr(&o)
    );
    let o = charter(&["profile", "--watch-process", "no-such-server-xyz"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no-such-server-xyz"));
    let o = charter(&["profile", "--nvml-lib", "/nonexistent/libnvidia-ml.so.1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/libnvidia-ml.so.1"));
    let o = charter(&["profile", "--instances", "2", "--concurrency", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--instances 2"));
}
