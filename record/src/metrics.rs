//! Per-request metrics from timestamped token events, as defined in `shared/docs/metrics.md`,
//! and the `requests.csv` row of an [`Observation`] they fill.
//!
//! Times are seconds on the run's monotonic clock (seconds since the run epoch). A token event
//! is `(time, tokens)`: the time the chunk arrived and how many content tokens it carried.
//! Events with zero tokens (empty chunks) never count as the first token.
//!
//! Reasoning models ([`DecodeRule`]): decode time, ITL and TPOT count the same tokens above and
//! below the line. Where the API's usage separates reasoning tokens, decode is timed from the
//! first content token over the content tokens; where it counts them without saying how many
//! (Anthropic thinking), from the first output token of any kind over all output tokens.

use std::time::Instant;

use crate::observation::{Observation, PromptTokenSource, TokenCountSource};
use crate::run::{DecodeRule, RequestRow};

/// What a request's token counts say, for choosing its [`DecodeRule`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TokenCounts {
    /// Output tokens as the backend counted them.
    pub output: u64,
    /// Where that count comes from (`usage` counts reasoning tokens too; others count content).
    pub source: TokenCountSource,
    /// Reasoning tokens the API's usage reported (included in `output`).
    pub reasoning: Option<u64>,
    /// When the first reasoning token arrived (seconds on the run's clock).
    pub first_reasoning_s: Option<f64>,
}

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
    /// Which tokens decode time and ITL count.
    pub decode_rule: Option<DecodeRule>,
}

