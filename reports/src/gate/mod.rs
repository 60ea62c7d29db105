//! The pure core of `charter gate`: compare a baseline and a candidate set of runs metric by
//! metric and decide, per rule, pass / regression / improvement / inconclusive, in a way that does
//! not cry wolf on noise (shared/docs/cost-energy.md, "CI gating").
//!
//! - The unit of evidence is one trial (run): each run gives one value per metric.
//! - Effect size is the ratio of medians, candidate ÷ baseline.
//! - Significance is **the two-sided Mann–Whitney U test at `alpha`** on the per-trial values,
//!   for both regressions and improvements. The percentile bootstrap interval of the ratio is
//!   not a second test: with 5–10 runs a side it is too narrow to be trusted as one (the
//!   percentile bootstrap under-covers in small samples), so it is used only to say whether the
//!   data can rule a regression beyond the threshold out (pass) or not (inconclusive).
//!
//! Verdict per rule, with `bad` the change in the rule's bad direction (ratio − 1 for `max`,
//! 1 − ratio for `min`) and `t` the threshold:
//! 1. a side has no value, or fewer than `min_trials` → `Inconclusive`;
//! 2. `bad > t` and p < alpha → `Regression`;
//! 3. `−bad > t` and p < alpha → `Improvement`;
//! 4. the interval's bad end is beyond `t` → `Inconclusive` (a regression is not ruled out);
//! 5. otherwise → `Pass`.
//!
//! Nothing here reads files or prints; the harness wires it to the CLI.

pub mod metrics;
pub mod output;
pub mod rules;
pub mod stats;

use charter_record::{ResourceSummary, RunSummary};
use serde::{Deserialize, Serialize};

pub use metrics::{metric_value, Latency, MetricName, Stat, UnknownMetric};
pub use output::{to_bmf, to_console, to_json, to_junit_xml, to_markdown};
pub use rules::{Bound, GateOptions, GateRules, Rule, RulesError, ThresholdError};
pub use stats::PMethod;

/// Exit code of `charter gate` when every metric passed (or improved).
pub const EXIT_PASS: i32 = 0;
/// Exit code when at least one metric regressed.
pub const EXIT_REGRESSION: i32 = 1;
/// Exit code for bad input (rules file, run records); not produced by this module.
pub const EXIT_ERROR: i32 = 2;
/// Exit code when a metric is inconclusive and `fail_on_inconclusive` is set.
pub const EXIT_INCONCLUSIVE: i32 = 3;

/// Outcome for one metric, or for the whole gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Improvement,
    Regression,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Improvement => "improvement",
            Verdict::Regression => "regression",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Everything the gate concluded about one rule, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricVerdict {
    pub metric: MetricName,
    /// SI unit of the medians (`s`, `bytes`, `tokens/s`, ...).
    pub unit: String,
    /// The threshold as written, e.g. `max +5%`.
    pub rule: String,
    pub bound: Bound,
    /// Allowed move as a fraction (0.05 for ±5 %).
    pub threshold: f64,
    pub verdict: Verdict,
    /// Why, in one sentence with the numbers.
    pub reason: String,
    /// Trials that carried this metric.
    pub n_baseline: usize,
    pub n_candidate: usize,
    pub baseline_median: Option<f64>,
    pub candidate_median: Option<f64>,
    /// candidate median ÷ baseline median (0/0 = 1, x/0 = ∞, serialised as null).
    pub ratio: Option<f64>,
    /// Bootstrap interval of `ratio` at `confidence`.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Bootstrap interval of the candidate median, from the same resamples.
    pub candidate_low: Option<f64>,
    pub candidate_high: Option<f64>,
    pub confidence: f64,
    /// Two-sided Mann–Whitney U p-value.
    pub p_value: Option<f64>,
    pub p_method: Option<PMethod>,
    pub alpha: f64,
}

