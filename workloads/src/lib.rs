//! Workloads for charter: what to ask (prompt sources) and how hard (load profiles).
//!
//! Everything here is deterministic given a seed, so a run can be repeated exactly.

use std::time::Duration;

use charter_backends::{GenRequest, Prompt, Sampling};
use rand::{Rng, SeedableRng};

/// Synthetic prompts: `tokens` ids drawn uniformly from the backend's non-special vocabulary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticPrompts {
    pub tokens: u32,
    pub seed: u64,
}

impl SyntheticPrompts {
    /// The prompt of request `index`: the same index and seed always give the same ids.
    pub fn prompt(&self, index: u64, vocab: &[u32]) -> Vec<u32> {
        if vocab.is_empty() {
            return Vec::new();
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        (0..self.tokens)
            .map(|_| vocab[rng.random_range(0..vocab.len())])
            .collect()
    }
}

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

    pub fn is_bounded(&self) -> bool {
        self.requests.is_some() || self.duration.is_some()
    }
}

/// A closed loop: `concurrency` streams, each issuing its next request when the last finishes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedLoop {
    pub concurrency: u32,
    pub stop: StopCondition,
}

/// Everything needed to build request number `index` of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestTemplate {
    pub prompts: SyntheticPrompts,
    pub max_tokens: u32,
    pub ignore_eos: bool,
    pub sampling: Sampling,
}

impl RequestTemplate {
    pub fn request(&self, index: u64, vocab: &[u32]) -> GenRequest {
        let mut sampling = self.sampling;
        sampling.seed = self.sampling.seed.wrapping_add(index);
        GenRequest {
            prompt: Prompt::Tokens(self.prompts.prompt(index, vocab)),
            max_tokens: self.max_tokens,
            ignore_eos: self.ignore_eos,
            sampling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_prompts_are_deterministic_and_in_vocab() {
        let vocab: Vec<u32> = (10..500).collect();
        let p = SyntheticPrompts {
            tokens: 64,
            seed: 3,
        };
        let a = p.prompt(5, &vocab);
        assert_eq!(a.len(), 64);
        assert_eq!(a, p.prompt(5, &vocab));
        assert_ne!(a, p.prompt(6, &vocab));
        assert!(a.iter().all(|t| (10..500).contains(t)));
    }

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
}
