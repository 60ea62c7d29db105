//! Telemetry sources beyond the process sampler: GPU (NVML) and CPU package energy (RAPL).
//!
//! Each source is opened once; opening either gives a source or an [`Unavailable`] with the reason
//! (library missing, no device, permission denied, ...). A source never panics and never fails
//! the run: a field it cannot read is `None`, with the first failure reason kept by the source.
//! Energies carry the method that produced them ([`EnergyMethod`]).

pub mod gpu;
pub mod rapl;

use serde::{Deserialize, Serialize};

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

/// How an energy figure was obtained (the labels of docs/metrics.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyMethod {
    /// Difference of a hardware cumulative energy counter (NVML total energy, RAPL).
    Counter,
    /// Trapezoidal integral of sampled power.
    Integrated,
    /// Model estimate (declared TDP × measured CPU load).
    Estimated,
}

impl EnergyMethod {
    /// The label as written in records: `counter`, `integrated` or `estimated`.
    pub fn label(self) -> &'static str {
        match self {
            EnergyMethod::Counter => "counter",
            EnergyMethod::Integrated => "integrated",
            EnergyMethod::Estimated => "estimated",
        }
    }
}

/// Energy over a window, with its method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    pub joules: f64,
    pub method: EnergyMethod,
}
