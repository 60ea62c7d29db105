//! The gate rules file (`gate.toml`): which metrics are gated, how far each may move, and the
//! statistical settings. Every mistake in the file is reported with the file, line, key and what
//! was expected, because a CI gate that silently ignores a misspelt rule passes forever.
//!
//! ```toml
//! alpha = 0.05                 # Mann–Whitney significance level
//! min_trials = 5               # fewer runs on either side -> inconclusive
//! confidence = 0.95            # bootstrap interval level
//! bootstrap_resamples = 2000
//! seed = 1
//! fail_on_inconclusive = false # exit 3 instead of 0 when any metric is inconclusive
//! [rules]
//! "ttft.p95" = "max +5%"                 # must not rise more than 5 %
//! "output_token_throughput" = "min -3%"  # must not fall more than 3 %
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::metrics::MetricName;

/// Which way a metric may not move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// `max +N%`: higher is worse; the candidate may rise at most N %.
    Max,
    /// `min -N%`: higher is better; the candidate may fall at most N %.
    Min,
}

/// One gated metric: `"ttft.p95" = "max +5%"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub metric: MetricName,
    pub bound: Bound,
    /// The allowed move in percent, as written (always ≥ 0; the sign comes from `bound`).
    pub percent: f64,
}

impl Rule {
    /// Parse a threshold such as `max +5%` or `min -3%` for `metric`.
    pub fn parse(metric: MetricName, spec: &str) -> Result<Rule, ThresholdError> {
        let (bound, percent) = parse_threshold(spec)?;
        Ok(Rule {
            metric,
            bound,
            percent,
        })
    }

    /// The allowed move as a fraction (`max +5%` → 0.05).
    pub fn threshold(&self) -> f64 {
        self.percent / 100.0
    }

    /// The threshold as written in a rules file, e.g. `max +5%`.
    pub fn spec(&self) -> String {
        match self.bound {
            Bound::Max => format!("max +{}%", self.percent),
            Bound::Min => format!("min -{}%", self.percent),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.metric, self.spec())
    }
}

/// A threshold string that is not `max +N%` or `min -N%`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid threshold `{spec}`: {problem}; expected `max +N%` (must not rise more than N %) \
     or `min -N%` (must not fall more than N %)"
)]
pub struct ThresholdError {
    pub spec: String,
    pub problem: String,
}

fn parse_threshold(spec: &str) -> Result<(Bound, f64), ThresholdError> {
    let err = |problem: &str| ThresholdError {
        spec: spec.to_owned(),
        problem: problem.to_owned(),
    };
    let mut words = spec.split_whitespace();
    let (Some(kind), Some(amount), None) = (words.next(), words.next(), words.next()) else {
        return Err(err("it must be two words"));
    };
    let bound = match kind {
        "max" => Bound::Max,
        "min" => Bound::Min,
        _ => return Err(err(&format!("`{kind}` is neither `max` nor `min`"))),
    };
    let Some(signed) = amount.strip_suffix('%') else {
        return Err(err("the limit must be a percentage ending in `%`"));
    };
    let (sign, digits) = match signed.as_bytes().first() {
        Some(b'+') => ('+', &signed[1..]),
        Some(b'-') => ('-', &signed[1..]),
        _ => return Err(err("the percentage needs an explicit sign")),
    };
    // Only plain decimals: f64's parser would also take `inf`, `NaN` and `1e3`.
    let plain = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.chars().filter(|&c| c == '.').count() <= 1;
    let percent = match digits.parse::<f64>() {
        Ok(p) if plain && p.is_finite() => p,
        _ => return Err(err(&format!("`{digits}` is not a number"))),
    };
    match (bound, sign) {
        (Bound::Max, '-') => Err(err(
            "`max` bounds a rise, so its limit is `+N%` (a negative limit would fail unchanged code)",
        )),
        (Bound::Min, '+') => Err(err(
            "`min` bounds a fall, so its limit is `-N%` (a positive limit would fail unchanged code)",
        )),
        (Bound::Min, _) if percent > 100.0 => {
            Err(err("a metric cannot fall by more than 100 %"))
        }
        _ => Ok((bound, percent)),
    }
}

/// Statistical settings of a gate. The defaults follow shared/docs/cost-energy.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOptions {
    /// Mann–Whitney U significance level (two-sided).
    pub alpha: f64,
    /// Trials (runs) needed on each side; fewer gives `Inconclusive`.
    pub min_trials: usize,
    /// Level of the bootstrap interval of the median ratio.
    pub confidence: f64,
    pub bootstrap_resamples: usize,
    /// Bootstrap seed: fixed by default so re-running a gate on the same data gives the same
    /// interval.
    pub seed: u64,
    /// Exit 3 instead of 0 when a metric is inconclusive.
    pub fail_on_inconclusive: bool,
}

