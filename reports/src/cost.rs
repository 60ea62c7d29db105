//! Cost model: on-prem vs cloud cost per 1M output tokens, break-even and carbon, from
//! `cost.toml` (formulas: shared/docs/cost-energy.md). Every price carries its source and date;
//! a report shows them as assumptions.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const HOURS_PER_YEAR: f64 = 8760.0;
pub const HOURS_PER_MONTH: f64 = HOURS_PER_YEAR / 12.0;

/// `cost.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// True when the figures are illustrative (reports say so).
    #[serde(default)]
    pub example: bool,
    #[serde(default = "usd")]
    pub currency: String,
    /// Loaded share of paid hours (U): throughput is only earned while there is traffic.
    pub utilisation: f64,
    pub onprem: OnPrem,
    pub energy: Energy,
    #[serde(default)]
    pub cloud_instance: Vec<CloudInstance>,
    #[serde(default)]
    pub cloud_api: Vec<CloudApi>,
}

fn usd() -> String {
    "USD".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnPrem {
    /// Purchase price of one node.
    pub capex: f64,
    pub amortisation_years: f64,
    /// Yearly interest rate r of the capital (0 = straight-line amortisation).
    pub interest_rate: f64,
    /// Yearly running cost besides energy (maintenance, space, staff share).
    pub opex_per_year: f64,
    pub source: String,
    pub date: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Energy {
    pub price_per_kwh: f64,
    pub pue: f64,
    /// Grid carbon intensity, gCO2e per kWh.
    pub carbon_g_per_kwh: f64,
    /// Declared CPU package power at full load, for the `estimated` power method
    /// (TDP × measured busy share) when nothing measured power.
    pub cpu_tdp_w: f64,
    /// Declared power of the rest of the node (memory, disks, fans), added to the estimate.
    #[serde(default)]
    pub rest_of_node_w: f64,
    pub source: String,
    pub date: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudInstance {
    pub name: String,
    pub price_per_hour: f64,
    pub source: String,
    pub date: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloudApi {
    pub name: String,
    /// Label of the `charter tokens` tokenizer this API's model uses (`NAME=SPEC`): its counts
    /// are priced with this entry. Without it, an entry applies to the tokenizer labelled with
    /// its `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    pub input_per_1m: f64,
    #[serde(default)]
    pub cached_input_per_1m: Option<f64>,
    pub output_per_1m: f64,
    /// Reasoning (thinking) output tokens, where the API prices them apart from the rest of
    /// the output (without it they cost `output_per_1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_per_1m: Option<f64>,
    pub source: String,
    pub date: String,
}

/// A cost file that cannot be used, naming the file and key.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("cost file {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cost file {path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
}

impl CostConfig {
    pub fn from_path(path: &Path) -> Result<Self, CostError> {
        let text = std::fs::read_to_string(path).map_err(|source| CostError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text, path)
    }

    pub fn from_str(text: &str, path: &Path) -> Result<Self, CostError> {
        let invalid = |line, message: String| CostError::Invalid {
            path: path.to_path_buf(),
            line,
            message,
        };
        let cfg: CostConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            invalid(line, e.message().trim().to_string())
        })?;
        let mut checks: Vec<(String, f64)> = vec![
            ("utilisation".into(), cfg.utilisation),
            ("onprem.capex".into(), cfg.onprem.capex),
            (
                "onprem.amortisation_years".into(),
                cfg.onprem.amortisation_years,
            ),
            ("onprem.interest_rate".into(), cfg.onprem.interest_rate),
            ("onprem.opex_per_year".into(), cfg.onprem.opex_per_year),
            ("energy.price_per_kwh".into(), cfg.energy.price_per_kwh),
            ("energy.pue".into(), cfg.energy.pue),
            (
                "energy.carbon_g_per_kwh".into(),
                cfg.energy.carbon_g_per_kwh,
            ),
            ("energy.cpu_tdp_w".into(), cfg.energy.cpu_tdp_w),
            ("energy.rest_of_node_w".into(), cfg.energy.rest_of_node_w),
        ];
        for (i, c) in cfg.cloud_instance.iter().enumerate() {
            checks.push((
                format!("cloud_instance[{i}].price_per_hour"),
                c.price_per_hour,
            ));
        }
        for (i, a) in cfg.cloud_api.iter().enumerate() {
            checks.push((format!("cloud_api[{i}].input_per_1m"), a.input_per_1m));
            checks.push((format!("cloud_api[{i}].output_per_1m"), a.output_per_1m));
            if let Some(c) = a.cached_input_per_1m {
                checks.push((format!("cloud_api[{i}].cached_input_per_1m"), c));
            }
            if let Some(r) = a.reasoning_per_1m {
                checks.push((format!("cloud_api[{i}].reasoning_per_1m"), r));
            }
        }
        for (key, v) in checks {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(
                    None,
                    format!("key `{key}` is {v}; expected a number ≥ 0"),
                ));
            }
        }
        if !(cfg.utilisation > 0.0 && cfg.utilisation <= 1.0) {
            return Err(invalid(
                None,
                format!(
                    "key `utilisation` is {}; expected a share in (0, 1]",
                    cfg.utilisation
                ),
            ));
        }
        if cfg.onprem.amortisation_years <= 0.0 {
            return Err(invalid(
                None,
                "key `onprem.amortisation_years` must be > 0".into(),
            ));
        }
        if cfg.energy.pue < 1.0 {
            return Err(invalid(
                None,
                format!("key `energy.pue` is {}; expected ≥ 1", cfg.energy.pue),
            ));
        }
        Ok(cfg)
    }
}

