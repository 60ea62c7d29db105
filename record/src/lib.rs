//! The run record of charter: what was observed, as typed data.
//!
//! This crate sits at the bottom of the workspace. Backends report each request as an
//! observation, the runner turns it into a `requests.csv` row (computing the per-request
//! metrics from timestamped token events, the same way for every backend: see
//! `shared/docs/metrics.md`) and writes the run record `run.json`; reports and gates read
//! them back. It holds data and the few computations that define it, nothing that draws,
//! aggregates or writes files. All stored quantities are raw SI numbers (seconds, bytes) with
//! the unit in the field name.

pub mod metrics;
pub mod observation;
pub mod run;
pub mod slo;
pub mod summary;

pub use metrics::{request_timings, RequestTimings};
pub use observation::{
    ErrorKind, GenOutcome, Observation, RequestError, StopReason, TokenCountSource, WireInfo,
};
pub use run::*;
pub use slo::{Slo, SloMetric, SloTerm};
pub use summary::{LatencySummary, ValueSummary};