impl Default for GateOptions {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            min_trials: 5,
            confidence: 0.95,
            bootstrap_resamples: 2000,
            seed: 1,
            fail_on_inconclusive: false,
        }
    }
}

/// A parsed rules file: options plus the rules in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRules {
    pub options: GateOptions,
    pub rules: Vec<Rule>,
}

/// A rules file that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read gate rules file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `line`/`column` are 1-based; `key` is the dotted key (`rules.ttft.p95`) when known.
    #[error("{}", render_invalid(.origin, *.line, *.column, .key.as_deref(), .message))]
    Invalid {
        origin: String,
        line: Option<usize>,
        column: Option<usize>,
        key: Option<String>,
        /// What was wrong and what was expected.
        message: String,
    },
}

fn render_invalid(
    origin: &str,
    line: Option<usize>,
    column: Option<usize>,
    key: Option<&str>,
    message: &str,
) -> String {
    let mut s = origin.to_owned();
    if let Some(line) = line {
        s += &format!(":{line}");
        if let Some(column) = column {
            s += &format!(":{column}");
        }
    }
    s += ": ";
    if let Some(key) = key {
        s += &format!("key `{key}`: ");
    }
    s + message
}

impl GateRules {
    /// Read and validate a rules file.
    pub fn from_path(path: &Path) -> Result<GateRules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.to_owned(),
            source,
        })?;
        GateRules::from_str(&text, &path.display().to_string())
    }

    /// Parse and validate rules-file text; `origin` names it in errors (usually the path).
    pub fn from_str(text: &str, origin: &str) -> Result<GateRules, RulesError> {
        let invalid =
            |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| {
                let pos = span.map(|s| line_col(text, s.start));
                RulesError::Invalid {
                    origin: origin.to_owned(),
                    line: pos.map(|p| p.0),
                    column: pos.map(|p| p.1),
                    key,
                    message,
                }
            };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            // toml knows the span but not (publicly) the key; read the key off the source line.
            let key = e.span().and_then(|s| key_at(text, s.start));
            invalid(e.span(), key, e.message().trim_end().to_owned())
        })?;

        let mut options = GateOptions::default();
        if let Some(a) = raw.alpha {
            if !(a.get_ref() > &0.0 && a.get_ref() < &1.0) {
                let msg = format!(
                    "expected a number strictly between 0 and 1, got {}",
                    a.get_ref()
                );
                return Err(invalid(Some(a.span()), Some("alpha".into()), msg));
            }
            options.alpha = *a.get_ref();
        }
        if let Some(c) = raw.confidence {
            if !(c.get_ref() > &0.0 && c.get_ref() < &1.0) {
                let msg = format!(
                    "expected a number strictly between 0 and 1, got {}",
                    c.get_ref()
                );
                return Err(invalid(Some(c.span()), Some("confidence".into()), msg));
            }
            options.confidence = *c.get_ref();
        }
        if let Some(m) = raw.min_trials {
            // One run a side leaves nothing to test: Mann–Whitney p is 1 whatever happened.
            if *m.get_ref() < 2 {
                let msg = format!("expected an integer of at least 2, got {}", m.get_ref());
                return Err(invalid(Some(m.span()), Some("min_trials".into()), msg));
            }
            options.min_trials = usize::try_from(*m.get_ref()).unwrap_or(usize::MAX);
        }
        if let Some(b) = raw.bootstrap_resamples {
            // Fewer resamples than this cannot resolve the tails of a 95 % interval.
            if !(100..=10_000_000).contains(b.get_ref()) {
                let msg = format!(
                    "expected an integer between 100 and 10000000, got {}",
                    b.get_ref()
                );
                return Err(invalid(
                    Some(b.span()),
                    Some("bootstrap_resamples".into()),
                    msg,
                ));
            }
            options.bootstrap_resamples = usize::try_from(*b.get_ref()).unwrap_or(usize::MAX);
        }
        if let Some(s) = raw.seed {
            options.seed = s;
        }
        if let Some(f) = raw.fail_on_inconclusive {
            options.fail_on_inconclusive = f;
        }

        let no_rules = "expected a `[rules]` table with at least one rule such as \
                        `\"ttft.p95\" = \"max +5%\"`"
            .to_owned();
        let Some(table) = raw.rules else {
            return Err(invalid(None, Some("rules".into()), no_rules));
        };
        let span = table.span();
        let RuleValue::Table(entries) = table.into_inner() else {
            return Err(invalid(Some(span), Some("rules".into()), no_rules));
        };
        let mut flat = Vec::new();
        flatten("", entries, &mut flat);
        if flat.is_empty() {
            return Err(invalid(Some(span), Some("rules".into()), no_rules));
        }
        // The table arrives in key order; report and evaluate rules in file order.
        flat.sort_by_key(|r| r.key_span.start);

        let mut rules: Vec<(Rule, std::ops::Range<usize>)> = Vec::new();
        for entry in flat {
            let key = format!("rules.{}", entry.name);
            let metric: MetricName = entry.name.parse().map_err(|e| {
                invalid(
                    Some(entry.key_span.clone()),
                    Some(key.clone()),
                    format!("{e}"),
                )
            })?;
            let rule = Rule::parse(metric, &entry.spec).map_err(|e| {
                invalid(
                    Some(entry.value_span.clone()),
                    Some(key.clone()),
                    format!("{e}"),
                )
            })?;
            if let Some((_, first)) = rules.iter().find(|(r, _)| r.metric == metric) {
                let (first_line, _) = line_col(text, first.start);
                let msg = format!("a rule for `{metric}` was already given on line {first_line}");
                return Err(invalid(Some(entry.key_span), Some(key), msg));
            }
            rules.push((rule, entry.key_span));
        }
        Ok(GateRules {
            options,
            rules: rules.into_iter().map(|(r, _)| r).collect(),
        })
    }
}

