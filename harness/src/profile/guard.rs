//! The resource guard: before the first level starts (the model is loaded, nothing is measured
//! yet), what the plan's largest level will need is estimated and compared with what this
//! machine can give, so that `--concurrency 100000` is refused in milliseconds with the numbers
//! instead of taking every byte of memory until the kernel's OOM killer ends charter (or, on a
//! shared machine, someone else's process).
//!
//! Memory of the largest level = streams × (KV cache at the level's longest context + a
//! per-stream allowance), plus, with `--isolation process`, one more copy of the weights per
//! instance beyond the first (each worker loads its own). The weights already loaded are in use
//! and not counted again; the estimate is compared with the memory the system reports
//! available now. The longest context is the longest prompt (synthetic: the length
//! distribution's practical maximum; prompt files and the corpus: their longest text, one token
//! per byte at most, plus a chat template's allowance) plus the output cap's practical maximum,
//! never more than the model's context limit. Multi-turn sessions grow their context turn by
//! turn, so there it is the longest history a session can reach
//! ([`charter_workloads::SessionPlan::max_context_tokens`]: the most turns × (prompt + output)
//! for synthetic sessions, what a conversation file or a trace's conversation actually holds
//! otherwise). Threads = streams × (1 runner thread + the
//! compute threads per instance), compared with `kernel.threads-max` less the threads that
//! exist now. `--force` runs anyway.

use charter_backends::{BackendRecord, WeightsProvenance};
use charter_workloads::{LoadLevel, PromptSource};

use super::config::{Plan, ProfileConfig};
use crate::sampler::Isolation;

/// Memory each stream costs beside its KV cache: its thread's stack pages, the HTTP client or
/// the compute pool's buffers, request and token bookkeeping. An allowance, not a measurement.
pub const STREAM_ALLOWANCE_BYTES: u64 = 1 << 20;

/// Tokens a chat template may add around a prompt file's or the corpus's text.
const TEMPLATE_ALLOWANCE_TOKENS: u64 = 64;

/// What the plan's largest level needs, and what the machine has.
#[derive(Debug, Clone)]
pub struct Estimate {
    /// The setting that sets the largest level's streams (`concurrency`, `max_in_flight`).
    pub setting: &'static str,
    pub streams: u64,
    pub context_tokens: u64,
    /// Where the context comes from when it is not one request's (sessions' histories).
    pub context_source: Option<&'static str>,
    pub kv_bytes_per_stream: u64,
    /// Weights loaded again per instance beyond the first (process isolation), else 0.
    pub extra_weights_bytes: u64,
    pub memory_bytes: u64,
    pub available_bytes: Option<u64>,
    pub threads: u64,
    pub threads_free: Option<u64>,
}

/// The estimate for `cfg`'s plan with the loaded backend's `record` and the `prompts`.
pub fn estimate(cfg: &ProfileConfig, record: &BackendRecord, prompts: &PromptSource) -> Estimate {
    let (setting, streams) = largest_level(cfg);
    let streams = u64::from(streams);
    let prompt_tokens = match prompts {
        PromptSource::Synthetic { tokens } => u64::from(tokens.upper()),
        PromptSource::SharedPrefix(p) => u64::from(p.prefix_tokens) + u64::from(p.suffix.upper()),
        PromptSource::Trace(t) => t
            .rows
            .iter()
            .map(|r| u64::from(r.input_tokens))
            .max()
            .unwrap_or(0),
        PromptSource::Entries { entries, .. } => {
            entries
                .iter()
                .map(|e| prompt_bytes(&e.prompt))
                .max()
                .unwrap_or(0)
                + TEMPLATE_ALLOWANCE_TOKENS
        }
    };
    let file_cap = match prompts {
        PromptSource::Entries { entries, .. } => entries.iter().filter_map(|e| e.max_tokens).max(),
        PromptSource::Trace(t) => t.rows.iter().map(|r| r.output_tokens).max(),
        PromptSource::Synthetic { .. } | PromptSource::SharedPrefix(_) => None,
    };
    let output_tokens = match (&cfg.max_tokens, file_cap) {
        (Some(d), _) => u64::from(d.upper()),
        (None, Some(m)) => u64::from(m.max(64)),
        (None, None) => 64,
    };
    let (context_tokens, context_source) = match cfg.sessions.as_deref() {
        Some(plan) => (
            plan.max_context_tokens(
                prompt_tokens,
                output_tokens,
                cfg.max_tokens.map(|d| u64::from(d.upper())),
                // A text's tokens: at most one per byte, plus a chat template's allowance.
                |text| text.len() as u64 + TEMPLATE_ALLOWANCE_TOKENS,
            ),
            Some("the longest session's history"),
        ),
        None => (prompt_tokens + output_tokens, None),
    };
    let context_tokens = context_tokens.min(u64::from(record.context_limit_tokens.max(1)));
    let kv_bytes_per_stream = record
        .kv_cache
        .as_ref()
        .map_or(0, |k| k.bytes_per_token.saturating_mul(context_tokens));
    let extra_weights_bytes = match cfg.isolation {
        Isolation::Process => weights_bytes(record).saturating_mul(streams.saturating_sub(1)),
        Isolation::Thread => 0,
    };
    let memory_bytes = streams
        .saturating_mul(kv_bytes_per_stream + STREAM_ALLOWANCE_BYTES)
        .saturating_add(extra_weights_bytes);
    let per_stream_threads = 1 + u64::from(match record.remote {
        Some(_) => 0,
        None => record.threads_per_instance,
    });
    Estimate {
        setting,
        streams,
        context_tokens,
        context_source,
        kv_bytes_per_stream,
        extra_weights_bytes,
        memory_bytes,
        available_bytes: available_memory(),
        threads: streams.saturating_mul(per_stream_threads),
        threads_free: threads_free(),
    }
}

