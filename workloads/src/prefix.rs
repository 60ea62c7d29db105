//! Shared prompt prefixes: the synthetic shared-prefix workload (G distinct system prompts of P
//! tokens, each request drawing one) and the hit rate an ideal prefix cache would reach on a
//! sequence of requests.
//!
//! A prompt is a sequence of blocks, each a run of tokens with a key (a hash id, a group) or
//! none (tokens unique to one request). An ideal prefix cache (unbounded, never evicting) serves
//! a request's leading blocks whose keys an earlier request already sent: the expected hit rate
//! is those tokens over all prompt tokens. Keys are assumed to name their whole prefix (as the
//! chained block hashes of Mooncake and Bailian traces do), so a key seen before means the
//! tokens before it were seen too.

use std::collections::HashSet;

use rand::Rng;

use crate::lengths::LengthDist;
use crate::prompts::request_rng;
use crate::trace::random_ids;

/// A prompt block: its key (`None`: unique to the request) and its tokens.
pub type Block = (Option<u64>, u32);

/// What an ideal prefix cache would serve.
#[derive(Debug, Clone, Default)]
pub struct IdealPrefixCache {
    seen: HashSet<u64>,
    pub hit_tokens: u64,
    pub prompt_tokens: u64,
}

impl IdealPrefixCache {
    /// Send one request's blocks through the cache.
    pub fn add(&mut self, blocks: &[Block]) {
        let mut leading = true;
        for &(key, tokens) in blocks {
            self.prompt_tokens += u64::from(tokens);
            match key {
                Some(k) => {
                    let seen = !self.seen.insert(k);
                    leading &= seen;
                    if leading {
                        self.hit_tokens += u64::from(tokens);
                    }
                }
                None => leading = false,
            }
        }
    }

    /// Hit tokens over prompt tokens (`None` before any token).
    pub fn hit_rate(&self) -> Option<f64> {
        (self.prompt_tokens > 0).then(|| self.hit_tokens as f64 / self.prompt_tokens as f64)
    }
}

/// G system prompts of P tokens; each request draws one (uniformly, from `(seed, index)`) and
/// appends its own tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedPrefix {
    pub prefix_tokens: u32,
    pub groups: u32,
    /// Tokens after the prefix, unique to each request.
    pub suffix: LengthDist,
}

const GROUP_SALT: u64 = 0x6E0B_6E0B_6E0B_6E0B;
const PREFIX_SALT: u64 = 0x9EF1_9EF1_9EF1_9EF1;

impl SharedPrefix {
    /// The group request `index` draws.
    pub fn group(&self, index: u64, seed: u64) -> u32 {
        request_rng(seed ^ GROUP_SALT, index).random_range(0..self.groups.max(1))
    }

    /// Request `index`'s blocks: its group's prefix, then its own suffix (whose length is drawn
    /// as synthetic prompts draw theirs, from `(seed, index)`).
    pub fn blocks(&self, index: u64, seed: u64) -> [Block; 2] {
        let suffix = self.suffix.sample(&mut request_rng(seed, index));
        [
            (Some(u64::from(self.group(index, seed))), self.prefix_tokens),
            (None, suffix),
        ]
    }

    /// Request `index`'s token ids: the group's prefix (from `(seed, group)`), then the suffix
    /// (from `(seed, index)`).
    pub fn prompt_ids(&self, index: u64, seed: u64, vocab: &[u32]) -> Vec<u32> {
        let g = self.group(index, seed);
        let mut rng = request_rng(seed, index);
        let suffix = self.suffix.sample(&mut rng);
        let mut ids = random_ids(
            &mut request_rng(seed ^ PREFIX_SALT, u64::from(g)),
            self.prefix_tokens,
            vocab,
        );
        ids.extend(random_ids(&mut rng, suffix, vocab));
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ideal_cache_serves_leading_blocks_seen_before() {
        let mut c = IdealPrefixCache::default();
        c.add(&[(Some(1), 10), (Some(2), 10), (None, 5)]);
        assert_eq!(c.hit_tokens, 0);
        // Shares block 1, then diverges: block 1 is served, block 3 is new.
        c.add(&[(Some(1), 10), (Some(3), 10), (None, 5)]);
        assert_eq!(c.hit_tokens, 10);
        // Key 2 seen before, but after an unseen block: not a prefix hit.
        c.add(&[(Some(4), 10), (Some(2), 10)]);
        assert_eq!(c.hit_tokens, 10);
        assert_eq!(c.prompt_tokens, 25 + 25 + 20);
    }

    #[test]
    fn shared_prefix_hit_rate_is_the_known_value() {
        // 4 groups of 100 prefix tokens, 50 suffix tokens, 200 requests: every group is drawn
        // (checked below), so the ideal cache misses each group's prefix once:
        // hit = (200 − 4) × 100 / (200 × 150).
        let s = SharedPrefix {
            prefix_tokens: 100,
            groups: 4,
            suffix: LengthDist::fixed(50),
        };
        let mut c = IdealPrefixCache::default();
        let groups: HashSet<u32> = (0..200).map(|i| s.group(i, 7)).collect();
        assert_eq!(groups.len(), 4);
        for i in 0..200 {
            c.add(&s.blocks(i, 7));
        }
        assert_eq!(c.hit_rate(), Some(196.0 * 100.0 / (200.0 * 150.0)));
    }

    #[test]
    fn same_group_same_prefix_and_distinct_suffixes() {
        let s = SharedPrefix {
            prefix_tokens: 32,
            groups: 3,
            suffix: LengthDist::fixed(16),
        };
        let vocab: Vec<u32> = (0..5000).collect();
        let (mut same, mut other) = (0, 0);
        for i in 1..60 {
            let (a, b) = (s.prompt_ids(0, 1, &vocab), s.prompt_ids(i, 1, &vocab));
            assert_eq!(b.len(), 48);
            assert_ne!(a[32..], b[32..], "suffixes are the request's own");
            if s.group(0, 1) == s.group(i, 1) {
                assert_eq!(a[..32], b[..32]);
                same += 1;
            } else {
                assert_ne!(a[..32], b[..32]);
                other += 1;
            }
        }
        assert!(same > 0 && other > 0, "{same} {other}");
    }
}
