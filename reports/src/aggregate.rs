//! Folding request rows into a run summary (histograms, counts, throughput). Every latency of
//! the registry (`charter_record::Latency`) gets its histogram here; nothing names them one
//! by one.

use charter_record::{
    Latency, MeasuredWindow, RequestRow, RunSummary, Slo, StopReason, ValueSummary,
};

use crate::routing::Routing;
use crate::slo::wilson_interval;
use crate::stats::{LatencyHistogram, HISTOGRAM_SIGFIGS};

/// Accumulates measured requests; warm-up rows are counted as excluded and otherwise ignored.
#[derive(Debug, Default)]
pub struct Aggregator {
    s: RunSummary,
    /// One histogram per latency metric, in `Latency::ALL` order.
    hists: [LatencyHistogram; Latency::ALL.len()],
    prefill_tokens_per_s: Vec<f64>,
    first_start_s: Option<f64>,
    last_end_s: Option<f64>,
    first_end_s: Option<f64>,
    first_intended_s: Option<f64>,
    last_intended_s: Option<f64>,
    slo: Option<Slo>,
    good: u64,
    routing: Routing,
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also count requests meeting `slo` (attainment, goodput).
    pub fn with_slo(slo: Option<Slo>) -> Self {
        Self {
            slo,
            ..Self::default()
        }
    }

    /// Add one finished request with its chunk gaps.
    pub fn add(&mut self, row: &RequestRow, chunk_gaps_s: &[f64]) {
        if row.warmup {
            self.s.warmup_requests_excluded += 1;
            return;
        }
        let cancelled = row.stop_reason == Some(StopReason::Cancelled);
        if let Some(kind) = row.error_kind {
            self.s.requests_failed += 1;
            *self.s.errors.entry(kind).or_default() += 1;
        } else if cancelled {
            self.s.requests_cancelled += 1;
        } else {
            self.s.requests_completed += 1;
        }
        if let Some(r) = row.stop_reason {
            *self.s.stop_reasons.entry(r).or_default() += 1;
        }
        if row.stale_connection.is_some() {
            self.s.stale_reconnects += 1;
        }
        // Cancelled requests were cut short by the user: their timings describe nothing.
        if cancelled {
            return;
        }
        self.first_start_s = Some(
            self.first_start_s
                .map_or(row.start_s, |v| v.min(row.start_s)),
        );
        self.last_end_s = Some(self.last_end_s.map_or(row.end_s, |v| v.max(row.end_s)));
        self.first_end_s = Some(self.first_end_s.map_or(row.end_s, |v| v.min(row.end_s)));
        let i = row.intended_start_s;
        self.first_intended_s = Some(self.first_intended_s.map_or(i, |v| v.min(i)));
        self.last_intended_s = Some(self.last_intended_s.map_or(i, |v| v.max(i)));
        // Schedule lag describes failed requests too.
        self.record(Latency::ScheduleLag, Some(row.schedule_lag_s));
        self.routing.add(row);
        if self.slo.as_ref().is_some_and(|s| s.request_is_good(row)) {
            self.good += 1;
        }
        if row.error_kind.is_some() {
            return;
        }
        *self
            .s
            .token_count_sources
            .entry(row.token_count_source)
            .or_default() += 1;
        *self
            .s
            .prompt_token_sources
            .entry(row.prompt_token_source)
            .or_default() += 1;
        if row.cap_ignored == Some(true) {
            self.s.cap_ignored += 1;
        }
        if let (Some(usage), Some(intended)) = (row.prompt_tokens_usage, row.prompt_tokens_intended)
        {
            self.s
                .prompt_tokens_usage_vs_intended
                .get_or_insert_with(Default::default)
                .add(usage, intended);
        }
        if let (Some(usage), Some(counted)) = (row.output_tokens_usage, row.output_tokens_tokenizer)
        {
            self.s
                .output_tokens_usage_vs_tokenizer
                .get_or_insert_with(Default::default)
                .add(usage, counted);
        }
        self.s.prompt_tokens += row.prompt_tokens;
        self.s.output_tokens += row.output_tokens;
        if let Some(r) = row.reasoning_tokens {
            *self.s.reasoning_tokens.get_or_insert(0) += r;
        }
        if let Some(rule) = row.decode_rule {
            *self.s.decode_rules.entry(rule).or_default() += 1;
        }
        self.prefill_tokens_per_s.extend(row.prefill_tokens_per_s);
        for l in Latency::ALL {
            if l != Latency::ScheduleLag {
                self.record(l, l.of_row(row));
            }
        }
        for g in chunk_gaps_s {
            self.record(Latency::ChunkGaps, Some(*g));
        }
    }

