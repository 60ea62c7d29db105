//! Per-request metrics from timestamped token events, as defined in `shared/docs/metrics.md`,
//! and the `requests.csv` row of an [`Observation`] they fill.
//!
//! Times are seconds on the run's monotonic clock (seconds since the run epoch). A token event
//! is `(time, tokens)`: the time the chunk arrived and how many content tokens it carried.
//! Events with zero tokens (empty chunks) never count as the first token.

use std::time::Instant;

use crate::observation::{Observation, PromptTokenSource, TokenCountSource};
use crate::run::RequestRow;

/// Timings of one request derived from its events.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestTimings {
    /// First non-empty token − start.
    pub ttft_s: Option<f64>,
    /// First non-empty token − intended start.
    pub ttft_from_intended_s: Option<f64>,
    /// Last content token − start.
    pub e2e_s: Option<f64>,
    /// Last content token − intended start.
    pub e2e_from_intended_s: Option<f64>,
    /// e2e − ttft.
    pub decode_time_s: Option<f64>,
    /// decode_time / (output_tokens − 1); undefined for fewer than 2 tokens.
    pub itl_s: Option<f64>,
    /// e2e / output_tokens (what some tools call TPOT); only under this explicit name.
    pub tpot_incl_first_s: Option<f64>,
    /// Gaps between consecutive non-empty chunks (what vLLM calls ITL); not ITL.
    pub chunk_gaps_s: Vec<f64>,
    /// Content tokens seen in the events.
    pub event_tokens: u64,
    /// Time of the first non-empty token.
    pub first_token_s: Option<f64>,
    /// Time of the last non-empty token.
    pub last_token_s: Option<f64>,
}

/// Compute a request's timings from its events.
///
/// `output_tokens` is the count the backend reported (it may differ from the sum over events
/// when a remote API reports usage); ITL and `tpot_incl_first` divide by it.
pub fn request_timings(
    intended_start_s: f64,
    start_s: f64,
    events: &[(f64, u32)],
    output_tokens: u64,
) -> RequestTimings {
    let mut t = RequestTimings::default();
    let mut prev: Option<f64> = None;
    for &(at, tokens) in events {
        if tokens == 0 {
            continue;
        }
        t.event_tokens += u64::from(tokens);
        if t.first_token_s.is_none() {
            t.first_token_s = Some(at);
        }
        if let Some(p) = prev {
            t.chunk_gaps_s.push(at - p);
        }
        prev = Some(at);
        t.last_token_s = Some(at);
    }
    let (Some(first), Some(last)) = (t.first_token_s, t.last_token_s) else {
        return t;
    };
    let ttft = first - start_s;
    let e2e = last - start_s;
    t.ttft_s = Some(ttft);
    t.ttft_from_intended_s = Some(first - intended_start_s);
    t.e2e_s = Some(e2e);
    t.e2e_from_intended_s = Some(last - intended_start_s);
    let decode = e2e - ttft;
    t.decode_time_s = Some(decode);
    if output_tokens >= 2 {
        t.itl_s = Some(decode / (output_tokens - 1) as f64);
    }
    if output_tokens >= 1 {
        t.tpot_incl_first_s = Some(e2e / output_tokens as f64);
    }
    t
}

