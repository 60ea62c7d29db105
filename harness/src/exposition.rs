//! charter's own metrics in the Prometheus text exposition format (version 0.0.4): `charter
//! serve`'s `GET /metrics` ([`crate::serve`]) and the live metrics of a `charter profile` run
//! (`--metrics-listen`, [`crate::live`]). Metrics are `prometheus-client` types in a
//! [`Registry`]; this module holds what both share: the latency buckets, the `/metrics` handler
//! and a registry under a lock readable from the HTTP thread.
//!
//! Names are prefixed `charter:`; counters end in `_total` in the exposition.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A latency histogram in seconds: 18 buckets doubling from 1 ms (upper bound ~131 s).
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

/// The registry's exposition as text.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

/// Axum handler: `GET /metrics` answering with the registry's exposition.
pub async fn handler(State(registry): State<Arc<Registry>>) -> Response {
    match render(&registry) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