    fn record(&mut self, l: Latency, v: Option<f64>) {
        if let (Some(v), Some(i)) = (v, Latency::ALL.iter().position(|x| *x == l)) {
            self.hists[i].record_s(v);
        }
    }

    /// The latency histograms, one per metric in `Latency::ALL` order.
    pub fn histograms(&self) -> &crate::histograms::LevelHistograms {
        &self.hists
    }

    /// Replace the latency histograms (a merge sets the exact sums of its shards' histograms,
    /// including chunk gaps, which request rows do not hold).
    pub fn set_histograms(&mut self, hists: crate::histograms::LevelHistograms) {
        self.hists = hists;
    }

    /// The measured window: first measured start to last measured completion.
    pub fn window(&self, excluded: &str) -> Option<MeasuredWindow> {
        let (start_s, end_s) = (self.first_start_s?, self.last_end_s?);
        Some(MeasuredWindow {
            start_s,
            end_s,
            duration_s: end_s - start_s,
            excluded: excluded.to_string(),
        })
    }

    /// Open loop: how well completions kept pace with arrivals, as the span of scheduled
    /// starts ÷ the span of completions. A system that keeps up completes requests as they
    /// arrive (≈ 1, with the arrivals' own randomness cancelling out); one that cannot spreads
    /// its completions over a longer time (its service rate ÷ the offered rate).
    pub fn keep_up_ratio(&self) -> Option<f64> {
        let arrivals = self.last_intended_s? - self.first_intended_s?;
        let completions = self.last_end_s? - self.first_end_s?;
        (self.s.requests_completed >= 2 && completions > 0.0).then(|| arrivals / completions)
    }

