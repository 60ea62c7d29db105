//! Token-length distributions for prompts and outputs: `128`, `uniform:64:256`,
//! `normal:128:32` (mean:sd), `lognormal:128:0.5` (median:sigma). Samples are at least 1.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LengthDist {
    Fixed { tokens: u32 },
    Uniform { min: u32, max: u32 },
    Normal { mean: f64, sd: f64 },
    LogNormal { median: f64, sigma: f64 },
}

impl LengthDist {
    pub fn fixed(tokens: u32) -> Self {
        LengthDist::Fixed { tokens }
    }

    /// A length draws stay under in practice, for sizing memory before a run: the maximum of a
    /// bounded distribution, mean + 4 sd of a normal, median × e^(4σ) of a lognormal (both
    /// exceeded by about 3 draws in 100,000).
    pub fn upper(&self) -> u32 {
        let v = match *self {
            LengthDist::Fixed { tokens } => return tokens.max(1),
            LengthDist::Uniform { max, .. } => return max.max(1),
            LengthDist::Normal { mean, sd } => mean + 4.0 * sd,
            LengthDist::LogNormal { median, sigma } => median * (4.0 * sigma).exp(),
        };
        v.ceil().clamp(1.0, u32::MAX as f64) as u32
    }

    /// Draw one length (≥ 1).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        let v = match *self {
            LengthDist::Fixed { tokens } => return tokens.max(1),
            LengthDist::Uniform { min, max } => return rng.random_range(min..=max).max(1),
            LengthDist::Normal { mean, sd } => {
                Normal::new(mean, sd).map(|d| d.sample(rng)).unwrap_or(mean)
            }
            LengthDist::LogNormal { median, sigma } => LogNormal::new(median.ln(), sigma)
                .map(|d| d.sample(rng))
                .unwrap_or(median),
        };
        v.round().clamp(1.0, u32::MAX as f64) as u32
    }
}

impl fmt::Display for LengthDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LengthDist::Fixed { tokens } => write!(f, "{tokens}"),
            LengthDist::Uniform { min, max } => write!(f, "uniform:{min}:{max}"),
            LengthDist::Normal { mean, sd } => write!(f, "normal:{mean}:{sd}"),
            LengthDist::LogNormal { median, sigma } => write!(f, "lognormal:{median}:{sigma}"),
        }
    }
}

const EXPECTED: &str =
    "expected N, uniform:MIN:MAX, normal:MEAN:SD or lognormal:MEDIAN:SIGMA with positive numbers";

impl FromStr for LengthDist {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: {EXPECTED}");
        let parts: Vec<&str> = s.trim().split(':').collect();
        let num = |i: usize| -> Result<f64, String> {
            let v: f64 = parts
                .get(i)
                .ok_or_else(bad)?
                .trim()
                .parse()
                .map_err(|_| bad())?;
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(bad())
            }
        };
        let int = |i: usize| -> Result<u32, String> {
            let v = num(i)?;
            if v.fract() == 0.0 && v <= u32::MAX as f64 {
                Ok(v as u32)
            } else {
                Err(bad())
            }
        };
        match parts.as_slice() {
            [_] => Ok(LengthDist::Fixed { tokens: int(0)? }),
            ["fixed", _] => Ok(LengthDist::Fixed { tokens: int(1)? }),
            ["uniform", _, _] => {
                let (min, max) = (int(1)?, int(2)?);
                if min > max {
                    return Err(format!("`{s}`: uniform MIN must not exceed MAX"));
                }
                Ok(LengthDist::Uniform { min, max })
            }
            ["normal", _, _] => Ok(LengthDist::Normal {
                mean: num(1)?,
                sd: num(2)?,
            }),
            ["lognormal", _, _] => Ok(LengthDist::LogNormal {
                median: num(1)?,
                sigma: num(2)?,
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("128".parse::<LengthDist>().unwrap(), LengthDist::fixed(128));
        assert_eq!(
            "uniform:4:8".parse::<LengthDist>().unwrap(),
            LengthDist::Uniform { min: 4, max: 8 }
        );
        assert!("uniform:8:4".parse::<LengthDist>().is_err());
        assert!("normal:10".parse::<LengthDist>().is_err());
        assert!("-3".parse::<LengthDist>().is_err());
        assert!("0".parse::<LengthDist>().is_err());
        assert!("zipf:1:2".parse::<LengthDist>().is_err());
        for s in ["12", "uniform:1:5", "normal:100:10", "lognormal:100:0.5"] {
            let d: LengthDist = s.parse().unwrap();
            assert_eq!(d.to_string().parse::<LengthDist>().unwrap(), d);
        }
    }

    #[test]
    fn samples_follow_the_distribution() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let n = 20_000;
        let d = LengthDist::Normal {
            mean: 200.0,
            sd: 20.0,
        };
        let v: Vec<f64> = (0..n).map(|_| f64::from(d.sample(&mut rng))).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        assert!((mean - 200.0).abs() < 1.0, "{mean}");
        let u = LengthDist::Uniform { min: 3, max: 6 };
        let v: Vec<u32> = (0..1000).map(|_| u.sample(&mut rng)).collect();
        assert!(v.iter().all(|x| (3..=6).contains(x)));
        assert!((3..=6).all(|k| v.contains(&k)));
        let l = LengthDist::LogNormal {
            median: 100.0,
            sigma: 0.5,
        };
        let mut v: Vec<u32> = (0..n).map(|_| l.sample(&mut rng)).collect();
        v.sort_unstable();
        let median = v[n / 2];
        assert!((95..=105).contains(&median), "{median}");
    }
}
