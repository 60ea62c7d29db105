//! The run record of charter: what was observed, as typed data.
//!
//! This crate sits at the bottom of the workspace. Backends report each request as an
//! observation, the runner turns it into a `requests.csv` row (computing the per-request
//! metrics from timestamped token events, the same way for every backend: see
//! `shared/docs/metrics.md`) and writes the run record `run.json`; reports and gates read
//! them back. It holds data and the few computations that define it, nothing that draws,
//! aggregates or writes files. All stored quantities are raw SI numbers (seconds, bytes) with
//! the unit in the field name.

/// `Display` for enums with an `as_str`: the record's word, padded and aligned like a `str`.
macro_rules! display_as_str {
    ($($t:ty),+ $(,)?) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    )+};
}
pub(crate) use display_as_str;

pub mod kinds;
pub mod latency;
pub mod metrics;
pub mod observation;
pub mod route;
pub mod run;
pub mod server_metrics;
pub mod session;
pub mod slo;
pub mod summary;
pub mod tokens;

pub use kinds::{Api, Arrivals, EnergyMethod, Isolation, LengthField, PlanKind};
pub use latency::Latency;
pub use metrics::{request_timings, RequestTimings, TokenCounts};
pub use observation::{
    ErrorKind, GenOutcome, Observation, PromptTokenSource, RequestError, SessionTurn,
    StaleConnection, StopReason, TokenCountSource, WireInfo,
};
pub use route::{
    HybridPolicy, HybridRecord, Route, RoutingSummary, SpillReason, TierRecord, TierSummary,
    WaitingSignal,
};
pub use run::*;
pub use server_metrics::{CounterDelta, LevelServerMetrics, ServerMetricsSource};
pub use session::{HistoryReuse, SessionSummary, TurnTtft};
pub use slo::{Slo, SloTerm};
pub use summary::{LatencySummary, ValueSummary};
