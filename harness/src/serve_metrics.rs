//! `charter serve`'s own metrics at `GET /metrics` (Prometheus text format, see
//! [`crate::exposition`]): what a server like vLLM exposes, so `charter profile
//! --server-metrics` can be tested against a server whose truth is known.
//!
//! - `charter:requests_waiting`: accepted requests whose generation has not started (waiting for
//!   a blocking thread); `charter:requests_running`: requests generating now;
//! - `charter:requests_total`, `charter:requests_failed_total`: finished requests, and those
//!   that ended in an error;
//! - `charter:prompt_tokens_total` (added when a request ends) and
//!   `charter:generation_tokens_total` (added as tokens are generated; at the end topped up to
//!   the backend's exact output count);
//! - `charter:time_to_first_token_seconds`, `charter:e2e_request_latency_seconds`: histograms
//!   from the request's arrival at the handler.

use std::time::Instant;

use charter_backends::{GenOutcome, RequestError};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::exposition::latency_histogram;

/// The server's metrics; cheap to clone (every metric is shared).
#[derive(Clone)]
pub struct ServeMetrics {
    waiting: Gauge,
    running: Gauge,
    requests: Counter,
    failed: Counter,
    prompt_tokens: Counter,
    generation_tokens: Counter,
    ttft: Histogram,
    e2e: Histogram,
}

impl ServeMetrics {
    /// New metrics and the registry that exposes them.
    pub fn new() -> (Self, Registry) {
        let m = Self {
            waiting: Gauge::default(),
            running: Gauge::default(),
            requests: Counter::default(),
            failed: Counter::default(),
            prompt_tokens: Counter::default(),
            generation_tokens: Counter::default(),
            ttft: latency_histogram(),
            e2e: latency_histogram(),
        };
        let mut r = Registry::default();
        r.register(
            "charter:requests_waiting",
            "Requests accepted whose generation has not started",
            m.waiting.clone(),
        );
        r.register(
            "charter:requests_running",
            "Requests generating now",
            m.running.clone(),
        );
        r.register("charter:requests", "Requests finished", m.requests.clone());
        r.register(
            "charter:requests_failed",
            "Requests that ended in an error",
            m.failed.clone(),
        );
        r.register(
            "charter:prompt_tokens",
            "Prompt tokens of finished requests",
            m.prompt_tokens.clone(),
        );
        r.register(
            "charter:generation_tokens",
            "Tokens generated",
            m.generation_tokens.clone(),
        );
        r.register(
            "charter:time_to_first_token_seconds",
            "Time from a request's arrival to its first token",
            m.ttft.clone(),
        );
        r.register(
            "charter:e2e_request_latency_seconds",
            "Time from a request's arrival to its end",
            m.e2e.clone(),
        );
        (m, r)
    }

    /// A request arrived: it waits until [`Tracked::start`].
    pub fn arrived(&self) -> Tracked {
        self.waiting.inc();
        Tracked {
            m: self.clone(),
            arrived: Instant::now(),
            started: false,
            first_token: false,
            generated: 0,
            ended: false,
        }
    }
}

/// One request's passage through the server; a request dropped before it ended counts as
/// failed.
pub struct Tracked {
    m: ServeMetrics,
    arrived: Instant,
    started: bool,
    first_token: bool,
    generated: u64,
    ended: bool,
}

impl Tracked {
    /// Generation starts: waiting → running.
    pub fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.m.waiting.dec();
            self.m.running.inc();
        }
    }

    /// A token event of `tokens` tokens.
    pub fn tokens(&mut self, tokens: u32) {
        if !self.first_token && tokens > 0 {
            self.first_token = true;
            self.m.ttft.observe(self.arrived.elapsed().as_secs_f64());
        }
        self.generated += u64::from(tokens);
        self.m.generation_tokens.inc_by(u64::from(tokens));
    }

    /// The request ended with `result`.
    pub fn end(mut self, result: &Result<GenOutcome, RequestError>) {
        let (prompt, output) = match result {
            Ok(o) => (o.prompt_tokens, o.output_tokens),
            Err(e) => (e.prompt_tokens, e.output_tokens),
        };
        self.m.prompt_tokens.inc_by(prompt);
        if output > self.generated {
            self.m.generation_tokens.inc_by(output - self.generated);
        }
        self.finish(result.is_ok());
    }

    fn finish(&mut self, ok: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        if self.started {
            self.m.running.dec();
        } else {
            self.m.waiting.dec();
        }
        self.m.requests.inc();
        if ok {
            self.m.e2e.observe(self.arrived.elapsed().as_secs_f64());
        } else {
            self.m.failed.inc();
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.finish(false);
    }
}
