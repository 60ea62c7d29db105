//! `charter bench-engine`: one worker process per thread count, a table on stdout and
//! bench-engine.json with every measurement.

mod common;

use common::*;

#[test]
fn bench_engine_measures_each_thread_count_in_its_own_process() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bench");
    let o = charter(&[
        "bench-engine",
        "--preset",
        "tiny-15m",
        "--thread-counts",
        "1,2",
        "--prompt-tokens",
        "16,64",
        "--decode-tokens",
        "8",
        "--reps",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.contains("pp16 tok/s") && table.contains("tg8 tok/s"),
        "{table}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bench-engine.json")).unwrap())
            .unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, threads) in results.iter().zip([1, 2]) {
        assert_eq!(r["threads"], threads);
        assert_eq!(r["kv_cache_dtype"], "f32");
        assert!(r["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{r}");
        let prefill = r["prefill"].as_array().unwrap();
        assert_eq!(prefill.len(), 2);
        for p in prefill {
            let s = &p["tokens_per_s"];
            assert_eq!(s["values"].as_array().unwrap().len(), 2);
            assert!(s["median"].as_f64().unwrap() > 0.0, "{p}");
        }
        let d = &r["decode_tokens_per_s"];
        assert!(d["min"].as_f64().unwrap() <= d["median"].as_f64().unwrap());
        assert!(d["median"].as_f64().unwrap() <= d["max"].as_f64().unwrap());
    }
}

#[test]
fn bench_engine_says_what_does_not_fit_the_context() {
    // tiny-15m has a 2048-token context: a 4096-token prompt is reported as not measured.
    let o = charter(&[
        "bench-engine",
        "--preset",
        "tiny-15m",
        "--thread-counts",
        "1",
        "--prompt-tokens",
        "16,4096",
        "--decode-tokens",
        "4",
        "--reps",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("pp4096: not measured"), "{table}");
}

#[test]
fn bench_engine_refuses_threads_and_remote_backends() {
    let o = charter(&["bench-engine", "--threads", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--thread-counts"), "{}", stderr(&o));
    let o = charter(&["bench-engine", "--backend", "simulated"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--backend"), "{}", stderr(&o));
}