impl RequestRow {
    /// Turn an observed request into its CSV row and chunk gaps, on the run's clock (seconds
    /// since `epoch`).
    pub fn from_observation(o: &Observation, epoch: Instant) -> (RequestRow, Vec<f64>) {
        let secs = |t: Instant| t.saturating_duration_since(epoch).as_secs_f64();
        let events: Vec<(f64, u32)> = o.events.iter().map(|&(t, n)| (secs(t), n)).collect();
        let (prompt_tokens, output_tokens, stop_reason, error_kind, error_message, source, wire) =
            match &o.result {
                Ok(g) => (
                    g.prompt_tokens,
                    g.output_tokens,
                    Some(g.stop_reason),
                    None,
                    None,
                    g.token_count_source,
                    g.wire.as_deref(),
                ),
                Err(e) => (
                    e.prompt_tokens,
                    e.output_tokens,
                    None,
                    Some(e.kind),
                    Some(e.message.clone()),
                    // What the count of tokens received before the failure rests on.
                    if e.wire.is_some() {
                        TokenCountSource::Chunks
                    } else {
                        TokenCountSource::Backend
                    },
                    e.wire.as_deref(),
                ),
            };
        // Remote APIs: the request starts when it is handed to the HTTP client; the client's
        // own delay before that shows as schedule lag.
        let started = wire.and_then(|w| w.sent_at).unwrap_or(o.start);
        let (intended, start) = (secs(o.intended_start), secs(started));
        let t = request_timings(intended, start, &events, output_tokens);
        let row = RequestRow {
            id: o.id,
            instance: o.instance,
            warmup: o.warmup,
            intended_start_s: intended,
            start_s: start,
            end_s: secs(o.end),
            schedule_lag_s: start - intended,
            ttft_s: t.ttft_s,
            ttft_from_intended_s: t.ttft_from_intended_s,
            e2e_s: t.e2e_s,
            e2e_from_intended_s: t.e2e_from_intended_s,
            decode_time_s: t.decode_time_s,
            itl_s: t.itl_s,
            tpot_incl_first_s: t.tpot_incl_first_s,
            prompt_tokens,
            output_tokens,
            token_count_source: source,
            stop_reason,
            error_kind,
            error_message,
            http_status: wire.and_then(|w| w.http_status),
            connect_s: wire.and_then(|w| w.connect).map(|d| d.as_secs_f64()),
            connection_reused: wire.and_then(|w| w.connection_reused),
            response_headers_s: wire.and_then(|w| w.headers_at).map(|t| secs(t) - start),
            first_reasoning_s: wire
                .and_then(|w| w.first_reasoning_at)
                .map(|t| secs(t) - start),
            reasoning_chunks: wire.map(|w| w.reasoning_chunks),
            reasoning_tokens: wire.and_then(|w| w.reasoning_tokens),
            retry_after_s: wire.and_then(|w| w.retry_after).map(|d| d.as_secs_f64()),
            http_version: wire.and_then(|w| w.http_version).map(str::to_string),
            prompt_token_source: match wire {
                None => PromptTokenSource::Backend,
                Some(w) if w.prompt_tokens_usage.is_some() => PromptTokenSource::Usage,
                Some(w) => w
                    .prompt_intended_source
                    .unwrap_or(PromptTokenSource::Backend),
            },
            prompt_tokens_intended: wire.and_then(|w| w.prompt_tokens_intended),
            prompt_tokens_intended_source: wire.and_then(|w| w.prompt_intended_source),
            prompt_tokens_usage: wire.and_then(|w| w.prompt_tokens_usage),
            output_tokens_usage: wire.and_then(|w| w.output_tokens_usage),
            output_tokens_tokenizer: wire.and_then(|w| w.output_tokens_tokenizer),
            max_tokens_sent: wire.and_then(|w| w.max_tokens_sent),
            cap_ignored: match (wire.and_then(|w| w.max_tokens_sent), &o.result) {
                (Some(cap), Ok(_)) => Some(output_tokens > u64::from(cap)),
                _ => None,
            },
            stale_connection: wire.and_then(|w| w.stale_connection),
        };
        (row, t.chunk_gaps_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("value present");
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn exact_timings_from_known_events() {
        // Scheduled at 0.9, issued at 1.0; tokens at 1.25, 1.35, 1.45, 1.65.
        let ev = [(1.25, 1), (1.35, 1), (1.45, 1), (1.65, 1)];
        let t = request_timings(0.9, 1.0, &ev, 4);
        close(t.ttft_s, 0.25);
        close(t.ttft_from_intended_s, 0.35);
        close(t.e2e_s, 0.65);
        close(t.e2e_from_intended_s, 0.75);
        close(t.decode_time_s, 0.40);
        close(t.itl_s, 0.40 / 3.0);
        close(t.tpot_incl_first_s, 0.65 / 4.0);
        assert_eq!(t.chunk_gaps_s.len(), 3);
        for (g, want) in t.chunk_gaps_s.iter().zip([0.10, 0.10, 0.20]) {
            assert!((g - want).abs() < 1e-12);
        }
        assert_eq!(t.event_tokens, 4);
    }

    #[test]
    fn empty_chunks_do_not_count_as_first_token() {
        // A role-only first chunk (0 tokens) must not set TTFT.
        let ev = [(0.1, 0), (0.5, 2), (0.6, 0), (0.9, 3)];
        let t = request_timings(0.0, 0.0, &ev, 5);
        close(t.ttft_s, 0.5);
        close(t.e2e_s, 0.9);
        close(t.itl_s, 0.4 / 4.0);
        assert_eq!(t.chunk_gaps_s, vec![0.9 - 0.5]);
        assert_eq!(t.event_tokens, 5);
    }

    #[test]
    fn remote_rows_carry_prompt_sources_and_the_cap_check() {
        use crate::observation::{GenOutcome, WireInfo};
        let epoch = Instant::now();
        let obs = |usage: Option<u64>, out: u64| Observation {
            id: 0,
            instance: 0,
            warmup: false,
            intended_start: epoch,
            start: epoch,
            end: epoch,
            events: Vec::new(),
            result: Ok(GenOutcome {
                prompt_tokens: usage.unwrap_or(64),
                output_tokens: out,
                wire: Some(Box::new(WireInfo {
                    prompt_tokens_intended: Some(64),
                    prompt_intended_source: Some(PromptTokenSource::Tokenizer),
                    prompt_tokens_usage: usage,
                    max_tokens_sent: Some(16),
                    ..Default::default()
                })),
                ..Default::default()
            }),
        };
        let (r, _) = RequestRow::from_observation(&obs(Some(66), 16), epoch);
        assert_eq!(r.prompt_token_source, PromptTokenSource::Usage);
        assert_eq!(
            (
                r.prompt_tokens,
                r.prompt_tokens_intended,
                r.prompt_tokens_usage
            ),
            (66, Some(64), Some(66))
        );
        assert_eq!(r.cap_ignored, Some(false));
        let (r, _) = RequestRow::from_observation(&obs(None, 17), epoch);
        assert_eq!(r.prompt_token_source, PromptTokenSource::Tokenizer);
        assert_eq!(r.cap_ignored, Some(true));
    }

    #[test]
    fn single_token_has_no_itl_and_no_tokens_has_no_ttft() {
        let t = request_timings(0.0, 0.0, &[(0.3, 1)], 1);
        close(t.ttft_s, 0.3);
        assert_eq!(t.itl_s, None);
        close(t.tpot_incl_first_s, 0.3);
        let t = request_timings(0.0, 0.0, &[], 0);
        assert_eq!(t.ttft_s, None);
        assert_eq!(t.e2e_s, None);
    }
}