/// Decide one rule from per-trial values of its metric. Non-finite values count as not measured.
pub fn evaluate(
    rule: &Rule,
    baseline: &[f64],
    candidate: &[f64],
    opts: &GateOptions,
) -> MetricVerdict {
    let b: Vec<f64> = baseline.iter().copied().filter(|v| v.is_finite()).collect();
    let c: Vec<f64> = candidate
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let t = rule.threshold();
    let mut v = MetricVerdict {
        metric: rule.metric,
        unit: rule.metric.unit().to_owned(),
        rule: rule.spec(),
        bound: rule.bound,
        threshold: t,
        verdict: Verdict::Inconclusive,
        reason: String::new(),
        n_baseline: b.len(),
        n_candidate: c.len(),
        baseline_median: stats::median(&b),
        candidate_median: stats::median(&c),
        ratio: None,
        ci_low: None,
        ci_high: None,
        candidate_low: None,
        candidate_high: None,
        confidence: opts.confidence,
        p_value: None,
        p_method: None,
        alpha: opts.alpha,
    };

    match (b.is_empty(), c.is_empty()) {
        (true, true) => {
            v.reason = "not measured in these runs".into();
            return v;
        }
        (true, false) => {
            v.reason = "not measured in the baseline runs".into();
            return v;
        }
        (false, true) => {
            v.reason = "not measured in the candidate runs".into();
            return v;
        }
        (false, false) => {}
    }

    let (Some(mb), Some(mc)) = (v.baseline_median, v.candidate_median) else {
        // Unreachable with both sides non-empty, but never leave a verdict without a reason.
        v.reason = "no median could be computed".into();
        return v;
    };
    let ratio = stats::ratio_of(mc, mb);
    v.ratio = Some(ratio);
    if let Some(ci) =
        stats::bootstrap_median_ratio(&b, &c, opts.confidence, opts.bootstrap_resamples, opts.seed)
    {
        v.ci_low = Some(ci.ratio_low);
        v.ci_high = Some(ci.ratio_high);
        v.candidate_low = Some(ci.candidate_low);
        v.candidate_high = Some(ci.candidate_high);
    }
    if let Some(mw) = stats::mann_whitney_u(&b, &c) {
        v.p_value = Some(mw.p_two_sided);
        v.p_method = Some(mw.method);
    }

    if b.len() < opts.min_trials || c.len() < opts.min_trials {
        v.reason = format!(
            "too few trials: {} baseline and {} candidate, at least {} a side needed",
            b.len(),
            c.len(),
            opts.min_trials
        );
        return v;
    }

    // Change in the rule's bad direction (positive = worse), for the point and the interval.
    let bad = |r: f64| match rule.bound {
        Bound::Max => r - 1.0,
        Bound::Min => 1.0 - r,
    };
    let effect = bad(ratio);
    let worst = match (rule.bound, v.ci_low, v.ci_high) {
        (Bound::Max, _, Some(hi)) => bad(hi),
        (Bound::Min, Some(lo), _) => bad(lo),
        _ => effect,
    };
    let p = v.p_value.unwrap_or(1.0);
    let significant = p < opts.alpha;
    let change = pct(ratio - 1.0);
    let limit = rule.spec();
    let ci = format!(
        "{:.0}% CI {} to {}",
        opts.confidence * 100.0,
        pct(v.ci_low.unwrap_or(ratio) - 1.0),
        pct(v.ci_high.unwrap_or(ratio) - 1.0)
    );

    (v.verdict, v.reason) = if significant && effect > t {
        (
            Verdict::Regression,
            format!(
                "median changed {change}, beyond `{limit}`, significant (p = {} < {})",
                fmt_p(p),
                opts.alpha
            ),
        )
    } else if significant && -effect > t {
        (
            Verdict::Improvement,
            format!(
                "median changed {change}, an improvement beyond the {}% threshold, \
                 significant (p = {} < {})",
                rule.percent,
                fmt_p(p),
                opts.alpha
            ),
        )
    } else if worst > t {
        let why = if effect > t {
            format!(
                "median changed {change}, beyond `{limit}`, but not significant (p = {} ≥ {})",
                fmt_p(p),
                opts.alpha
            )
        } else {
            format!(
                "median changed {change}, but the {ci} reaches past `{limit}` (p = {})",
                fmt_p(p)
            )
        };
        (
            Verdict::Inconclusive,
            format!("{why}: more trials are needed to rule a regression out"),
        )
    } else {
        (
            Verdict::Pass,
            format!(
                "median changed {change}, {ci} within `{limit}` (p = {})",
                fmt_p(p)
            ),
        )
    };
    v
}

fn pct(fraction: f64) -> String {
    if fraction.is_infinite() {
        return if fraction > 0.0 { "+inf%" } else { "-inf%" }.into();
    }
    format!("{:+.1}%", fraction * 100.0)
}

