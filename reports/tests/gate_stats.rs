//! Behaviour of `charter gate` on seeded synthetic trials: it must not cry wolf on identical
//! distributions (A/A), must catch a real shift, must pass a shift inside the threshold, and its
//! outputs and rules-file errors must have the documented shape.

use std::path::{Path, PathBuf};

use charter_reports::gate::{
    evaluate, gate, to_bmf, to_junit_xml, GateOptions, GateReport, GateRules, Latency, MetricName,
    Rule, Stat, TrialValues, Verdict,
};
use charter_reports::{LatencySummary, RunSummary};
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Per-run values with lognormal noise of coefficient of variation ≈ `cv` around `median`
/// (Box–Muller normal, exponentiated), as run-to-run benchmark noise tends to be skewed.
fn lognormal(rng: &mut StdRng, median: f64, cv: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
            let u2: f64 = rng.random();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            median * (cv * z).exp()
        })
        .collect()
}

fn ttft_rule(spec: &str) -> Rule {
    Rule::parse(MetricName::Latency(Latency::Ttft, Stat::P95), spec).unwrap()
}

/// Resamples kept low so the 1,200 simulated gates stay fast in debug builds.
fn sim_opts() -> GateOptions {
    GateOptions {
        bootstrap_resamples: 1000,
        ..GateOptions::default()
    }
}

/// Verdict counts over `sims` gates of 7 trials a side, candidate median = `shift` × baseline.
fn simulate(rule: &Rule, shift: f64, cv: f64, sims: usize, seed: u64) -> [usize; 4] {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts = [0; 4];
    for i in 0..sims {
        let b = lognormal(&mut rng, 0.2, cv, 7);
        let c = lognormal(&mut rng, 0.2 * shift, cv, 7);
        let opts = GateOptions {
            seed: i as u64,
            ..sim_opts()
        };
        let k = match evaluate(rule, &b, &c, &opts).verdict {
            Verdict::Pass => 0,
            Verdict::Improvement => 1,
            Verdict::Regression => 2,
            Verdict::Inconclusive => 3,
        };
        counts[k] += 1;
    }
    counts
}

/// P(X ≥ k) for X ~ Binomial(n, p), summed exactly over the probability mass function
/// (computed by the recurrence pmf(i+1) = pmf(i) · (n−i)/(i+1) · p/(1−p); no cancellation, as
/// only the tail terms are added).
fn binomial_upper_tail(n: usize, p: f64, k: usize) -> f64 {
    let mut pmf = (1.0 - p).powi(n as i32);
    let mut tail = 0.0;
    for i in 0..=n {
        if i >= k {
            tail += pmf;
        }
        pmf *= (n - i) as f64 / (i + 1) as f64 * p / (1.0 - p);
    }
    tail.min(1.0)
}

/// Whether `count` false verdicts in `sims` A/A gates are consistent with the gate's claim: one
/// direction of a two-sided test at `alpha` is wrong at most alpha/2 of the time (the threshold
/// only lowers it). Inconsistent = P(X ≥ count) < 0.001 under Binomial(sims, alpha/2). For
/// 400 gates at alpha 0.05 this fails from 22 on: a gate wrong at twice its claim (mean 20)
/// fails it about a third of the time, one at 4× (mean 40) with probability > 0.999.
fn assert_within_alpha(count: usize, sims: usize, what: &str) {
    let alpha = GateOptions::default().alpha;
    let tail = binomial_upper_tail(sims, alpha / 2.0, count);
    assert!(
        tail >= 1e-3,
        "{count}/{sims} {what}: P(X ≥ {count}) = {tail:.2e} under Binomial({sims}, alpha/2 = {})",
        alpha / 2.0
    );
}

