//! Multi-turn sessions per level: TTFT by turn and per-session measures folded from the
//! request rows (the rows carry `session`, `turn` and `think_time_s`), so a run and a merge of
//! shards summarise the same way.

use std::collections::BTreeMap;

use charter_record::{HistoryReuse, RequestRow, SessionSummary, TurnTtft, ValueSummary};

use crate::stats::LatencyHistogram;

/// One measured turn, as far as the session measures need it.
#[derive(Debug, Clone, Copy)]
struct TurnSeen {
    turn: u32,
    start_s: f64,
    end_s: f64,
    think_time_s: Option<f64>,
    ok: bool,
}

/// Accumulates the measured rows of session requests (others are ignored).
#[derive(Debug, Default)]
pub struct SessionAggregator {
    sessions: BTreeMap<u64, Vec<TurnSeen>>,
    ttft_by_turn: BTreeMap<u32, LatencyHistogram>,
}

impl SessionAggregator {
    pub fn add(&mut self, row: &RequestRow) {
        let (Some(session), Some(turn)) = (row.session, row.turn) else {
            return;
        };
        if row.warmup {
            return;
        }
        if let Some(t) = row.ttft_s {
            self.ttft_by_turn.entry(turn).or_default().record_s(t);
        }
        self.sessions.entry(session).or_default().push(TurnSeen {
            turn,
            start_s: row.start_s,
            end_s: row.end_s,
            think_time_s: row.think_time_s,
            ok: row.error_kind.is_none(),
        });
    }

    /// `None` when no session request was measured.
    pub fn summary(&self, history: HistoryReuse) -> Option<SessionSummary> {
        if self.sessions.is_empty() {
            return None;
        }
        let (mut turns, mut times, mut asked, mut honoured) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut without_failure = 0;
        let mut first_starts = Vec::new();
        for seen in self.sessions.values() {
            let mut seen = seen.clone();
            seen.sort_by_key(|t| t.turn);
            turns.push(seen.len() as f64);
            let first = seen.iter().map(|t| t.start_s).fold(f64::INFINITY, f64::min);
            if seen[0].turn == 1 {
                first_starts.push(seen[0].start_s);
            }
            let last = seen
                .iter()
                .map(|t| t.end_s)
                .fold(f64::NEG_INFINITY, f64::max);
            times.push(last - first);
            for pair in seen.windows(2) {
                if pair[1].turn == pair[0].turn + 1 {
                    honoured.push(pair[1].start_s - pair[0].end_s);
                }
            }
            asked.extend(seen.iter().filter_map(|t| t.think_time_s));
            if seen.iter().all(|t| t.ok) {
                without_failure += 1;
            }
        }
        let summary_of = |h: Option<LatencyHistogram>| h.and_then(|h| h.summary());
        let later = self.ttft_by_turn.iter().filter(|(&turn, _)| turn > 1).fold(
            None::<LatencyHistogram>,
            |acc, (_, h)| {
                let mut acc = acc.unwrap_or_else(LatencyHistogram::new);
                acc.add(h).ok();
                Some(acc)
            },
        );
        let arrival_span = first_starts
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
            - first_starts.iter().copied().fold(f64::INFINITY, f64::min);
        Some(SessionSummary {
            sessions: self.sessions.len() as u64,
            sessions_without_failure: without_failure,
            session_arrival_rate_per_s: (first_starts.len() >= 2 && arrival_span > 0.0)
                .then(|| (first_starts.len() - 1) as f64 / arrival_span),
            history,
            turns: ValueSummary::from_values(&turns),
            session_time_s: ValueSummary::from_values(&times),
            think_time_intended_s: ValueSummary::from_values(&asked),
            think_time_measured_s: ValueSummary::from_values(&honoured),
            ttft_first_turn: summary_of(self.ttft_by_turn.get(&1).cloned()),
            ttft_later_turns: summary_of(later),
            ttft_by_turn: self
                .ttft_by_turn
                .iter()
                .filter_map(|(&turn, h)| {
                    Some(TurnTtft {
                        turn,
                        ttft: h.summary()?,
                    })
                })
                .collect(),
        })
    }
}

