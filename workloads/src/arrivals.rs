//! Open-loop arrival processes: when each request is scheduled, independent of how fast the
//! system answers (so queueing shows up in latency from the intended start).
//!
//! `gamma` follows vLLM's `bench serve`: shape = burstiness, scale = 1 / (rate × burstiness),
//! so the mean rate is the same for every burstiness; 1 is Poisson, below 1 is burstier,
//! above 1 is smoother.

use rand::SeedableRng;
use rand_distr::{Distribution, Exp, Gamma};

pub use charter_record::Arrivals;

/// Scheduled offsets (seconds after the level starts) of successive requests.
pub struct Schedule {
    rate: f64,
    kind: Kind,
    rng: rand::rngs::StdRng,
    t: f64,
    first: bool,
}

enum Kind {
    Constant,
    Exp(Exp<f64>),
    Gamma(Gamma<f64>),
    /// Given offsets (a trace's), ending with the last.
    Offsets(std::vec::IntoIter<f64>),
}

impl Schedule {
    /// `rate` requests/s (> 0); `burstiness` (> 0) only matters for gamma.
    pub fn new(rate: f64, arrivals: Arrivals, burstiness: f64, seed: u64) -> Result<Self, String> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "rate {rate}: expected a positive number of requests/s"
            ));
        }
        if !(burstiness.is_finite() && burstiness > 0.0) {
            return Err(format!(
                "burstiness {burstiness}: expected a positive number"
            ));
        }
        let kind = match arrivals {
            Arrivals::Constant => Kind::Constant,
            Arrivals::Poisson => Kind::Exp(Exp::new(rate).map_err(|e| e.to_string())?),
            Arrivals::Gamma => Kind::Gamma(
                Gamma::new(burstiness, 1.0 / (rate * burstiness)).map_err(|e| e.to_string())?,
            ),
            Arrivals::Trace => {
                return Err("trace arrivals come from a trace file (--trace)".into());
            }
        };
        Ok(Self {
            rate,
            kind,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            t: 0.0,
            first: true,
        })
    }

    /// The given offsets (a trace's) when there are some, else `arrivals` at `rate`.
    pub fn given_or_new(
        offsets: Option<Vec<f64>>,
        rate: f64,
        arrivals: Arrivals,
        burstiness: f64,
        seed: u64,
    ) -> Result<Self, String> {
        match offsets {
            Some(o) => Ok(Self::from_offsets(o)),
            None => Self::new(rate, arrivals, burstiness, seed),
        }
    }

    /// A schedule of the given offsets (seconds, non-decreasing), ending after the last.
    pub fn from_offsets(offsets: Vec<f64>) -> Self {
        Self {
            rate: 0.0,
            kind: Kind::Offsets(offsets.into_iter()),
            rng: rand::rngs::StdRng::seed_from_u64(0),
            t: 0.0,
            first: false,
        }
    }

    /// The next inter-arrival gap in seconds (0 for a schedule of given offsets).
    pub fn next_gap(&mut self) -> f64 {
        match &self.kind {
            Kind::Constant => 1.0 / self.rate,
            Kind::Exp(d) => d.sample(&mut self.rng),
            Kind::Gamma(d) => d.sample(&mut self.rng),
            Kind::Offsets(_) => 0.0,
        }
    }
}

impl Iterator for Schedule {
    type Item = f64;

    /// The first request is scheduled at 0; later ones after each sampled gap.
    fn next(&mut self) -> Option<f64> {
        if let Kind::Offsets(o) = &mut self.kind {
            return o.next();
        }
        if self.first {
            self.first = false;
            return Some(0.0);
        }
        self.t += self.next_gap();
        Some(self.t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_evenly_spaced_and_seeded_is_reproducible() {
        let s: Vec<f64> = Schedule::new(4.0, Arrivals::Constant, 1.0, 0)
            .unwrap()
            .take(5)
            .collect();
        assert_eq!(s, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let a: Vec<f64> = Schedule::new(4.0, Arrivals::Poisson, 1.0, 9)
            .unwrap()
            .take(50)
            .collect();
        let b: Vec<f64> = Schedule::new(4.0, Arrivals::Poisson, 1.0, 9)
            .unwrap()
            .take(50)
            .collect();
        assert_eq!(a, b);
        assert!(Schedule::new(-1.0, Arrivals::Poisson, 1.0, 0).is_err());
        assert!(Schedule::new(1.0, Arrivals::Gamma, 0.0, 0).is_err());
        assert!(Schedule::new(1.0, Arrivals::Trace, 1.0, 0).is_err());
        let o: Vec<f64> = Schedule::from_offsets(vec![0.0, 0.5, 0.5, 2.0]).collect();
        assert_eq!(o, vec![0.0, 0.5, 0.5, 2.0]);
    }
}