#[test]
fn binomial_tail_is_exact() {
    // Binomial(4, 0.5): P(X ≥ 3) = 5/16; P(X ≥ 0) = 1.
    assert!((binomial_upper_tail(4, 0.5, 3) - 5.0 / 16.0).abs() < 1e-12);
    assert!((binomial_upper_tail(400, 0.025, 0) - 1.0).abs() < 1e-9);
    // The cut-off the A/A test uses at alpha 0.05: 21 passes, 22 does not.
    assert!(binomial_upper_tail(400, 0.025, 21) >= 1e-3);
    assert!(binomial_upper_tail(400, 0.025, 22) < 1e-3);
}

#[test]
fn aa_gates_rarely_cry_wolf() {
    // Identical distributions, 5 % noise: false regressions and false improvements each within
    // the binomial bound of alpha/2 (the two-sided test's share per direction).
    let sims = 400;
    let [pass, improvement, regression, inconclusive] =
        simulate(&ttft_rule("max +5%"), 1.0, 0.05, sims, 11);
    eprintln!("A/A max +5%: pass {pass}, improvement {improvement}, regression {regression}, inconclusive {inconclusive}");
    assert_within_alpha(regression, sims, "false regressions (max rule)");
    assert_within_alpha(improvement, sims, "false improvements (max rule)");
    // Higher-is-better rules get the same protection.
    let thr = Rule::parse(MetricName::OutputTokenThroughput, "min -3%").unwrap();
    let [_, improvement, regression, _] = simulate(&thr, 1.0, 0.03, sims, 12);
    eprintln!("A/A min -3%: improvement {improvement}, regression {regression}");
    assert_within_alpha(regression, sims, "false regressions (min rule)");
    assert_within_alpha(improvement, sims, "false improvements (min rule)");
}

#[test]
fn a_real_shift_is_caught() {
    // +20 % with 5 % noise and 7 trials a side: at least 90 % power.
    let [pass, improvement, regression, inconclusive] =
        simulate(&ttft_rule("max +5%"), 1.2, 0.05, 400, 21);
    eprintln!("+20%: pass {pass}, improvement {improvement}, regression {regression}, inconclusive {inconclusive}");
    assert!(regression >= 360, "only {regression}/400 detected");
    // A 20 % throughput drop under `min -3%` likewise.
    let thr = Rule::parse(MetricName::OutputTokenThroughput, "min -3%").unwrap();
    let [.., regression, _] = simulate(&thr, 0.8, 0.05, 400, 22);
    assert!(
        regression >= 360,
        "only {regression}/400 detected (min rule)"
    );
}

#[test]
fn a_shift_inside_the_threshold_passes() {
    // +2 % under a 5 % limit with 1 % noise: the interval sits below +5 %, so pass, never
    // regression, although the shift itself is usually significant.
    let [pass, improvement, regression, inconclusive] =
        simulate(&ttft_rule("max +5%"), 1.02, 0.01, 400, 31);
    eprintln!("+2%: pass {pass}, improvement {improvement}, regression {regression}, inconclusive {inconclusive}");
    assert_eq!(regression, 0);
    assert!(pass >= 380, "only {pass}/400 passed");
}

#[test]
fn same_seed_same_report() {
    let mut rng = StdRng::seed_from_u64(5);
    let b = lognormal(&mut rng, 1.0, 0.05, 7);
    let c = lognormal(&mut rng, 1.03, 0.05, 7);
    let r = ttft_rule("max +5%");
    assert_eq!(
        evaluate(&r, &b, &c, &sim_opts()),
        evaluate(&r, &b, &c, &sim_opts())
    );
}

fn trial(ttft_p95: f64, itl_p50: f64, tps: f64) -> TrialValues {
    let lat = |v: f64| LatencySummary {
        count: 100,
        mean_s: v,
        stddev_s: 0.0,
        min_s: v,
        p50_s: v,
        p90_s: v,
        p95_s: v,
        p99_s: v,
        p999_s: v,
        max_s: v,
    };
    TrialValues::new(
        RunSummary {
            requests_completed: 100,
            ttft: Some(lat(ttft_p95)),
            itl: Some(lat(itl_p50)),
            output_token_throughput_per_s: Some(tps),
            ..Default::default()
        },
        Default::default(),
    )
}

