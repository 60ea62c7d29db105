//! End-to-end runs of `charter profile` through the real binary.

mod common;

use charter_record::TokenCountSource;
use common::*;

#[test]
fn tiny_preset_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--concurrency",
        "2",
        "--requests",
        "6",
        "--warmup",
        "2",
        "--prompt-tokens",
        "16",
        "--max-tokens",
        "8",
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("--json prints JSON");
    assert_eq!(out["levels"][0]["summary"]["requests_completed"], 6);

    let rec = validated_record(&run);
    assert_eq!(rec["complete"], true);
    assert_eq!(rec["status"], "finished");
    assert_eq!(rec["backend"]["weights"]["kind"], "random_preset");
    assert_eq!(rec["backend"]["weights"]["preset"], "tiny-15m");
    assert_eq!(
        rec["backend"]["threads_per_instance"], 1,
        "2 cores / 2 streams"
    );
    assert_eq!(rec["levels"].as_array().unwrap().len(), 1);
    let level = &rec["levels"][0];
    assert_eq!(level["load"]["kind"], "closed_loop");
    assert_eq!(level["load"]["concurrency"], 2);
    let s = &level["summary"];
    assert_eq!(s["requests_completed"], 6);
    assert_eq!(s["requests_failed"], 0);
    assert_eq!(s["warmup_requests_excluded"], 2);
    // Presets have no EOS: every request generates exactly max_tokens.
    assert_eq!(s["output_tokens"], 6 * 8);
    assert_eq!(s["prompt_tokens"], 6 * 16);
    assert_eq!(s["stop_reasons"]["max_tokens"], 6);
    assert_eq!(s["ttft"]["count"], 6);
    assert_eq!(s["itl"]["count"], 6);
    assert_eq!(s["chunk_gaps"]["count"], 6 * 7);
    assert!(s["output_token_throughput_per_s"].as_f64().unwrap() > 0.0);
    let res = &level["resources"];
    assert!(res["peak_rss_bytes"].as_u64().unwrap() > 10_000_000);
    assert!(res["ram_baseline_bytes"].as_u64().unwrap() > 0);
    assert!(res["sampler"]["samples"].as_u64().unwrap() >= 1);

    let rows = request_rows(&run);
    assert_eq!(rows.len(), 8, "2 warm-up + 6 measured rows");
    assert_eq!(rows.iter().filter(|r| r.warmup).count(), 2);
    for r in rows.iter().filter(|r| !r.warmup) {
        assert_eq!(r.output_tokens, 8);
        assert_eq!(r.prompt_tokens, 16);
        assert_eq!(r.token_count_source, TokenCountSource::Backend);
        let ttft = r.ttft_s.unwrap();
        let e2e = r.e2e_s.unwrap();
        assert!(ttft > 0.0 && e2e >= ttft && r.end_s >= r.start_s + e2e - 1e-9);
        let itl = r.itl_s.unwrap();
        assert!((itl - (e2e - ttft) / 7.0).abs() < 1e-9);
    }
    let samples = std::fs::read_to_string(run.join("samples.csv")).unwrap();
    assert!(samples.starts_with("t_s,process_cpu_s,process_cpu_cores,rss_bytes,system_busy_cores"));
    assert!(samples.lines().count() >= 2);
}

#[test]
fn console_summary_names_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    let o = charter(&[
        "profile",
        "--requests",
        "2",
        "--warmup",
        "0",
        "--prompt-tokens",
        "8",
        "--max-tokens",
        "4",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "TTFT",
        "ITL",
        "E2E",
        "p50",
        "p90",
        "p99",
        "max",
        "output tokens/s",
        "requests/s",
        "CPU cores used",
        "RSS: peak",
        "run.json",
    ] {
        assert!(text.contains(needle), "summary lacks {needle:?}:\n{text}");
    }
}

#[test]
fn smollm2_gguf_end_to_end() {
    let model = smollm2_gguf();
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--model",
        model.to_str().unwrap(),
        "--concurrency",
        "2",
        "--requests",
        "2",
        "--warmup",
        "0",
        "--max-tokens",
        "6",
        "--ignore-eos",
        "--pin",
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rec = validated_record(&run);
    let b = &rec["backend"];
    assert_eq!(b["architecture"], "llama");
    // Q4_1 has no SIMD kernel in candle: converted to Q8_0 by default, and recorded.
    let c = &b["weights_conversion"];
    assert_eq!(c["requested"], "auto");
    assert_eq!(c["from"][0], "q4_1");
    assert_eq!(c["to"], "q8_0");
    assert!(c["tensors_converted"].as_u64().unwrap() > 0);
    assert!(!b["dtype"].as_str().unwrap().contains("q4_1"), "{b}");
    assert_eq!(b["kv_cache"]["dtype"], "f32");
    // Each instance's threads pinned, and recorded per instance.
    let per = b["threads_per_instance"].as_u64().unwrap() as usize;
    let cores = b["pinning"]["cores"].as_array().unwrap();
    assert_eq!(cores.len(), 2, "{b}");
    assert!(cores.iter().all(|c| c.as_array().unwrap().len() == per));
    assert_eq!(b["weights"]["kind"], "files");
    assert_eq!(b["weights"]["format"], "gguf");
    assert_eq!(
        b["weights"]["files"][0]["sha256"],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert_eq!(b["tokenizer"]["source"], "gguf-metadata");
    assert_eq!(b["vocab_size"], 49152);
    assert_eq!(b["eos_token_ids"][0], 2);
    assert_eq!(rec["levels"][0]["summary"]["output_tokens"], 12);
    assert_eq!(rec["levels"][0]["summary"]["requests_completed"], 2);
    assert_eq!(b["chat_template"], "gguf-metadata");
    // A model with a tokenizer replays the built-in corpus by default, through its chat template.
    assert!(rec["workload"]["prompt"]["source"]
        .as_str()
        .unwrap()
        .starts_with("corpus"));
    assert!(rec["workload"]["prompt"]["license"]
        .as_str()
        .unwrap()
        .contains("CC0"));
    let rows = request_rows(&run);
    assert!(
        rows.iter().all(|r| r.prompt_tokens > 20),
        "chat-templated corpus prompts"
    );
}
