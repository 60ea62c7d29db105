//! Sharding: one run split over N load generators that never talk to each other.
//!
//! Every shard builds the same seeded load and keeps its own part of it, so the shards together
//! offer exactly what one process would: open loop, arrival `i` of the shared schedule belongs
//! to shard `i mod N` (and keeps its global index, so its prompt is the one a single process
//! would draw for it); closed loop, shard K runs ⌊c/N⌋ or ⌈c/N⌉ of the c streams (and of the
//! requests). Work keyed by something other than a request index (trace sessions, which must
//! stay on one shard) is split by a stable hash of the key: [`Shard::keeps_key`].

use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (0 ≤ index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl Shard {
    /// The unsharded run: one shard holding everything.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; `Err` describing what is wrong otherwise.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is not below the shard count {count} (indices run 0..{count})"
            ));
        }
        Ok(Self { index, count })
    }

    /// True when request number `global_index` of the shared schedule belongs to this shard.
    pub fn keeps(&self, global_index: u64) -> bool {
        global_index % u64::from(self.count) == u64::from(self.index)
    }

    /// This shard's part of `n` items dealt out round-robin (⌊n/N⌋ or ⌈n/N⌉; the parts of all
    /// shards add up to `n`).
    pub fn share(&self, n: u64) -> u64 {
        let count = u64::from(self.count);
        n / count + u64::from(u64::from(self.index) < n % count)
    }

    /// The global index of this shard's `local`-th item when items are dealt round-robin.
    pub fn global_index(&self, local: u64) -> u64 {
        local * u64::from(self.count) + u64::from(self.index)
    }

    /// True when work keyed by `key` (e.g. a trace's session id) belongs to this shard: a
    /// stable hash of the key (FNV-1a, the same on every machine and version) modulo the count,
    /// so every request of one session lands on the same shard.
    pub fn keeps_key(&self, key: &[u8]) -> bool {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = key
            .iter()
            .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME));
        self.keeps(hash)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `K/N`, e.g. `0/4` for the first of four shards.
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = || format!("{s:?}: expected K/N, e.g. 0/4 for the first of four shards");
        let (k, n) = s.split_once('/').ok_or_else(expected)?;
        let k = k.trim().parse().map_err(|_| expected())?;
        let n = n.trim().parse().map_err(|_| expected())?;
        Shard::new(k, n)
    }
}

/// Where a shard's identity came from when `--shard` was not given: a Kubernetes Indexed Job
/// (`JOB_COMPLETION_INDEX`, with `--shards N` or `JOB_COMPLETIONS`) or a Slurm job array
/// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, with `--shards N` or
/// `SLURM_ARRAY_TASK_COUNT`). `env` looks a variable up (`std::env::var` in the binary).
/// `Ok(None)`: no scheduler variable is set (an unsharded run).
pub fn shard_from_env(
    shards: Option<u32>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Shard>, String> {
    let number = |name: &str| -> Result<Option<u32>, String> {
        env(name)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{name}={v:?}: expected a whole number"))
            })
            .transpose()
    };
    let (index, count, scheduler) = if let Some(k) = number("JOB_COMPLETION_INDEX")? {
        (
            k,
            shards.or(number("JOB_COMPLETIONS")?),
            "JOB_COMPLETION_INDEX",
        )
    } else if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let k = id.checked_sub(min).ok_or_else(|| {
            format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}")
        })?;
        (
            k,
            shards.or(number("SLURM_ARRAY_TASK_COUNT")?),
            "SLURM_ARRAY_TASK_ID",
        )
    } else {
        return match shards {
            Some(_) => Err("--shards N needs a shard index: --shard K/N, or JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID in the environment".into()),
            None => Ok(None),
        };
    };
    let count = count.ok_or_else(|| {
        format!("{scheduler} is set but the shard count is not: give --shards N (or JOB_COMPLETIONS / SLURM_ARRAY_TASK_COUNT)")
    })?;
    Shard::new(index, count)
        .map(Some)
        .map_err(|e| format!("{scheduler}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_partition_indices_and_shares() {
        for count in 1..=5u32 {
            let shards: Vec<Shard> = (0..count).map(|k| Shard::new(k, count).unwrap()).collect();
            for i in 0..100u64 {
                assert_eq!(shards.iter().filter(|s| s.keeps(i)).count(), 1);
            }
            for n in 0..20u64 {
                let parts: Vec<u64> = shards.iter().map(|s| s.share(n)).collect();
                assert_eq!(parts.iter().sum::<u64>(), n);
                let (lo, hi) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
                assert!(hi - lo <= 1, "{parts:?}");
                // Round-robin indices of every shard's part cover 0..n exactly once.
                let mut all: Vec<u64> = shards
                    .iter()
                    .flat_map(|s| (0..s.share(n)).map(move |l| s.global_index(l)))
                    .collect();
                all.sort();
                assert_eq!(all, (0..n).collect::<Vec<_>>());
            }
            for key in ["a", "session-17", "", "ünï"] {
                let owners = shards
                    .iter()
                    .filter(|s| s.keeps_key(key.as_bytes()))
                    .count();
                assert_eq!(owners, 1, "{key}");
            }
        }
    }

    #[test]
    fn parse_and_environment() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard::new(1, 4).unwrap());
        assert!("4/4".parse::<Shard>().unwrap_err().contains("not below"));
        assert!("1".parse::<Shard>().unwrap_err().contains("expected K/N"));
        assert!("0/0".parse::<Shard>().is_err());
        assert_eq!(shard_from_env(None, env(&[])), Ok(None));
        assert!(shard_from_env(Some(2), env(&[])).is_err());
        let k8s = [("JOB_COMPLETION_INDEX", "2"), ("JOB_COMPLETIONS", "3")];
        assert_eq!(
            shard_from_env(None, env(&k8s)),
            Ok(Some(Shard::new(2, 3).unwrap()))
        );
        assert_eq!(
            shard_from_env(Some(4), env(&k8s)),
            Ok(Some(Shard::new(2, 4).unwrap())),
            "--shards wins"
        );
        let e = shard_from_env(None, env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err();
        assert!(e.contains("--shards"), "{e}");
        let e = shard_from_env(Some(2), env(&[("JOB_COMPLETION_INDEX", "x")])).unwrap_err();
        assert!(e.contains("JOB_COMPLETION_INDEX=\"x\""), "{e}");
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ];
        assert_eq!(
            shard_from_env(None, env(&slurm)),
            Ok(Some(Shard::new(1, 2).unwrap()))
        );
        let e = shard_from_env(Some(2), env(&[("SLURM_ARRAY_TASK_ID", "2")])).unwrap_err();
        assert!(e.contains("not below"), "{e}");
    }
}