/// One sentence for the console and the charter: sessions, turns, time, think time asked and
/// honoured, TTFT of first against later turns, and how the history reaches the model.
pub fn sentence(level: u32, load: &str, s: &SessionSummary) -> String {
    let ms = |l: &Option<charter_record::LatencySummary>,
              f: fn(&charter_record::LatencySummary) -> f64| {
        l.as_ref()
            .map_or("-".to_string(), |x| format!("{:.1}", f(x) * 1e3))
    };
    let mean_max = |v: &Option<ValueSummary>, digits: usize| {
        v.as_ref().map_or("-".to_string(), |v| {
            format!("mean {:.digits$}, max {:.digits$}", v.mean, v.max)
        })
    };
    format!(
        "Sessions, level {level} ({load}): {} session(s){}, {} without a failed turn; turns {}; session time (s) {}; think time (s) asked {}, honoured {}; TTFT p50/p99 ms turn 1 {}/{} vs later turns {}/{}; {}.",
        s.sessions,
        s.session_arrival_rate_per_s
            .map_or(String::new(), |r| format!(" starting at {r:.3}/s")),
        s.sessions_without_failure,
        mean_max(&s.turns, 1),
        mean_max(&s.session_time_s, 2),
        mean_max(&s.think_time_intended_s, 3),
        mean_max(&s.think_time_measured_s, 3),
        ms(&s.ttft_first_turn, |x| x.p50_s),
        ms(&s.ttft_first_turn, |x| x.p99_s),
        ms(&s.ttft_later_turns, |x| x.p50_s),
        ms(&s.ttft_later_turns, |x| x.p99_s),
        s.history.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(session: u64, turn: u32, start: f64, end: f64, ttft: f64) -> RequestRow {
        RequestRow {
            session: Some(session),
            turn: Some(turn),
            think_time_s: (turn > 1).then_some(0.5),
            start_s: start,
            end_s: end,
            ttft_s: Some(ttft),
            ..RequestRow::default()
        }
    }

    #[test]
    fn turns_and_sessions_are_summarised() {
        let mut a = SessionAggregator::default();
        assert!(a.summary(HistoryReuse::ServerCache).is_none());
        a.add(&row(0, 1, 0.0, 1.0, 0.1));
        a.add(&row(0, 2, 1.6, 2.0, 0.3));
        a.add(&RequestRow {
            error_kind: Some(charter_record::ErrorKind::Timeout),
            ..row(1, 1, 0.0, 0.5, 0.1)
        });
        let s = a.summary(HistoryReuse::RePrefilled).unwrap();
        assert_eq!(s.sessions, 2);
        assert_eq!(s.sessions_without_failure, 1);
        assert_eq!(s.ttft_first_turn.as_ref().unwrap().count, 2);
        assert_eq!(s.ttft_later_turns.as_ref().unwrap().count, 1);
        assert!((s.ttft_later_turns.as_ref().unwrap().p50_s - 0.3).abs() < 0.001);
        assert_eq!(s.ttft_by_turn.len(), 2);
        assert!((s.think_time_measured_s.as_ref().unwrap().mean - 0.6).abs() < 1e-9);
        assert_eq!(s.think_time_intended_s.as_ref().unwrap().mean, 0.5);
        assert_eq!(s.session_time_s.as_ref().unwrap().max, 2.0);
        let line = sentence(0, "closed loop", &s);
        assert!(
            // 3 significant digits of the histogram: 300 ms reads back as 300.2.
            line.contains("TTFT p50/p99 ms turn 1 100.0/100.0 vs later turns 300."),
            "{line}"
        );
        assert!(line.contains("re-prefilled"), "{line}");
    }
}
