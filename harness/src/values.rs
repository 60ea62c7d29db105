//! Parsers for setting values. Each one is the single definition of what a value may be: clap
//! calls it for a flag, and the scenario reader runs a file's value through the same flag, so a
//! file and the command line accept exactly the same values with the same messages.

use std::str::FromStr;
use std::time::Duration;

/// A whole number ≥ 1 (`--concurrency`, `--requests`, thread counts, ...).
pub fn at_least_one<T>(s: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + From<u8>,
{
    match s.trim().parse::<T>() {
        Ok(v) if v >= T::from(1) => Ok(v),
        _ => Err(format!("{s}: expected an integer ≥ 1")),
    }
}

/// A whole number ≥ 0.
pub fn whole<T: FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse::<T>()
        .map_err(|_| format!("{s}: expected an integer ≥ 0"))
}

pub fn parse_unit_interval(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}`: expected a number from 0 to 1")),
    }
}

pub fn parse_rate(s: &str) -> Result<f64, String> {
    parse_positive(s).map_err(|_| format!("`{s}`: expected a positive number of requests/s"))
}

pub fn parse_positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}`: expected a positive number")),
    }
}

pub fn parse_non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}`: expected a number ≥ 0")),
    }
}

pub fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("`{s}`: expected a number in (0, 1]")),
    }
}

/// A duration such as `500ms`, `30s` or `2m`; zero allowed.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}`: {e}; expected a duration such as 500ms or 30s"))
}

pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "`{s}`: expected a positive duration such as 500ms or 30s"
        )),
    }
}

pub fn parse_slo(s: &str) -> Result<charter_reports::slo::Slo, String> {
    s.parse()
}

/// `NAME: VALUE` for `--header`.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((n, v)) if !n.trim().is_empty() => Ok((n.trim().to_string(), v.trim().to_string())),
        _ => Err("expected NAME: VALUE, e.g. 'X-Team: bench'".to_string()),
    }
}

/// A JSON object for `--extra-body`.
pub fn parse_json_object(s: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(format!(
            "`{s}`: expected a JSON object, e.g. '{{\"top_k\": 20}}'"
        )),
    }
}

/// `NAME=N` for `--onnx-dim`.
pub fn parse_dim(s: &str) -> Result<(String, usize), String> {
    match s.split_once('=') {
        Some((name, n)) if !name.trim().is_empty() => match n.trim().parse::<usize>() {
            Ok(v) if v > 0 => Ok((name.trim().to_string(), v)),
            _ => Err(format!("`{s}`: expected NAME=N with N ≥ 1")),
        },
        _ => Err(format!("`{s}`: expected NAME=N, e.g. height=224")),
    }
}

/// A wall-clock instant in RFC 3339 (UTC, `Z`), e.g. `2026-11-29T18:00:00Z`.
pub fn parse_start_at(s: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim()).map_err(|e| {
        format!("{s:?}: {e}; expected an RFC 3339 time in UTC such as 2026-11-29T18:00:00Z")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_numbers() {
        assert_eq!(at_least_one::<u32>("3"), Ok(3));
        assert_eq!(
            at_least_one::<u32>("0"),
            Err("0: expected an integer ≥ 1".into())
        );
        assert!(at_least_one::<u64>("-1").is_err());
        assert_eq!(whole::<u64>("0"), Ok(0));
        assert!(parse_positive("0").is_err());
        assert_eq!(parse_non_negative("0"), Ok(0.0));
        assert!(parse_fraction("1.5").is_err());
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_positive_duration("0s").is_err());
        assert_eq!(parse_dim("h=2"), Ok(("h".into(), 2)));
        assert_eq!(parse_header("X-A: 1"), Ok(("X-A".into(), "1".into())));
        assert!(parse_json_object("[1]").is_err());
    }
}
