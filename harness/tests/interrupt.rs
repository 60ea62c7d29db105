//! Ctrl-C (SIGINT) stops the run, keeps what was measured, and exits 130.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigint_writes_partial_record_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_charter"))
        .args([
            "profile",
            "--duration",
            "120s",
            "--warmup",
            "0",
            "--prompt-tokens",
            "8",
            "--max-tokens",
            "16",
            "--out",
            run.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some requests are on disk.
    let t0 = Instant::now();
    loop {
        let rows = std::fs::read_to_string(run.join("requests.csv"))
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if rows >= 3 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no requests recorded in 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = validated_record(&run);
    assert_eq!(rec["complete"], false);
    assert_eq!(rec["status"], "interrupted");
    let rows = request_rows(&run);
    assert!(rows.len() >= 2);
    let completed = rec["levels"][0]["summary"]["requests_completed"]
        .as_u64()
        .unwrap();
    assert!(completed >= 2, "measured requests kept: {completed}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("INTERRUPTED"));
}
