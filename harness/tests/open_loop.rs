//! Open-loop behaviour against the SIMULATED backend (a labelled test tool with deterministic
//! service times), where the right answers are known.

mod common;

use common::*;
use serde_json::Value;

fn run(args: &[&str]) -> Value {
    run_in(args).1
}

/// These tests assert on timing: run them one at a time, not in parallel on a 2-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_in(args: &[&str]) -> (tempfile::TempDir, Value) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut all = vec!["--prompts", "synthetic", "--json"];
    all.extend_from_slice(args);
    let (tmp, out) = run_simulated(&all);
    let rec = validated_record(&out);
    (tmp, rec)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Service time 30 ms, one request at a time (capacity ≈ 33 req/s), offered 50 req/s: the queue
/// grows, so latency from the intended start grows while latency from the actual start does not,
/// and the level is flagged.
#[test]
fn coordinated_omission_is_exposed_and_flagged() {
    let (tmp, rec) = run_in(&[
        "--sim-ttft",
        "30ms",
        "--sim-itl",
        "1ms",
        "--max-tokens",
        "1",
        "--max-in-flight",
        "1",
        "--rate",
        "50",
        "--arrivals",
        "constant",
        "--requests",
        "40",
        "--warmup",
        "0",
    ]);
    let l = &rec["levels"][0];
    let s = &l["summary"];
    let ttft = f(&s["ttft"]["p50_s"]);
    assert!(
        (0.028..0.045).contains(&ttft),
        "TTFT from the actual start stays at the service time: {ttft}"
    );
    assert!(f(&s["ttft"]["p99_s"]) < 0.05);
    // Request k waits k × (30 − 20) ms: the last of 40 about 0.39 s.
    let from_intended = f(&s["ttft_from_intended"]["p99_s"]);
    assert!(
        from_intended > 0.25,
        "TTFT from the intended start grows with the queue: {from_intended}"
    );
    assert!(f(&s["schedule_lag"]["p99_s"]) > 0.2);
    assert_eq!(l["client_bound"]["flagged"], true);
    let reasons = l["client_bound"]["reasons"].to_string();
    assert!(reasons.contains("in-flight slots busy"), "{reasons}");
    assert!(f(&l["client_bound"]["max_in_flight_waits"]) > 0.0);
    assert_eq!(l["sustainable"], false);
    // Per request: the lag grows with the arrival order, the service time does not.
    let mut rows = request_rows(&tmp.path().join("run"));
    rows.sort_by(|a, b| a.intended_start_s.total_cmp(&b.intended_start_s));
    assert_eq!(rows.len(), 40);
    assert!(rows
        .windows(2)
        .all(|w| w[1].schedule_lag_s >= w[0].schedule_lag_s - 0.002));
    assert!(rows[39].schedule_lag_s - rows[0].schedule_lag_s > 0.3);
    assert!(rows.iter().all(|r| r.ttft_s.unwrap() < 0.05));
}

/// Well below capacity nothing queues: the two views agree and nothing is flagged.
#[test]
fn below_capacity_both_views_agree() {
    let rec = run(&[
        "--sim-ttft",
        "20ms",
        "--sim-itl",
        "1ms",
        "--max-tokens",
        "2",
        "--max-in-flight",
        "4",
        "--rate",
        "20",
        "--arrivals",
        "constant",
        "--requests",
        "30",
    ]);
    let l = &rec["levels"][0];
    let s = &l["summary"];
    let a = f(&s["ttft"]["p99_s"]);
    let b = f(&s["ttft_from_intended"]["p99_s"]);
    assert!(b - a < 0.003, "actual {a} vs intended {b}");
    assert_eq!(l["client_bound"]["flagged"], false, "{}", l["client_bound"]);
    assert_eq!(l["sustainable"], true);
    let keep_up = f(&l["completed_to_offered"]);
    assert!((0.97..1.03).contains(&keep_up), "{keep_up}");
    let achieved = f(&s["request_throughput_per_s"]);
    assert!((achieved - 20.0).abs() < 2.0, "achieved {achieved} req/s");
}