/// Compute a request's timings from its events.
///
/// `counts.output` is the count the backend reported (it may differ from the sum over events
/// when a remote API reports usage); ITL and `tpot_incl_first` divide by the tokens the
/// request's [`DecodeRule`] picks.
pub fn request_timings(
    intended_start_s: f64,
    start_s: f64,
    events: &[(f64, u32)],
    counts: TokenCounts,
) -> RequestTimings {
    let output_tokens = counts.output;
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
    // Usage counts reasoning tokens in the output; tokenizer and chunk counts see content only.
    let usage = counts.source == TokenCountSource::Usage;
    let (rule, decode_from, decode_tokens) =
        match (usage, counts.reasoning, counts.first_reasoning_s) {
            (true, Some(r), _) if r > 0 => {
                (DecodeRule::Content, first, output_tokens.saturating_sub(r))
            }
            (true, _, Some(fr)) => (DecodeRule::AllOutput, fr.min(first), output_tokens),
            _ => (DecodeRule::Output, first, output_tokens),
        };
    let decode = last - decode_from;
    t.decode_rule = Some(rule);
    t.decode_time_s = Some(decode);
    if decode_tokens >= 2 {
        t.itl_s = Some(decode / (decode_tokens - 1) as f64);
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
        let first_reasoning_s = wire.and_then(|w| w.first_reasoning_at).map(secs);
        let t = request_timings(
            intended,
            start,
            &events,
            TokenCounts {
                output: output_tokens,
                source,
                reasoning: wire.and_then(|w| w.reasoning_tokens),
                first_reasoning_s,
            },
        );
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
            first_reasoning_s: first_reasoning_s.map(|t| t - start),
            reasoning_chunks: wire.map(|w| w.reasoning_chunks),
            reasoning_tokens: wire.and_then(|w| w.reasoning_tokens),
            cached_prompt_tokens: wire.and_then(|w| w.cached_prompt_tokens),
            retry_after_s: wire.and_then(|w| w.retry_after).map(|d| d.as_secs_f64()),
            http_version: wire.and_then(|w| w.http_version).map(str::to_string),
            decode_rule: t.decode_rule,
            prefill_tokens_per_s: t
                .ttft_s
                .filter(|s| *s > 0.0 && prompt_tokens > 0)
                .map(|s| prompt_tokens as f64 / s),
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
            tier: o
                .route
                .as_ref()
                .map(|r| r.tier_name.clone())
                .or_else(|| wire.and_then(|w| w.tier_header.clone())),
            attempts: o.route.as_ref().map(|r| r.attempts),
            spill_reason: o.route.as_ref().and_then(|r| r.spill_reason),
            failed_attempt: o.route.as_ref().and_then(|r| r.failed_attempt.clone()),
            session: o.session.map(|s| s.session),
            turn: o.session.map(|s| s.turn),
            think_time_s: o
                .session
                .and_then(|s| s.think_time)
                .map(|d| d.as_secs_f64()),
        };
        (row, t.chunk_gaps_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(output: u64) -> TokenCounts {
        TokenCounts {
            output,
            ..Default::default()
        }
    }

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("value present");
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn exact_timings_from_known_events() {
        // Scheduled at 0.9, issued at 1.0; tokens at 1.25, 1.35, 1.45, 1.65.
        let ev = [(1.25, 1), (1.35, 1), (1.45, 1), (1.65, 1)];
        let t = request_timings(0.9, 1.0, &ev, plain(4));
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
        let t = request_timings(0.0, 0.0, &ev, plain(5));
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
            route: None,
            session: None,
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
        let t = request_timings(0.0, 0.0, &[(0.3, 1)], plain(1));
        close(t.ttft_s, 0.3);
        assert_eq!(t.itl_s, None);
        close(t.tpot_incl_first_s, 0.3);
        let t = request_timings(0.0, 0.0, &[], plain(0));
        assert_eq!(t.ttft_s, None);
        assert_eq!(t.e2e_s, None);
    }

    /// 40 reasoning chunks (0.1 s … 0.49 s), then 20 content chunks (1.0 s … 1.95 s).
    fn content_events() -> Vec<(f64, u32)> {
        (0..20).map(|i| (1.0 + 0.05 * i as f64, 1)).collect()
    }

    #[test]
    fn usage_that_separates_reasoning_times_content_over_content_tokens() {
        // OpenAI: completion_tokens 60 with completion_tokens_details.reasoning_tokens 40.
        let t = request_timings(
            0.0,
            0.0,
            &content_events(),
            TokenCounts {
                output: 60,
                source: TokenCountSource::Usage,
                reasoning: Some(40),
                first_reasoning_s: Some(0.1),
            },
        );
        let ev = content_events();
        let content_decode = ev[19].0 - ev[0].0;
        assert_eq!(t.decode_rule, Some(DecodeRule::Content));
        close(t.ttft_s, 1.0);
        assert_eq!(t.decode_time_s, Some(content_decode));
        // The content decode time over the 19 gaps between 20 content tokens, exactly.
        assert_eq!(t.itl_s, Some(content_decode / 19.0));
        close(t.tpot_incl_first_s, 1.95 / 60.0);
    }

    #[test]
    fn usage_that_hides_reasoning_times_all_output_from_the_first_token_of_any_kind() {
        // Anthropic: output_tokens 60 includes thinking, with no breakdown.
        let t = request_timings(
            0.0,
            0.0,
            &content_events(),
            TokenCounts {
                output: 60,
                source: TokenCountSource::Usage,
                reasoning: None,
                first_reasoning_s: Some(0.1),
            },
        );
        let last = content_events()[19].0;
        assert_eq!(t.decode_rule, Some(DecodeRule::AllOutput));
        assert_eq!(t.decode_time_s, Some(last - 0.1));
        assert_eq!(t.itl_s, Some((last - 0.1) / 59.0));
        close(t.ttft_s, 1.0);
    }

    #[test]
    fn content_only_counts_time_content() {
        // A tokenizer over the output text, or chunks: content tokens only.
        for source in [TokenCountSource::Tokenizer, TokenCountSource::Chunks] {
            let t = request_timings(
                0.0,
                0.0,
                &content_events(),
                TokenCounts {
                    output: 20,
                    source,
                    reasoning: None,
                    first_reasoning_s: Some(0.1),
                },
            );
            let ev = content_events();
            assert_eq!(t.decode_rule, Some(DecodeRule::Output));
            assert_eq!(t.itl_s, Some((ev[19].0 - ev[0].0) / 19.0));
        }
    }
}
