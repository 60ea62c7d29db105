//! Combining the shards of one sharded run (what `charter merge` computes, without the files):
//! summed resources, the union client-bound and contention verdicts, and how far the shards'
//! clocks can be trusted. Latencies are not combined here: the shards' HDR histograms add
//! exactly ([`crate::histograms`]), and the summary is recomputed from the union of requests
//! by the [`Aggregator`](crate::Aggregator), never by averaging percentiles.

use charter_record::{
    ClientBound, ClockRecord, Contention, MergeRecord, MergedShard, ResourceSummary, ValueSummary,
};

/// Sum of sampled quantities over shards that ran side by side: the mean of a sum is the sum of
/// the means; the p95 and max of the sum are at most the sums given here (an upper bound: the
/// shards' peaks need not coincide).
fn sum_values<'a>(parts: impl Iterator<Item = Option<&'a ValueSummary>>) -> Option<ValueSummary> {
    parts
        .collect::<Option<Vec<_>>>()
        .filter(|v| !v.is_empty())
        .map(|v| ValueSummary {
            samples: v.iter().map(|s| s.samples).min().unwrap_or(0),
            mean: v.iter().map(|s| s.mean).sum(),
            p95: v.iter().map(|s| s.p95).sum(),
            max: v.iter().map(|s| s.max).sum(),
        })
}

/// Every shard had it: the sum; else not measured.
fn sum_all<T: std::iter::Sum<T>>(parts: impl Iterator<Item = Option<T>>) -> Option<T> {
    parts
        .collect::<Option<Vec<T>>>()
        .map(|v| v.into_iter().sum())
}

/// The shards' client-side resources summed (CPU cores and seconds, RSS, peak RSS); GPUs,
/// energy, RAM fits, instances and watched processes stay in each shard's own summary
/// (`merge.shards[].levels[].resources`).
pub fn sum_resources(parts: &[&ResourceSummary]) -> ResourceSummary {
    ResourceSummary {
        sampler: parts.first().and_then(|p| p.sampler.clone()),
        process_cpu_cores: sum_values(parts.iter().map(|p| p.process_cpu_cores.as_ref())),
        system_busy_cores: sum_values(parts.iter().map(|p| p.system_busy_cores.as_ref())),
        rss_bytes: sum_values(parts.iter().map(|p| p.rss_bytes.as_ref())),
        peak_rss_bytes: sum_all(parts.iter().map(|p| p.peak_rss_bytes)),
        ram_baseline_bytes: sum_all(parts.iter().map(|p| p.ram_baseline_bytes)),
        process_cpu_seconds: sum_all(parts.iter().map(|p| p.process_cpu_seconds)),
        ..ResourceSummary::default()
    }
}

/// Flagged when any shard was, with each shard's reasons named by its index.
pub fn union_client_bound(parts: &[(u32, &ClientBound)]) -> ClientBound {
    let mut cb = ClientBound {
        schedule_lag_threshold_s: parts
            .first()
            .map_or(0.0, |(_, c)| c.schedule_lag_threshold_s),
        max_in_flight_waits: parts.iter().map(|(_, c)| c.max_in_flight_waits).sum(),
        cores_available: sum_all(parts.iter().map(|(_, c)| c.cores_available)),
        ..ClientBound::default()
    };
    for (index, c) in parts {
        cb.flagged |= c.flagged;
        cb.reasons
            .extend(c.reasons.iter().map(|r| format!("shard {index}: {r}")));
    }
    cb
}

/// Flagged when any shard's machine was contended.
pub fn union_contention(parts: &[&Contention]) -> Contention {
    Contention {
        other_cores: sum_values(parts.iter().map(|c| c.other_cores.as_ref())),
        threshold_cores: parts.first().map_or(0.0, |c| c.threshold_cores),
        flagged: parts.iter().any(|c| c.flagged),
    }
}

