//! The closed sets of words the run record uses to say how a run was set up and measured
//! (`poisson`, `process`, `rapl`, ...). Each enum serialises as the word run.json has always
//! held, and displays as it. Those that are also command-line values derive
//! `clap::ValueEnum` with the `clap` feature.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which load plan a run followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// One load level.
    Single,
    /// A sweep over the given levels.
    List,
    /// A saturation probe, then open-loop rates below it.
    Auto,
    /// A saturation probe, then a search for the highest open-loop rate meeting the SLO.
    SloSearch,
}

impl PlanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::Single => "single",
            PlanKind::List => "list",
            PlanKind::Auto => "auto",
            PlanKind::SloSearch => "slo_search",
        }
    }
}

/// How open-loop requests are spaced in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Evenly spaced, 1/rate apart.
    Constant,
    /// Exponential inter-arrival times (a Poisson process).
    Poisson,
    /// Gamma inter-arrival times with shape = burstiness.
    Gamma,
    /// The timestamps of a replayed trace (`workload.trace`); set by `--trace`, not by
    /// `--arrivals`.
    #[cfg_attr(feature = "clap", value(skip))]
    Trace,
}

impl Arrivals {
    pub fn as_str(self) -> &'static str {
        match self {
            Arrivals::Constant => "constant",
            Arrivals::Poisson => "poisson",
            Arrivals::Gamma => "gamma",
            Arrivals::Trace => "trace",
        }
    }
}

/// How instances are separated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Instances are streams on their own threads inside charter, sharing the weights.
    #[default]
    Thread,
    /// Each instance is a `charter worker` process with its own copy of the model.
    Process,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Thread => "thread",
            Isolation::Process => "process",
        }
    }
}

/// How an energy figure was obtained (the labels of docs/metrics.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnergyMethod {
    /// Difference of a hardware cumulative energy counter (NVML total energy, RAPL).
    Counter,
    /// Model estimate (declared TDP × measured CPU load).
    Estimated,
    /// Trapezoidal integral of sampled power.
    Integrated,
    /// CPU package energy from the RAPL counters (what a CPU's `counter` is called).
    Rapl,
}

impl EnergyMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyMethod::Counter => "counter",
            EnergyMethod::Estimated => "estimated",
            EnergyMethod::Integrated => "integrated",
            EnergyMethod::Rapl => "rapl",
        }
    }
}

/// Which remote API a backend drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI-compatible: OpenAI, vLLM, TGI, llama.cpp's server, Ollama, `charter serve`.
    Openai,
    /// Anthropic messages.
    Anthropic,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Openai => "openai",
            Api::Anthropic => "anthropic",
        }
    }
}

/// The request field that caps output length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum LengthField {
    /// `max_tokens`: honoured by every OpenAI-compatible server (llama.cpp's only limit).
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: OpenAI's newer name (ignored by llama.cpp's server).
    MaxCompletionTokens,
}

impl LengthField {
    pub fn as_str(self) -> &'static str {
        match self {
            LengthField::MaxTokens => "max_tokens",
            LengthField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

crate::display_as_str!(
    PlanKind,
    Arrivals,
    Isolation,
    EnergyMethod,
    Api,
    LengthField
);
