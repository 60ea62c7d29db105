//! `charter profile --trace` end to end against the SIMULATED backend (a labelled test tool):
//! arrivals follow the trace's timestamps (scaled by --trace-speed), prompts and outputs have the
//! rows' lengths, the record names the trace, and a bad row is exit 2 naming file and line.
//! Also the shared-prefix workload's expected prefix-cache hit rate.

mod common;

use std::path::{Path, PathBuf};

use charter_record::RequestRow;
use charter_workloads::{LengthDist, SharedPrefix, Trace, TraceOptions};
use common::*;
use serde_json::Value;

/// These tests compare times: one at a time, not in parallel on a 2-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../workloads/traces")
        .join(name)
}

/// Run `charter profile --backend simulated` with `args`; the record and the rows by id.
fn run(args: &[&str]) -> (tempfile::TempDir, Value, Vec<RequestRow>) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut all = vec!["--sim-ttft", "1ms", "--sim-itl", "1ms", "--no-progress"];
    all.extend_from_slice(args);
    let (tmp, out) = run_simulated(&all);
    let rec = validated_record(&out);
    let mut rows = request_rows(&out);
    rows.sort_by_key(|r| r.id);
    (tmp, rec, rows)
}

/// Intended starts relative to the first request's.
fn intended_offsets(rows: &[RequestRow]) -> Vec<f64> {
    rows.iter()
        .map(|r| r.intended_start_s - rows[0].intended_start_s)
        .collect()
}

#[test]
fn replay_follows_the_timestamps_and_the_lengths() {
    let path = sample("mooncake-sample.jsonl");
    let trace = Trace::load(&path, TraceOptions::default()).unwrap();
    let (_t, rec, rows) = run(&["--trace", path.to_str().unwrap()]);
    assert_eq!(rows.len(), trace.rows.len(), "every row once");
    assert!(rows.iter().all(|r| !r.warmup && r.error_kind.is_none()));
    // Intended starts are the timestamps to well within 1 ms.
    for (i, (got, want)) in intended_offsets(&rows)
        .iter()
        .zip(trace.offsets())
        .enumerate()
    {
        assert!(
            (got - want).abs() < 1e-3,
            "row {i}: intended {got} vs {want}"
        );
    }
    // Achieved starts: never early, and on a loaded 2-core machine still within 250 ms of the
    // schedule (rows are 0 to 230 ms apart, the trace spans 2 s).
    let first = rows[0].intended_start_s;
    for (r, want) in rows.iter().zip(trace.offsets()) {
        assert!(
            r.start_s >= r.intended_start_s - 1e-6,
            "{} started early",
            r.id
        );
        let lag = r.start_s - first - want;
        assert!(lag < 0.25, "row {} started {lag:.3}s late", r.id);
    }
    for (r, row) in rows.iter().zip(&trace.rows) {
        assert_eq!(r.prompt_tokens, u64::from(row.input_tokens), "id {}", r.id);
        assert_eq!(r.output_tokens, u64::from(row.output_tokens), "id {}", r.id);
    }
    let w = &rec["workload"];
    let digest = charter_backends::file_digest(&path).unwrap();
    assert_eq!(w["trace"]["sha256"], digest.sha256.as_str());
    assert_eq!(w["trace"]["format"], "mooncake");
    assert_eq!(w["trace"]["rows"], 40);
    assert_eq!(w["trace"]["speed"], 1.0);
    assert_eq!(w["ignore_eos"], true);
    assert_eq!(rec["levels"][0]["load"]["arrivals"], "trace");
    let hit = w["ideal_prefix_cache_hit_rate"].as_f64().unwrap();
    let want = charter_workloads::PromptSource::Trace(std::sync::Arc::new(trace))
        .ideal_prefix_hit_rate(40, 0)
        .unwrap();
    assert_eq!(hit, want);
}

