//! The latency metrics charter summarises, in one table: each metric's name (in records, rules
//! files and SLOs), where a request row holds it, where a level's summary keeps its
//! distribution, what an SLO on it evaluates, and how the console labels it.
//!
//! The aggregator, the SLO parser, the gate's metric names and the console summary all read
//! this table, so a new latency metric is a row field, its computation in `metrics.rs`, a
//! summary field, and one entry here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::run::{RequestRow, RunSummary};
use crate::summary::LatencySummary;

/// A latency metric kept in an HDR histogram per level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Latency {
    /// First content token − start.
    Ttft,
    /// First content token − intended start (what a user experiences in open loop).
    TtftFromIntended,
    /// Decode time ÷ (decode tokens − 1), the same tokens above and below the line.
    Itl,
    /// Last content token − start.
    E2e,
    /// Last content token − intended start.
    E2eFromIntended,
    /// Gaps between consecutive chunks (what vLLM calls ITL); per chunk, not per request.
    ChunkGaps,
    /// e2e ÷ output tokens.
    TpotInclFirst,
    /// start − intended start.
    ScheduleLag,
    /// First reasoning/thinking token − start (reasoning models; AIPerf's TTFT for them).
    FirstReasoning,
}

/// How the console shows a metric: its label, and whether only open-loop levels show it.
pub struct ConsoleRow {
    pub label: &'static str,
    pub open_loop_only: bool,
}

impl Latency {
    pub const ALL: [Latency; 9] = [
        Latency::Ttft,
        Latency::TtftFromIntended,
        Latency::Itl,
        Latency::E2e,
        Latency::E2eFromIntended,
        Latency::ChunkGaps,
        Latency::TpotInclFirst,
        Latency::ScheduleLag,
        Latency::FirstReasoning,
    ];

    /// The name in records, rules files and SLO terms (the summary's field name).
    pub fn name(self) -> &'static str {
        match self {
            Latency::Ttft => "ttft",
            Latency::TtftFromIntended => "ttft_from_intended",
            Latency::Itl => "itl",
            Latency::E2e => "e2e",
            Latency::E2eFromIntended => "e2e_from_intended",
            Latency::ChunkGaps => "chunk_gaps",
            Latency::TpotInclFirst => "tpot_incl_first",
            Latency::ScheduleLag => "schedule_lag",
            Latency::FirstReasoning => "first_reasoning",
        }
    }

    pub fn from_name(name: &str) -> Option<Latency> {
        Latency::ALL.into_iter().find(|l| l.name() == name)
    }

    /// The request's value (`None` for chunk gaps, which are per chunk).
    pub fn of_row(self, r: &RequestRow) -> Option<f64> {
        match self {
            Latency::Ttft => r.ttft_s,
            Latency::TtftFromIntended => r.ttft_from_intended_s,
            Latency::Itl => r.itl_s,
            Latency::E2e => r.e2e_s,
            Latency::E2eFromIntended => r.e2e_from_intended_s,
            Latency::ChunkGaps => None,
            Latency::TpotInclFirst => r.tpot_incl_first_s,
            Latency::ScheduleLag => Some(r.schedule_lag_s),
            Latency::FirstReasoning => r.first_reasoning_s,
        }
    }

    /// The level's distribution.
    pub fn of_summary(self, s: &RunSummary) -> Option<&LatencySummary> {
        self.field(s).as_ref()
    }

    /// Where a level's summary keeps the distribution.
    pub fn field(self, s: &RunSummary) -> &Option<LatencySummary> {
        match self {
            Latency::Ttft => &s.ttft,
            Latency::TtftFromIntended => &s.ttft_from_intended,
            Latency::Itl => &s.itl,
            Latency::E2e => &s.e2e,
            Latency::E2eFromIntended => &s.e2e_from_intended,
            Latency::ChunkGaps => &s.chunk_gaps,
            Latency::TpotInclFirst => &s.tpot_incl_first,
            Latency::ScheduleLag => &s.schedule_lag,
            Latency::FirstReasoning => &s.first_reasoning,
        }
    }

    /// The same, to fill in.
    pub fn field_mut(self, s: &mut RunSummary) -> &mut Option<LatencySummary> {
        match self {
            Latency::Ttft => &mut s.ttft,
            Latency::TtftFromIntended => &mut s.ttft_from_intended,
            Latency::Itl => &mut s.itl,
            Latency::E2e => &mut s.e2e,
            Latency::E2eFromIntended => &mut s.e2e_from_intended,
            Latency::ChunkGaps => &mut s.chunk_gaps,
            Latency::TpotInclFirst => &mut s.tpot_incl_first,
            Latency::ScheduleLag => &mut s.schedule_lag,
            Latency::FirstReasoning => &mut s.first_reasoning,
        }
    }

    /// Whether an SLO may name it (a per-request latency a user waits for).
    pub fn in_slo(self) -> bool {
        !matches!(self, Latency::ChunkGaps | Latency::ScheduleLag)
    }

    /// What an SLO on this metric evaluates: latencies from the intended start where those
    /// exist (what a user experiences).
    pub fn slo_view(self) -> Latency {
        match self {
            Latency::Ttft => Latency::TtftFromIntended,
            Latency::E2e => Latency::E2eFromIntended,
            other => other,
        }
    }

    /// How the console's latency table labels it (`None`: not shown there).
    pub fn console(self) -> Option<ConsoleRow> {
        let row = |label, open_loop_only| {
            Some(ConsoleRow {
                label,
                open_loop_only,
            })
        };
        match self {
            Latency::Ttft => row("TTFT", false),
            Latency::Itl => row("ITL", false),
            Latency::E2e => row("E2E", false),
            Latency::ChunkGaps => row("chunk gaps", false),
            Latency::FirstReasoning => row("first reasoning", false),
            Latency::TtftFromIntended => row("TTFT (intended)", true),
            Latency::E2eFromIntended => row("E2E (intended)", true),
            Latency::ScheduleLag => row("schedule lag", true),
            Latency::TpotInclFirst => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_summary_fields() {
        let s = serde_json::to_value(RunSummary::default()).unwrap();
        for l in Latency::ALL {
            assert_eq!(Latency::from_name(l.name()), Some(l));
            assert_eq!(serde_json::to_value(l).unwrap(), l.name());
            assert!(
                s.get(l.name()).is_some(),
                "RunSummary has no field {}",
                l.name()
            );
        }
    }
}
