//! `charter report`, `compare` and `plan` on real runs, and their bad-input errors.

mod common;

use common::*;

fn cost_example() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../cost.example.toml").to_string()
}

#[test]
fn report_compare_and_plan_from_records() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, levels) in [(&a, "1,2"), (&b, "1")] {
        let o = charter(&[
            "profile",
            "--concurrency",
            levels,
            "--requests",
            "2",
            "--warmup",
            "1",
            "--prompt-tokens",
            "8",
            "--max-tokens",
            "4",
            "--cooldown",
            "50ms",
            "--out",
            dir.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let out = tmp.path().join("charter");
    let o = charter(&[
        "report",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cost",
        &cost_example(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for f in [
        "charter.html",
        "charter.md",
        "charter.json",
        "levels.csv",
        "trace-0.json",
        "trace-1.json",
        "charts/ttft-cdf.png",
        "charts/ttft-cdf.svg",
        "charts/load-curve-0.png",
        "charts/break-even-0.png",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let ch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("charter.json")).unwrap()).unwrap();
    assert_eq!(ch["schema_version"], 1);
    assert_eq!(ch["runs"].as_array().unwrap().len(), 2);
    let csv = std::fs::read_to_string(out.join("levels.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3, "header + 2 + 1 levels");

    let o = charter(&["compare", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("TTFT p99") && stdout(&o).contains('×'),
        "{}",
        stdout(&o)
    );

    let o = charter(&[
        "plan",
        a.to_str().unwrap(),
        "--target-rps",
        "20",
        "--cost",
        &cost_example(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("node(s)") && text.contains("on-prem"),
        "{text}"
    );
}

#[test]
fn bad_report_inputs_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = tmp.path().join("out");
    let o = charter(&[
        "report",
        empty.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no run.json") && stderr(&o).contains("empty"),
        "{}",
        stderr(&o)
    );

    let run = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--requests",
        "1",
        "--warmup",
        "0",
        "--prompt-tokens",
        "4",
        "--max-tokens",
        "2",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let newer = tmp.path().join("newer");
    std::fs::create_dir(&newer).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    v["schema_version"] = serde_json::json!(7);
    std::fs::write(newer.join("run.json"), v.to_string()).unwrap();
    let o = charter(&[
        "report",
        newer.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("schema version 7 is newer"),
        "{}",
        stderr(&o)
    );

    let bad_cost = tmp.path().join("cost.toml");
    std::fs::write(
        &bad_cost,
        std::fs::read_to_string(cost_example())
            .unwrap()
            .replace("pue = 1.5", "pue = -1.5"),
    )
    .unwrap();
    let o = charter(&[
        "report",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cost",
        bad_cost.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cost.toml") && stderr(&o).contains("energy.pue"),
        "{}",
        stderr(&o)
    );
}
