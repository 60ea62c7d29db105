//! `charter gate` end to end on real runs of the tiny preset.

mod common;

use std::path::Path;

use common::*;

const RULES: &str = r#"
min_trials = 5
[rules]
"ttft.p50" = "max +5%"
"itl.p50" = "max +100%"
"#;

fn profile(out: &Path, prompt_tokens: &str) {
    let o = charter(&[
        "profile",
        "--prompt-tokens",
        prompt_tokens,
        "--max-tokens",
        "8",
        "--requests",
        "2",
        "--warmup",
        "1",
        "--trials",
        "5",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
}

/// Baseline with 16-token prompts, candidate with 384-token prompts: the candidate's prefill
/// (TTFT) is several times slower, while a decode step (ITL) grows far less than 2×.
#[test]
fn slowed_down_candidate_fails_on_the_right_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, cand) = (tmp.path().join("base"), tmp.path().join("cand"));
    profile(&base, "16");
    profile(&cand, "384");
    let rec = validated_record(&base);
    assert_eq!(rec["levels"].as_array().unwrap().len(), 5);
    assert_eq!(rec["levels"][4]["trial"], 4);
    let rules = tmp.path().join("gate.toml");
    std::fs::write(&rules, RULES).unwrap();
    let (junit, md, bmf, json) = (
        tmp.path().join("junit.xml"),
        tmp.path().join("gate.md"),
        tmp.path().join("bmf.json"),
        tmp.path().join("gate.json"),
    );
    let summary = tmp.path().join("step-summary.md");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_charter"))
        .args([
            "gate",
            "--baseline",
            base.to_str().unwrap(),
            "--candidate",
            cand.to_str().unwrap(),
        ])
        .args([
            "--rules",
            rules.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ])
        .args([
            "--markdown",
            md.to_str().unwrap(),
            "--bmf",
            bmf.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let text = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {text}\nstderr: {}",
        stderr(&o)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let verdict = |m: &str| {
        report["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["metric"] == m)
            .map(|v| v["verdict"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(verdict("ttft.p50"), "regression", "{text}");
    assert_ne!(verdict("itl.p50"), "regression", "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure") && xml.contains("ttft.p50"));
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("ttft.p50"),
        "appended to $GITHUB_STEP_SUMMARY"
    );
    assert!(std::fs::read_to_string(&md).unwrap().contains("|"));
    let bmf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bmf).unwrap()).unwrap();
    assert!(bmf["charter"]["ttft-p50"]["value"].is_number(), "{bmf}");

    // The same runs against themselves: nothing regressed.
    let o = charter(&[
        "gate",
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        base.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    // Calibration from the A/A trials suggests thresholds.
    let o = charter(&["gate", "calibrate", base.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("\"ttft.p50\" = \"max +"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_rules_and_bad_runs_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
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
    let r = run.to_str().unwrap();
    let gate = |rules: &str| {
        let p = tmp.path().join("rules.toml");
        std::fs::write(&p, rules).unwrap();
        charter(&[
            "gate",
            "--baseline",
            r,
            "--candidate",
            r,
            "--rules",
            p.to_str().unwrap(),
        ])
    };
    let o = gate("[rules]\n\"ttft.p42\" = \"max +5%\"\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("ttft.p42") && stderr(&o).contains("rules.toml"),
        "{}",
        stderr(&o)
    );
    let o = gate("[rules]\n\"ttft.p50\" = \"up 5\"\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ttft.p50"), "{}", stderr(&o));

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let rules = tmp.path().join("ok.toml");
    std::fs::write(&rules, RULES).unwrap();
    let o = charter(&[
        "gate",
        "--baseline",
        empty.to_str().unwrap(),
        "--candidate",
        r,
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no run.json"), "{}", stderr(&o));

    let newer = tmp.path().join("newer");
    std::fs::create_dir(&newer).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    v["schema_version"] = serde_json::json!(99);
    std::fs::write(newer.join("run.json"), v.to_string()).unwrap();
    let o = charter(&[
        "gate",
        "--baseline",
        newer.to_str().unwrap(),
        "--candidate",
        r,
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("newer"), "{}", stderr(&o));

    // Too few trials: inconclusive, exit 0 by default and 3 when asked.
    let o = charter(&[
        "gate",
        "--baseline",
        r,
        "--candidate",
        r,
        "--rules",
        rules.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).to_lowercase().contains("inconclusive"));
    let o = charter(&[
        "gate",
        "--baseline",
        r,
        "--candidate",
        r,
        "--rules",
        rules.to_str().unwrap(),
        "--fail-on-inconclusive",
    ]);
    assert_eq!(o.status.code(), Some(3));
}
