//! Contention and client saturation, measured through the real `charter profile` binary: a
//! busy-loop process beside a run is reported as other processes' cores and flags the level;
//! charter pinned to one core driving a fast server is flagged `client_bound`.
//!
//! Its own test binary (cargo runs test binaries one after another), and its tests run one at
//! a time: the CPU they measure must not be shared with other tests.

mod common;
#[allow(dead_code)] // the faults and the Anthropic wire are for the other test files
#[path = "common/sse_server.rs"]
mod sse_server;

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{charter, stderr, validated_record};
use sse_server::{Script, TestServer};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A process that spins on one core until dropped.
struct BusyLoop(Child);

impl BusyLoop {
    fn start() -> Self {
        let child = Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .expect("sh starts");
        Self(child)
    }

    /// CPU seconds it has used so far (utime + stime from /proc, in clock ticks).
    fn cpu_s(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap();
        // The fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks / hz
    }
}

impl Drop for BusyLoop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A busy loop started beside a run is the other processes' CPU: reported within 15 % of what
/// the loop measurably used, and the level is flagged as contended.
#[test]
fn a_busy_loop_beside_the_run_is_reported_and_flagged() {
    let _serial = serial();
    let busy = BusyLoop::start();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (cpu0, t0) = (busy.cpu_s(), Instant::now());
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = charter(&[
        "profile",
        "--backend",
        "simulated",
        "--sim-ttft",
        "10ms",
        "--sim-itl",
        "10ms",
        "--max-tokens",
        "8",
        "--duration",
        "3s",
        "--requests",
        "100000",
        "--warmup",
        "0",
        "--no-progress",
        "--out",
        run.to_str().unwrap(),
    ]);
    let busy_cores = (busy.cpu_s() - cpu0) / t0.elapsed().as_secs_f64();
    drop(busy);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rec = validated_record(&run);
    let c = &rec["levels"][0]["contention"];
    let other = c["other_cores"]["mean"]
        .as_f64()
        .expect("other cores measured");
    assert!(
        busy_cores > 0.5,
        "the busy loop got only {busy_cores:.2} cores: this machine is too loaded for the test"
    );
    assert!(
        (other - busy_cores).abs() <= 0.15 * busy_cores,
        "other processes {other:.3} cores vs the busy loop's {busy_cores:.3}: {c}"
    );
    assert_eq!(c["flagged"], true, "{c}");
    let out = common::stdout(&o);
    assert!(out.contains("other processes:"), "{out}");
}

/// charter pinned to one core, driving 32 streams against a server on the other core that
/// answers at once: charter's own process is the bottleneck, and the level says so.
#[test]
fn a_saturated_client_is_flagged_client_bound() {
    let _serial = serial();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cores >= 2,
        "this test pins charter and the server to different cores: it needs 2, found {cores}"
    );
    // Every thread of this test process (the server's among them) on core 1, charter on core 0.
    let pinned = Command::new("taskset")
        .args(["-a", "-cp", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("taskset runs");
    assert!(pinned.success());
    let srv = TestServer::start(|_| Script::openai(0, 0, 64));
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let charter_bin = env!("CARGO_BIN_EXE_charter");
    let o = Command::new("taskset")
        .args(["-c", "0", charter_bin])
        .args([
            "profile",
            "--backend",
            "openai",
            "--base-url",
            &srv.base_url(),
            "--model",
            "m",
            "--concurrency",
            "32",
            "--max-tokens",
            "64",
            "--duration",
            "3s",
            "--requests",
            "1000000",
            "--warmup",
            "32",
            "--no-progress",
            "--out",
            run.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let rec = validated_record(&run);
    let l = &rec["levels"][0];
    let cb = &l["client_bound"];
    assert_eq!(cb["cores_available"], 1.0, "{cb}");
    let own = l["resources"]["process_cpu_cores"]["mean"]
        .as_f64()
        .unwrap();
    assert!(own >= 0.9, "charter used {own:.2} of its one core: {cb}");
    assert_eq!(cb["flagged"], true, "{cb}");
    assert!(
        cb["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains("charter's own process used")),
        "{cb}"
    );
}
