//! Telemetry sources beyond the process sampler: GPU (NVML), CPU package energy (RAPL), and the
//! server's own Prometheus metrics ([`server_metrics`], scraped by a thread of its own).
//!
//! Each source is opened once; opening either gives a source or an [`Unavailable`] with the reason
//! (library missing, no device, permission denied, ...). A source never panics and never fails
//! the run: a field it cannot read is `None`, with the first failure reason kept by the source.
//! Each implements the sampler's `Source`; the energy over a window is computed from the samples
//! by `charter_reports::energy`, with its method ([`EnergyMethod`]).

pub mod gpu;
pub mod rapl;
pub mod server_metrics;

use serde::{Deserialize, Serialize};

pub use charter_record::EnergyMethod;
pub use charter_reports::energy::Energy;

/// Why a telemetry source cannot be used (recorded as "unavailable: <reason>").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("unavailable: {reason}")]
pub struct Unavailable {
    pub reason: String,
}

impl Unavailable {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}
