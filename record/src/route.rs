//! Routing between backend tiers (`--backend hybrid`, or a gateway charter does not control,
//! `--tier-header`): which tier served each request and why ([`Route`]), how the tiers and the
//! policy were configured ([`HybridRecord`]), and what a level's routing came to
//! ([`RoutingSummary`]).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::run::BackendRecord;
use crate::summary::LatencySummary;

/// Why a request went to a tier after the first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SpillReason {
    /// The tier before it failed the request (429, 503, connect error, timeout) before any
    /// token: it was sent again, once, to this tier.
    Failover,
    /// Every earlier tier already had its `max_in_flight` requests in flight.
    InFlight,
    /// Every earlier tier's predicted time to first token exceeded the SLO (`ttft-slo`).
    TtftSlo,
    /// Every earlier tier was spilling (`queue-wait`): its server reported more than its
    /// `max_waiting` waiting requests and not yet `resume_waiting` or fewer, or (without a
    /// reading) it had reached its `max_in_flight` and not yet drained to its `resume_below`.
    QueueWait,
}

impl SpillReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SpillReason::Failover => "failover",
            SpillReason::InFlight => "in_flight",
            SpillReason::TtftSlo => "ttft_slo",
            SpillReason::QueueWait => "queue_wait",
        }
    }
}

crate::display_as_str!(SpillReason);

/// How one request was routed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Index of the tier that served (or finally failed) it, from 0.
    pub tier: u32,
    /// That tier's name (hybrid: the tier's `name`; `--tier-header`: the header's value).
    pub tier_name: String,
    /// Attempts made: 2 after a failover.
    pub attempts: u32,
    pub spill_reason: Option<SpillReason>,
    /// The failed first attempt, `tier name: error kind: message`, when it failed over.
    pub failed_attempt: Option<String>,
}

/// The routing policy of a hybrid backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum HybridPolicy {
    /// Tier i takes a request while it has fewer than its `max_in_flight` in flight; the rest
    /// spill to the next tier (the last tier takes every request that reaches it).
    InFlight,
    /// Every request goes to the first tier; one that fails there with 429, 503, a connect
    /// error or a timeout before any token is sent once to the next tier.
    Failover,
    /// Tier i takes a request while its predicted time to first token is within the SLO: the
    /// larger of the median TTFT of its requests that got their first token in the last
    /// window and the wait of its oldest request still without one; otherwise the request
    /// goes to the next tier. Old observations expire, so a spilling tier is tried again.
    TtftSlo,
    /// Spill on the tier's queue, with hysteresis: while its server (its `/metrics`) reports
    /// more than `max_waiting` waiting requests, until it reports `resume_waiting` or fewer;
    /// without a reading, from reaching `max_in_flight` (charter's own count) until drained
    /// to `resume_below`.
    QueueWait,
}

impl HybridPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            HybridPolicy::InFlight => "in-flight",
            HybridPolicy::Failover => "failover",
            HybridPolicy::TtftSlo => "ttft-slo",
            HybridPolicy::QueueWait => "queue-wait",
        }
    }
}

crate::display_as_str!(HybridPolicy);

/// One tier of a hybrid backend.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TierRecord {
    pub name: String,
    /// In-flight and queue-wait policies: the most requests this tier serves at once (`None`:
    /// no limit).
    pub max_in_flight: Option<u32>,
    /// Queue-wait policy: a spilling tier takes requests again once its in-flight count is
    /// at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_below: Option<u32>,
    /// Queue-wait policy: the server's waiting requests above which the tier spills, and at
    /// or below which it takes requests again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_waiting: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_waiting: Option<u32>,
    /// Queue-wait policy: where the tier's waiting count came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_signal: Option<WaitingSignal>,
    pub backend: BackendRecord,
}

/// Queue-wait: where a tier's waiting count came from, and how many routing decisions went by
/// each signal (a failed scrape falls back to charter's count until the next one reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WaitingSignal {
    /// The tier's metrics endpoint, when it answered with a waiting gauge at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The server's gauge read (`vllm:num_requests_waiting`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Why charter's own in-flight count is used instead, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Routing decisions at this tier by the server's reading and by charter's count.
    pub decisions_by_server: u64,
    pub decisions_by_count: u64,
}

/// A hybrid backend: its tiers in routing order and the policy between them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HybridRecord {
    pub policy: HybridPolicy,
    /// `ttft-slo`: the predicted TTFT above which a tier spills, and the window of recent
    /// first tokens the prediction uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill_ttft_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill_window_s: Option<f64>,
    pub tiers: Vec<TierRecord>,
}

/// What one tier served in a level's measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TierSummary {
    /// Requests it served or finally failed (failovers count where they ended).
    pub requests: u64,
    pub requests_failed: u64,
    /// Prompt and output tokens of its completed requests.
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    /// Of those, prompt tokens read from the API's prompt cache and reasoning tokens, as its
    /// usage reported them (priced separately where the price sheet has a price for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_prompt_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    pub ttft: Option<LatencySummary>,
    pub e2e: Option<LatencySummary>,
}

/// Routing over a level's measured window, from the per-request `tier` column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoutingSummary {
    /// By tier name.
    pub tiers: BTreeMap<String, TierSummary>,
    /// Requests served by a tier after the first ÷ requests routed (hybrid only: `None` when
    /// the tier came from a response header).
    pub spill_fraction: Option<f64>,
    pub spill_reasons: BTreeMap<SpillReason, u64>,
    /// Requests whose first attempt failed and that were sent to the next tier.
    pub failovers: u64,
    /// From the window's start to the first spilled request's start.
    pub first_spill_after_s: Option<f64>,
    /// Changes of tier between consecutive requests (by start time), per minute of window.
    pub tier_flips_per_min: Option<f64>,
}
