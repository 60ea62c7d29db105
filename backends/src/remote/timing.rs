//! Connection timing: a tower layer around reqwest's connector that times each new connection
//! (DNS, TCP connect and, for https, the TLS handshake: reqwest's connector does all three) and
//! leaves the attempt, and its duration when it succeeded, in a slot the stream reads after the
//! request's headers arrive (or the request failed). Each stream has its own client and runs one
//! request at a time, so a connection opened while a request waited was opened for that
//! request, and a request that opened none went over a kept-alive one.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A new connection the client opened (or tried to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// DNS + TCP + TLS time; `None` when the attempt failed or has not finished.
    pub took: Option<Duration>,
}

/// Where the connector leaves the latest connection attempt.
#[derive(Debug, Clone, Default)]
pub struct ConnectSlot(Arc<Mutex<Option<Attempt>>>);

impl ConnectSlot {
    pub fn clear(&self) {
        *self.0.lock().expect("connect slot") = None;
    }
    /// The connection attempt made since [`clear`](Self::clear), if one was.
    pub fn take(&self) -> Option<Attempt> {
        self.0.lock().expect("connect slot").take()
    }
    fn set(&self, a: Attempt) {
        *self.0.lock().expect("connect slot") = Some(a);
    }
}

/// The layer for `reqwest::ClientBuilder::connector_layer`.
pub fn layer<S>(slot: ConnectSlot) -> impl tower::Layer<S, Service = TimeConnect<S>> + Clone {
    tower::layer::layer_fn(move |inner| TimeConnect {
        inner,
        slot: slot.clone(),
    })
}

/// A connector that times its calls.
#[derive(Clone)]
pub struct TimeConnect<S> {
    inner: S,
    slot: ConnectSlot,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R> tower::Service<R> for TimeConnect<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let t0 = Instant::now();
        self.slot.set(Attempt { took: None });
        let fut = self.inner.call(req);
        let slot = self.slot.clone();
        Box::pin(async move {
            let r = fut.await;
            if r.is_ok() {
                slot.set(Attempt {
                    took: Some(t0.elapsed()),
                });
            }
            r
        })
    }
}
