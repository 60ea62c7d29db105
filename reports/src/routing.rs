//! Routing over a level: which tier served each measured request (a hybrid backend's tiers,
//! or `--tier-header`'s upstreams), latency per tier, how much spilled and when, and how
//! often the routing changed. Fed the same rows as the level's [`crate::aggregate::Aggregator`].

use std::collections::BTreeMap;

use charter_record::{RequestRow, RoutingSummary, StopReason, TierSummary};

use crate::stats::LatencyHistogram;

/// One tier's running counts and histograms.
#[derive(Debug, Default)]
struct Tier {
    s: TierSummary,
    ttft: LatencyHistogram,
    e2e: LatencyHistogram,
}

/// Accumulates the routed rows of one level (rows without a tier are not routed).
#[derive(Debug, Default)]
pub struct Routing {
    tiers: BTreeMap<String, Tier>,
    /// Hybrid rows (with `attempts`); those that went past the first tier are counted by
    /// reason in the summary's `spill_reasons`.
    hybrid_rows: u64,
    s: RoutingSummary,
    /// (start, tier) of every routed row, for the first spill and the flips.
    starts: Vec<(f64, String, bool)>,
}

impl Routing {
    /// Add a measured (not warm-up, not cancelled) row.
    pub fn add(&mut self, row: &RequestRow) {
        let Some(name) = &row.tier else {
            return;
        };
        if !self.tiers.contains_key(name) {
            self.tiers.insert(name.clone(), Tier::default());
        }
        let t = self.tiers.get_mut(name).expect("inserted above");
        t.s.requests += 1;
        if row.error_kind.is_some() {
            t.s.requests_failed += 1;
        } else {
            t.s.prompt_tokens += row.prompt_tokens;
            t.s.output_tokens += row.output_tokens;
            if let Some(c) = row.cached_prompt_tokens {
                *t.s.cached_prompt_tokens.get_or_insert(0) += c;
            }
            if let Some(r) = row.reasoning_tokens {
                *t.s.reasoning_tokens.get_or_insert(0) += r;
            }
            if let Some(v) = row.ttft_s {
                t.ttft.record_s(v);
            }
            if let Some(v) = row.e2e_s {
                t.e2e.record_s(v);
            }
        }
        let spilled = row.spill_reason.is_some();
        if row.attempts.is_some() {
            self.hybrid_rows += 1;
        }
        if let Some(r) = row.spill_reason {
            *self.s.spill_reasons.entry(r).or_default() += 1;
        }
        if row.attempts.is_some_and(|a| a > 1) {
            self.s.failovers += 1;
        }
        self.starts.push((row.start_s, name.clone(), spilled));
    }

    /// The level's routing over the window `(start, end)`; `None` when no row was routed.
    pub fn summary(&self, window: Option<(f64, f64)>) -> Option<RoutingSummary> {
        if self.tiers.is_empty() {
            return None;
        }
        let mut s = self.s.clone();
        s.tiers = self
            .tiers
            .iter()
            .map(|(name, t)| {
                let mut ts = t.s.clone();
                ts.ttft = t.ttft.summary();
                ts.e2e = t.e2e.summary();
                (name.clone(), ts)
            })
            .collect();
        let spilled: u64 = s.spill_reasons.values().sum();
        s.spill_fraction = (self.hybrid_rows > 0).then(|| spilled as f64 / self.hybrid_rows as f64);
        let mut starts = self.starts.clone();
        starts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((start, end)) = window {
            s.first_spill_after_s = starts
                .iter()
                .find(|(_, _, spilled)| *spilled)
                .map(|(t, _, _)| t - start);
            let flips = starts.windows(2).filter(|w| w[0].1 != w[1].1).count();
            s.tier_flips_per_min = (end > start).then(|| flips as f64 / ((end - start) / 60.0));
        }
        Some(s)
    }
}

/// Requests per tier in equal time buckets of a window (by start time): the spill over time.
#[derive(Debug, Clone, PartialEq)]
pub struct TierShares {
    /// Tier names, in routing order where known.
    pub tiers: Vec<String>,
    pub bucket_s: f64,
    /// Per bucket from the window's start, requests per tier (by `tiers`' order).
    pub counts: Vec<Vec<u64>>,
}

impl TierShares {
    /// Each tier's share of a bucket's requests (all zero for an empty bucket).
    pub fn shares(&self, bucket: usize) -> Vec<f64> {
        let c = &self.counts[bucket];
        let total: u64 = c.iter().sum();
        c.iter()
            .map(|&n| {
                if total == 0 {
                    0.0
                } else {
                    n as f64 / total as f64
                }
            })
            .collect()
    }
}

