//! The hybrid backend through the real binary: in-flight spill against a simulation of the
//! same seeded schedule, failover (both attempts recorded, latency from the first), a
//! gateway's upstream header (`--tier-header`), and bad tier settings.

mod common;
#[path = "common/sse_server.rs"]
#[allow(dead_code)] // the faults and TLS of the remote tests are not used here
mod sse_server;

use std::time::Duration;

use charter_record::{RequestRow, SpillReason};
use common::*;
use sse_server::{Fault, Script, TestServer, UPSTREAM_HEADER};

/// On-prem tier: 20 ms to the first token, then 15 more every 5 ms: 95 ms per request.
const ONPREM: &str = r#"{kind = "simulated", sim_ttft = "20ms", sim_itl = "5ms", name = "onprem", max_in_flight = 2}"#;
const ONPREM_SERVICE_S: f64 = 0.095;
const CLOUD: &str = r#"{kind = "simulated", sim_ttft = "10ms", sim_itl = "1ms", name = "cloud"}"#;

fn run(dir: &std::path::Path, extra: &[&str]) -> (Vec<RequestRow>, serde_json::Value) {
    let mut args = vec![
        "profile",
        "--backend",
        "hybrid",
        "--max-tokens",
        "16",
        "--ignore-eos",
        "--prompts",
        "synthetic",
        "--warmup",
        "0",
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = charter(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (request_rows(dir), validated_record(dir))
}

#[test]
fn in_flight_spills_nothing_below_capacity_and_what_a_simulation_predicts_above_it() {
    let tmp = tempfile::tempdir().unwrap();
    // Below capacity: one arrival every 200 ms, each on-prem request done in 95 ms.
    let (rows, rec) = run(
        &tmp.path().join("below"),
        &[
            "--tier",
            ONPREM,
            "--tier",
            CLOUD,
            "--rate",
            "5",
            "--arrivals",
            "constant",
            "-n",
            "10",
        ],
    );
    assert_eq!(rows.len(), 10);
    assert!(
        rows.iter().all(|r| r.tier.as_deref() == Some("onprem")
            && r.attempts == Some(1)
            && r.spill_reason.is_none()),
        "{rows:#?}"
    );
    let routing = &rec["levels"][0]["summary"]["routing"];
    assert_eq!(routing["spill_fraction"], 0.0, "{routing:#}");
    assert_eq!(rec["backend"]["hybrid"]["policy"], "in-flight");
    assert_eq!(rec["backend"]["hybrid"]["tiers"][0]["max_in_flight"], 2);

    // Bursty arrivals at the on-prem tier's capacity (2 slots ÷ 95 ms = 21 requests/s).
    let (rows, rec) = run(
        &tmp.path().join("burst"),
        &[
            "--tier",
            ONPREM,
            "--tier",
            CLOUD,
            "--rate",
            "20",
            "--arrivals",
            "gamma",
            "--burstiness",
            "0.25",
            "--seed",
            "7",
            "-n",
            "160",
        ],
    );
    let mut starts: Vec<f64> = rows.iter().map(|r| r.intended_start_s).collect();
    starts.sort_by(f64::total_cmp);
    // The in-flight policy replayed on the same schedule with the fixed on-prem service time
    // (the model `charter plan --hybrid` uses).
    let predicted = charter_reports::hybrid_plan::in_flight_spill(&starts, ONPREM_SERVICE_S, 2);
    let spilled = rows
        .iter()
        .filter(|r| r.tier.as_deref() == Some("cloud"))
        .count();
    assert!(
        rows.iter()
            .filter(|r| r.tier.as_deref() == Some("cloud"))
            .all(|r| r.spill_reason == Some(SpillReason::InFlight)),
        "every cloud request says why it spilled"
    );
    let measured = spilled as f64 / rows.len() as f64;
    let routing = &rec["levels"][0]["summary"]["routing"];
    assert_eq!(
        routing["spill_fraction"].as_f64(),
        Some(measured),
        "{routing:#}"
    );
    // Decisions on a boundary (an arrival within a millisecond of an on-prem completion) can
    // go either way on a loaded machine; a few of 160 requests.
    assert!(
        predicted > 0.1 && (measured - predicted).abs() <= 0.05,
        "spill {measured:.3} measured vs {predicted:.3} simulated for the same schedule"
    );
    assert_eq!(
        routing["tiers"]["onprem"]["requests"].as_u64().unwrap() as usize,
        rows.len() - spilled
    );
    // The charter reports the routing and prices the blend, the cloud tier by its name.
    let (cost, report, charter_json) = report_priced(tmp.path(), &tmp.path().join("burst"), "");
    let md = std::fs::read_to_string(report.join("charter.md")).unwrap();
    assert!(
        md.contains("Routing, level 0") && md.contains(&format!("cloud {spilled} request(s)")),
        "{md}"
    );
    let blend = &charter_json["cost"][0]["hybrid"];
    let cloud_out = routing["tiers"]["cloud"]["output_tokens"].as_f64().unwrap();
    let cloud_in = routing["tiers"]["cloud"]["prompt_tokens"].as_f64().unwrap();
    // The example sheet's API prices: 0.10 per 1M input, 0.40 per 1M output tokens.
    let want = (cloud_in * 0.10 + cloud_out * 0.40) / 1e6;
    let got = blend["cloud"][0]["cost"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-12, "{blend:#}");
    assert!(md.contains("Hybrid blend: on-prem tier onprem"), "{md}");
    // The spill over time is charted (its bucket counts are checked in reports' routing tests).
    assert!(md.contains("](charts/spill-over-time-0-0.png)"), "{md}");
    let svg = std::fs::read_to_string(report.join("charts/spill-over-time-0-0.svg")).unwrap();
    assert!(
        svg.contains("onprem") && svg.contains("cloud"),
        "legend: {svg}"
    );
    let html = std::fs::read_to_string(report.join("charter.html")).unwrap();
    assert!(html.contains("Requests per tier over time"));

    // Planned from this run: one node is the run's on-prem tier (2 slots), so at the run's
    // own rate and burstiness its simulated spill (1,000 arrivals) is close to the measured one
    // (160 requests: sampling noise, hence 0.1).
    let o = charter(&[
        "plan",
        tmp.path().join("burst").to_str().unwrap(),
        "--hybrid",
        "--target-rps",
        "20",
        "--burstiness",
        "0.25",
        "--seed",
        "7",
        "--max-nodes",
        "4",
        "--cost",
        cost.to_str().unwrap(),
        "--chart-dir",
        tmp.path().join("plan").to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Vec<f64>> = out
        .lines()
        .skip_while(|l| !l.contains("nodes  spill %"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_whitespace()
                .take(5)
                .map(|w| w.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 5, "{out}");
    assert_eq!(rows[0][1], 100.0, "no node: everything spills");
    let one_node = rows[1][1] / 100.0;
    assert!(
        (one_node - measured).abs() <= 0.1,
        "plan: {one_node:.3} spilled with one node; the run measured {measured:.3}\n{out}"
    );
    // Each total is its parts, and the plan is the least of them.
    for r in &rows {
        assert!((r[2] + r[3] - r[4]).abs() <= 0.011, "{r:?}");
    }
    let least = rows.iter().map(|r| r[4]).fold(f64::INFINITY, f64::min);
    let chosen = out.lines().find(|l| l.contains("← least cost")).unwrap();
    assert!(chosen.contains(&format!("{least:.2}")), "{out}");
    // The chart marks the same plan.
    let chosen_nodes = chosen.split_whitespace().next().unwrap();
    let svg = std::fs::read_to_string(tmp.path().join("plan/hybrid-plan-cost.svg")).unwrap();
    assert!(
        svg.contains(&format!("least cost: {chosen_nodes} node(s)")),
        "chart does not mark {chosen_nodes} node(s)"
    );
    assert!(tmp.path().join("plan/hybrid-plan-cost.png").is_file());
}

#[test]
fn failover_sends_each_refused_request_to_the_next_tier_and_counts_from_the_first_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let refused = TestServer::start(|_| Script::openai(0, 0, 4).with(Fault::Status(503, None)));
    let onprem = format!(
        r#"{{kind = "openai", base_url = "{}", model = "m", name = "onprem"}}"#,
        refused.base_url()
    );
    let (rows, rec) = run(
        &tmp.path().join("refused"),
        &[
            "--tier",
            &onprem,
            "--tier",
            CLOUD,
            "--hybrid-policy",
            "failover",
            "-n",
            "6",
        ],
    );
    assert_eq!(rows.len(), 6);
    for r in &rows {
        assert_eq!(r.tier.as_deref(), Some("cloud"), "{r:#?}");
        assert_eq!(r.attempts, Some(2));
        assert_eq!(r.spill_reason, Some(SpillReason::Failover));
        let first = r.failed_attempt.as_deref().unwrap();
        assert!(
            first.starts_with("onprem: ") && first.contains("503"),
            "{first}"
        );
        assert_eq!(r.error_kind, None);
    }
    assert_eq!(
        refused.requests.load(std::sync::atomic::Ordering::SeqCst),
        6
    );
    let routing = &rec["levels"][0]["summary"]["routing"];
    assert_eq!(routing["failovers"], 6, "{routing:#}");
    assert_eq!(routing["spill_fraction"], 1.0);

    // A first attempt that times out after 150 ms: the request's TTFT includes that wait.
    let slow = TestServer::start(|_| {
        Script::openai(0, 0, 4).with(Fault::SlowHeaders(Duration::from_secs(5)))
    });
    let onprem = format!(
        r#"{{kind = "openai", base_url = "{}", model = "m", name = "onprem", headers_timeout = "150ms"}}"#,
        slow.base_url()
    );
    let (rows, _) = run(
        &tmp.path().join("timeout"),
        &[
            "--tier",
            &onprem,
            "--tier",
            CLOUD,
            "--hybrid-policy",
            "failover",
            "-n",
            "3",
        ],
    );
    for r in &rows {
        assert_eq!(r.tier.as_deref(), Some("cloud"));
        assert!(
            r.failed_attempt.as_deref().unwrap().contains("timeout"),
            "{r:#?}"
        );
        // 150 ms waiting for on-prem + 10 ms to the cloud's first token.
        let ttft = r.ttft_s.unwrap();
        assert!(
            ttft >= 0.160,
            "TTFT {ttft:.3} s counts from the first attempt"
        );
    }
}

#[test]
fn cached_and_reasoning_tokens_of_a_cloud_tier_are_priced_at_their_own_rates() {
    let tmp = tempfile::tempdir().unwrap();
    // Every request fails over from a refusing on-prem tier to a cloud API whose usage says
    // 11 prompt tokens (5 from its cache) and 4 + 3 reasoning output tokens.
    let refused = TestServer::start(|_| Script::openai(0, 0, 4).with(Fault::Status(503, None)));
    let cloud = TestServer::start(|_| Script {
        reasoning: 3,
        cached_tokens: 5,
        ..Script::openai(0, 0, 4)
    });
    let tier = |srv: &TestServer, name: &str| {
        format!(
            r#"{{kind = "openai", base_url = "{}", model = "m", name = "{name}"}}"#,
            srv.base_url()
        )
    };
    let dir = tmp.path().join("run");
    let (rows, rec) = run(
        &dir,
        &[
            "--tier",
            &tier(&refused, "onprem"),
            "--tier",
            &tier(&cloud, "cloud"),
            "--hybrid-policy",
            "failover",
            "-n",
            "4",
        ],
    );
    assert!(rows
        .iter()
        .all(|r| r.cached_prompt_tokens == Some(5) && r.reasoning_tokens == Some(3)));
    let t = &rec["levels"][0]["summary"]["routing"]["tiers"]["cloud"];
    assert_eq!(t["cached_prompt_tokens"], 20, "{t:#}");
    assert_eq!(t["reasoning_tokens"], 12);
    assert_eq!(t["prompt_tokens"], 44);
    assert_eq!(t["output_tokens"], 28);
    // The example sheet: 0.10 input, 0.05 cached input, 0.40 output; reasoning at 1.00 here.
    let (_, report, charter_json) = report_priced(tmp.path(), &dir, "reasoning_per_1m = 1.00");
    let c = &charter_json["cost"][0]["hybrid"]["cloud"][0];
    let want = ((44.0 - 20.0) * 0.10 + 20.0 * 0.05 + (28.0 - 12.0) * 0.40 + 12.0 * 1.00) / 1e6;
    let got = c["cost"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-15, "{got} vs {want}: {c:#}");
    let md = std::fs::read_to_string(report.join("charter.md")).unwrap();
    assert!(
        md.contains("(of which 20 cached input, 12 reasoning)"),
        "{md}"
    );
}

#[test]
fn ttft_slo_spills_while_the_first_tier_is_predicted_slow_and_tries_it_again_later() {
    let tmp = tempfile::tempdir().unwrap();
    // On-prem within the SLO: nothing spills.
    let fast = r#"{kind = "simulated", sim_ttft = "20ms", sim_itl = "1ms", name = "onprem"}"#;
    let (rows, rec) = run(
        &tmp.path().join("fast"),
        &[
            "--tier",
            fast,
            "--tier",
            CLOUD,
            "--hybrid-policy",
            "ttft-slo",
            "--spill-ttft",
            "200ms",
            "-n",
            "6",
        ],
    );
    assert!(
        rows.iter().all(|r| r.tier.as_deref() == Some("onprem")),
        "{rows:#?}"
    );
    assert_eq!(rec["backend"]["hybrid"]["spill_ttft_s"], 0.2);
    // On-prem at 300 ms against a 100 ms SLO, its observations kept 1.2 s: the first request
    // finds nothing to go by and goes on-prem; the next ones spill (each takes ~25 ms in the
    // cloud) until the observation expires, then on-prem is tried again.
    let slow = r#"{kind = "simulated", sim_ttft = "300ms", sim_itl = "1ms", name = "onprem"}"#;
    let (mut rows, rec) = run(
        &tmp.path().join("slow"),
        &[
            "--tier",
            slow,
            "--tier",
            CLOUD,
            "--hybrid-policy",
            "ttft-slo",
            "--spill-ttft",
            "100ms",
            "--spill-window",
            "1200ms",
            "--duration",
            "3s",
            "-n",
            "1000",
        ],
    );
    rows.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    assert_eq!(rows[0].tier.as_deref(), Some("onprem"));
    assert_eq!(rows[1].tier.as_deref(), Some("cloud"));
    assert_eq!(rows[1].spill_reason, Some(SpillReason::TtftSlo));
    // Every on-prem request after the first starts more than the window after the previous
    // on-prem request's first token (its observation had expired).
    let onprem: Vec<&RequestRow> = rows
        .iter()
        .filter(|r| r.tier.as_deref() == Some("onprem"))
        .collect();
    assert!(
        onprem.len() >= 2,
        "on-prem tried again within 3 s: {}",
        onprem.len()
    );
    for w in onprem.windows(2) {
        let first_token = w[0].start_s + w[0].ttft_s.unwrap();
        assert!(w[1].start_s - first_token > 1.2, "{:#?}", w);
    }
    let routing = &rec["levels"][0]["summary"]["routing"];
    assert!(
        routing["spill_fraction"].as_f64().unwrap() > 0.5,
        "{routing:#}"
    );
}

#[test]
fn a_gateways_upstream_header_is_each_requests_tier() {
    let tmp = tempfile::tempdir().unwrap();
    // Two "upstreams" behind one address: the header says which (here by request number).
    let srv = TestServer::start(|n| {
        let mut s = Script::openai(1, 1, 4);
        s.prompt_tokens = if n % 3 == 0 { 1 } else { 2 };
        s
    });
    let dir = tmp.path().join("gateway");
    let o = charter(&[
        "profile",
        "--backend",
        "openai",
        "--base-url",
        &srv.base_url(),
        "--model",
        "m",
        "--tier-header",
        UPSTREAM_HEADER,
        "-n",
        "9",
        "--warmup",
        "0",
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = request_rows(&dir);
    let ones = rows
        .iter()
        .filter(|r| r.tier.as_deref() == Some("scripted-1"))
        .count();
    let twos = rows
        .iter()
        .filter(|r| r.tier.as_deref() == Some("scripted-2"))
        .count();
    assert_eq!((ones, twos), (3, 6), "{rows:#?}");
    let rec = validated_record(&dir);
    let routing = &rec["levels"][0]["summary"]["routing"];
    assert_eq!(routing["tiers"]["scripted-1"]["requests"], 3, "{routing:#}");
    assert!(routing["spill_fraction"].is_null(), "a header is no spill");
    assert_eq!(rec["backend"]["remote"]["tier_header"], UPSTREAM_HEADER);
    assert!(
        stdout(&o).contains("scripted-2: 6 request(s)"),
        "{}",
        stdout(&o)
    );
}

/// `charter report RUN` priced with the example cost sheet, its API entry named `cloud` and
/// `reasoning` (a line such as `reasoning_per_1m = 1.00`, or empty) in place of its commented
/// reasoning price: the cost file, the report directory and `charter.json`.
fn report_priced(
    tmp: &std::path::Path,
    run: &std::path::Path,
    reasoning: &str,
) -> (std::path::PathBuf, std::path::PathBuf, serde_json::Value) {
    let cost = tmp.join("cost.toml");
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cost.example.toml"),
    )
    .unwrap();
    let mut sheet = example.replace(
        "name = \"hosted small-model API (example)\"",
        "name = \"cloud\"",
    );
    if !reasoning.is_empty() {
        sheet = sheet.replace("# reasoning_per_1m = 0.40", reasoning);
    }
    std::fs::write(&cost, sheet).unwrap();
    let report = tmp.join("report");
    let o = charter(&[
        "report",
        run.to_str().unwrap(),
        "--cost",
        cost.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json = serde_json::from_str(&std::fs::read_to_string(report.join("charter.json")).unwrap())
        .unwrap();
    (cost, report, json)
}

/// `(t_s, waiting)` of every scrape of `source` in the run's `server_metrics.csv`.
fn waiting_readings(dir: &std::path::Path, source: &str) -> Vec<(f64, f64)> {
    let mut r = csv::Reader::from_path(dir.join("server_metrics.csv")).unwrap();
    r.records()
        .map(|row| row.unwrap())
        .filter(|row| &row[1] == source && &row[2] == "charter:requests_waiting")
        .map(|row| (row[0].parse().unwrap(), row[4].parse().unwrap()))
        .collect()
}

#[test]
fn queue_wait_spills_while_the_tiers_own_server_reports_waiting_requests() {
    let tmp = tempfile::tempdir().unwrap();
    // On-prem: `charter serve` generating 2 requests at once (95 ms each: 21 requests/s), the
    // rest waiting in its queue, which its /metrics report.
    let srv = spawn(&[
        "serve",
        "--backend",
        "simulated",
        "--sim-ttft",
        "20ms",
        "--sim-itl",
        "5ms",
        "--max-running",
        "2",
        "--listen",
        "127.0.0.1:0",
    ]);
    let metrics = format!("{}/metrics", srv.url);
    // charter's own count would never spill here (64 in flight is never reached).
    let onprem = |extra: &str| {
        format!(
            r#"{{kind = "openai", base_url = "{}/v1", model = "simulated", name = "onprem", max_in_flight = 64{extra}}}"#,
            srv.url
        )
    };
    let args = |tier: &str| -> Vec<String> {
        [
            "--tier",
            tier,
            "--tier",
            CLOUD,
            "--hybrid-policy",
            "queue-wait",
            "--rate",
            "40",
            "--arrivals",
            "gamma",
            "--burstiness",
            "0.25",
            "--seed",
            "7",
            "-n",
            "60",
        ]
        .map(String::from)
        .to_vec()
    };
    let by_server = args(&onprem(""));
    let by_server: Vec<&str> = by_server.iter().map(String::as_str).collect();
    let dir = tmp.path().join("server");
    let (mut rows, rec) = run(&dir, &by_server);
    let tier = &rec["backend"]["hybrid"]["tiers"][0];
    assert_eq!(tier["max_waiting"], 0, "{tier:#}");
    let signal = &tier["waiting_signal"];
    assert_eq!(signal["url"], metrics.as_str(), "{signal:#}");
    assert_eq!(signal["metric"], "charter:requests_waiting");
    assert_eq!(signal["decisions_by_server"], 60);
    assert_eq!(signal["decisions_by_count"], 0);
    // Truth from the same run: each scrape's waiting count (taken at t_s, handed to the router
    // when the scrape ends). A request routes on-prem iff the last reading before it was 0
    // (max_waiting = resume_waiting = 0); requests within 25 ms after a scrape's start may
    // still see the reading before it.
    let readings = waiting_readings(&dir, &metrics);
    assert!(readings.iter().any(|&(_, w)| w > 0.0), "{readings:?}");
    rows.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let (mut agree, mut judged) = (0, 0);
    for r in &rows {
        let Some(&(t, w)) = readings.iter().rev().find(|(t, _)| *t <= r.start_s) else {
            continue;
        };
        if r.start_s - t < 0.025 {
            continue;
        }
        judged += 1;
        let expected = if w > 0.0 { "cloud" } else { "onprem" };
        agree += usize::from(r.tier.as_deref() == Some(expected));
    }
    let spilled: Vec<&RequestRow> = rows
        .iter()
        .filter(|r| r.tier.as_deref() == Some("cloud"))
        .collect();
    assert!(
        !spilled.is_empty() && spilled.len() < rows.len(),
        "{} of {} spilled",
        spilled.len(),
        rows.len()
    );
    assert!(spilled
        .iter()
        .all(|r| r.spill_reason == Some(SpillReason::QueueWait)));
    assert!(
        judged >= 20 && agree as f64 >= 0.9 * judged as f64,
        "{agree} of {judged} requests routed as the server's readings say"
    );

    // The same schedule by charter's own count: nothing reaches 64 in flight, nothing spills.
    let by_count = args(&onprem(r#", metrics_url = "none""#));
    let by_count: Vec<&str> = by_count.iter().map(String::as_str).collect();
    let (rows, rec) = run(&tmp.path().join("count"), &by_count);
    assert!(rows.iter().all(|r| r.tier.as_deref() == Some("onprem")));
    let signal = &rec["backend"]["hybrid"]["tiers"][0]["waiting_signal"];
    assert_eq!(
        signal["fallback_reason"], "metrics_url = \"none\"",
        "{signal:#}"
    );
    assert_eq!(signal["decisions_by_count"], 60);
}

#[test]
fn bad_tier_settings_exit_2_naming_the_tier_and_key() {
    let cases: &[(&[&str], &str)] = &[
        (&["--tier", CLOUD], "at least two --tier tables"),
        (
            &["--tier", r#"{kind = "hybrid"}"#, "--tier", CLOUD],
            "cannot itself be hybrid",
        ),
        (
            &[
                "--tier",
                r#"{kind = "simulated", colour = "red", max_in_flight = 1}"#,
                "--tier",
                CLOUD,
            ],
            "--tier #1: key `colour`: unknown key",
        ),
        (
            &[
                "--tier",
                r#"{kind = "simulated", max_in_flight = 0}"#,
                "--tier",
                CLOUD,
            ],
            "key `max_in_flight`: `0`: expected an integer ≥ 1",
        ),
        (
            &["--tier", r#"{kind = "simulated"}"#, "--tier", CLOUD],
            "every tier but the last needs one",
        ),
        (
            &[
                "--tier",
                r#"{kind = "simulated", sim_ttft = "soon", max_in_flight = 1}"#,
                "--tier",
                CLOUD,
            ],
            "--tier #1: key `sim_ttft`",
        ),
        (
            &["--tier", "kind = simulated", "--tier", CLOUD],
            "expected a TOML inline table",
        ),
        (
            &["--tier", ONPREM, "--tier", CLOUD, "--model", "m.gguf"],
            "in each --tier table",
        ),
        (
            &[
                "--tier",
                r#"{kind = "simulated", name = "onprem"}"#,
                "--tier",
                CLOUD,
                "--hybrid-policy",
                "ttft-slo",
            ],
            "needs --spill-ttft",
        ),
        (
            &["--tier", ONPREM, "--tier", CLOUD, "--spill-ttft", "1s"],
            "applies only to --hybrid-policy ttft-slo",
        ),
        (
            &[
                "--tier",
                r#"{kind = "simulated", max_in_flight = 4, resume_below = 4}"#,
                "--tier",
                CLOUD,
                "--hybrid-policy",
                "queue-wait",
            ],
            "key `resume_below`: `4`: expected an integer from 0 to below max_in_flight (4)",
        ),
        (
            &[
                "--tier",
                r#"{kind = "simulated", max_in_flight = 4, resume_below = 1}"#,
                "--tier",
                CLOUD,
            ],
            "applies only to --hybrid-policy queue-wait",
        ),
        (
            &[
                "--tier",
                r#"{kind = "simulated", max_in_flight = 4, max_waiting = 2, resume_waiting = 3}"#,
                "--tier",
                CLOUD,
                "--hybrid-policy",
                "queue-wait",
            ],
            "key `resume_waiting`: `3`: expected an integer from 0 to max_waiting (2)",
        ),
        (
            &[
                "--tier",
                r#"{kind = "simulated", max_in_flight = 4, metrics_url = "ftp://x"}"#,
                "--tier",
                CLOUD,
                "--hybrid-policy",
                "queue-wait",
            ],
            "key `metrics_url`: `\"ftp://x\"`: expected an http:// or https:// URL",
        ),
        (
            &[
                "--tier",
                r#"{kind = "simulated", max_in_flight = 4, max_waiting = 1}"#,
                "--tier",
                CLOUD,
            ],
            "key `max_waiting`: applies only to --hybrid-policy queue-wait",
        ),
        (
            &["--tier", ONPREM, "--tier", CLOUD, "--isolation", "process"],
            "does not route between tiers",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["profile", "--backend", "hybrid", "-n", "1", "--no-progress"];
        args.extend_from_slice(extra);
        let o = charter(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: expected `{want}` in: {err}");
        // clap's own refusals add a "For more information, try '--help'." line.
        let message: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
            .collect();
        assert_eq!(message.len(), 1, "one line: {err}");
    }
    let o = charter(&[
        "profile",
        "--backend",
        "openai",
        "--base-url",
        "http://127.0.0.1:9",
        "--model",
        "m",
        "--tier-header",
        "bad header",
        "-n",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--tier-header `bad header`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_scenarios_tier_tables_are_the_tier_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("hybrid.toml");
    std::fs::write(
        &scenario,
        format!(
            "[backend]\nkind = \"hybrid\"\nhybrid_policy = \"in-flight\"\n\n[[backend.tier]]\n{}\n\n[[backend.tier]]\n{}\n\n[load]\nrequests = 4\n",
            inline_to_lines(ONPREM),
            inline_to_lines(CLOUD)
        ),
    )
    .unwrap();
    let dir = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--scenario",
        scenario.to_str().unwrap(),
        "--no-progress",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rec = validated_record(&dir);
    let tiers = rec["backend"]["hybrid"]["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 2);
    assert_eq!(tiers[0]["name"], "onprem");
    assert_eq!(tiers[1]["backend"]["kind"], "simulated");
}

/// `{a = 1, b = "x"}` as the lines `a = 1` and `b = "x"` of a table.
fn inline_to_lines(inline: &str) -> String {
    let t: toml::Table = toml::from_str(&format!("t = {inline}")).unwrap();
    toml::to_string(t["t"].as_table().unwrap()).unwrap()
}
