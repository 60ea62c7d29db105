//! What a level of multi-turn sessions measured beyond the per-request summary: TTFT by turn
//! (the first turn against the later ones, whose prompts carry the history) and per-session
//! measures (turns, total time, think time asked for and honoured).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::summary::{LatencySummary, ValueSummary};

/// How a turn's history reaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryReuse {
    /// In-process backend: every turn prefills the whole history again (no KV cache is kept
    /// between requests).
    RePrefilled,
    /// Remote API: whatever the server caches (its prefix cache, if any) decides.
    ServerCache,
}

impl HistoryReuse {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryReuse::RePrefilled => {
                "history re-prefilled every turn (no KV reuse across requests)"
            }
            HistoryReuse::ServerCache => "history reuse is whatever the server caches",
        }
    }
}

/// TTFT of the measured requests of one turn index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnTtft {
    /// 1 for the first turn.
    pub turn: u32,
    pub ttft: LatencySummary,
}

/// Multi-turn measures of one level's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionSummary {
    /// Sessions with at least one measured request.
    pub sessions: u64,
    /// Sessions none of whose measured turns failed.
    pub sessions_without_failure: u64,
    /// Sessions started per second: sessions − 1 over the span of their first turns' starts
    /// (`None` for fewer than two). With open-loop session arrivals, the achieved rate to set
    /// against the level's `rate_per_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_arrival_rate_per_s: Option<f64>,
    pub history: HistoryReuse,
    /// Turns per session (requests, failed ones included).
    pub turns: Option<ValueSummary>,
    /// Per session: first turn's start → last turn's end, think times included.
    pub session_time_s: Option<ValueSummary>,
    /// Think time drawn before turns 2.. (what was asked).
    pub think_time_intended_s: Option<ValueSummary>,
    /// Measured gap between a turn's end and the next turn's start (what was honoured: at
    /// least the think time drawn).
    pub think_time_measured_s: Option<ValueSummary>,
    /// TTFT of first turns.
    pub ttft_first_turn: Option<LatencySummary>,
    /// TTFT of turns 2 and later (prompts with history).
    pub ttft_later_turns: Option<LatencySummary>,
    /// TTFT per turn index.
    pub ttft_by_turn: Vec<TurnTtft>,
}