/// Capital recovery factor: the share of capex paid per year over `years` at interest `r`.
pub fn crf(r: f64, years: f64) -> f64 {
    if r == 0.0 {
        1.0 / years
    } else {
        let g = (1.0 + r).powf(years);
        r * g / (g - 1.0)
    }
}

impl OnPrem {
    /// Capital and running cost of one node per hour, energy excluded.
    pub fn fixed_per_hour(&self) -> f64 {
        (self.capex * crf(self.interest_rate, self.amortisation_years) + self.opex_per_year)
            / HOURS_PER_YEAR
    }
}

impl Energy {
    /// Cost of drawing `watts` for one hour at the wall (PUE included).
    pub fn cost_per_hour(&self, watts: f64) -> f64 {
        watts / 1000.0 * self.pue * self.price_per_kwh
    }

    /// Power estimated from the declared TDP and the measured busy share of the CPUs.
    pub fn estimated_watts(&self, busy_cores: f64, logical_cores: f64) -> f64 {
        self.cpu_tdp_w * (busy_cores / logical_cores).clamp(0.0, 1.0) + self.rest_of_node_w
    }
}

/// Why a cost cannot be computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
pub enum CostIssue {
    #[error("no throughput: the run completed no output tokens, so a cost per token is undefined")]
    NoThroughput,
}

/// Cost per 1M output tokens of something costing `per_hour` that produces `tokens_per_s`
/// while loaded, loaded for a share `utilisation` of paid hours.
pub fn per_million(per_hour: f64, tokens_per_s: f64, utilisation: f64) -> Result<f64, CostIssue> {
    // NaN counts as no throughput too.
    if tokens_per_s.is_nan() || tokens_per_s <= 0.0 {
        return Err(CostIssue::NoThroughput);
    }
    Ok(per_hour / (tokens_per_s * 3600.0 * utilisation) * 1e6)
}

/// API price per 1M output tokens, given the input:output token ratio of the workload.
pub fn api_per_million_output(api: &CloudApi, input_per_output: f64) -> f64 {
    api.output_per_1m + input_per_output * api.input_per_1m
}