/// The file as TOML gives it. Values are `Spanned` so that range checks done after parsing can
/// still point at the line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    alpha: Option<Spanned<f64>>,
    min_trials: Option<Spanned<u64>>,
    confidence: Option<Spanned<f64>>,
    bootstrap_resamples: Option<Spanned<u64>>,
    seed: Option<u64>,
    fail_on_inconclusive: Option<bool>,
    rules: Option<Spanned<RuleValue>>,
}

/// A value under `[rules]`. Tables are accepted because an unquoted `ttft.p95 = "max +5%"` is, in
/// TOML, the key `p95` inside a table `ttft`; flattening makes both spellings mean the same rule.
enum RuleValue {
    Spec(String),
    Table(Vec<(Spanned<String>, Spanned<RuleValue>)>),
}

impl<'de> Deserialize<'de> for RuleValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RuleValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a threshold string such as \"max +5%\" or \"min -3%\"")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RuleValue, E> {
                Ok(RuleValue::Spec(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RuleValue, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    entries.push((k, map.next_value::<Spanned<RuleValue>>()?));
                }
                Ok(RuleValue::Table(entries))
            }
        }
        d.deserialize_any(V)
    }
}

struct FlatRule {
    name: String,
    spec: String,
    key_span: std::ops::Range<usize>,
    value_span: std::ops::Range<usize>,
}

