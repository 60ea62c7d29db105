//! The closed set of metric names a gate rule may name, and how each one is read from a run
//! record. One trial (run) gives one value per metric: the gate compares those per-trial values,
//! never the requests inside a run, because requests in one run share its warm-up, contention and
//! thermal state and are not independent evidence.

use std::fmt;
use std::str::FromStr;

pub use charter_record::Latency;
use charter_record::{LatencySummary, ResourceSummary, RunSummary};
use serde::{Deserialize, Serialize};

/// A statistic of one run's latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stat {
    Mean,
    P50,
    P90,
    P95,
    P99,
    P999,
    Max,
}

impl Stat {
    pub const ALL: [Stat; 7] = [
        Stat::Mean,
        Stat::P50,
        Stat::P90,
        Stat::P95,
        Stat::P99,
        Stat::P999,
        Stat::Max,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Max => "max",
        }
    }

    fn of(self, l: &LatencySummary) -> f64 {
        match self {
            Stat::Mean => l.mean_s,
            Stat::P50 => l.p50_s,
            Stat::P90 => l.p90_s,
            Stat::P95 => l.p95_s,
            Stat::P99 => l.p99_s,
            Stat::P999 => l.p999_s,
            Stat::Max => l.max_s,
        }
    }
}

/// A metric a gate rule can name, e.g. `ttft.p95` or `output_token_throughput`.
///
/// Serialised as its rules-file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum MetricName {
    /// `<latency>.<stat>`, in seconds.
    Latency(Latency, Stat),
    OutputTokenThroughput,
    RequestThroughput,
    /// Requests meeting every SLO, per second (only recorded when the run had an SLO).
    Goodput,
    CpuCoresMean,
    CpuCoresP95,
    PeakRssBytes,
    /// Not in the run record yet.
    RamPer1kTokens,
    /// Not in the run record yet.
    EnergyPerToken,
    /// failed / (completed + failed).
    ErrorRate,
}

/// The names that are not `<latency>.<stat>`, in the order error messages list them.
const SCALARS: [(&str, MetricName); 9] = [
    ("output_token_throughput", MetricName::OutputTokenThroughput),
    ("request_throughput", MetricName::RequestThroughput),
    ("goodput", MetricName::Goodput),
    ("cpu_cores.mean", MetricName::CpuCoresMean),
    ("cpu_cores.p95", MetricName::CpuCoresP95),
    ("peak_rss_bytes", MetricName::PeakRssBytes),
    ("ram_per_1k_tokens", MetricName::RamPer1kTokens),
    ("energy_per_token", MetricName::EnergyPerToken),
    ("error_rate", MetricName::ErrorRate),
];

impl MetricName {
    /// SI unit of the values, for display.
    pub fn unit(self) -> &'static str {
        match self {
            MetricName::Latency(..) => "s",
            MetricName::OutputTokenThroughput => "tokens/s",
            MetricName::RequestThroughput | MetricName::Goodput => "requests/s",
            MetricName::CpuCoresMean | MetricName::CpuCoresP95 => "cores",
            MetricName::PeakRssBytes | MetricName::RamPer1kTokens => "bytes",
            MetricName::EnergyPerToken => "J/token",
            MetricName::ErrorRate => "fraction",
        }
    }

    /// Measure slug for Bencher Metric Format: the name with `.` and `_` turned into `-`
    /// (`ttft.p95` → `ttft-p95`), since Bencher slugs are lowercase words joined by hyphens.
    pub fn slug(self) -> String {
        self.to_string().replace(['.', '_'], "-")
    }

    /// A sentence listing what a metric name may be, for error messages.
    pub fn expected_names() -> String {
        let lat: Vec<&str> = Latency::ALL.iter().map(|l| l.name()).collect();
        let stat: Vec<&str> = Stat::ALL.iter().map(|s| s.name()).collect();
        let scalars: Vec<&str> = SCALARS.iter().map(|(n, _)| *n).collect();
        format!(
            "`<latency>.<stat>` with latency one of {} and stat one of {}, or one of {}",
            lat.join(", "),
            stat.join(", "),
            scalars.join(", ")
        )
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricName::Latency(l, s) => write!(f, "{}.{}", l.name(), s.name()),
            other => {
                let name = SCALARS
                    .iter()
                    .find(|(_, m)| m == other)
                    .map_or("?", |(n, _)| n);
                f.write_str(name)
            }
        }
    }
}

/// A name that is not a known metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric `{name}`: expected {}", MetricName::expected_names())]
pub struct UnknownMetric {
    pub name: String,
}

