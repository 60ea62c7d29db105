//! `charter profile --metrics-listen ADDR`: the run's live metrics in the Prometheus text
//! format at `http://ADDR/metrics` (see [`crate::exposition`]), for a Prometheus scraping a long
//! run. Counters count measured requests (warm-ups apart), so at the end they equal the record's
//! sums over its levels:
//!
//! - `charter:profile_requests_completed_total`, `charter:profile_requests_failed_total`,
//!   `charter:profile_warmup_requests_total`;
//! - `charter:profile_output_tokens_total` (measured requests' output tokens);
//! - `charter:profile_requests_in_flight` (every request being generated, warm-ups included);
//! - `charter:profile_ttft_seconds`, `charter:profile_e2e_seconds` (measured requests that
//!   completed);
//! - `charter:profile_level` (the level running) and
//!   `charter:profile_output_tokens_per_second` (its measured output tokens ÷ time since the
//!   level started).
//!
//! The metrics are process-wide (one run per process; the runners count requests in flight
//! without knowing about `profile`); nothing is counted when no listener was asked for.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::routing::get;
use axum::Router;
use charter_record::RequestRow;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::exposition::latency_histogram;
use crate::CliError;

struct Live {
    completed: Counter,
    failed: Counter,
    warmup: Counter,
    output_tokens: Counter,
    in_flight: Gauge,
    ttft: Histogram,
    e2e: Histogram,
    level: Gauge,
    throughput: Gauge<f64, AtomicU64>,
    /// The running level's start and its measured output tokens.
    level_tokens: Mutex<(Instant, u64)>,
}

static LIVE: OnceLock<Live> = OnceLock::new();

impl Live {
    fn new() -> (Self, Registry) {
        let l = Live {
            completed: Counter::default(),
            failed: Counter::default(),
            warmup: Counter::default(),
            output_tokens: Counter::default(),
            in_flight: Gauge::default(),
            ttft: latency_histogram(),
            e2e: latency_histogram(),
            level: Gauge::default(),
            throughput: Gauge::default(),
            level_tokens: Mutex::new((Instant::now(), 0)),
        };
        let mut r = Registry::default();
        let p = "charter:profile_";
        r.register(
            format!("{p}requests_completed"),
            "Measured requests that completed",
            l.completed.clone(),
        );
        r.register(
            format!("{p}requests_failed"),
            "Measured requests that failed",
            l.failed.clone(),
        );
        r.register(
            format!("{p}warmup_requests"),
            "Warm-up requests finished",
            l.warmup.clone(),
        );
        r.register(
            format!("{p}output_tokens"),
            "Output tokens of measured requests",
            l.output_tokens.clone(),
        );
        r.register(
            format!("{p}requests_in_flight"),
            "Requests being generated now",
            l.in_flight.clone(),
        );
        r.register(
            format!("{p}ttft_seconds"),
            "Time to first token of measured requests",
            l.ttft.clone(),
        );
        r.register(
            format!("{p}e2e_seconds"),
            "End-to-end latency of measured requests",
            l.e2e.clone(),
        );
        r.register(
            format!("{p}level"),
            "Index of the load level running",
            l.level.clone(),
        );
        r.register(
            format!("{p}output_tokens_per_second"),
            "Measured output tokens per second of the running level",
            l.throughput.clone(),
        );
        (l, r)
    }
}

/// Start serving the live metrics at `addr` (on a thread of its own, until the process ends).
pub fn listen(addr: &str) -> Result<(), CliError> {
    let bad = |why: String| CliError::BadInput(format!("--metrics-listen {addr}: {why}"));
    let sock: SocketAddr = addr
        .parse()
        .map_err(|_| bad("expected IP:PORT, e.g. 127.0.0.1:9400".into()))?;
    let listener =
        std::net::TcpListener::bind(sock).map_err(|e| bad(format!("cannot listen there: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| CliError::Failure(e.into()))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::Failure(e.into()))?;
    let (live, registry) = Live::new();
    if LIVE.set(live).is_err() {
        return Err(bad("live metrics are already served by this process".into()));
    }
    let registry = Arc::new(registry);
    std::thread::Builder::new()
        .name("charter-metrics-listen".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = Router::new()
                    .route("/metrics", get(crate::exposition::handler))
                    .with_state(registry);
                let _ = axum::serve(listener, app).await;
            });
        })
        .map_err(|e| CliError::Failure(e.into()))?;
    eprintln!("charter: live metrics at http://{local}/metrics");
    Ok(())
}

/// A level starts.
pub fn level_started(index: u32) {
    if let Some(l) = LIVE.get() {
        l.level.set(i64::from(index));
        l.throughput.set(0.0);
        if let Ok(mut t) = l.level_tokens.lock() {
            *t = (Instant::now(), 0);
        }
    }
}

/// A request finished (recorded as `row`).
pub fn finished(row: &RequestRow) {
    let Some(l) = LIVE.get() else { return };
    if row.warmup {
        l.warmup.inc();
        return;
    }
    l.output_tokens.inc_by(row.output_tokens);
    if row.error_kind.is_some() {
        l.failed.inc();
    } else {
        l.completed.inc();
        if let Some(t) = row.ttft_s {
            l.ttft.observe(t);
        }
        if let Some(t) = row.e2e_s {
            l.e2e.observe(t);
        }
    }
    if let Ok(mut t) = l.level_tokens.lock() {
        t.1 += row.output_tokens;
        let secs = t.0.elapsed().as_secs_f64();
        if secs > 0.0 {
            l.throughput.set(t.1 as f64 / secs);
        }
    }
}

/// Counts a request in flight until dropped.
pub struct InFlight(bool);

/// A request starts generating.
pub fn in_flight() -> InFlight {
    match LIVE.get() {
        Some(l) => {
            l.in_flight.inc();
            InFlight(true)
        }
        None => InFlight(false),
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let (true, Some(l)) = (self.0, LIVE.get()) {
            l.in_flight.dec();
        }
    }
}