fn flatten(
    prefix: &str,
    entries: Vec<(Spanned<String>, Spanned<RuleValue>)>,
    out: &mut Vec<FlatRule>,
) {
    for (key, value) in entries {
        let name = if prefix.is_empty() {
            key.get_ref().clone()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        let value_span = value.span();
        match value.into_inner() {
            RuleValue::Spec(spec) => out.push(FlatRule {
                name,
                spec,
                key_span: key.span(),
                value_span,
            }),
            RuleValue::Table(inner) => flatten(&name, inner, out),
        }
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Best-effort dotted key of the `key = value` line (or `[table]` header) holding byte `at`,
/// prefixed by the table it sits in. Quotes are dropped: the key is for people to find the line.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = text[line_start..line_end].trim();
    let unquote = |s: &str| s.trim().replace(['"', '\''], "");
    if let Some(header) = table_header(line) {
        return Some(unquote(header));
    }
    let (key, _) = line.split_once('=')?;
    let table = text[..line_start]
        .lines()
        .rev()
        .find_map(|l| table_header(l.trim()));
    Some(match table {
        Some(t) => format!("{}.{}", unquote(t), unquote(key)),
        None => unquote(key),
    })
}

fn table_header(line: &str) -> Option<&str> {
    let inner = line.strip_prefix('[')?;
    let end = inner.find(']')?;
    Some(inner[..end].trim_matches(['[', ']', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let e = GateRules::from_str(text, "gate.toml")
            .unwrap_err()
            .to_string();
        eprintln!("{e}");
        e
    }

    #[test]
    fn thresholds() {
        let ok = |s: &str| parse_threshold(s).unwrap();
        assert_eq!(ok("max +5%"), (Bound::Max, 5.0));
        assert_eq!(ok("min -3%"), (Bound::Min, 3.0));
        assert_eq!(ok("  max   +2.5% "), (Bound::Max, 2.5));
        assert_eq!(ok("max +0%"), (Bound::Max, 0.0));
        for bad in [
            "max 5",
            "max 5%",
            "up +5%",
            "max +abc%",
            "max +5",
            "min +3%",
            "max -5%",
            "max +inf%",
            "max +1e3%",
            "max +5% now",
            "",
            "max",
            "min -150%",
            "max +%",
            "max +1.2.3%",
        ] {
            assert!(parse_threshold(bad).is_err(), "{bad:?} parsed");
        }
        let rule = Rule::parse(MetricName::ErrorRate, "max +2.5%").unwrap();
        assert_eq!(rule.to_string(), "error_rate max +2.5%");
        assert!((rule.threshold() - 0.025).abs() < 1e-15);
    }

    #[test]
    fn defaults_and_file_order() {
        let r = GateRules::from_str(
            "[rules]\n\"itl.p50\" = \"max +5%\"\nttft.p95 = \"max +5%\"\n\
             \"output_token_throughput\" = \"min -3%\"\n",
            "x",
        )
        .unwrap();
        assert_eq!(r.options, GateOptions::default());
        let names: Vec<String> = r.rules.iter().map(|r| r.metric.to_string()).collect();
        assert_eq!(names, ["itl.p50", "ttft.p95", "output_token_throughput"]);
    }

    #[test]
    fn nested_tables_flatten() {
        let r = GateRules::from_str("[rules.ttft]\np95 = \"max +5%\"\n", "x").unwrap();
        assert_eq!(r.rules[0].metric.to_string(), "ttft.p95");
    }

    #[test]
    fn errors_name_file_line_key_and_expectation() {
        let e = err("alpha = 0.05\n[rules]\n\"ttft.p96\" = \"max +5%\"\n");
        assert!(e.starts_with("gate.toml:3:1: key `rules.ttft.p96`"), "{e}");
        assert!(e.contains("unknown metric `ttft.p96`: expected"), "{e}");

        let e = err("[rules]\n\"ttft.p95\" = \"max 5\"\n");
        assert!(e.starts_with("gate.toml:2:"), "{e}");
        assert!(
            e.contains("key `rules.ttft.p95`") && e.contains("expected `max +N%`"),
            "{e}"
        );

        let e = err("alpha = \"high\"\n[rules]\n\"ttft.p95\" = \"max +5%\"\n");
        assert!(e.starts_with("gate.toml:1:"), "{e}");
        assert!(
            e.contains("key `alpha`") && e.contains("expected f64"),
            "{e}"
        );

        let e = err("[rules]\n\"ttft.p95\" = 5\n");
        assert!(e.starts_with("gate.toml:2:"), "{e}");
        assert!(
            e.contains("key `rules.ttft.p95`") && e.contains("threshold string"),
            "{e}"
        );

        let e = err("alfa = 0.05\n[rules]\n\"ttft.p95\" = \"max +5%\"\n");
        assert!(e.starts_with("gate.toml:1:"), "{e}");
        assert!(
            e.contains("key `alfa`") && e.contains("expected one of"),
            "{e}"
        );

        let e = err("alpha = 1.5\n[rules]\n\"ttft.p95\" = \"max +5%\"\n");
        assert!(
            e.contains("gate.toml:1:9: key `alpha`: expected a number strictly"),
            "{e}"
        );

        let e = err("alpha = 0.05\n");
        assert!(
            e.contains("gate.toml: key `rules`: expected a `[rules]` table"),
            "{e}"
        );

        let e = err("[rules]\n\"ttft.p95\" = \"max +5%\"\nttft.p95 = \"max +9%\"\n");
        assert!(e.starts_with("gate.toml:3:6: key `rules.ttft.p95`"), "{e}");
        assert!(e.contains("already given on line 2"), "{e}");

        let e = err("[rules\n");
        assert!(e.starts_with("gate.toml:1:"), "{e}");
    }

    #[test]
    fn line_and_key_lookup() {
        let text = "a = 1\n[rules]\n\"x.y\" = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 14), (3, 1));
        assert_eq!(key_at(text, 2).as_deref(), Some("a"));
        assert_eq!(key_at(text, 16).as_deref(), Some("rules.x.y"));
        assert_eq!(key_at(text, 7).as_deref(), Some("rules"));
    }
}