/// The example rules over 7 + 7 trials: TTFT regresses 30 %, ITL and throughput hold,
/// RAM and energy are not measured.
fn example_report() -> GateReport {
    let rules = GateRules::from_path(&example_path()).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let mut trials = |ttft: f64| -> Vec<TrialValues> {
        let t = lognormal(&mut rng, ttft, 0.02, 7);
        let i = lognormal(&mut rng, 0.010, 0.01, 7);
        let s = lognormal(&mut rng, 500.0, 0.01, 7);
        (0..7).map(|k| trial(t[k], i[k], s[k])).collect()
    };
    let base = trials(0.100);
    let cand = trials(0.130);
    gate(&rules, &base, &cand)
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gate.toml")
}

#[test]
fn example_rules_file_parses() {
    let rules = GateRules::from_path(&example_path()).unwrap();
    let names: Vec<String> = rules.rules.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        names,
        [
            "ttft.p95 max +5%",
            "itl.p50 max +5%",
            "output_token_throughput min -3%",
            "ram_per_1k_tokens max +10%",
            "energy_per_token max +5%",
        ]
    );
    assert_eq!(rules.options.bootstrap_resamples, 2000);
    assert!(!rules.options.fail_on_inconclusive);
}

#[test]
fn example_gate_verdicts() {
    let r = example_report();
    let verdicts: Vec<Verdict> = r.metrics.iter().map(|m| m.verdict).collect();
    use Verdict::*;
    assert_eq!(
        verdicts,
        [Regression, Pass, Pass, Inconclusive, Inconclusive],
        "{}",
        charter_reports::gate::to_console(&r)
    );
    assert_eq!(r.metrics[3].reason, "not measured in these runs");
    assert_eq!((r.verdict, r.exit_code), (Regression, 1));
}

#[test]
fn junit_xml_has_the_expected_shape() {
    let r = example_report();
    let xml = to_junit_xml(&r);
    let mut reader = Reader::from_str(&xml);
    let (mut suites, mut suite, mut cases, mut failures, mut skipped) = (0, 0, 0, 0, 0);
    let mut failure_message = String::new();
    let mut suite_attrs = Vec::new();
    loop {
        let event = reader.read_event().expect("well-formed XML");
        let e = match &event {
            Event::Start(e) | Event::Empty(e) => e.clone(),
            Event::Eof => break,
            _ => continue,
        };
        let attr = |name: &str| -> String {
            e.try_get_attribute(name)
                .unwrap()
                .map(|a| {
                    a.normalized_value(XmlVersion::Explicit1_0)
                        .unwrap()
                        .into_owned()
                })
                .unwrap_or_default()
        };
        match e.name().as_ref() {
            "testsuites" => suites += 1,
            "testsuite" => {
                suite += 1;
                suite_attrs = ["name", "tests", "failures", "errors", "skipped"]
                    .map(attr)
                    .to_vec();
            }
            "testcase" => cases += 1,
            "failure" => {
                failures += 1;
                failure_message = attr("message");
            }
            "skipped" => skipped += 1,
            _ => {}
        }
    }
    assert_eq!(
        (suites, suite, cases, failures, skipped),
        (1, 1, 5, 1, 2),
        "{xml}"
    );
    assert_eq!(suite_attrs, ["charter gate", "5", "1", "0", "2"]);
    // The message survives escaping (`<` in "p = ... < 0.05") and carries the numbers.
    assert!(
        failure_message.starts_with("ttft.p95: median changed +"),
        "{failure_message}"
    );
    assert!(failure_message.contains("< 0.05"), "{failure_message}");
    assert!(xml.contains("&lt; 0.05"), "{xml}");
}

