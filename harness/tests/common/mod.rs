//! Shared helpers for the harness integration tests.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real SmolLM2 GGUF fetched by `scripts/fetch-smollm2.sh` (the test script exports its
/// path). Missing model = failing test, with the command that fixes it.
pub fn smollm2_gguf() -> PathBuf {
    let p = std::env::var_os("CHARTER_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        p.is_file(),
        "SmolLM2 GGUF not found at {}: run scripts/fetch-smollm2.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Run the real `charter` binary.
pub fn charter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_charter"))
        .args(args)
        // Converted weights go to the checkout's cache (or CHARTER_CACHE), not the user's home.
        .env(
            "CHARTER_CACHE",
            std::env::var_os("CHARTER_CACHE")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| {
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../.cache")
                        .into()
                }),
        )
        .output()
        .expect("running charter")
}

/// `charter profile --backend openai` against `base` (model `test-model`, `--json`, no
/// progress line) into `run`, with `extra` flags.
pub fn profile_openai(base: &str, run: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "profile",
        "--backend",
        "openai",
        "--base-url",
        base,
        "--model",
        "test-model",
        "--out",
        run.to_str().unwrap(),
        "--no-progress",
        "--json",
    ];
    args.extend_from_slice(extra);
    charter(&args)
}

/// `charter profile --backend openai` against a faulty server at `base` (whose request count is
/// `requests`): four requests, one stream, no warm-up, no metrics scrape; the server makes
/// even-numbered requests meet the fault and odd ones complete with 6 tokens. Exit 0, two failures of `kind`, each row passed to `check`; the
/// record and every row kept.
pub fn assert_fault_at(
    base: &str,
    requests: &std::sync::atomic::AtomicU64,
    what: &str,
    kind: &str,
    extra: &[&str],
    check: impl Fn(&charter_record::RequestRow),
) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut args = vec![
        // These servers count every request, a GET /metrics too.
        "--server-metrics",
        "none",
        "--concurrency",
        "1",
        "--requests",
        "4",
        "--warmup",
        "0",
        "--max-tokens",
        "6",
    ];
    args.extend_from_slice(extra);
    let o = profile_openai(base, &run, &args);
    assert_eq!(o.status.code(), Some(0), "{what}: stderr: {}", stderr(&o));
    // No retries: four requests, four arrivals.
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "{what}"
    );
    let rec = validated_record(&run);
    assert_eq!(rec["complete"], true, "{what}");
    let s = &rec["levels"][0]["summary"];
    assert_eq!(s["requests_failed"], 2, "{what}: {s}");
    assert_eq!(s["requests_completed"], 2, "{what}: {s}");
    assert_eq!(s["errors"][kind], 2, "{what}: {s}");
    let rows = request_rows(&run);
    assert_eq!(rows.len(), 4, "{what}");
    for r in &rows {
        match r.error_kind {
            Some(k) => {
                assert_eq!(k.as_str(), kind, "{what}: {r:?}");
                let m = r.error_message.as_deref().unwrap();
                assert!(!m.contains('\n'), "{what}: one line: {m}");
                check(r);
            }
            None => assert_eq!(r.output_tokens, 6, "{what}: {r:?}"),
        }
    }
    rec
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Run `charter profile --backend simulated --out DIR` with `args`, expecting exit 0: the
/// temporary directory (keep it alive) and DIR.
pub fn run_simulated(args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut all = vec![
        "profile",
        "--backend",
        "simulated",
        "--out",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let o = charter(&all);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    (tmp, out)
}

/// Validate `run.json` in `dir` against the committed JSON Schema and return it.
pub fn validated_record(dir: &Path) -> serde_json::Value {
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/schema/run.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&record)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "run.json does not match the schema: {errors:#?}"
    );
    // The typed reader accepts it too.
    let _: charter_record::RunRecord = serde_json::from_value(record.clone()).unwrap();
    record
}

/// Rows of `requests.csv`.
pub fn request_rows(dir: &Path) -> Vec<charter_record::RequestRow> {
    let mut r = csv::Reader::from_path(dir.join("requests.csv")).unwrap();
    r.deserialize().map(|x| x.unwrap()).collect()
}

/// A `charter` child process (killed on drop) and the first `http://` address it printed on
/// stderr.
pub struct Spawned {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `charter ARGS` and wait for the first `http://` word on its stderr (which is then
/// drained, so the child never blocks on a full pipe).
pub fn spawn(args: &[&str]) -> Spawned {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_charter"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let url = loop {
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            panic!("charter exited before printing its address: {seen}");
        }
        if let Some(w) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break w.to_string();
        }
        seen.push_str(&line);
    };
    std::thread::spawn(move || {
        let mut sink = String::new();
        while lines.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    Spawned { child, url }
}
