//! Sharded runs: N local processes with `JOB_COMPLETION_INDEX` set (as a Kubernetes Indexed Job
//! sets it) replay one seeded open-loop schedule against the in-process SIMULATED backend, and
//! `charter merge` combines them. What a single process would have done is known from a
//! single-process run of the same settings, so the merge is checked against it exactly.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use charter_record::Latency;
use charter_reports::histograms;
use charter_reports::LatencyHistogram;
use common::*;
use serde_json::Value;

/// The backend and workload every run here shares: a few ms of service per request.
const BASE: &[&str] = &[
    "profile",
    "--backend",
    "simulated",
    "--sim-ttft",
    "3ms",
    "--sim-itl",
    "1ms",
    "--max-tokens",
    "4",
    "--prompts",
    "synthetic",
    "--prompt-tokens",
    "uniform:4:32",
    "--no-progress",
    "--json",
];

/// Short open-loop runs: 2 warm-up + 40 measured arrivals at 200 req/s.
const OPEN: &[&str] = &["--rate", "200", "--requests", "40", "--warmup", "2"];

const SCHEDULER_VARS: &[&str] = &[
    "JOB_COMPLETION_INDEX",
    "JOB_COMPLETIONS",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
];

/// `charter` with `args`, the scheduler's variables cleared and then set to `env`.
fn spawn(args: &[&str], env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_charter"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for v in SCHEDULER_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.spawn().expect("starting charter")
}

fn ok(o: Output) -> Output {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    o
}

