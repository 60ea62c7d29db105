//! Bisection over open-loop rates for the highest rate whose SLO attainment meets a target.
//!
//! The search is bracketed by a known-good rate (initially 0) and a known-bad or untested upper
//! bound (the measured saturation throughput). It first tries the upper bound itself (if the SLO
//! holds at saturation, no lower rate needs testing), then halves the bracket each step, and
//! stops after `max_steps` levels or when the bracket is narrower than `tolerance` of the upper
//! bound.

/// What one search level showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    pub rate: f64,
    /// Attainment ≥ target.
    pub met: bool,
    /// Completed rate < 0.98 × offered: the system could not keep up at all.
    pub saturated: bool,
}

#[derive(Debug, Clone)]
pub struct RateSearch {
    lo: f64,
    hi: f64,
    hi_tested: bool,
    steps: u32,
    max_steps: u32,
    tolerance: f64,
    best: Option<f64>,
    lowest_fail: Option<f64>,
    done: Option<String>,
}

impl RateSearch {
    /// Search in `(0, upper]`.
    pub fn new(upper: f64, max_steps: u32, tolerance: f64) -> Self {
        Self {
            lo: 0.0,
            hi: upper,
            hi_tested: false,
            steps: 0,
            max_steps: max_steps.max(1),
            tolerance,
            best: None,
            lowest_fail: None,
            done: None,
        }
    }

    /// The next rate to try, or `None` when the search is over.
    pub fn next_rate(&self) -> Option<f64> {
        if self.done.is_some() {
            return None;
        }
        if !self.hi_tested {
            return Some(self.hi);
        }
        Some((self.lo + self.hi) / 2.0)
    }

    /// Feed back the outcome at the rate `next_rate` returned.
    pub fn record(&mut self, t: Trial) {
        self.steps += 1;
        if t.met && !t.saturated {
            self.lo = t.rate;
            self.best = Some(self.best.map_or(t.rate, |b: f64| b.max(t.rate)));
            if !self.hi_tested {
                self.done = Some("the SLO holds at the saturation throughput".into());
            }
        } else {
            self.hi = t.rate;
            self.lowest_fail = Some(self.lowest_fail.map_or(t.rate, |f: f64| f.min(t.rate)));
        }
        self.hi_tested = true;
        if self.done.is_none() {
            if self.steps >= self.max_steps {
                self.done = Some(format!(
                    "reached the step limit ({} levels)",
                    self.max_steps
                ));
            } else if self.hi - self.lo <= self.tolerance * self.hi {
                self.done = Some(format!(
                    "bracket [{:.3}, {:.3}] req/s is within {:.0}% of its upper end",
                    self.lo,
                    self.hi,
                    self.tolerance * 100.0
                ));
            }
        }
    }

    pub fn best(&self) -> Option<f64> {
        self.best
    }

    pub fn lowest_failing(&self) -> Option<f64> {
        self.lowest_fail
    }

    pub fn stopped_because(&self) -> Option<&str> {
        self.done.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(capacity: f64, upper: f64) -> RateSearch {
        let mut s = RateSearch::new(upper, 12, 0.02);
        while let Some(r) = s.next_rate() {
            s.record(Trial {
                rate: r,
                met: r <= capacity,
                saturated: false,
            });
        }
        s
    }

    #[test]
    fn converges_on_capacity() {
        let s = run(37.0, 100.0);
        let best = s.best().unwrap();
        assert!(best <= 37.0 && best > 37.0 * 0.95, "{best}");
        assert!(s.lowest_failing().unwrap() > 37.0);
        assert!(s.stopped_because().unwrap().contains("bracket"));
    }

    #[test]
    fn stops_at_once_when_saturation_meets_the_slo() {
        let s = run(1000.0, 100.0);
        assert_eq!(s.best(), Some(100.0));
        assert!(s.stopped_because().unwrap().contains("saturation"));
    }

    #[test]
    fn saturated_levels_count_as_misses() {
        let mut s = RateSearch::new(10.0, 3, 0.01);
        s.record(Trial {
            rate: 10.0,
            met: true,
            saturated: true,
        });
        assert_eq!(s.best(), None);
        assert_eq!(s.next_rate(), Some(5.0));
    }
}
