//! Everything charter computes from run records without the runner: aggregation of request
//! rows into summaries, the console summary, the resource charter, charts, cost and gates.
//!
//! The record types themselves live in charter-record; the modules and names this crate
//! always exported (`record`, `metrics`, `RunRecord`, `LatencySummary`, ...) are re-exported
//! from there, so their paths keep working.

pub mod aggregate;
pub mod charter;
pub mod charts;
pub mod cost;
pub mod energy;
pub mod export;
pub mod gate;
pub mod histograms;
pub mod hybrid_plan;
pub mod merge;
pub mod render;
pub mod resources;
pub mod routing;
pub mod server_metrics;
pub mod sessions;
pub mod slo;
pub mod stats;
pub mod summary;
pub mod tokens;

pub use aggregate::Aggregator;
pub use charter_record::run as record;
pub use charter_record::run::*;
pub use charter_record::{metrics, request_timings, RequestTimings};
pub use stats::{least_squares, mean, LatencyHistogram, LatencySummary, LineFit, ValueSummary};
