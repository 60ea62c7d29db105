//! The wall clock across machines: the host clock's own error estimate (Linux `adjtimex`), and
//! the start barrier of a sharded run (`--start-at`), which needs no coordinator: every shard
//! waits for the same wall-clock time, then runs on its monotonic clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use charter_record::ClockRecord;

/// The kernel's view of this host's clock: synchronised or not, maximum and estimated error.
#[cfg(target_os = "linux")]
pub fn clock_status() -> ClockRecord {
    // SAFETY: `timex` is plain data; with `modes` = 0 adjtimex only reads the kernel's state
    // into it.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        return ClockRecord {
            source: format!("adjtimex failed: {}", std::io::Error::last_os_error()),
            ..ClockRecord::default()
        };
    }
    let unsync = state == libc::TIME_ERROR || t.status & libc::STA_UNSYNC != 0;
    ClockRecord {
        synchronised: Some(!unsync),
        max_error_s: Some(t.maxerror as f64 * 1e-6),
        estimated_error_s: Some(t.esterror as f64 * 1e-6),
        source: "adjtimex".into(),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn clock_status() -> ClockRecord {
    ClockRecord {
        source: "unavailable: adjtimex is Linux-only".into(),
        ..ClockRecord::default()
    }
}

/// Wait until the wall clock reaches `at` (returning early when `interrupted` is set), then
/// return how late the wait ended by the wall clock. A time already past returns at once, and
/// says so on stderr.
pub fn wait_for_wall_clock(at: SystemTime, interrupted: &AtomicBool) -> Duration {
    let shown = humantime::format_rfc3339_millis(at);
    match at.duration_since(SystemTime::now()) {
        Err(past) => {
            eprintln!(
                "charter: --start-at {shown} was {} ago; starting at once",
                humantime::format_duration(Duration::from_millis(
                    past.duration().as_millis() as u64
                ))
            );
        }
        Ok(ahead) => {
            eprintln!(
                "charter: waiting {} for --start-at {shown}",
                humantime::format_duration(Duration::from_millis(ahead.as_millis() as u64))
            );
            // Short sleeps: the wall clock may be stepped meanwhile, and Ctrl-C should not wait.
            while let Ok(left) = at.duration_since(SystemTime::now()) {
                if left.is_zero() || interrupted.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
        }
    }
    SystemTime::now().duration_since(at).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_time_and_starts_at_once_when_past() {
        let never = AtomicBool::new(false);
        let at = SystemTime::now() + Duration::from_millis(120);
        let late = wait_for_wall_clock(at, &never);
        assert!(SystemTime::now() >= at);
        assert!(late < Duration::from_secs(5), "{late:?}");
        let past = SystemTime::now() - Duration::from_secs(30);
        let t0 = std::time::Instant::now();
        let late = wait_for_wall_clock(past, &never);
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(late >= Duration::from_secs(30));
        let status = clock_status();
        assert_eq!(status.source, "adjtimex", "{status:?}");
        assert!(status.synchronised.is_some() && status.max_error_s.is_some());
    }
}
