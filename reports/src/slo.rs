//! SLO attainment statistics. The SLO itself (`ttft_p99=500ms,itl_p50=50ms`) and what makes a
//! request good are defined in charter-record and re-exported here.

pub use charter_record::slo::{Slo, SloTerm};

/// Wilson score interval for a proportion `good / n` at ~95 % confidence (z = 1.96).
pub fn wilson_interval(good: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let z = 1.959_963_984_540_054_f64;
    let n = n as f64;
    let p = good as f64 / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    // At p = 0 or 1 the bound is exactly 0 or 1; say so rather than 0.9999999999999999.
    let lo = if good == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if good as f64 == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_reference() {
        // Reference: Wilson interval for 9/10 at 95 %: (0.5958, 0.9821) (Newcombe 1998, method 3).
        let (lo, hi) = wilson_interval(9, 10).unwrap();
        assert!(
            (lo - 0.5958).abs() < 1e-3 && (hi - 0.9821).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(wilson_interval(0, 0), None);
    }
}