impl Estimate {
    /// `None` when the level fits, else what does not fit (one line, with the numbers).
    pub fn refusal(&self) -> Option<String> {
        if let Some(avail) = self.available_bytes {
            if self.memory_bytes > avail {
                let extra = if self.extra_weights_bytes > 0 {
                    format!(
                        " + {} of weights loaded again by the other workers",
                        gib(self.extra_weights_bytes)
                    )
                } else {
                    String::new()
                };
                let source = self
                    .context_source
                    .map_or(String::new(), |s| format!(", {s}"));
                return Some(format!(
                    "the largest level needs about {} of memory ({} streams × (KV cache {} at {} tokens{source} + {} per stream){extra}) but {} is available; lower it, or pass --force to run anyway",
                    gib(self.memory_bytes),
                    self.streams,
                    gib(self.kv_bytes_per_stream),
                    self.context_tokens,
                    gib(STREAM_ALLOWANCE_BYTES),
                    gib(avail)
                ));
            }
        }
        if let Some(free) = self.threads_free {
            if self.threads > free {
                return Some(format!(
                    "the largest level needs about {} threads ({} streams, each a runner thread and its compute threads) but the system allows {free} more (kernel.threads-max less the threads running); lower it, or pass --force to run anyway",
                    self.threads, self.streams
                ));
            }
        }
        None
    }
}

/// The most streams any level of the plan runs, and the setting that sets it.
fn largest_level(cfg: &ProfileConfig) -> (&'static str, u32) {
    match &cfg.plan {
        Plan::Levels(levels) => levels
            .iter()
            .map(|l| match l {
                LoadLevel::Closed { concurrency } => ("concurrency", *concurrency),
                LoadLevel::Open { max_in_flight, .. } => ("max_in_flight", *max_in_flight),
            })
            .max_by_key(|(_, n)| *n)
            .unwrap_or(("concurrency", 1)),
        _ if cfg.probe_concurrency > cfg.max_in_flight => ("concurrency", cfg.probe_concurrency),
        _ => ("max_in_flight", cfg.max_in_flight),
    }
}

/// An upper bound of a prompt's tokens: its text's bytes (byte-level tokenizers give at most
/// one token per byte).
fn prompt_bytes(p: &charter_backends::Prompt) -> u64 {
    match p {
        charter_backends::Prompt::Tokens(ids) => ids.len() as u64,
        charter_backends::Prompt::Text(t) => t.len() as u64,
        charter_backends::Prompt::Chat(m) => m.iter().map(|m| m.content.len() as u64).sum(),
    }
}

/// Bytes of one copy of the weights: the files' sizes, or parameters × the element size.
fn weights_bytes(r: &BackendRecord) -> u64 {
    match &r.weights {
        WeightsProvenance::Files { files, .. } => files.iter().map(|f| f.bytes).sum(),
        WeightsProvenance::RandomPreset { .. } => {
            let elem = match r.dtype.as_str() {
                "f16" | "bf16" => 2,
                _ => 4,
            };
            r.parameters.unwrap_or(0).saturating_mul(elem)
        }
        WeightsProvenance::Remote { .. } => 0,
    }
}

fn available_memory() -> Option<u64> {
    let sys = sysinfo::System::new_with_specifics(
        sysinfo::RefreshKind::nothing()
            .with_memory(sysinfo::MemoryRefreshKind::nothing().with_ram()),
    )
    .ok()?;
    Some(sys.available_memory()).filter(|&b| b > 0)
}

/// `kernel.threads-max` less the threads that exist now (the fourth field of /proc/loadavg).
fn threads_free() -> Option<u64> {
    let max: u64 = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let now: u64 = loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()?;
    Some(max.saturating_sub(now))
}

fn gib(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(memory: u64, avail: u64, threads: u64, free: u64) -> Estimate {
        Estimate {
            setting: "concurrency",
            streams: 10,
            context_tokens: 192,
            context_source: None,
            kv_bytes_per_stream: 1 << 20,
            extra_weights_bytes: 0,
            memory_bytes: memory,
            available_bytes: Some(avail),
            threads,
            threads_free: Some(free),
        }
    }

    #[test]
    fn refuses_what_does_not_fit_and_says_why() {
        assert!(est(1 << 30, 2 << 30, 20, 100).refusal().is_none());
        let m = est(3 << 30, 2 << 30, 20, 100).refusal().unwrap();
        assert!(
            m.contains("3.0 GiB") && m.contains("2.0 GiB") && m.contains("--force"),
            "{m}"
        );
        let t = est(1 << 30, 2 << 30, 200, 100).refusal().unwrap();
        assert!(t.contains("200 threads") && t.contains("100 more"), "{t}");
    }
}
