//! Latency histograms (HDR) and summaries of sampled values.

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Significant decimal digits kept by latency histograms: values are exact to 0.1 %.
pub const HISTOGRAM_SIGFIGS: u8 = 3;

/// An HDR histogram of durations, recorded in nanoseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        let mut hist = Histogram::new(HISTOGRAM_SIGFIGS).expect("3 significant figures is valid");
        hist.auto(true);
        Self { hist }
    }

    /// Record a duration in seconds (negative values, which a broken clock could give, clamp to 0).
    pub fn record_s(&mut self, seconds: f64) {
        let ns = (seconds.max(0.0) * 1e9).round() as u64;
        // auto-resize is on, so recording cannot fail for in-range u64 values.
        let _ = self.hist.record(ns);
    }

    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// Percentiles and moments; `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let s = |ns: u64| ns as f64 / 1e9;
        let q = |p: f64| s(self.hist.value_at_quantile(p));
        Some(LatencySummary {
            count: self.hist.len(),
            mean_s: self.hist.mean() / 1e9,
            stddev_s: self.hist.stdev() / 1e9,
            min_s: s(self.hist.min()),
            p50_s: q(0.50),
            p90_s: q(0.90),
            p95_s: q(0.95),
            p99_s: q(0.99),
            p999_s: q(0.999),
            max_s: s(self.hist.max()),
        })
    }
}

/// Latency distribution summary from an HDR histogram with [`HISTOGRAM_SIGFIGS`] significant
/// digits (values, `max_s` included, are rounded to that precision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_s: f64,
    pub stddev_s: f64,
    pub min_s: f64,
    pub p50_s: f64,
    pub p90_s: f64,
    pub p95_s: f64,
    pub p99_s: f64,
    pub p999_s: f64,
    pub max_s: f64,
}

/// Summary of a sampled quantity (cores, bytes): exact over the samples in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValueSummary {
    pub samples: u64,
    pub mean: f64,
    pub p95: f64,
    pub max: f64,
}

impl ValueSummary {
    /// `None` when `values` is empty. Percentile by nearest rank.
    pub fn from_values(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
        Some(Self {
            samples: n as u64,
            mean: v.iter().sum::<f64>() / n as f64,
            p95: v[rank - 1],
            max: v[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_within_precision() {
        let mut h = LatencyHistogram::new();
        for i in 1..=1000 {
            h.record_s(i as f64 * 1e-3);
        }
        let s = h.summary().unwrap();
        assert_eq!(s.count, 1000);
        assert!((s.p50_s - 0.500).abs() <= 0.0005, "{}", s.p50_s);
        assert!((s.p99_s - 0.990).abs() <= 0.001, "{}", s.p99_s);
        assert!((s.max_s - 1.0).abs() <= 0.001, "{}", s.max_s);
        assert!((s.mean_s - 0.5005).abs() <= 0.001);
        assert!(LatencyHistogram::new().summary().is_none());
    }

    #[test]
    fn value_summary_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = ValueSummary::from_values(&v).unwrap();
        assert_eq!(s.p95, 19.0);
        assert_eq!(s.max, 20.0);
        assert_eq!(s.mean, 10.5);
        assert!(ValueSummary::from_values(&[]).is_none());
    }
}