fn fmt_p(p: f64) -> String {
    if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// The per-trial inputs of a gate: one run's summary and resources (for a sweep, the same
/// load level of each run).
#[derive(Debug, Clone, Default)]
pub struct TrialValues {
    pub summary: RunSummary,
    pub resources: ResourceSummary,
}

impl TrialValues {
    pub fn new(summary: RunSummary, resources: ResourceSummary) -> Self {
        Self { summary, resources }
    }

    /// This trial's value of `metric`, if the run carries it.
    pub fn value(&self, metric: &MetricName) -> Option<f64> {
        metric_value(&self.summary, &self.resources, metric)
    }
}

/// The whole gate: one verdict per rule, the overall verdict and the exit code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// `regression` if any metric regressed, else `inconclusive` if any was, else
    /// `improvement` if any improved, else `pass`.
    pub verdict: Verdict,
    /// 0 pass, 1 regression, 3 inconclusive with `fail_on_inconclusive` (else 0).
    pub exit_code: i32,
    pub baseline_trials: usize,
    pub candidate_trials: usize,
    pub options: GateOptions,
    pub metrics: Vec<MetricVerdict>,
}

impl GateReport {
    /// Assemble a report from verdicts already made with [`evaluate`].
    pub fn new(
        metrics: Vec<MetricVerdict>,
        options: GateOptions,
        baseline_trials: usize,
        candidate_trials: usize,
    ) -> Self {
        let any = |x: Verdict| metrics.iter().any(|m| m.verdict == x);
        let verdict = if any(Verdict::Regression) {
            Verdict::Regression
        } else if any(Verdict::Inconclusive) {
            Verdict::Inconclusive
        } else if any(Verdict::Improvement) {
            Verdict::Improvement
        } else {
            Verdict::Pass
        };
        let exit_code = match verdict {
            Verdict::Regression => EXIT_REGRESSION,
            Verdict::Inconclusive if options.fail_on_inconclusive => EXIT_INCONCLUSIVE,
            _ => EXIT_PASS,
        };
        Self {
            verdict,
            exit_code,
            baseline_trials,
            candidate_trials,
            options,
            metrics,
        }
    }

    /// How many metrics got `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.metrics.iter().filter(|m| m.verdict == verdict).count()
    }
}