/// `charter profile` with the shared settings, `extra` and `--out out`.
fn with_out<'a>(extra: &[&'a str], out: &'a Path) -> Vec<&'a str> {
    let mut args: Vec<&str> = BASE.to_vec();
    args.extend_from_slice(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    args
}

/// Run `n` shards at once (`JOB_COMPLETION_INDEX` = k, `--shards n`) into `dir/shard-k`.
fn run_shards(dir: &Path, n: u32, extra: &[&str]) -> Vec<PathBuf> {
    let outs: Vec<PathBuf> = (0..n).map(|k| dir.join(format!("shard-{k}"))).collect();
    let shards = n.to_string();
    let children: Vec<Child> = outs
        .iter()
        .enumerate()
        .map(|(k, out)| {
            let mut args = with_out(extra, out);
            args.extend(["--shards", &shards]);
            spawn(&args, &[("JOB_COMPLETION_INDEX", k.to_string())])
        })
        .collect();
    for c in children {
        ok(c.wait_with_output().unwrap());
    }
    outs
}

fn merge(shards: &[PathBuf], out: &Path) -> Output {
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    charter(&args)
}

fn record(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

/// The `shard` column of a merged `requests.csv`, row by row.
fn shard_column(dir: &Path) -> Vec<usize> {
    let mut r = csv::Reader::from_path(dir.join("requests.csv")).unwrap();
    assert_eq!(&r.headers().unwrap()[0], "shard");
    r.records()
        .map(|x| x.unwrap()[0].parse().unwrap())
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn shards_replay_the_single_schedule_and_merge_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let single = tmp.path().join("single");
    ok(spawn(&with_out(OPEN, &single), &[])
        .wait_with_output()
        .unwrap());
    let single_rec = record(&single);
    let level = &single_rec["levels"][0];
    let origin = f(&level["schedule_start_s"]);
    // id -> scheduled offset of the single process (its intended start − its schedule origin).
    let schedule: BTreeMap<u64, f64> = request_rows(&single)
        .iter()
        .map(|r| (r.id, r.intended_start_s - origin))
        .collect();
    assert_eq!(schedule.len(), 42);

    for n in [1u32, 2, 4] {
        let dir = tmp.path().join(format!("n{n}"));
        let shards = run_shards(&dir, n, OPEN);
        let shard_recs: Vec<Value> = shards.iter().map(|s| validated_record(s)).collect();
        for (k, r) in shard_recs.iter().enumerate() {
            assert_eq!(r["shard"]["index"], k as u64);
            assert_eq!(r["shard"]["count"], n);
            assert_eq!(
                r["shard"]["config_hash"],
                shard_recs[0]["shard"]["config_hash"]
            );
            assert!(r["shard"]["clock"]["source"].is_string());
        }
        let merged = dir.join("merged");
        ok(merge(&shards, &merged));
        let m = validated_record(&merged);
        let rows = request_rows(&merged);
        let owner = shard_column(&merged);

        // The union of the shards is the single process's schedule: the same request ids,
        // each at the same offset of the shared seeded schedule (to the nanosecond rounding of
        // the monotonic clock), each on the shard that owns its index.
        let mut offsets = BTreeMap::new();
        for (row, &k) in rows.iter().zip(&owner) {
            assert_eq!(
                row.id % u64::from(n),
                k as u64,
                "id {} on shard {k}",
                row.id
            );
            let origin = f(&m["merge"]["shards"][k]["levels"][0]["schedule_start_s"]);
            assert!(offsets
                .insert(row.id, row.intended_start_s - origin)
                .is_none());
        }
        assert_eq!(
            offsets.keys().collect::<Vec<_>>(),
            schedule.keys().collect::<Vec<_>>(),
            "n = {n}"
        );
        for (id, offset) in &offsets {
            assert!(
                (offset - schedule[id]).abs() < 1e-6,
                "n = {n}: request {id} scheduled at {offset} s, single process {} s",
                schedule[id]
            );
        }

        // Counts add up.
        let sum = |key: &str| -> u64 {
            shard_recs
                .iter()
                .map(|r| r["levels"][0]["summary"][key].as_u64().unwrap())
                .sum()
        };
        let s = &m["levels"][0]["summary"];
        assert_eq!(
            s["requests_completed"].as_u64(),
            Some(sum("requests_completed"))
        );
        assert_eq!(s["requests_completed"].as_u64(), Some(40), "n = {n}");
        assert_eq!(s["warmup_requests_excluded"].as_u64(), Some(2));
        assert_eq!(s["output_tokens"].as_u64(), Some(sum("output_tokens")));
        assert_eq!(m["merge"]["shards"].as_array().unwrap().len(), n as usize);

        // The merged histograms are the histograms of the union of the requests, bucket by
        // bucket; chunk gaps (not in requests.csv) are the sum of the shards' counts.
        let hists = histograms::read_level(&merged.join("histograms"), 0).unwrap();
        let measured: Vec<_> = rows.iter().filter(|r| !r.warmup).collect();
        for metric in [
            Latency::Ttft,
            Latency::E2eFromIntended,
            Latency::ScheduleLag,
        ] {
            let mut union = LatencyHistogram::new();
            for r in &measured {
                union.record_s(metric.of_row(r).unwrap());
            }
            let i = Latency::ALL.iter().position(|l| *l == metric).unwrap();
            assert_eq!(hists[i].buckets(), union.buckets(), "n = {n}: {metric:?}");
            assert_eq!(
                s[metric.name()]["count"].as_u64(),
                Some(union.len()),
                "the summary is the merged histogram's"
            );
        }
        let gaps: u64 = shard_recs
            .iter()
            .map(|r| {
                r["levels"][0]["summary"]["chunk_gaps"]["count"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        assert_eq!(s["chunk_gaps"]["count"].as_u64(), Some(gaps));
        assert_eq!(gaps, 40 * 3, "4 tokens per request, one chunk each");
        // Throughput over the union window.
        let w = &m["levels"][0]["window"];
        let rate = f(&s["request_throughput_per_s"]);
        assert!((rate - 40.0 / f(&w["duration_s"])).abs() < 1e-9);

        if n == 2 {
            check_refusals_and_flags(&dir, &shards, &merged);
        }
    }
}

/// Mismatched settings, duplicate and missing shards are refused naming them; an
/// unsynchronised clock is flagged; the merged directory is a run directory for
/// report, compare, plan and gate.
fn check_refusals_and_flags(dir: &Path, shards: &[PathBuf], merged: &Path) {
    let refused = |o: Output, needle: &str| {
        assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{needle}: {}", stderr(&o));
    };
    let out = dir.join("refused");
    refused(
        merge(
            &[shards[0].clone(), shards[0].clone(), shards[1].clone()],
            &out,
        ),
        "duplicate shard 0",
    );
    refused(merge(&shards[..1], &out), "missing shard 1 of 2");
    assert!(!out.join("run.json").exists());
    // Shard 1 of a run with other settings.
    let other = dir.join("other");
    ok(spawn(
        &[
            with_out(OPEN, &other),
            vec!["--ignore-eos", "--shard", "1/2"],
        ]
        .concat(),
        &[],
    )
    .wait_with_output()
    .unwrap());
    let o = merge(&[shards[0].clone(), other.clone()], &out);
    refused(o, "shards of different settings");
    let o = merge(&[shards[0].clone(), other], &out);
    assert!(stderr(&o).contains("other (shard 1)"), "{}", stderr(&o));

    // Shard 0's clock synchronised, shard 1's not: only shard 1 is flagged.
    for (k, synced) in [(0, true), (1, false)] {
        let p = shards[k].join("run.json");
        let mut r: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        r["shard"]["clock"]["synchronised"] = Value::Bool(synced);
        r["shard"]["clock"]["max_error_s"] = if synced { 0.001 } else { 16.0 }.into();
        std::fs::write(&p, serde_json::to_vec(&r).unwrap()).unwrap();
    }
    let flagged = dir.join("flagged");
    let o = ok(merge(shards, &flagged));
    assert!(
        stderr(&o).contains("shard 1 (") && stderr(&o).contains("clock not synchronised"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("shard 0 ("), "{}", stderr(&o));
    let m = record(&flagged);
    assert_eq!(m["merge"]["unsynchronised_shards"], serde_json::json!([1]));
    assert_eq!(f(&m["merge"]["clock_offset_bound_s"]), 16.001);
    assert!(f(&m["merge"]["start_spread_s"]) >= 0.0);

    // The merged directory is a run directory.
    let m = merged.to_str().unwrap();
    let report = dir.join("report");
    ok(charter(&["report", m, "--out", report.to_str().unwrap()]));
    assert!(report.join("charter.json").exists());
    ok(charter(&["compare", m, flagged.to_str().unwrap()]));
    ok(charter(&["plan", m, "--target-rps", "500"]));
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "min_trials = 2\n[rules]\n\"ttft.p50\" = \"max +50%\"\n",
    )
    .unwrap();
    let flagged = flagged.to_str().unwrap();
    let o = ok(charter(&[
        "gate",
        "--baseline",
        m,
        flagged,
        "--candidate",
        flagged,
        m,
        "--rules",
        rules.to_str().unwrap(),
    ]));
    assert!(stdout(&o).contains("ttft.p50"), "{}", stdout(&o));
}

#[test]
fn closed_loop_shards_split_streams_and_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--concurrency", "3", "--requests", "7", "--warmup", "3"];
    let args = |out: &Path| -> Vec<String> {
        with_out(&extra, out)
            .into_iter()
            .map(str::to_string)
            .collect()
    };
    let outs: Vec<PathBuf> = (0..2).map(|k| tmp.path().join(format!("s{k}"))).collect();
    for (k, out) in outs.iter().enumerate() {
        let mut a = args(out);
        a.extend(["--shard".into(), format!("{k}/2")]);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(spawn(&a, &[]).wait_with_output().unwrap());
    }
    // Shard 0: 2 streams, 4 of 7 requests, 2 of 3 warm-ups; shard 1: 1 stream, 3 and 1.
    for (out, streams, measured, warm) in [(&outs[0], 2, 4, 2), (&outs[1], 1, 3, 1)] {
        let rows = request_rows(out);
        let instances: std::collections::BTreeSet<u32> = rows.iter().map(|r| r.instance).collect();
        assert_eq!(instances.len(), streams, "{}", out.display());
        assert_eq!(rows.iter().filter(|r| !r.warmup).count(), measured);
        assert_eq!(rows.iter().filter(|r| r.warmup).count(), warm);
    }
    let merged = tmp.path().join("m");
    ok(merge(&outs, &merged));
    let mut ids: Vec<u64> = request_rows(&merged).iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..10).collect::<Vec<_>>(),
        "the ids of one 10-request run"
    );
    assert_eq!(
        record(&merged)["levels"][0]["summary"]["requests_completed"],
        7
    );

    // Fewer streams than shards: refused before anything runs.
    let mut a = args(&tmp.path().join("x"));
    a.extend(["--shard".into(), "0/4".into()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = spawn(&a, &[]).wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--concurrency 3"), "{}", stderr(&o));
    // An index without a count.
    let y = tmp.path().join("y");
    let a = with_out(OPEN, &y);
    let o = spawn(&a, &[("JOB_COMPLETION_INDEX", "1".into())])
        .wait_with_output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("JOB_COMPLETION_INDEX is set"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn start_at_waits_starts_late_at_once_and_refuses_the_far_future() {
    let tmp = tempfile::tempdir().unwrap();
    let rfc = |t: std::time::SystemTime| humantime::format_rfc3339_millis(t).to_string();
    let now = std::time::SystemTime::now;
    // In the past: starts at once and says so.
    let past = rfc(now() - std::time::Duration::from_secs(90));
    let out = tmp.path().join("past");
    let o = ok(spawn(
        &[with_out(OPEN, &out), vec!["--start-at", &past]].concat(),
        &[],
    )
    .wait_with_output()
    .unwrap());
    assert!(stderr(&o).contains("starting at once"), "{}", stderr(&o));
    // Far future: refused without --wait, before loading anything.
    let far = rfc(now() + std::time::Duration::from_secs(2 * 3600));
    let out = tmp.path().join("far");
    let o = spawn(
        &[with_out(OPEN, &out), vec!["--start-at", &far]].concat(),
        &[],
    )
    .wait_with_output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--wait"), "{}", stderr(&o));
    assert!(!out.exists());
    // Soon: the first arrival is not scheduled before the start time.
    let at = now() + std::time::Duration::from_millis(1500);
    let out = tmp.path().join("soon");
    let o = ok(spawn(
        &[
            with_out(OPEN, &out),
            vec!["--shard", "0/1", "--start-at", &rfc(at)],
        ]
        .concat(),
        &[],
    )
    .wait_with_output()
    .unwrap());
    assert!(stderr(&o).contains("waiting"), "{}", stderr(&o));
    let r = validated_record(&out);
    let at_unix = at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let first = f(&r["shard"]["epoch_unix_s"]) + f(&r["levels"][0]["schedule_start_s"]);
    // Millisecond-rounded RFC 3339 and float seconds: allow 2 ms of representation slack.
    assert!(
        first >= at_unix - 0.002,
        "first arrival {first} before {at_unix}"
    );
    assert!(f(&r["shard"]["start_late_s"]) >= 0.0);
    assert!(r["shard"]["start_at"].is_string());
}

/// A trace replay split over shards: every row once, on the shard `i mod N` names, at its
/// trace time, with the row's lengths; the union is the single process's requests.
#[test]
fn trace_rows_are_dealt_to_shards_and_merge_to_the_single_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let trace =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/traces/mooncake-sample.jsonl");
    let args = |out: &Path| -> Vec<String> {
        [
            "profile",
            "--backend",
            "simulated",
            "--sim-ttft",
            "3ms",
            "--sim-itl",
            "1ms",
            "--trace",
            trace.to_str().unwrap(),
            "--trace-speed",
            "20",
            "--no-progress",
            "--json",
            "--shards",
            "3",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let single = tmp.path().join("single");
    let mut one = args(&single);
    one.truncate(one.len() - 4); // no --shards
    one.extend(["--out".to_string(), single.to_str().unwrap().to_string()]);
    let refs: Vec<&str> = one.iter().map(String::as_str).collect();
    ok(spawn(&refs, &[]).wait_with_output().unwrap());
    let shards: Vec<PathBuf> = (0..3)
        .map(|k| tmp.path().join(format!("shard-{k}")))
        .collect();
    let children: Vec<Child> = shards
        .iter()
        .enumerate()
        .map(|(k, out)| {
            let a = args(out);
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            spawn(&refs, &[("JOB_COMPLETION_INDEX", k.to_string())])
        })
        .collect();
    for c in children {
        ok(c.wait_with_output().unwrap());
    }
    let merged = tmp.path().join("merged");
    ok(merge(&shards, &merged));
    let key = |r: &charter_record::RequestRow| (r.id, r.prompt_tokens, r.output_tokens);
    let mut want: Vec<_> = request_rows(&single).iter().map(key).collect();
    let mut got: Vec<_> = request_rows(&merged).iter().map(key).collect();
    want.sort();
    got.sort();
    assert!(want.len() > 10, "{want:?}");
    assert_eq!(
        got, want,
        "the shards replayed every row once, with its lengths"
    );
    for (k, dir) in shards.iter().enumerate() {
        assert!(
            request_rows(dir).iter().all(|r| r.id as usize % 3 == k),
            "shard {k} keeps rows i mod 3 = {k}"
        );
    }
}
