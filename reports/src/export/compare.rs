//! The `charter compare` table: each run's main level side by side (the level its capacity
//! names, else its first), every number with its ratio to the first run.

use std::fmt::Write;

use super::{Export, Format, Unsupported};
use crate::charter::{Charter, LevelCharter};

/// One compared quantity across the runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRow {
    /// Name with its display unit, e.g. `TTFT p99 (ms)`.
    pub metric: &'static str,
    /// Per run, in the display unit; `None`: not measured.
    pub values: Vec<Option<f64>>,
    /// Per run, value ÷ the first run's (`None` for the first run, and where either is missing
    /// or the first is zero).
    pub ratios: Vec<Option<f64>>,
}

/// The comparison of the runs of a charter, in their order.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareDoc {
    /// Each run's backend (model).
    pub runs: Vec<String>,
    /// Each run's main level load, `None` for a run without levels.
    pub loads: Vec<Option<String>>,
    pub rows: Vec<CompareRow>,
}

type Get = fn(&LevelCharter) -> Option<f64>;

/// Name, value, and factor from SI to the display unit.
const ROWS: [(&str, Get, f64); 9] = [
    ("output tokens/s", |l| l.output_tokens_per_s, 1.0),
    ("requests/s", |l| l.requests_per_s, 1.0),
    ("TTFT p50 (ms)", |l| l.ttft_p50_s, 1e3),
    ("TTFT p99 (ms)", |l| l.ttft_p99_s, 1e3),
    ("ITL p50 (ms)", |l| l.itl_p50_s, 1e3),
    ("ITL p99 (ms)", |l| l.itl_p99_s, 1e3),
    ("E2E p99 (ms)", |l| l.e2e_p99_s, 1e3),
    ("CPU cores (mean)", |l| l.cpu_cores_mean, 1.0),
    (
        "peak RSS (MiB)",
        |l| l.rss_peak_bytes.map(|b| b as f64),
        1.0 / 1048576.0,
    ),
];

impl CompareDoc {
    pub fn new(ch: &Charter) -> Self {
        let mains: Vec<Option<&LevelCharter>> = ch
            .runs
            .iter()
            .map(|r| {
                let want = r.capacity.as_ref().map(|c| &c.load);
                r.levels
                    .iter()
                    .find(|l| Some(&l.load) == want)
                    .or(r.levels.first())
            })
            .collect();
        let rows = ROWS
            .iter()
            .map(|&(metric, get, scale)| {
                let raw: Vec<Option<f64>> = mains.iter().map(|m| m.and_then(get)).collect();
                let base = raw.first().copied().flatten();
                CompareRow {
                    metric,
                    values: raw.iter().map(|v| v.map(|v| v * scale)).collect(),
                    ratios: raw
                        .iter()
                        .enumerate()
                        .map(|(i, v)| match (v, base) {
                            (Some(v), Some(b)) if i > 0 && b != 0.0 => Some(v / b),
                            _ => None,
                        })
                        .collect(),
                }
            })
            .collect();
        CompareDoc {
            runs: ch.runs.iter().map(|r| r.backend.clone()).collect(),
            loads: mains.iter().map(|m| m.map(|l| l.load.clone())).collect(),
            rows,
        }
    }

    fn console(&self) -> String {
        let mut o = format!("{:<18}", "");
        for (i, r) in self.runs.iter().enumerate() {
            let name: String = r.chars().take(22).collect();
            let _ = write!(
                o,
                " {:>24}",
                if i == 0 { name } else { format!("{name} (×)") }
            );
        }
        let _ = write!(o, "\n{:<18}", "load");
        for l in &self.loads {
            let _ = write!(o, " {:>24}", l.as_deref().unwrap_or_default());
        }
        o.push('\n');
        for row in &self.rows {
            let _ = write!(o, "{:<18}", row.metric);
            for (v, ratio) in row.values.iter().zip(&row.ratios) {
                let cell = match (v, ratio) {
                    (Some(v), Some(r)) => format!("{v:.2} ({r:.2}×)"),
                    (Some(v), None) => format!("{v:.2}"),
                    _ => "n/a".into(),
                };
                let _ = write!(o, " {cell:>24}");
            }
            o.push('\n');
        }
        o + "\n(× = ratio to the first run; each run's row is its highest sustained level)\n"
    }
}

impl Export for CompareDoc {
    fn export(&self, format: Format) -> Result<String, Unsupported> {
        match format {
            Format::Console => Ok(self.console()),
            format => Err(Unsupported {
                document: "the comparison",
                format,
            }),
        }
    }
}