/// Evaluate every rule on the given trials, in rule order.
pub fn gate(
    rules: &GateRules,
    baseline_trials: &[TrialValues],
    candidate_trials: &[TrialValues],
) -> GateReport {
    let values = |trials: &[TrialValues], m: &MetricName| -> Vec<f64> {
        trials.iter().filter_map(|t| t.value(m)).collect()
    };
    let metrics = rules
        .rules
        .iter()
        .map(|rule| {
            evaluate(
                rule,
                &values(baseline_trials, &rule.metric),
                &values(candidate_trials, &rule.metric),
                &rules.options,
            )
        })
        .collect();
    GateReport::new(
        metrics,
        rules.options.clone(),
        baseline_trials.len(),
        candidate_trials.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(spec: &str) -> Rule {
        Rule::parse(MetricName::Latency(Latency::Ttft, Stat::P95), spec).unwrap()
    }

    fn opts() -> GateOptions {
        GateOptions {
            bootstrap_resamples: 500,
            ..GateOptions::default()
        }
    }

    const BASE: [f64; 7] = [1.00, 1.01, 0.99, 1.02, 0.98, 1.005, 0.995];

    fn scaled(k: f64) -> Vec<f64> {
        BASE.iter().map(|x| x * k).collect()
    }

    #[test]
    fn verdicts_follow_the_rules() {
        let v = evaluate(&rule("max +5%"), &BASE, &scaled(1.2), &opts());
        assert_eq!(v.verdict, Verdict::Regression, "{}", v.reason);
        assert!(v.p_value.unwrap() < 0.001);
        assert!((v.ratio.unwrap() - 1.2).abs() < 1e-12);

        let v = evaluate(&rule("max +5%"), &BASE, &scaled(0.8), &opts());
        assert_eq!(v.verdict, Verdict::Improvement, "{}", v.reason);

        let v = evaluate(&rule("max +5%"), &BASE, &scaled(1.01), &opts());
        assert_eq!(v.verdict, Verdict::Pass, "{}", v.reason);

        // Higher is better: a 20 % fall regresses, a 20 % rise improves.
        let v = evaluate(&rule("min -3%"), &BASE, &scaled(0.8), &opts());
        assert_eq!(v.verdict, Verdict::Regression, "{}", v.reason);
        let v = evaluate(&rule("min -3%"), &BASE, &scaled(1.2), &opts());
        assert_eq!(v.verdict, Verdict::Improvement, "{}", v.reason);

        // Significant but within the threshold, interval inside: pass.
        let v = evaluate(&rule("max +10%"), &BASE, &scaled(1.05), &opts());
        assert_eq!(v.verdict, Verdict::Pass, "{}", v.reason);
        assert!(v.p_value.unwrap() < 0.05);
    }

    #[test]
    fn inconclusive_cases() {
        let v = evaluate(&rule("max +5%"), &[], &[], &opts());
        assert_eq!(v.verdict, Verdict::Inconclusive);
        assert_eq!(v.reason, "not measured in these runs");

        let v = evaluate(&rule("max +5%"), &BASE[..4], &scaled(1.5), &opts());
        assert_eq!(v.verdict, Verdict::Inconclusive);
        assert!(
            v.reason.starts_with("too few trials: 4 baseline"),
            "{}",
            v.reason
        );

        // Big but noisy change: not significant, cannot rule a regression out.
        let noisy_b = [1.0, 3.0, 0.5, 2.0, 1.2];
        let noisy_c = [1.5, 0.6, 3.5, 2.4, 1.3];
        let v = evaluate(&rule("max +5%"), &noisy_b, &noisy_c, &opts());
        assert_eq!(v.verdict, Verdict::Inconclusive, "{}", v.reason);
        assert!(v.reason.contains("rule a regression out"), "{}", v.reason);

        // NaN is "not measured", not a value.
        let v = evaluate(&rule("max +5%"), &[f64::NAN; 7], &BASE, &opts());
        assert_eq!(v.reason, "not measured in the baseline runs");
    }

    #[test]
    fn zero_baseline_error_rate() {
        let r = Rule::parse(MetricName::ErrorRate, "max +0%").unwrap();
        let v = evaluate(&r, &[0.0; 6], &[0.0; 6], &opts());
        assert_eq!(v.verdict, Verdict::Pass, "{}", v.reason);
        assert_eq!(v.ratio, Some(1.0));
        let v = evaluate(&r, &[0.0; 6], &[0.1, 0.2, 0.1, 0.15, 0.1, 0.3], &opts());
        assert_eq!(v.verdict, Verdict::Regression, "{}", v.reason);
        assert_eq!(v.ratio, Some(f64::INFINITY));
    }

    #[test]
    fn overall_verdict_and_exit_codes() {
        let mk = |verdict| MetricVerdict {
            verdict,
            ..evaluate(&rule("max +5%"), &[], &[], &opts())
        };
        let report = |vs: Vec<Verdict>, fail| {
            let o = GateOptions {
                fail_on_inconclusive: fail,
                ..opts()
            };
            let r = GateReport::new(vs.into_iter().map(mk).collect(), o, 5, 5);
            (r.verdict, r.exit_code)
        };
        use Verdict::*;
        assert_eq!(report(vec![Pass, Pass], false), (Pass, 0));
        assert_eq!(report(vec![Pass, Improvement], false), (Improvement, 0));
        assert_eq!(report(vec![Inconclusive, Pass], false), (Inconclusive, 0));
        assert_eq!(report(vec![Inconclusive, Pass], true), (Inconclusive, 3));
        assert_eq!(
            report(vec![Inconclusive, Regression], true),
            (Regression, 1)
        );
    }

    #[test]
    fn gate_reads_trials_and_flags_unmeasured_metrics() {
        let rules = GateRules::from_str(
            "[rules]\n\"output_token_throughput\" = \"min -3%\"\n\"energy_per_token\" = \"max +5%\"\n",
            "t",
        )
        .unwrap();
        let trial = |tps: f64| TrialValues {
            summary: RunSummary {
                output_token_throughput_per_s: Some(tps),
                ..Default::default()
            },
            ..Default::default()
        };
        let base: Vec<TrialValues> = BASE.iter().map(|x| trial(100.0 * x)).collect();
        let cand: Vec<TrialValues> = BASE.iter().map(|x| trial(70.0 * x)).collect();
        let r = gate(&rules, &base, &cand);
        assert_eq!(r.metrics[0].verdict, Verdict::Regression);
        assert_eq!(r.metrics[1].verdict, Verdict::Inconclusive);
        assert_eq!(r.metrics[1].reason, "not measured in these runs");
        assert_eq!((r.verdict, r.exit_code), (Verdict::Regression, 1));
        assert_eq!((r.baseline_trials, r.candidate_trials), (7, 7));
    }
}