/// A sweep over rates below and above a known capacity (≈ 33 req/s) marks the right one.
#[test]
fn sweep_marks_levels_beyond_capacity() {
    let rec = run(&[
        "--sim-ttft",
        "30ms",
        "--sim-itl",
        "1ms",
        "--max-tokens",
        "1",
        "--max-in-flight",
        "1",
        "--rate",
        "10,60",
        "--arrivals",
        "constant",
        "--requests",
        "25",
        "--cooldown",
        "50ms",
    ]);
    let levels = rec["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    assert_eq!(levels[0]["sustainable"], true);
    assert_eq!(levels[1]["sustainable"], false);
    let ratio = f(&levels[1]["completed_to_offered"]);
    // Capacity ≈ 1/0.030 = 33 req/s against 60 offered: ≈ 0.55.
    assert!((0.45..0.65).contains(&ratio), "{ratio}");
}

/// SLO search against a known capacity: one slot, 20 ms per request → 50 req/s.
#[test]
fn slo_search_finds_the_capacity() {
    let rec = run(&[
        "--sim-ttft",
        "20ms",
        "--sim-itl",
        "1ms",
        "--max-tokens",
        "1",
        "--max-in-flight",
        "1",
        "--arrivals",
        "constant",
        "--slo",
        "ttft_p99=100ms",
        "--attainment",
        "0.9",
        "--requests",
        "30",
        "--cooldown",
        "50ms",
        "--search-steps",
        "5",
    ]);
    let search = &rec["search"];
    let sat = f(&search["saturation_rate_per_s"]);
    assert!((40.0..52.0).contains(&sat), "saturation {sat}");
    let best = f(&search["best_rate_per_s"]);
    assert!(best > 0.85 * 50.0 && best <= 52.0, "best {best}");
    assert_eq!(rec["levels"][0]["role"], "saturation_probe");
    assert_eq!(rec["levels"][1]["role"], "search");
    let (lo, hi) = (
        f(&search["best_attainment_ci95"][0]),
        f(&search["best_attainment_ci95"][1]),
    );
    assert!(lo <= f(&search["best_attainment"]) && f(&search["best_attainment"]) <= hi);
}

/// With a tight SLO the search has to go below saturation.
#[test]
fn slo_search_backs_off_when_the_slo_binds() {
    // Two slots, 20 ms each: saturation ≈ 100 req/s. Poisson arrivals queue near saturation,
    // and an SLO of 30 ms on TTFT from the intended start tolerates little queueing (10 ms of
    // margin for a busy machine's scheduling delays at low rates).
    let rec = run(&[
        "--sim-ttft",
        "20ms",
        "--sim-itl",
        "1ms",
        "--max-tokens",
        "1",
        "--max-in-flight",
        "2",
        "--arrivals",
        "poisson",
        "--slo",
        "ttft_p90=30ms",
        "--requests",
        "40",
        "--cooldown",
        "20ms",
        "--search-steps",
        "4",
    ]);
    let search = &rec["search"];
    let sat = f(&search["saturation_rate_per_s"]);
    // The SLO holds well below saturation (little queueing), so the search must find a rate,
    // and it must be below saturation: finding nothing fails.
    let best = search["best_rate_per_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("the search found no rate meeting the SLO: {search:#}"));
    assert!(best > 0.0 && best < sat, "best {best} vs saturation {sat}");
    assert!(rec["levels"].as_array().unwrap().len() >= 3);
}

#[test]
fn auto_sweep_spreads_rates_below_saturation() {
    let rec = run(&[
        "--sim-ttft",
        "10ms",
        "--sim-itl",
        "1ms",
        "--max-tokens",
        "1",
        "--max-in-flight",
        "2",
        "--sweep",
        "auto",
        "--requests",
        "10",
        "--cooldown",
        "10ms",
    ]);
    let levels = rec["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 7, "probe + 6 rates");
    assert_eq!(levels[0]["role"], "saturation_probe");
    let sat = f(&levels[0]["summary"]["request_throughput_per_s"]);
    let rates: Vec<f64> = levels[1..]
        .iter()
        .map(|l| f(&l["load"]["rate_per_s"]))
        .collect();
    for (r, frac) in rates.iter().zip([0.2, 0.4, 0.6, 0.8, 0.9, 1.0]) {
        assert!((r / sat - frac).abs() < 1e-9, "{r} vs {frac} × {sat}");
    }
    assert_eq!(rec["workload"]["plan"], "auto");
}
