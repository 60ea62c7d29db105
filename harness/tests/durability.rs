//! What a run leaves when it cannot end well: killed with SIGKILL at several points (no chance
//! to clean up), or out of disk space for its results. Every request row on disk is whole and
//! readable, `run.json` parses and says `complete: false`, and `charter report` says the run is
//! partial and how many request rows it holds.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A simulated run that would take a minute: 2 streams, short requests.
fn long_run(out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_charter"));
    c.args([
        "profile",
        "--backend",
        "simulated",
        "--sim-ttft",
        "2ms",
        "--sim-itl",
        "1ms",
        "--concurrency",
        "2",
        "--max-tokens",
        "16",
        "--warmup",
        "0",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

/// Lines of `requests.csv` (header included); 0 when it does not exist yet.
fn csv_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("requests.csv"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// `charter report` on `run`: exit 0, and the headline says the run is partial and holds
/// `rows` request rows.
fn assert_reported_partial(run: &Path, rows: usize, why: &str) {
    let rep = run.with_extension("report");
    let o = charter(&[
        "report",
        "--out",
        rep.to_str().unwrap(),
        run.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{why}: {}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("PARTIAL RUN") && text.contains(&format!("holds {rows} request row(s)")),
        "{why}: {text}"
    );
}

/// SIGKILL at several points of a run: right after the start, once `run.json` exists, after
/// the first request rows, and at five moments spread over the first 1.5 s. Whatever
/// exists is readable: `run.json` validates and says `complete: false` (status `running`), every
/// line of `requests.csv` is a whole row (the file never ends inside a row), and `charter
/// report` names the run partial with the number of rows kept.
#[test]
fn sigkill_at_any_point_leaves_readable_partial_results() {
    // (what to wait for before the kill, extra delay): the delays spread over the first 1.5 s
    // at uneven steps, so that they fall at different moments of the request cycle.
    let mut points: Vec<(usize, u64)> = vec![(0, 0), (1, 0), (3, 0), (40, 0)];
    points.extend([137, 402, 655, 918, 1291].map(|ms| (0, ms)));
    let tmp = tempfile::tempdir().unwrap();
    for (i, (lines, delay_ms)) in points.into_iter().enumerate() {
        let run = tmp.path().join(format!("run{i}"));
        let mut child = long_run(&run).args(["--duration", "60s"]).spawn().unwrap();
        let t0 = Instant::now();
        // lines 1: run.json written; n > 1: the header and n - 1 rows on disk.
        while (lines == 1 && !run.join("run.json").exists())
            || (lines > 1 && csv_lines(&run) < lines)
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "point {i}: {lines} line(s) not reached in 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "point {i}: the run was still going"
        );
        let why = format!("point {i} ({lines} line(s), +{delay_ms} ms)");
        if !run.join("run.json").exists() {
            // Killed before the record was first written: nothing to read, and no row either.
            assert!(lines == 0, "{why}");
            assert_eq!(csv_lines(&run), 0, "{why}");
            continue;
        }
        let rec = validated_record(&run);
        assert_eq!(rec["complete"], false, "{why}");
        assert_eq!(rec["status"], "running", "{why}");
        let text = std::fs::read_to_string(run.join("requests.csv")).unwrap_or_default();
        assert!(text.is_empty() || text.ends_with('\n'), "{why}: a cut row");
        let rows = if text.is_empty() {
            0
        } else {
            request_rows(&run).len()
        };
        assert!(rows + 1 >= lines, "{why}: {rows} rows");
        assert_reported_partial(&run, rows, &why);
    }
}

/// Start `cmd` with its files limited to `bytes` (RLIMIT_FSIZE) and SIGXFSZ ignored, so that a
/// write past the limit fails with EFBIG as a full disk fails with ENOSPC.
fn with_file_size_limit(cmd: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        })
    }
}

/// Exit 1 with one line naming the file that could not be written, the error, and what was
/// kept: that many whole rows are in `requests.csv`, `run.json` validates with `complete:
/// false`, and `charter report` says the run is partial.
fn assert_results_lost(run: &Path, o: &std::process::Output, file_error: &str) -> usize {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let err = stderr(o);
    let line = err
        .lines()
        .find(|l| l.starts_with("charter: error: "))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    let csv = run.join("requests.csv");
    assert!(
        line.contains(&format!("writing {}: {file_error}", csv.display())),
        "{line}"
    );
    let kept = line
        .split("; kept in ")
        .nth(1)
        .unwrap_or_else(|| panic!("what was kept is not said: {line}"));
    let rows: usize = kept
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        kept.contains(&format!(
            "{rows} whole request row(s) in requests.csv, run.json"
        )) && kept.contains("(complete: false"),
        "{line}"
    );
    let rec = validated_record(run);
    assert_eq!(rec["complete"], false);
    rows
}

/// A file size limit reached by `requests.csv` mid-run (EFBIG, as a full disk): the rows
/// before it are kept whole (the cut row is removed), and the run says so.
#[test]
fn a_full_disk_mid_run_keeps_the_rows_before_it_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = with_file_size_limit(long_run(&run).args(["--requests", "400"]), 16 << 10)
        .output()
        .unwrap();
    let rows = assert_results_lost(&run, &o, "File too large");
    assert!(rows >= 10, "{rows} rows kept");
    let text = std::fs::read_to_string(run.join("requests.csv")).unwrap();
    assert!(text.ends_with('\n'), "the cut row was removed");
    assert_eq!(request_rows(&run).len(), rows);
    assert_reported_partial(&run, rows, "file size limit");
}

/// `requests.csv` on a device that is always full (/dev/full, ENOSPC from the first row): exit
/// 1 naming the file, no row kept, the record still readable.
#[test]
fn no_space_for_the_first_row_is_exit_1_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::os::unix::fs::symlink("/dev/full", run.join("requests.csv")).unwrap();
    let o = long_run(&run).args(["--requests", "20"]).output().unwrap();
    let rows = assert_results_lost(&run, &o, "No space left on device");
    assert_eq!(rows, 0);
}