/// The measured (not warm-up, not cancelled) routed rows of `rows` that started in the window `(start, end)`, counted per
/// tier in `buckets` equal buckets; `order` lists tiers in routing order (others follow by
/// name). `None` without a routed row.
pub fn shares_over_time(
    rows: &[RequestRow],
    order: &[String],
    (start, end): (f64, f64),
    buckets: usize,
) -> Option<TierShares> {
    let routed: Vec<(f64, &str)> = rows
        .iter()
        .filter(|r| !r.warmup && r.stop_reason != Some(StopReason::Cancelled))
        .filter(|r| r.start_s >= start && r.start_s <= end)
        .filter_map(|r| Some((r.start_s, r.tier.as_deref()?)))
        .collect();
    if routed.is_empty() || end <= start || buckets == 0 {
        return None;
    }
    let mut tiers: Vec<String> = order.to_vec();
    let mut others: Vec<&str> = routed
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| !order.iter().any(|o| o == t))
        .collect();
    others.sort_unstable();
    others.dedup();
    tiers.extend(others.into_iter().map(String::from));
    let bucket_s = (end - start) / buckets as f64;
    let mut counts = vec![vec![0u64; tiers.len()]; buckets];
    for (t, name) in routed {
        let b = (((t - start) / bucket_s) as usize).min(buckets - 1);
        let i = tiers.iter().position(|x| x == name).expect("listed above");
        counts[b][i] += 1;
    }
    Some(TierShares {
        tiers,
        bucket_s,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use charter_record::SpillReason;

    use super::*;

    fn row(start: f64, tier: &str, spill: Option<SpillReason>, ttft: f64) -> RequestRow {
        RequestRow {
            start_s: start,
            end_s: start + 1.0,
            ttft_s: Some(ttft),
            e2e_s: Some(1.0),
            output_tokens: 10,
            tier: Some(tier.into()),
            attempts: Some(if spill == Some(SpillReason::Failover) {
                2
            } else {
                1
            }),
            spill_reason: spill,
            ..Default::default()
        }
    }

    #[test]
    fn spill_share_flips_and_per_tier_latency_from_known_rows() {
        let mut r = Routing::default();
        // In start order: onprem, onprem, cloud (in-flight), onprem, cloud (failover); added
        // out of order, as completions arrive.
        r.add(&row(13.0, "cloud", Some(SpillReason::Failover), 0.4));
        r.add(&row(10.0, "onprem", None, 0.1));
        r.add(&row(11.0, "onprem", None, 0.1));
        r.add(&row(12.0, "onprem", None, 0.3));
        r.add(&row(11.5, "cloud", Some(SpillReason::InFlight), 0.2));
        let s = r.summary(Some((10.0, 40.0))).unwrap();
        assert_eq!(s.tiers["onprem"].requests, 3);
        assert_eq!(s.tiers["cloud"].requests, 2);
        assert_eq!(s.tiers["cloud"].output_tokens, 20);
        assert_eq!(s.spill_fraction, Some(0.4));
        assert_eq!(s.spill_reasons[&SpillReason::InFlight], 1);
        assert_eq!(s.failovers, 1);
        assert_eq!(s.first_spill_after_s, Some(1.5));
        // onprem → cloud → onprem → cloud: 3 flips in 30 s.
        assert_eq!(s.tier_flips_per_min, Some(6.0));
        let ttft = s.tiers["onprem"].ttft.as_ref().unwrap();
        assert_eq!(ttft.count, 3);
        assert!((ttft.max_s - 0.3).abs() < 1e-3, "{ttft:?}");
    }

    #[test]
    fn rows_without_a_tier_give_no_routing() {
        let mut r = Routing::default();
        r.add(&RequestRow::default());
        assert_eq!(r.summary(Some((0.0, 1.0))), None);
    }

    #[test]
    fn a_header_tier_has_no_spill_fraction() {
        let mut r = Routing::default();
        let mut a = row(0.0, "https://api.a", None, 0.1);
        a.attempts = None;
        r.add(&a);
        let s = r.summary(Some((0.0, 1.0))).unwrap();
        assert_eq!(s.spill_fraction, None);
        assert_eq!(s.tiers["https://api.a"].requests, 1);
    }

    #[test]
    fn shares_over_time_count_each_bucket_in_routing_order() {
        let rows = [
            row(10.1, "cloud", Some(SpillReason::InFlight), 0.01),
            row(10.2, "onprem", None, 0.02),
            row(10.6, "cloud", Some(SpillReason::InFlight), 0.01),
            row(11.0, "cloud", Some(SpillReason::InFlight), 0.01),
            row(12.5, "onprem", None, 0.02),
        ];
        let order = ["onprem".to_string(), "cloud".to_string()];
        // Window 10..11 in two buckets of 0.5 s; 12.5 is outside; 11.0 is in the last bucket.
        let s = shares_over_time(&rows, &order, (10.0, 11.0), 2).unwrap();
        assert_eq!(s.tiers, order);
        assert_eq!(s.bucket_s, 0.5);
        assert_eq!(s.counts, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(s.shares(0), vec![0.5, 0.5]);
        assert_eq!(s.shares(1), vec![0.0, 1.0]);
        // A tier the order does not name follows it.
        let s = shares_over_time(&rows, &order[1..], (10.0, 11.0), 1).unwrap();
        assert_eq!(s.tiers, ["cloud", "onprem"]);
        assert_eq!(s.counts, vec![vec![3, 1]]);
        assert!(shares_over_time(&rows, &order, (20.0, 21.0), 2).is_none());
    }
}
