//! Summaries of measured distributions as the record stores them: latencies (filled from HDR
//! histograms by charter-reports) and sampled values such as cores or bytes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Latency distribution summary from an HDR histogram with the run summary's
/// `histogram_sigfigs` significant digits (values, `max_s` included, are rounded to that
/// precision).
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
    fn value_summary_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = ValueSummary::from_values(&v).unwrap();
        assert_eq!(s.p95, 19.0);
        assert_eq!(s.max, 20.0);
        assert_eq!(s.mean, 10.5);
        assert!(ValueSummary::from_values(&[]).is_none());
    }
}