/// Monthly output-token volume at which on-prem (a fixed monthly cost plus a variable cost per
/// 1M tokens) costs the same as a per-token price; `None` when on-prem never breaks even.
pub fn break_even_tokens_per_month(
    onprem_fixed_per_month: f64,
    onprem_variable_per_1m: f64,
    cloud_per_1m: f64,
) -> Option<f64> {
    let margin = cloud_per_1m - onprem_variable_per_1m;
    (margin > 0.0).then(|| onprem_fixed_per_month / margin * 1e6)
}

/// Months until one node's capex is recovered against a flat monthly cloud price, given the
/// node's running cost per month; `None` when cloud is cheaper to run.
pub fn break_even_months(
    capex: f64,
    cloud_per_month: f64,
    onprem_running_per_month: f64,
) -> Option<f64> {
    let margin = cloud_per_month - onprem_running_per_month;
    (margin > 0.0).then(|| capex / margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crf_matches_hand_computation() {
        // r = 0: straight line.
        assert!((crf(0.0, 4.0) - 0.25).abs() < 1e-12);
        // r = 5 %, n = 4: 0.05 × 1.21550625 / 0.21550625 = 0.282011832...
        assert!((crf(0.05, 4.0) - 0.282_011_832_4).abs() < 1e-9);
    }

    #[test]
    fn per_million_and_zero_throughput() {
        // $3.60/h at 100 tok/s fully loaded: 360,000 tokens/h → $10 per 1M.
        assert!((per_million(3.6, 100.0, 1.0).unwrap() - 10.0).abs() < 1e-9);
        // Half loaded: twice the cost per token.
        assert!((per_million(3.6, 100.0, 0.5).unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(per_million(3.6, 0.0, 1.0), Err(CostIssue::NoThroughput));
        assert_eq!(
            per_million(3.6, f64::NAN, 1.0),
            Err(CostIssue::NoThroughput)
        );
    }

    #[test]
    fn seed_example_break_even() {
        // Seed 004: $3,200 node vs $2,500/month cloud; 4-year straight line, 10 % maintenance.
        let onprem = OnPrem {
            capex: 3200.0,
            amortisation_years: 4.0,
            interest_rate: 0.0,
            opex_per_year: 320.0,
            source: "t".into(),
            date: "t".into(),
        };
        // (3200/4 + 320) / 8760 = 1120 / 8760 = 0.12785 per hour.
        assert!((onprem.fixed_per_hour() - 1120.0 / 8760.0).abs() < 1e-12);
        // Running cost 320/12 = 26.67 a month: capex back in 3200 / (2500 − 26.67) months.
        let m = break_even_months(3200.0, 2500.0, 320.0 / 12.0).unwrap();
        assert!((m - 3200.0 / (2500.0 - 320.0 / 12.0)).abs() < 1e-9);
        assert!(break_even_months(3200.0, 10.0, 20.0).is_none());
        // Fixed $100/month, variable $0.5/1M vs cloud $2.5/1M: break even at 50M tokens/month.
        let v = break_even_tokens_per_month(100.0, 0.5, 2.5).unwrap();
        assert!((v - 50e6).abs() < 1e-3);
        assert!(break_even_tokens_per_month(100.0, 3.0, 2.5).is_none());
    }

    #[test]
    fn energy_cost_and_estimate() {
        let e = Energy {
            price_per_kwh: 0.10,
            pue: 1.5,
            carbon_g_per_kwh: 475.0,
            cpu_tdp_w: 65.0,
            rest_of_node_w: 15.0,
            source: "t".into(),
            date: "t".into(),
        };
        // 200 W × 1.5 PUE = 0.3 kWh per hour × $0.10 = $0.03.
        assert!((e.cost_per_hour(200.0) - 0.03).abs() < 1e-12);
        assert!((e.estimated_watts(1.0, 2.0) - 47.5).abs() < 1e-12);
        assert!(
            (e.estimated_watts(5.0, 2.0) - 80.0).abs() < 1e-12,
            "clamped at full load"
        );
    }
}
