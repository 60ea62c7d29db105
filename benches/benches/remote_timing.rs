//! `cargo bench -p charter-benches --bench remote_timing`: how closely charter's remote TTFT
//! and ITL match delays injected by a scripted server on this machine (p50 of the per-request
//! differences, at concurrency 1 and 64). A figure to read, not a test: client and server share
//! the machine's cores, so the figure depends on the machine's load, and a pass/fail check on
//! it could only be made reliable by retrying, which would hide a real stamping error. The
//! deterministic bounds (a held header shows in TTFT; `start` precedes the write) are tests in
//! `harness/tests/remote.rs`. Run as a test (`cargo test --all-targets`) it measures one small
//! level only.

#[path = "../../harness/tests/common/sse_server.rs"]
#[allow(dead_code)]
mod sse_server;

use std::time::Duration;

use sse_server::{Script, TestServer};

/// Five delay variants (so that 64 streams do not stay in lock-step), told apart in the rows
/// by the prompt-token count the server reports.
fn injected(k: u64) -> (f64, f64) {
    (0.026 + 0.002 * k as f64, 0.008 + 0.0005 * k as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let srv = TestServer::start(|n| {
        let k = n % 5;
        let (ttft, itl) = injected(k);
        Script {
            ttft: Duration::from_secs_f64(ttft),
            itl: Duration::from_secs_f64(itl),
            prompt_tokens: k,
            ..Script::openai(0, 0, 10)
        }
    });
    let levels: &[(&str, &str, &str)] = if full {
        &[("1", "30", "2"), ("64", "384", "64")]
    } else {
        &[("1", "5", "1")]
    };
    for &(c, n, warm) in levels {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("run");
        let base = srv.base_url();
        let code = charter::main_with_args([
            "charter",
            "profile",
            "--backend",
            "openai",
            "--base-url",
            &base,
            "--model",
            "m",
            "--concurrency",
            c,
            "--requests",
            n,
            "--warmup",
            warm,
            "--max-tokens",
            "10",
            "--no-progress",
            "--out",
            run.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "charter profile failed");
        let mut reader = csv::Reader::from_path(run.join("requests.csv")).unwrap();
        let rows: Vec<charter_record::RequestRow> = reader
            .deserialize()
            .map(|r| r.unwrap())
            .filter(|r: &charter_record::RequestRow| !r.warmup && r.error_kind.is_none())
            .collect();
        let ttft = median(
            rows.iter()
                .map(|r| r.ttft_s.unwrap() - injected(r.prompt_tokens).0)
                .collect(),
        );
        let itl = median(
            rows.iter()
                .map(|r| r.itl_s.unwrap() - injected(r.prompt_tokens).1)
                .collect(),
        );
        println!(
            "remote timing, concurrency {c}, {} requests: TTFT − injected p50 {:+.3} ms, ITL − injected p50 {:+.3} ms",
            rows.len(),
            ttft * 1e3,
            itl * 1e3
        );
    }
}
