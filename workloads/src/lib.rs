//! Workloads for charter: what to ask (prompt sources, token-length distributions) and how hard
//! (closed-loop concurrency, open-loop arrival processes, sweeps, SLO search).
//!
//! Everything here is deterministic given a seed, so a run can be repeated exactly.

pub mod arrivals;
pub mod corpus;
pub mod lengths;
pub mod prefix;
pub mod prompts;
pub mod search;
pub mod sessions;
pub mod shard;
pub mod trace;

use std::time::Duration;

use charter_backends::{GenRequest, Sampling};

pub use arrivals::{Arrivals, Schedule};
pub use lengths::LengthDist;
pub use prefix::{IdealPrefixCache, SharedPrefix};
pub use prompts::{PromptEntry, PromptFileError, PromptSource, PromptSpec};
pub use sessions::{History, SessionPlan, SessionSource, ThinkTime};
pub use shard::Shard;
pub use trace::{Trace, TraceError, TraceFormat, TraceOptions, TraceWindow};

/// When a load level stops issuing new requests (whichever bound is reached first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopCondition {
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
}

impl StopCondition {
    /// True when request number `issued` (0-based) may still start at `elapsed`.
    pub fn may_issue(&self, issued: u64, elapsed: Duration) -> bool {
        self.requests.is_none_or(|n| issued < n) && self.duration.is_none_or(|d| elapsed < d)
    }
}

/// One load level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadLevel {
    /// `concurrency` streams, each issuing its next request when the last finishes.
    Closed { concurrency: u32 },
    /// Requests scheduled at `rate` per second by `arrivals`, at most `max_in_flight` at once.
    Open {
        rate: f64,
        arrivals: Arrivals,
        burstiness: f64,
        max_in_flight: u32,
    },
}

/// Output cap when neither the command line nor the prompt file gives one.
pub const DEFAULT_MAX_TOKENS: LengthDist = LengthDist::Fixed { tokens: 64 };

/// Everything needed to build request number `index` of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTemplate {
    pub prompts: PromptSource,
    /// Output cap per request when given explicitly: it overrides a prompt file's own
    /// `max_tokens`. Otherwise the file's value, else [`DEFAULT_MAX_TOKENS`].
    pub max_tokens: Option<LengthDist>,
    pub ignore_eos: bool,
    pub sampling: Sampling,
}

impl RequestTemplate {
    /// The open-loop schedule: a trace's own timestamps when the prompts come from a trace,
    /// else `arrivals` at `rate`.
    pub fn schedule(
        &self,
        rate: f64,
        arrivals: Arrivals,
        burstiness: f64,
        seed: u64,
    ) -> Result<Schedule, String> {
        let offsets = match &self.prompts {
            PromptSource::Trace(t) => Some(t.offsets()),
            _ => None,
        };
        Schedule::given_or_new(offsets, rate, arrivals, burstiness, seed)
    }

    /// Request `index`: deterministic in `(sampling.seed, index)`.
    pub fn request(&self, index: u64, vocab: &[u32]) -> GenRequest {
        let seed = self.sampling.seed;
        let (prompt, file_max) = self.prompts.prompt(index, seed, vocab);
        // A different random stream from the prompt's, so lengths and ids are independent.
        let mut rng = prompts::request_rng(seed ^ 0x00FF_00FF_00FF_00FF, index);
        let max_tokens = match (self.max_tokens, file_max) {
            (Some(d), _) => d.sample(&mut rng),
            (None, Some(m)) => m,
            (None, None) => DEFAULT_MAX_TOKENS.sample(&mut rng),
        };
        let mut sampling = self.sampling;
        sampling.seed = seed.wrapping_add(index);
        GenRequest {
            prompt,
            max_tokens,
            ignore_eos: self.ignore_eos,
            sampling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_condition_takes_whichever_first() {
        let s = StopCondition {
            requests: Some(3),
            duration: Some(Duration::from_secs(1)),
        };
        assert!(s.may_issue(2, Duration::from_millis(10)));
        assert!(!s.may_issue(3, Duration::from_millis(10)));
        assert!(!s.may_issue(0, Duration::from_secs(2)));
    }

    #[test]
    fn requests_are_reproducible() {
        let t = RequestTemplate {
            prompts: PromptSource::Synthetic {
                tokens: LengthDist::fixed(8),
            },
            max_tokens: Some(LengthDist::Uniform { min: 2, max: 50 }),
            ignore_eos: false,
            sampling: Sampling::greedy(),
        };
        let vocab: Vec<u32> = (0..100).collect();
        assert_eq!(t.request(3, &vocab), t.request(3, &vocab));
        let lens: std::collections::HashSet<u32> =
            (0..50).map(|i| t.request(i, &vocab).max_tokens).collect();
        assert!(lens.len() > 10, "output lengths vary: {lens:?}");
    }
}
