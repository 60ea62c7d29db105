//! What `charter profile --server-metrics` learnt from the server's own Prometheus metrics:
//! per source, whether it was measured ([`ServerMetricsSource`]), and per load level the known
//! gauges and counters summarised over the level's window ([`LevelServerMetrics`]). The raw
//! scrapes are in `server_metrics.csv`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::summary::ValueSummary;

/// One scraped metrics endpoint over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerMetricsSource {
    /// The endpoint (user name and password removed).
    pub url: String,
    /// At least one scrape was read.
    pub measured: bool,
    /// Why not, as `not measured (reason)`, when `measured` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Scrapes read, and scrapes that failed (no answer, an error status, a malformed
    /// exposition; each is an error row in `server_metrics.csv`).
    pub scrapes: u64,
    pub scrape_errors: u64,
    /// The server's metric each common meaning was read from (`running` →
    /// `vllm:num_requests_running`, ...), as seen in the first scrape that had it.
    #[serde(default)]
    pub recognised: BTreeMap<String, String>,
}

/// A counter over a level's window: from the last scrape at or before the window's start to
/// the first at or after its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CounterDelta {
    /// Increase between the two scrapes (a counter reset counts from zero).
    pub delta: f64,
    /// `delta` ÷ the time between the two scrapes.
    pub per_s: Option<f64>,
    /// Times of the two scrapes on the run's clock.
    pub from_s: f64,
    pub to_s: f64,
}

/// One source's known metrics over one level's measured window; `None`: the server does not
/// expose that meaning (or no scrape fell in the window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LevelServerMetrics {
    pub url: String,
    /// Scrapes read, and failed, during the window.
    pub scrapes: u64,
    pub scrape_errors: u64,
    /// Requests the server was running / had queued, per scrape in the window.
    pub running: Option<ValueSummary>,
    pub waiting: Option<ValueSummary>,
    /// KV-cache usage as a fraction (0–1), per scrape in the window.
    pub kv_cache_usage: Option<ValueSummary>,
    pub prompt_tokens: Option<CounterDelta>,
    pub generation_tokens: Option<CounterDelta>,
    /// Prefix-cache counters (vLLM counts tokens: queried and found cached).
    pub prefix_cache_hits: Option<CounterDelta>,
    pub prefix_cache_queries: Option<CounterDelta>,
    /// hits ÷ queries over the window when the server counts them, else the mean of its own
    /// hit-rate gauge (SGLang `cache_hit_rate`).
    pub prefix_cache_hit_rate: Option<f64>,
}
