//! Service-level objectives: `ttft_p99=500ms,itl_p50=50ms`.
//!
//! Each term is a latency bound at a percentile. A request is *good* when it completed and
//! meets every term's bound (latencies from the intended start, what a user experiences);
//! `slo_attainment` = good / (completed + failed) and goodput = good / duration
//! (shared/docs/metrics.md). A level *holds* its SLO when each term's percentile is within its
//! bound as well.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::latency::Latency;
use crate::run::{RequestRow, RunSummary};
use crate::summary::LatencySummary;

/// One SLO term: `metric` at `percentile` must be at most `threshold_s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SloTerm {
    /// A per-request latency of the registry ([`Latency::in_slo`]); `ttft` and `e2e` are
    /// evaluated from the intended start ([`Latency::slo_view`]).
    pub metric: Latency,
    /// One of 50, 90, 95, 99, 99.9.
    pub percentile: f64,
    pub threshold_s: f64,
}

impl SloTerm {
    pub fn percentile_of(&self, s: &LatencySummary) -> f64 {
        let p = self.percentile;
        if p <= 50.0 {
            s.p50_s
        } else if p <= 90.0 {
            s.p90_s
        } else if p <= 95.0 {
            s.p95_s
        } else if p <= 99.0 {
            s.p99_s
        } else {
            s.p999_s
        }
    }
}

impl fmt::Display for SloTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = if self.percentile == 99.9 {
            "p999".to_string()
        } else {
            format!("p{}", self.percentile as u32)
        };
        write!(f, "{}_{p}={}ms", self.metric.name(), self.threshold_s * 1e3)
    }
}

/// A set of SLO terms, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Slo {
    pub terms: Vec<SloTerm>,
}

fn expected() -> String {
    let metrics: Vec<&str> = Latency::ALL
        .iter()
        .filter(|l| l.in_slo())
        .map(|l| l.name())
        .collect();
    format!(
        "expected METRIC_pNN=DURATION terms separated by commas, e.g. ttft_p99=500ms,itl_p50=50ms (metrics: {}; percentiles: p50, p90, p95, p99, p999)",
        metrics.join(", ")
    )
}

impl FromStr for Slo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let bad = || format!("SLO term `{raw}`: {}", expected());
            let (lhs, rhs) = raw.split_once('=').ok_or_else(bad)?;
            let (metric, pct) = lhs.trim().rsplit_once("_p").ok_or_else(bad)?;
            let metric = Latency::from_name(metric)
                .filter(|l| l.in_slo())
                .ok_or_else(bad)?;
            let percentile = match pct {
                "50" => 50.0,
                "90" => 90.0,
                "95" => 95.0,
                "99" => 99.0,
                "999" => 99.9,
                _ => return Err(bad()),
            };
            let d = humantime::parse_duration(rhs.trim()).map_err(|_| bad())?;
            if d.is_zero() {
                return Err(bad());
            }
            terms.push(SloTerm {
                metric,
                percentile,
                threshold_s: d.as_secs_f64(),
            });
        }
        if terms.is_empty() {
            return Err(format!("SLO `{s}`: {}", expected()));
        }
        Ok(Slo { terms })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t: Vec<String> = self.terms.iter().map(|t| t.to_string()).collect();
        write!(f, "{}", t.join(","))
    }
}

impl Slo {
    /// A completed request meets every bound (an undefined metric, e.g. ITL of a one-token
    /// answer, cannot violate its bound). Failed requests are never good.
    pub fn request_is_good(&self, r: &RequestRow) -> bool {
        r.error_kind.is_none()
            && self.terms.iter().all(|t| {
                t.metric
                    .slo_view()
                    .of_row(r)
                    .is_none_or(|v| v <= t.threshold_s)
            })
    }

    /// Each term's percentile is within its bound (`None` if a metric has no data).
    pub fn percentiles_hold(&self, s: &RunSummary) -> Option<bool> {
        let mut ok = true;
        for t in &self.terms {
            let d = t.metric.slo_view().of_summary(s)?;
            ok &= t.percentile_of(d) <= t.threshold_s;
        }
        Some(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_terms_and_rejects_bad_ones() {
        let s: Slo = "ttft_p99=500ms, itl_p50=50ms".parse().unwrap();
        assert_eq!(s.terms.len(), 2);
        assert_eq!(s.terms[0].metric, Latency::Ttft);
        assert_eq!(s.terms[0].percentile, 99.0);
        assert!((s.terms[0].threshold_s - 0.5).abs() < 1e-12);
        assert_eq!(s.to_string(), "ttft_p99=500ms,itl_p50=50ms");
        for bad in [
            "",
            "ttft=5ms",
            "ttft_p98=5ms",
            "foo_p99=5ms",
            "chunk_gaps_p99=5ms",
            "ttft_p99=fast",
            "ttft_p99=0ms",
        ] {
            assert!(bad.parse::<Slo>().is_err(), "{bad}");
        }
    }
}