/// The merge record: the clocks' error spread and bound, and the unsynchronised shards.
/// `first_starts_unix_s`: each shard's first-level start on the wall clock.
pub fn merge_record(
    config_hash: String,
    shards: Vec<MergedShard>,
    first_starts_unix_s: &[f64],
) -> MergeRecord {
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().reduce(f64::min)?;
        let hi = v.iter().copied().reduce(f64::max)?;
        Some(hi - lo)
    };
    let errors: Option<Vec<f64>> = shards.iter().map(|s| s.clock.max_error_s).collect();
    let offset_bound = errors.as_ref().map(|e| {
        let mut e = e.clone();
        e.sort_by(|a, b| b.total_cmp(a));
        e.iter().take(2).sum::<f64>()
    });
    MergeRecord {
        config_hash,
        start_spread_s: spread(first_starts_unix_s),
        clock_error_spread_s: errors.as_deref().and_then(spread),
        clock_offset_bound_s: offset_bound,
        unsynchronised_shards: shards
            .iter()
            .filter(|s| s.clock.synchronised != Some(true))
            .map(|s| s.index)
            .collect(),
        shards,
    }
}

/// A warning line per unsynchronised shard clock, for the console.
pub fn clock_warnings(m: &MergeRecord) -> Vec<String> {
    let mut out = Vec::new();
    for s in m
        .shards
        .iter()
        .filter(|s| m.unsynchronised_shards.contains(&s.index))
    {
        let why = match &s.clock {
            ClockRecord {
                synchronised: Some(false),
                max_error_s,
                ..
            } => format!(
                "not synchronised (kernel maximum error {})",
                max_error_s.map_or("unknown".into(), |e| format!("{e:.3} s"))
            ),
            c => format!("state unknown ({})", c.source),
        };
        out.push(format!(
            "shard {} ({}): clock {why}: its times may be off the others' by more than the start spread shows",
            s.index, s.dir
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(index: u32, synced: Option<bool>, err: Option<f64>) -> MergedShard {
        MergedShard {
            index,
            dir: format!("s{index}"),
            hostname: None,
            time_offset_s: 0.0,
            start_late_s: None,
            clock: ClockRecord {
                synchronised: synced,
                max_error_s: err,
                estimated_error_s: None,
                source: "test".into(),
            },
            levels: Vec::new(),
        }
    }

    #[test]
    fn clock_spread_bound_and_unsynchronised_shards() {
        let m = merge_record(
            "h".into(),
            vec![
                shard(0, Some(true), Some(0.002)),
                shard(1, Some(false), Some(16.0)),
                shard(2, Some(true), Some(0.010)),
            ],
            &[100.0, 100.25, 100.5],
        );
        assert_eq!(m.start_spread_s, Some(0.5));
        assert_eq!(m.clock_error_spread_s, Some(16.0 - 0.002));
        assert_eq!(m.clock_offset_bound_s, Some(16.010));
        assert_eq!(m.unsynchronised_shards, vec![1]);
        let w = clock_warnings(&m);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("shard 1 (s1): clock not synchronised"),
            "{w:?}"
        );
        let m = merge_record("h".into(), vec![shard(0, None, None)], &[1.0]);
        assert_eq!(m.unsynchronised_shards, vec![0]);
        assert_eq!(m.clock_offset_bound_s, None);
    }

    #[test]
    fn resources_sum_and_flags_unite() {
        let v = |mean: f64| ValueSummary {
            samples: 10,
            mean,
            p95: mean * 2.0,
            max: mean * 3.0,
        };
        let a = ResourceSummary {
            process_cpu_cores: Some(v(0.5)),
            process_cpu_seconds: Some(2.0),
            peak_rss_bytes: Some(100),
            ..Default::default()
        };
        let b = ResourceSummary {
            process_cpu_cores: Some(v(0.25)),
            process_cpu_seconds: Some(1.0),
            ..Default::default()
        };
        let s = sum_resources(&[&a, &b]);
        assert_eq!(s.process_cpu_cores.unwrap().mean, 0.75);
        assert_eq!(s.process_cpu_seconds, Some(3.0));
        assert_eq!(s.peak_rss_bytes, None, "not measured on every shard");
        let quiet = ClientBound::default();
        let busy = ClientBound {
            flagged: true,
            reasons: vec!["lag".into()],
            ..Default::default()
        };
        let cb = union_client_bound(&[(0, &quiet), (1, &busy)]);
        assert!(cb.flagged);
        assert_eq!(cb.reasons, vec!["shard 1: lag".to_string()]);
        assert!(!union_client_bound(&[(0, &quiet)]).flagged);
    }
}
