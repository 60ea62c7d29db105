//! Run records for charter and everything computed from them without the runner.
//!
//! This crate sits at the bottom of the workspace: the runner writes [`record::RunRecord`]s,
//! reports and gates read them. Metrics are computed here, once, from timestamped token
//! events (see `../shared/docs/metrics.md`), so every backend is measured the same way.
//! All stored quantities are raw SI numbers (seconds, bytes) with the unit in the field name.

pub mod aggregate;
pub mod charter;
pub mod charts;
pub mod cost;
pub mod export;
pub mod gate;
pub mod metrics;
pub mod record;
pub mod render;
pub mod slo;
pub mod stats;
pub mod summary;

pub use aggregate::Aggregator;
pub use metrics::{request_timings, RequestTimings};
pub use record::*;
pub use stats::{least_squares, mean, LatencyHistogram, LatencySummary, LineFit, ValueSummary};