    /// The summary so far.
    pub fn summary(&self) -> RunSummary {
        let mut s = self.s.clone();
        s.histogram_sigfigs = HISTOGRAM_SIGFIGS;
        if let (Some(a), Some(b)) = (self.first_start_s, self.last_end_s) {
            let d = b - a;
            if d > 0.0 {
                s.duration_s = Some(d);
                s.request_throughput_per_s = Some(s.requests_completed as f64 / d);
                s.output_token_throughput_per_s = Some(s.output_tokens as f64 / d);
            }
        }
        for (l, h) in Latency::ALL.iter().zip(&self.hists) {
            *l.field_mut(&mut s) = h.summary();
        }
        s.prefill_tokens_per_s = ValueSummary::from_values(&self.prefill_tokens_per_s);
        s.routing = self
            .routing
            .summary(self.first_start_s.zip(self.last_end_s));
        if let Some(slo) = &self.slo {
            let n = s.requests_completed + s.requests_failed;
            s.requests_good = Some(self.good);
            s.slo_attainment = (n > 0).then(|| self.good as f64 / n as f64);
            s.slo_attainment_ci95 = wilson_interval(self.good, n);
            s.goodput_per_s = s.duration_s.map(|d| self.good as f64 / d);
            s.slo_percentiles_hold = slo.percentiles_hold(&s);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use charter_record::{ErrorKind, TokenCountSource};

    use super::*;

    fn row(id: u64, start: f64, end: f64, out: u64) -> RequestRow {
        RequestRow {
            id,
            instance: 0,
            warmup: false,
            intended_start_s: start,
            start_s: start,
            end_s: end,
            schedule_lag_s: 0.0,
            ttft_s: Some(0.1),
            ttft_from_intended_s: Some(0.1),
            e2e_s: Some(end - start),
            e2e_from_intended_s: Some(end - start),
            decode_time_s: Some(end - start - 0.1),
            itl_s: Some(0.01),
            tpot_incl_first_s: Some(0.02),
            prompt_tokens: 10,
            output_tokens: out,
            token_count_source: TokenCountSource::Backend,
            stop_reason: Some(StopReason::MaxTokens),
            error_kind: None,
            error_message: None,
            ..Default::default()
        }
    }

    #[test]
    fn throughput_over_window_and_warmup_excluded() {
        let mut a = Aggregator::new();
        let mut w = row(0, 0.0, 5.0, 100);
        w.warmup = true;
        a.add(&w, &[]);
        a.add(&row(1, 10.0, 11.0, 20), &[0.01, 0.02]);
        a.add(&row(2, 10.5, 12.0, 30), &[]);
        let mut f = row(3, 11.0, 11.5, 0);
        f.error_kind = Some(ErrorKind::Compute);
        f.stop_reason = None;
        a.add(&f, &[]);
        let s = a.summary();
        assert_eq!(s.warmup_requests_excluded, 1);
        assert_eq!(s.requests_completed, 2);
        assert_eq!(s.requests_failed, 1);
        assert_eq!(s.errors[&ErrorKind::Compute], 1);
        assert_eq!(s.output_tokens, 50);
        assert_eq!(s.duration_s, Some(2.0));
        assert_eq!(s.output_token_throughput_per_s, Some(25.0));
        assert_eq!(s.request_throughput_per_s, Some(1.0));
        assert_eq!(s.chunk_gaps.unwrap().count, 2);
        assert_eq!(s.ttft.unwrap().count, 2);
        assert_eq!(s.requests_good, None);
    }

    #[test]
    fn remote_counts_are_compared_and_flags_counted() {
        let mut a = Aggregator::new();
        let mut r = row(1, 0.0, 1.0, 9);
        r.prompt_tokens_usage = Some(66);
        r.prompt_tokens_intended = Some(64);
        r.output_tokens_usage = Some(9);
        r.output_tokens_tokenizer = Some(10);
        r.cap_ignored = Some(true);
        r.stale_connection = Some(charter_record::StaleConnection::Resent);
        a.add(&r, &[]);
        let mut r = row(2, 0.0, 1.0, 8);
        r.prompt_tokens_usage = Some(64);
        r.prompt_tokens_intended = Some(64);
        r.output_tokens_usage = Some(8);
        r.output_tokens_tokenizer = Some(8);
        r.cap_ignored = Some(false);
        a.add(&r, &[]);
        let mut f = row(3, 0.0, 0.5, 0);
        f.error_kind = Some(ErrorKind::HttpStatus);
        f.stale_connection = Some(charter_record::StaleConnection::FoundClosed);
        a.add(&f, &[]);
        let s = a.summary();
        assert_eq!(s.stale_reconnects, 2, "failed requests count too");
        assert_eq!(s.cap_ignored, 1);
        let p = s.prompt_tokens_usage_vs_intended.unwrap();
        assert_eq!((p.requests, p.differing), (2, 1));
        assert_eq!((p.min_difference, p.max_difference), (0, 2));
        assert!((p.mean_difference - 1.0).abs() < 1e-12);
        let o = s.output_tokens_usage_vs_tokenizer.unwrap();
        assert_eq!((o.requests, o.differing, o.min_difference), (2, 1, -1));
    }

    #[test]
    fn attainment_and_goodput_count_good_requests() {
        let slo: Slo = "ttft_p50=150ms".parse().unwrap();
        let mut a = Aggregator::with_slo(Some(slo));
        a.add(&row(1, 0.0, 1.0, 5), &[]);
        let mut slow = row(2, 0.0, 2.0, 5);
        slow.ttft_from_intended_s = Some(0.3);
        a.add(&slow, &[]);
        let mut failed = row(3, 0.5, 1.0, 0);
        failed.error_kind = Some(ErrorKind::Compute);
        a.add(&failed, &[]);
        let s = a.summary();
        assert_eq!(s.requests_good, Some(1));
        assert!((s.slo_attainment.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.goodput_per_s, Some(0.5));
        assert_eq!(
            s.slo_percentiles_hold,
            Some(true),
            "p50 of {{0.1, 0.3}} is 0.1"
        );
    }
}
