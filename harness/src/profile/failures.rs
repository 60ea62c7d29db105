//! Loud failures: a level in which every measured request failed is reported on stderr with
//! its first distinct error messages and makes the run exit with [`EXIT_ALL_FAILED`] (after the
//! record is written as usual); a level in which at least [`WARN_FRACTION`] of the requests
//! failed gets a warning line. Failed requests stay data: nothing here stops the run.

use charter_record::{ErrorKind, RequestRow, RunSummary};

use crate::{EXIT_ALL_FAILED, EXIT_OK};

/// Share of failed requests from which a level gets a warning line.
pub const WARN_FRACTION: f64 = 0.10;
/// Distinct error messages kept per level.
const MESSAGES: usize = 3;
/// Characters of one message shown.
const MESSAGE_CHARS: usize = 300;

/// The failures of the level in progress, and whether any level failed completely.
#[derive(Debug, Default)]
pub(super) struct Failures {
    /// First distinct (kind, message) of this level, with how often each occurred.
    messages: Vec<(ErrorKind, String, u64)>,
    all_failed: Vec<u32>,
}

impl Failures {
    /// A request of the current level finished (warm-up included: its errors are as telling).
    pub fn add(&mut self, row: &RequestRow) {
        let (Some(kind), Some(msg)) = (row.error_kind, row.error_message.as_deref()) else {
            return;
        };
        if let Some(m) = self
            .messages
            .iter_mut()
            .find(|(k, m, _)| *k == kind && m == msg)
        {
            m.2 += 1;
        } else if self.messages.len() < MESSAGES {
            self.messages.push((kind, msg.to_string(), 1));
        }
    }

    /// The level ended with `summary`: print what it calls for, and start the next level.
    pub fn level_done(&mut self, index: u32, label: &str, s: &RunSummary) {
        let messages = std::mem::take(&mut self.messages);
        let n = s.requests_completed + s.requests_failed;
        if s.requests_failed == 0 || n == 0 {
            return;
        }
        let first: Vec<String> = messages
            .iter()
            .map(|(k, m, c)| {
                let short: String = m.chars().take(MESSAGE_CHARS).collect();
                let more = if short.len() < m.len() { "…" } else { "" };
                let times = if *c > 1 {
                    format!(" (×{c})")
                } else {
                    String::new()
                };
                format!("{k}{times}: {short}{more}")
            })
            .collect();
        if s.requests_completed == 0 {
            self.all_failed.push(index);
            eprintln!(
                "charter: error: level {index} ({label}): all {n} measured requests failed; first errors:"
            );
            for f in &first {
                eprintln!("  {f}");
            }
            return;
        }
        let share = s.requests_failed as f64 / n as f64;
        if share >= WARN_FRACTION {
            eprintln!(
                "charter: warning: level {index} ({label}): {} of {n} requests failed ({:.0} %); first: {}",
                s.requests_failed,
                share * 100.0,
                first.first().map(String::as_str).unwrap_or("(no message)")
            );
        }
    }

    /// Whether level `index` failed completely.
    pub fn all_failed(&self, index: u32) -> bool {
        self.all_failed.contains(&index)
    }

    /// The exit code of a run that was not interrupted.
    pub fn exit_code(&self) -> i32 {
        if self.all_failed.is_empty() {
            EXIT_OK
        } else {
            EXIT_ALL_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(msg: &str) -> RequestRow {
        RequestRow {
            error_kind: Some(ErrorKind::HttpStatus),
            error_message: Some(msg.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_level_where_everything_failed_sets_the_exit_code() {
        let mut f = Failures::default();
        for m in ["HTTP 500: a", "HTTP 500: a", "HTTP 500: b", "x", "y"] {
            f.add(&failed(m));
        }
        assert_eq!(f.messages.len(), MESSAGES);
        assert_eq!(f.messages[0].2, 2);
        let s = RunSummary {
            requests_failed: 5,
            ..Default::default()
        };
        f.level_done(0, "concurrency 1", &s);
        assert!(f.messages.is_empty(), "the next level starts afresh");
        assert!(f.all_failed(0));
        assert_eq!(f.exit_code(), EXIT_ALL_FAILED);
    }

    #[test]
    fn partial_failure_does_not_change_the_exit_code() {
        let mut f = Failures::default();
        f.add(&failed("boom"));
        let s = RunSummary {
            requests_failed: 1,
            requests_completed: 3,
            ..Default::default()
        };
        f.level_done(0, "concurrency 1", &s);
        assert!(!f.all_failed(0));
        assert_eq!(f.exit_code(), EXIT_OK);
    }
}