#[test]
fn bmf_json_has_the_documented_shape() {
    let r = example_report();
    let bmf: serde_json::Value = serde_json::from_str(&to_bmf(&r, "tiny-15m c=6")).unwrap();
    let root = bmf.as_object().unwrap();
    assert_eq!(root.len(), 1);
    let measures = root["tiny-15m c=6"].as_object().unwrap();
    // Unmeasured metrics have no value to report.
    let mut slugs: Vec<&str> = measures.keys().map(String::as_str).collect();
    slugs.sort_unstable();
    assert_eq!(slugs, ["itl-p50", "output-token-throughput", "ttft-p95"]);
    for (slug, m) in measures {
        let m = m.as_object().unwrap();
        let get = |k: &str| m[k].as_f64().unwrap();
        let (v, lo, hi) = (get("value"), get("lower_value"), get("upper_value"));
        assert!(lo <= v && v <= hi, "{slug}: {lo} {v} {hi}");
        assert_eq!(m.len(), 3);
    }
    // SI units: seconds, not milliseconds.
    let ttft = measures["ttft-p95"]["value"].as_f64().unwrap();
    assert!((0.11..0.15).contains(&ttft), "{ttft}");
}

fn write_rules(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_rules_files_say_where_and_what() {
    let cases = [
        (
            "unknown-metric.toml",
            "[rules]\n\"ttft.p95\" = \"max +5%\"\n\"ttft.p42\" = \"max +5%\"\n",
            ":3:",
            "rules.ttft.p42",
            "expected `<latency>.<stat>`",
        ),
        (
            "no-percent.toml",
            "[rules]\n\"ttft.p95\" = \"max 5\"\n",
            ":2:",
            "rules.ttft.p95",
            "expected `max +N%`",
        ),
        (
            "bad-word.toml",
            "[rules]\n\"ttft.p95\" = \"up +5%\"\n",
            ":2:",
            "rules.ttft.p95",
            "expected `max +N%`",
        ),
        (
            "not-a-number.toml",
            "[rules]\n\"ttft.p95\" = \"max +abc%\"\n",
            ":2:",
            "rules.ttft.p95",
            "`abc` is not a number",
        ),
        (
            "min-positive.toml",
            "[rules]\n\"output_token_throughput\" = \"min +3%\"\n",
            ":2:",
            "rules.output_token_throughput",
            "expected `max +N%`",
        ),
        (
            "max-negative.toml",
            "[rules]\n\"itl.p50\" = \"max -5%\"\n",
            ":2:",
            "rules.itl.p50",
            "limit is `+N%`",
        ),
        (
            "wrong-type.toml",
            "min_trials = \"five\"\n[rules]\n\"ttft.p95\" = \"max +5%\"\n",
            ":1:",
            "min_trials",
            "expected u64",
        ),
        (
            "wrong-rule-type.toml",
            "[rules]\n\"ttft.p95\" = 0.05\n",
            ":2:",
            "rules.ttft.p95",
            "expected a threshold string",
        ),
        (
            "unknown-key.toml",
            "alpha = 0.05\nthreshold = 5\n[rules]\n\"ttft.p95\" = \"max +5%\"\n",
            ":2:",
            "threshold",
            "expected one of `alpha`",
        ),
    ];
    for (name, text, line, key, expected) in cases {
        let path = write_rules(name, text);
        let e = GateRules::from_path(&path).unwrap_err().to_string();
        let at = format!("{}{line}", path.display());
        assert!(e.starts_with(&at), "{name}: no file/line `{at}` in: {e}");
        assert!(
            e.contains(&format!("key `{key}`")),
            "{name}: no key in: {e}"
        );
        assert!(e.contains(expected), "{name}: no expectation in: {e}");
    }
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-gate.toml");
    let e = GateRules::from_path(&missing).unwrap_err().to_string();
    assert!(e.contains("no-such-gate.toml"), "{e}");
}
