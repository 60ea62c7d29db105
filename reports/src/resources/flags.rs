//! Flags that say a level's numbers describe something other than the system under test:
//! `client_bound` (charter, the load generator, set the pace) and `contention` (other processes
//! used the machine).
//!
//! - `client_bound`, any load model: open-loop schedule lag p99 above the threshold (latencies
//!   from the actual start then hide queueing), with the dispatcher's own lag and in-flight waits
//!   as reasons; and, with a remote backend (where charter is only the client), charter's process
//!   using ≥ [`SATURATED`] of the cores available to it, or the host's busy cores reaching
//!   [`SATURATED`] of all cores.
//! - `contention`: the cores used by everything but charter, its workers and the processes it
//!   watches (system busy − those), per sample; flagged when its mean exceeds the threshold.

use charter_record::{ClientBound, Contention, ResourceSummary, RunSummary, ValueSummary};

use crate::stats::LatencyHistogram;

/// Share of the available cores at which a process, or the host, counts as saturated.
pub const SATURATED: f64 = 0.9;

/// Default mean `other_cores` above which a level is contended.
pub const DEFAULT_CONTENTION_THRESHOLD_CORES: f64 = 0.25;

/// What the client-bound verdict needs besides the level's summaries.
#[derive(Debug, Clone, Default)]
pub struct ClientInputs<'a> {
    pub lag_threshold_s: f64,
    /// Open loop: how late the dispatcher issued each request.
    pub dispatch_lag: Option<&'a LatencyHistogram>,
    /// Open loop: arrivals that found every in-flight slot busy, and the slot count.
    pub max_in_flight_waits: u64,
    pub max_in_flight: Option<u32>,
    /// The model runs outside charter, so charter's own CPU is the client's.
    pub remote: bool,
    /// Cores charter's process may use (affinity, cgroup quota).
    pub cores_available: f64,
    /// The machine's logical CPUs (system busy cores are summed over all of them).
    pub logical_cores: u32,
}

/// Open loop: the level is sustainable when completions kept pace with arrivals (≥ 0.98 of
/// the offered rate) and the SLO percentiles, if any, hold; `None` in closed loop.
pub fn sustainable(completed_to_offered: Option<f64>, s: &RunSummary) -> Option<bool> {
    completed_to_offered.map(|c| c >= 0.98 && s.slo_percentiles_hold != Some(false))
}

/// The client-bound verdict of a level.
pub fn client_bound(s: &RunSummary, res: &ResourceSummary, inp: &ClientInputs<'_>) -> ClientBound {
    let threshold = inp.lag_threshold_s;
    let mut cb = ClientBound {
        schedule_lag_threshold_s: threshold,
        max_in_flight_waits: inp.max_in_flight_waits,
        cores_available: Some(inp.cores_available),
        ..Default::default()
    };
    if let Some(lag) = s.schedule_lag.as_ref().filter(|l| l.p99_s > threshold) {
        cb.reasons.push(format!(
            "schedule lag p99 {:.1} ms exceeds {:.1} ms: latencies from the actual start hide queueing; use the *_from_intended numbers",
            lag.p99_s * 1e3,
            threshold * 1e3
        ));
        let p99 = inp.dispatch_lag.and_then(|h| h.summary()).map(|d| d.p99_s);
        if let Some(p99) = p99.filter(|p| *p > threshold) {
            cb.reasons.push(format!(
                "the dispatcher itself fell behind its schedule (dispatch lag p99 {:.1} ms)",
                p99 * 1e3
            ));
        }
        if let (true, Some(slots)) = (inp.max_in_flight_waits > 0, inp.max_in_flight) {
            cb.reasons.push(format!(
                "{} arrival(s) found all {slots} in-flight slots busy and queued (raise --max-in-flight, or this rate is beyond capacity)",
                inp.max_in_flight_waits
            ));
        }
    }
    let cores = f64::from(inp.logical_cores);
    if inp.remote {
        if let Some(own) = &res.process_cpu_cores {
            if own.mean >= SATURATED * inp.cores_available {
                cb.reasons.push(format!(
                    "charter's own process used {:.2} of the {} core(s) available to it: the client, not the server, set the pace",
                    own.mean, inp.cores_available
                ));
            }
        }
    }
    if let Some(busy) = &res.system_busy_cores {
        if busy.mean >= SATURATED * cores && (inp.remote || !cb.reasons.is_empty()) {
            cb.reasons.push(format!(
                "the machine's CPUs were saturated ({:.2} of {cores} cores busy), shared by charter and the system under test",
                busy.mean
            ));
        }
    }
    cb.flagged = !cb.reasons.is_empty();
    cb
}

/// The contention verdict from per-sample `other_cores` values.
pub fn contention(other_cores: &[f64], threshold_cores: f64) -> Contention {
    let other = ValueSummary::from_values(other_cores);
    Contention {
        flagged: other.as_ref().is_some_and(|o| o.mean > threshold_cores),
        other_cores: other,
        threshold_cores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use charter_record::LatencySummary;

    fn lat(p99: f64) -> LatencySummary {
        LatencySummary {
            count: 10,
            mean_s: p99,
            stddev_s: 0.0,
            min_s: 0.0,
            p50_s: p99,
            p90_s: p99,
            p95_s: p99,
            p99_s: p99,
            p999_s: p99,
            max_s: p99,
        }
    }

    fn cores(mean: f64) -> Option<ValueSummary> {
        ValueSummary::from_values(&[mean, mean])
    }

    #[test]
    fn a_saturated_client_of_a_remote_server_is_flagged_in_closed_loop() {
        let s = RunSummary::default();
        let res = ResourceSummary {
            process_cpu_cores: cores(0.97),
            system_busy_cores: cores(1.2),
            ..Default::default()
        };
        let inp = ClientInputs {
            lag_threshold_s: 0.005,
            remote: true,
            cores_available: 1.0,
            logical_cores: 2,
            ..Default::default()
        };
        let cb = client_bound(&s, &res, &inp);
        assert!(cb.flagged);
        assert!(
            cb.reasons[0].contains("own process used 0.97 of the 1 core"),
            "{cb:?}"
        );
        // In-process, charter's CPU is the model's: not a client verdict.
        let cb = client_bound(
            &s,
            &res,
            &ClientInputs {
                remote: false,
                ..inp
            },
        );
        assert!(!cb.flagged, "{cb:?}");
    }

    #[test]
    fn lag_flags_any_backend_and_names_its_causes() {
        let s = RunSummary {
            schedule_lag: Some(lat(0.020)),
            ..Default::default()
        };
        let res = ResourceSummary::default();
        let mut lags = LatencyHistogram::new();
        for d in [0.0, 0.03, 0.04] {
            lags.record_s(d);
        }
        let inp = ClientInputs {
            lag_threshold_s: 0.005,
            dispatch_lag: Some(&lags),
            max_in_flight_waits: 3,
            max_in_flight: Some(4),
            cores_available: 2.0,
            logical_cores: 2,
            ..Default::default()
        };
        let cb = client_bound(&s, &res, &inp);
        assert!(cb.flagged);
        assert_eq!(cb.reasons.len(), 3, "{cb:?}");
    }

    #[test]
    fn contention_flags_above_threshold_only() {
        assert!(contention(&[0.9, 1.1], 0.25).flagged);
        assert!(!contention(&[0.1, 0.2], 0.25).flagged);
        let none = contention(&[], 0.25);
        assert!(!none.flagged && none.other_cores.is_none());
    }
}