#[test]
fn speed_scales_the_schedule_and_a_window_slices_it() {
    let path = sample("mooncake-sample.jsonl");
    let trace = Trace::load(&path, TraceOptions::default()).unwrap();
    let (_t, rec, rows) = run(&["--trace", path.to_str().unwrap(), "--trace-speed", "4"]);
    for (got, want) in intended_offsets(&rows).iter().zip(trace.offsets()) {
        assert!((got - want / 4.0).abs() < 1e-6, "{got} vs {want} / 4");
    }
    assert_eq!(rec["workload"]["trace"]["speed"], 4.0);
    let (_t, rec, rows) = run(&[
        "--trace",
        path.to_str().unwrap(),
        "--trace-speed",
        "8",
        "--trace-window",
        "0.5..1.5",
    ]);
    let sliced = Trace::load(
        &path,
        TraceOptions {
            speed: 8.0,
            window: Some("0.5..1.5".parse().unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(sliced.rows.len() < trace.rows.len());
    assert_eq!(rows.len(), sliced.rows.len());
    for (got, want) in intended_offsets(&rows).iter().zip(sliced.offsets()) {
        assert!((got - want).abs() < 1e-6);
    }
    assert_eq!(rec["workload"]["trace"]["window"], "0.5s..1.5s");
}

#[test]
fn each_csv_and_jsonl_format_replays_its_lengths() {
    for name in [
        "bailian-sample.jsonl",
        "azure-sample.csv",
        "burstgpt-sample.csv",
    ] {
        let path = sample(name);
        let trace = Trace::load(&path, TraceOptions::default()).unwrap();
        let (_t, rec, rows) = run(&["--trace", path.to_str().unwrap(), "--trace-speed", "20"]);
        assert_eq!(rows.len(), trace.rows.len(), "{name}");
        for (r, row) in rows.iter().zip(&trace.rows) {
            assert_eq!(r.prompt_tokens, u64::from(row.input_tokens), "{name}");
            assert_eq!(r.output_tokens, u64::from(row.output_tokens), "{name}");
        }
        assert_eq!(rec["workload"]["trace"]["format"], trace.format.as_str());
    }
}

#[test]
fn a_bad_row_is_exit_2_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.csv");
    std::fs::write(
        &bad,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,2\n2023-11-16 18:15:47.0,ten,2\n",
    )
    .unwrap();
    let out = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--backend",
        "simulated",
        "--trace",
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("{}:3: ", bad.display())), "{e}");
    assert!(e.contains("expected an Azure row"), "{e}");
    assert!(!out.join("run.json").exists());
    let o = charter(&["profile", "--backend", "simulated", "--trace-speed", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--trace-speed: applies only with --trace"),
        "{}",
        stderr(&o)
    );
}

/// 4 groups of 64 prefix tokens before 16 tokens of each request's own, 40 requests: an ideal
/// cache misses each group's prefix once (each group drawn, checked), so the expected hit rate
/// is (40 − 4) × 64 / (40 × 80).
#[test]
fn shared_prefix_reports_the_known_hit_rate() {
    let (_t, rec, rows) = run(&[
        "--shared-prefix-tokens",
        "64",
        "--prefix-groups",
        "4",
        "--prompt-tokens",
        "16",
        "--max-tokens",
        "2",
        "--requests",
        "40",
        "--warmup",
        "0",
        "--concurrency",
        "2",
    ]);
    let p = SharedPrefix {
        prefix_tokens: 64,
        groups: 4,
        suffix: LengthDist::fixed(16),
    };
    let groups: std::collections::HashSet<u32> = (0..40).map(|i| p.group(i, 0)).collect();
    assert_eq!(groups.len(), 4);
    assert_eq!(rows.len(), 40);
    assert!(rows.iter().all(|r| r.prompt_tokens == 80));
    let w = &rec["workload"];
    assert_eq!(
        w["ideal_prefix_cache_hit_rate"].as_f64(),
        Some(36.0 * 64.0 / (40.0 * 80.0))
    );
    assert_eq!(w["shared_prefix"]["groups"], 4);
}
