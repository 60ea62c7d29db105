//! Latency histograms (HDR) and the statistics computed over records (means, line fits).
//! The summary types they produce live in charter-record and are re-exported here.

use hdrhistogram::Histogram;

pub use charter_record::{LatencySummary, ValueSummary};

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

    /// Add every count of `other` (same precision): exact, bucket by bucket.
    pub fn add(&mut self, other: &LatencyHistogram) -> Result<(), String> {
        self.hist.add(&other.hist).map_err(|e| format!("{e:?}"))
    }

    /// Every non-empty bucket as (highest value equivalent to it in ns, count), ascending.
    pub fn buckets(&self) -> Vec<(u64, u64)> {
        self.hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// HdrHistogram's V2 compressed encoding (what the other HdrHistogram libraries read).
    pub fn to_v2_deflate(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        hdrhistogram::serialization::Serializer::serialize(
            &mut hdrhistogram::serialization::V2DeflateSerializer::new(),
            &self.hist,
            &mut out,
        )
        .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        Ok(out)
    }

    /// Read a V2 (compressed or not) encoding; refuses a histogram of another precision, which
    /// would not add exactly to ours.
    pub fn from_v2_deflate(bytes: &[u8]) -> Result<Self, String> {
        let mut hist: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &bytes[..])
            .map_err(|e| format!("not an HdrHistogram V2 encoding: {e:?}"))?;
        if hist.sigfig() != HISTOGRAM_SIGFIGS {
            return Err(format!(
                "{} significant figures, expected {HISTOGRAM_SIGFIGS}",
                hist.sigfig()
            ));
        }
        hist.auto(true);
        Ok(Self { hist })
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
}

/// Arithmetic mean; `None` for no values.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// An ordinary least-squares line y = intercept + slope · x.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineFit {
    pub slope: f64,
    pub intercept: f64,
    /// Coefficient of determination (1 − SS_res / SS_tot); 0 when y does not vary.
    pub r_squared: f64,
    pub n: usize,
}

/// Least-squares fit of `points` (x, y); `None` with fewer than 3 points or when x does not
/// vary (the slope is then undefined).
pub fn least_squares(points: &[(f64, f64)]) -> Option<LineFit> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - my).powi(2)).sum();
    if sxx <= 0.0 || !sxx.is_finite() {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ss_res: f64 = points
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let r_squared = if syy > 0.0 { 1.0 - ss_res / syy } else { 0.0 };
    Some(LineFit {
        slope,
        intercept,
        r_squared,
        n,
    })
}

#[cfg(test)]
mod fit_tests {
    use super::*;

    #[test]
    fn recovers_a_known_line_exactly_and_with_noise() {
        let exact: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64 * 100.0, 5e8 + 3e6 / 1e3 * i as f64 * 100.0))
            .collect();
        let f = least_squares(&exact).unwrap();
        assert!((f.slope * 1e3 - 3e6).abs() < 1e-3, "{f:?}");
        assert!((f.intercept - 5e8).abs() < 1e-3);
        assert!((f.r_squared - 1.0).abs() < 1e-12);
        // Deterministic ±1 MB noise around 3 MB per 1k tokens.
        let noisy: Vec<(f64, f64)> = (0..200)
            .map(|i| {
                let x = (i * 37 % 4000) as f64;
                let noise = if i % 2 == 0 { 1e6 } else { -1e6 };
                (x, 2e8 + 3e3 * x + noise)
            })
            .collect();
        let f = least_squares(&noisy).unwrap();
        assert!((f.slope * 1e3 / 3e6 - 1.0).abs() < 0.01, "{f:?}");
        assert!(f.r_squared > 0.9 && f.r_squared < 1.0, "{f:?}");
        assert_eq!(f.n, 200);
    }

    #[test]
    fn degenerate_inputs_have_no_fit() {
        assert!(least_squares(&[(1.0, 2.0), (2.0, 3.0)]).is_none());
        assert!(least_squares(&[(1.0, 2.0), (1.0, 3.0), (1.0, 4.0)]).is_none());
        let flat = least_squares(&[(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)]).unwrap();
        assert_eq!(flat.slope, 0.0);
        assert_eq!(flat.r_squared, 0.0);
    }
}