impl FromStr for MetricName {
    type Err = UnknownMetric;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((_, m)) = SCALARS.iter().find(|(n, _)| *n == s) {
            return Ok(*m);
        }
        let unknown = || UnknownMetric { name: s.to_owned() };
        let (lat, stat) = s.split_once('.').ok_or_else(unknown)?;
        let lat = Latency::ALL.into_iter().find(|l| l.name() == lat);
        let stat = Stat::ALL.into_iter().find(|x| x.name() == stat);
        match (lat, stat) {
            (Some(l), Some(x)) => Ok(MetricName::Latency(l, x)),
            _ => Err(unknown()),
        }
    }
}

impl From<MetricName> for String {
    fn from(m: MetricName) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for MetricName {
    type Error = UnknownMetric;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// The value of `metric` in one trial, or `None` when the record does not carry it (not
/// measured, nothing completed, or a metric charter does not record yet). `None` makes the gate
/// say "inconclusive", never "pass".
pub fn metric_value(
    summary: &RunSummary,
    resources: &ResourceSummary,
    metric: &MetricName,
) -> Option<f64> {
    let v = match *metric {
        MetricName::Latency(l, s) => l.of_summary(summary).map(|x| s.of(x)),
        MetricName::OutputTokenThroughput => summary.output_token_throughput_per_s,
        MetricName::RequestThroughput => summary.request_throughput_per_s,
        MetricName::CpuCoresMean => resources.process_cpu_cores.as_ref().map(|c| c.mean),
        MetricName::CpuCoresP95 => resources.process_cpu_cores.as_ref().map(|c| c.p95),
        MetricName::PeakRssBytes => resources.peak_rss_bytes.map(|b| b as f64),
        MetricName::Goodput => summary.goodput_per_s,
        MetricName::ErrorRate => {
            let total = summary.requests_completed + summary.requests_failed;
            // A run with no finished request has no error rate (0/0), not a perfect one.
            (total > 0).then(|| summary.requests_failed as f64 / total as f64)
        }
        // Not in the run record yet: the gate must report these as unmeasured.
        MetricName::RamPer1kTokens | MetricName::EnergyPerToken => None,
    };
    v.filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use charter_record::ValueSummary;

    #[test]
    fn every_name_round_trips() {
        let mut n = 0;
        for l in Latency::ALL {
            for s in Stat::ALL {
                let m = MetricName::Latency(l, s);
                assert_eq!(m.to_string().parse::<MetricName>(), Ok(m));
                n += 1;
            }
        }
        for (name, m) in SCALARS {
            assert_eq!(name.parse::<MetricName>(), Ok(m));
            assert_eq!(m.to_string(), name);
            n += 1;
        }
        assert_eq!(n, Latency::ALL.len() * Stat::ALL.len() + SCALARS.len());
        assert_eq!(
            "ttft.p95".parse::<MetricName>().map(MetricName::slug),
            Ok("ttft-p95".to_owned())
        );
        for bad in ["ttft", "ttft.p42", "latency.p95", "cpu_cores.p50", "", "."] {
            assert!(bad.parse::<MetricName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn values_come_from_the_record() {
        let lat = LatencySummary {
            count: 10,
            mean_s: 0.1,
            stddev_s: 0.01,
            min_s: 0.05,
            p50_s: 0.09,
            p90_s: 0.15,
            p95_s: 0.2,
            p99_s: 0.3,
            p999_s: 0.35,
            max_s: 0.4,
        };
        let summary = RunSummary {
            requests_completed: 9,
            requests_failed: 1,
            output_token_throughput_per_s: Some(123.0),
            itl: Some(lat.clone()),
            ..Default::default()
        };
        let resources = ResourceSummary {
            process_cpu_cores: ValueSummary::from_values(&[1.0, 2.0, 3.0]),
            peak_rss_bytes: Some(1 << 30),
            ..Default::default()
        };
        let v = |name: &str| metric_value(&summary, &resources, &name.parse().unwrap());
        assert_eq!(v("itl.p95"), Some(0.2));
        assert_eq!(v("itl.p999"), Some(0.35));
        assert_eq!(v("itl.mean"), Some(0.1));
        assert_eq!(v("ttft.p95"), None);
        assert_eq!(v("output_token_throughput"), Some(123.0));
        assert_eq!(v("request_throughput"), None);
        assert_eq!(v("cpu_cores.mean"), Some(2.0));
        assert_eq!(v("cpu_cores.p95"), Some(3.0));
        assert_eq!(v("peak_rss_bytes"), Some(1073741824.0));
        assert_eq!(v("error_rate"), Some(0.1));
        assert_eq!(v("goodput"), None);
        let with_slo = RunSummary {
            goodput_per_s: Some(2.5),
            ..Default::default()
        };
        assert_eq!(
            metric_value(&with_slo, &resources, &MetricName::Goodput),
            Some(2.5)
        );
        assert_eq!(v("energy_per_token"), None);
        assert_eq!(v("ram_per_1k_tokens"), None);
        let empty = RunSummary::default();
        assert_eq!(
            metric_value(&empty, &resources, &MetricName::ErrorRate),
            None
        );
    }
}
