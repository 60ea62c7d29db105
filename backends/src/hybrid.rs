//! The hybrid backend: tiers of other backends (typically an on-prem server or an in-process
//! model first, then a cloud API) and a policy that routes each request to one of them.
//!
//! Policies ([`HybridPolicy`]):
//! - `in-flight`: tier i takes a request while fewer than its `max_in_flight` requests are in
//!   flight on it; otherwise the request spills to the next tier (the last tier takes every
//!   request that reaches it);
//! - `failover`: every request goes to the first tier; one that fails there with 429, 503, a
//!   connect error or a timeout before its first token is sent once to the next tier, and its
//!   latency counts from the first attempt.
//!
//! - `queue-wait`: tier i spills while its server reports more waiting requests than its
//!   `max_waiting`, until it reports `resume_waiting` or fewer ([`ServerWaiting`], fed by the
//!   harness's scraper from the tier's `/metrics`); without a reading, in-flight with
//!   hysteresis on charter's own count (`max_in_flight`, then drained to `resume_below`);
//! - `ttft-slo`: tier i takes a request while its predicted time to first token is within the
//!   SLO.
//!
//! Each request's [`Route`] (tier, attempts, spill reason, failed attempt) is handed to the
//! runner through [`Stream::take_route`]; the runner and reports treat the tiers' token events
//! exactly as a single backend's.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{
    Backend, BackendRecord, BackendSpec, ComputeSite, ErrorKind, GenOutcome, GenRequest,
    HybridPolicy, LoadError, RequestError, Route, SpillReason, Stream, TokenEvent, TokenSink,
};
use charter_record::{HybridRecord, TierRecord};

/// One tier: a backend, its name and its in-flight capacity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TierOptions {
    pub name: String,
    /// In-flight and queue-wait policies: the most requests this tier serves at once (`None`:
    /// no limit).
    pub max_in_flight: Option<u32>,
    /// Queue-wait policy: a spilling tier takes requests again at this many in flight or fewer.
    #[serde(default)]
    pub resume_below: Option<u32>,
    /// Queue-wait: spill while the server reports more waiting requests than this...
    #[serde(default)]
    pub max_waiting: Option<u32>,
    /// ...until it reports this many or fewer.
    #[serde(default)]
    pub resume_waiting: Option<u32>,
    /// Queue-wait: the tier's Prometheus endpoint (`None`: `{base}/metrics` of an `openai`
    /// tier; `"none"`: charter's own in-flight count only).
    #[serde(default)]
    pub metrics_url: Option<String>,
    /// Queue-wait: the server's waiting count as last scraped, shared with the scraper.
    #[serde(skip)]
    pub server_waiting: Arc<ServerWaiting>,
    pub spec: BackendSpec,
}

impl TierOptions {
    /// A tier with a name, an in-flight limit and a backend; no queue-wait settings.
    pub fn new(name: &str, max_in_flight: Option<u32>, spec: BackendSpec) -> Self {
        Self {
            name: name.into(),
            max_in_flight,
            resume_below: None,
            max_waiting: None,
            resume_waiting: None,
            metrics_url: None,
            server_waiting: Arc::default(),
            spec,
        }
    }
}

/// Queue-wait: a tier's waiting requests as its own server last reported them (written by
/// whoever scrapes its `/metrics`), and how many routing decisions went by that reading and
/// by charter's own in-flight count.
#[derive(Debug)]
pub struct ServerWaiting {
    /// The last reading, or [`NO_READING`].
    waiting: AtomicU32,
    by_server: AtomicU64,
    by_count: AtomicU64,
}

/// [`ServerWaiting`] without a usable reading (never scraped, or the last scrape failed).
const NO_READING: u32 = u32::MAX;

impl Default for ServerWaiting {
    fn default() -> Self {
        Self {
            waiting: AtomicU32::new(NO_READING),
            by_server: AtomicU64::new(0),
            by_count: AtomicU64::new(0),
        }
    }
}

impl ServerWaiting {
    /// A scrape's waiting count; `None` when the scrape failed or had no waiting gauge (the
    /// router then goes by charter's own count).
    pub fn set(&self, waiting: Option<f64>) {
        let v = waiting
            .filter(|w| w.is_finite() && *w >= 0.0)
            .map_or(NO_READING, |w| (w.round() as u32).min(NO_READING - 1));
        self.waiting.store(v, Ordering::Release);
    }

    /// The last reading.
    pub fn get(&self) -> Option<u32> {
        Some(self.waiting.load(Ordering::Acquire)).filter(|&w| w != NO_READING)
    }

    /// Routing decisions at this tier so far: (by the server's reading, by charter's count).
    pub fn decisions(&self) -> (u64, u64) {
        (
            self.by_server.load(Ordering::Relaxed),
            self.by_count.load(Ordering::Relaxed),
        )
    }
}

/// Tiers in routing order and the policy between them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HybridOptions {
    pub policy: HybridPolicy,
    pub tiers: Vec<TierOptions>,
    /// `ttft-slo`: spill past a tier whose predicted TTFT exceeds this.
    pub spill_ttft: Option<Duration>,
    /// `ttft-slo`: how long a first-token observation counts in the prediction.
    pub spill_window: Duration,
}

/// Default of [`HybridOptions::spill_window`].
pub const DEFAULT_SPILL_WINDOW: Duration = Duration::from_secs(10);

/// What the streams of one hybrid backend share: each tier's routing state.
#[derive(Debug)]
struct Router {
    policy: HybridPolicy,
    tiers: Vec<TierState>,
    spill_ttft: Option<Duration>,
    spill_window: Duration,
    next_wait_id: AtomicU64,
}

/// One tier as the router sees it.
#[derive(Debug)]
struct TierState {
    name: String,
    /// In-flight and queue-wait: the most requests it serves at once.
    limit: Option<u32>,
    in_flight: AtomicU32,
    /// Queue-wait: the count it must drain to, and whether it is spilling now.
    resume_below: u32,
    spilling: AtomicBool,
    /// Queue-wait by the server's reading: spill above `max_waiting` waiting requests, until
    /// `resume_waiting` or fewer.
    max_waiting: u32,
    resume_waiting: u32,
    server_waiting: Arc<ServerWaiting>,
    /// `ttft-slo`: its recent first tokens and requests still waiting for one.
    ttft: Mutex<TtftWindow>,
}

/// What a tier's time to first token is predicted from.
#[derive(Debug, Default)]
struct TtftWindow {
    /// (when the first token came, its TTFT in seconds), oldest first.
    recent: VecDeque<(Instant, f64)>,
    /// (id, start) of requests without a first token yet.
    waiting: Vec<(u64, Instant)>,
}

impl TtftWindow {
    /// The larger of the recent median TTFT and the oldest waiting request's wait; `None`
    /// with neither (nothing to go by: the tier is tried).
    fn predicted(&mut self, now: Instant, window: Duration) -> Option<f64> {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            self.recent.pop_front();
        }
        let mut v: Vec<f64> = self.recent.iter().map(|(_, t)| *t).collect();
        v.sort_by(f64::total_cmp);
        let median = (!v.is_empty()).then(|| v[v.len() / 2]);
        let oldest = self
            .waiting
            .iter()
            .map(|(_, start)| now.duration_since(*start).as_secs_f64())
            .fold(None, |m: Option<f64>, w| Some(m.map_or(w, |m| m.max(w))));
        match (median, oldest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A request's place on a tier, given back when it finishes.
struct Slot<'a> {
    counter: &'a AtomicU32,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Router {
    /// `ttft-slo`: the first tier whose predicted TTFT is within the SLO (the last tier takes
    /// what reaches it), registered as waiting for its first token under the returned id.
    fn pick_by_ttft(&self, now: Instant) -> (usize, u64) {
        let slo = self.spill_ttft.map_or(f64::INFINITY, |d| d.as_secs_f64());
        let last = self.tiers.len() - 1;
        let id = self.next_wait_id.fetch_add(1, Ordering::Relaxed);
        for (i, t) in self.tiers.iter().enumerate() {
            let mut w = t.ttft.lock().unwrap_or_else(|e| e.into_inner());
            if i == last || w.predicted(now, self.spill_window).is_none_or(|p| p <= slo) {
                w.waiting.push((id, now));
                return (i, id);
            }
        }
        unreachable!("the last tier always takes the request")
    }

    /// `ttft-slo`: request `id` on `tier` got its first token `ttft_s` after its start (or
    /// none, when `ttft_s` is `None`): it no longer waits.
    fn first_token(&self, tier: usize, id: u64, at: Instant, ttft_s: Option<f64>) {
        let mut w = self.tiers[tier]
            .ttft
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        w.waiting.retain(|(x, _)| *x != id);
        if let Some(t) = ttft_s {
            w.recent.push_back((at, t));
        }
    }

    /// In-flight policy: the first tier with room (the last one always has room), and its slot.
    /// Queue-wait adds hysteresis: a tier found full spills until it drains to `resume_below`;
    /// a tier whose server reports its waiting requests goes by that reading instead.
    fn acquire(&self) -> (usize, Slot<'_>) {
        let last = self.tiers.len() - 1;
        let hysteresis = self.policy == HybridPolicy::QueueWait;
        for (i, t) in self.tiers.iter().enumerate() {
            let counter = &t.in_flight;
            if i == last {
                counter.fetch_add(1, Ordering::AcqRel);
                return (i, Slot { counter });
            }
            if hysteresis {
                if let Some(waiting) = t.server_waiting.get() {
                    t.server_waiting.by_server.fetch_add(1, Ordering::Relaxed);
                    let spilling = t.spilling.load(Ordering::Acquire);
                    let spill = if spilling {
                        waiting > t.resume_waiting
                    } else {
                        waiting > t.max_waiting
                    };
                    if spill != spilling {
                        t.spilling.store(spill, Ordering::Release);
                    }
                    if spill {
                        continue;
                    }
                    counter.fetch_add(1, Ordering::AcqRel);
                    return (i, Slot { counter });
                }
                t.server_waiting.by_count.fetch_add(1, Ordering::Relaxed);
            }
            if hysteresis && t.spilling.load(Ordering::Acquire) {
                if counter.load(Ordering::Acquire) > t.resume_below {
                    continue;
                }
                t.spilling.store(false, Ordering::Release);
            }
            let limit = t.limit.unwrap_or(u32::MAX);
            if counter
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < limit).then_some(n + 1)
                })
                .is_ok()
            {
                return (i, Slot { counter });
            }
            if hysteresis {
                t.spilling.store(true, Ordering::Release);
            }
        }
        unreachable!("the last tier always has room")
    }
}

/// Whether a failed first attempt is sent to the next tier: the server said it cannot serve
/// now (429, 503), could not be reached, or timed out, and no token came back.
fn fails_over(e: &RequestError, tokens_seen: u32) -> bool {
    let status = e.wire.as_ref().and_then(|w| w.http_status);
    tokens_seen == 0
        && match e.kind {
            ErrorKind::Connect | ErrorKind::RateLimited | ErrorKind::Timeout => true,
            ErrorKind::HttpStatus => status == Some(503),
            _ => false,
        }
}

/// The hybrid backend.
pub struct HybridBackend {
    tiers: Vec<Box<dyn Backend>>,
    router: Arc<Router>,
    record: BackendRecord,
}

impl HybridBackend {
    /// Load every tier, in order.
    pub fn load(opts: &HybridOptions) -> Result<Self, LoadError> {
        assert!(!opts.tiers.is_empty(), "a hybrid backend has tiers");
        let tiers = opts
            .tiers
            .iter()
            .map(|t| t.spec.load())
            .collect::<Result<Vec<_>, _>>()?;
        let mut record = tiers[0].record().clone();
        record.kind = "hybrid".into();
        record.model = format!(
            "hybrid ({}): {}",
            opts.policy,
            opts.tiers
                .iter()
                .zip(&tiers)
                .map(|(t, b)| format!("{} = {} {}", t.name, b.record().kind, b.record().model))
                .collect::<Vec<_>>()
                .join(" → ")
        );
        record.load_time_s = tiers.iter().map(|b| b.record().load_time_s).sum();
        let ttft_policy = opts.policy == HybridPolicy::TtftSlo;
        record.hybrid = Some(HybridRecord {
            policy: opts.policy,
            spill_ttft_s: opts.spill_ttft.map(|d| d.as_secs_f64()),
            spill_window_s: ttft_policy.then_some(opts.spill_window.as_secs_f64()),
            tiers: opts
                .tiers
                .iter()
                .zip(&tiers)
                .map(|(t, b)| TierRecord {
                    name: t.name.clone(),
                    max_in_flight: t.max_in_flight,
                    resume_below: t.resume_below,
                    max_waiting: t.max_waiting,
                    resume_waiting: t.resume_waiting,
                    waiting_signal: None,
                    backend: b.record().clone(),
                })
                .collect(),
        });
        let router = Router {
            policy: opts.policy,
            tiers: opts
                .tiers
                .iter()
                .map(|t| TierState {
                    name: t.name.clone(),
                    limit: t.max_in_flight,
                    in_flight: AtomicU32::new(0),
                    resume_below: t.resume_below.unwrap_or(0),
                    spilling: AtomicBool::new(false),
                    max_waiting: t.max_waiting.unwrap_or(0),
                    resume_waiting: t.resume_waiting.unwrap_or(0),
                    server_waiting: Arc::clone(&t.server_waiting),
                    ttft: Mutex::default(),
                })
                .collect(),
            spill_ttft: opts.spill_ttft,
            spill_window: opts.spill_window,
            next_wait_id: AtomicU64::new(0),
        };
        Ok(Self {
            tiers,
            router: Arc::new(router),
            record,
        })
    }
}

impl Backend for HybridBackend {
    fn record(&self) -> &BackendRecord {
        &self.record
    }

    fn prompt_token_ids(&self) -> &[u32] {
        self.tiers[0].prompt_token_ids()
    }

    fn accepts_text(&self) -> bool {
        self.tiers.iter().all(|t| t.accepts_text())
    }

    fn decode(&self, ids: &[u32]) -> Option<String> {
        self.tiers[0].decode(ids)
    }

    fn synthetic_text(&self, ids: &[u32]) -> Option<String> {
        self.tiers.iter().find_map(|t| t.synthetic_text(ids))
    }

    fn new_stream(&self) -> Result<Box<dyn Stream>, LoadError> {
        Ok(Box::new(HybridStream {
            streams: self
                .tiers
                .iter()
                .map(|t| t.new_stream())
                .collect::<Result<_, _>>()?,
            router: Arc::clone(&self.router),
            route: None,
        }))
    }
}

/// One stream per tier, and the route of the last request.
struct HybridStream {
    streams: Vec<Box<dyn Stream>>,
    router: Arc<Router>,
    route: Option<Route>,
}

impl HybridStream {
    fn route(&self, tier: usize, attempts: u32, spill: Option<SpillReason>) -> Route {
        Route {
            tier: tier as u32,
            tier_name: self.router.tiers[tier].name.clone(),
            attempts,
            spill_reason: spill,
            failed_attempt: None,
        }
    }
}

impl Stream for HybridStream {
    fn generate(
        &mut self,
        request: &GenRequest,
        on_token: &mut TokenSink<'_>,
    ) -> Result<GenOutcome, RequestError> {
        let router = Arc::clone(&self.router);
        match router.policy {
            HybridPolicy::InFlight | HybridPolicy::QueueWait => {
                let (tier, _slot) = router.acquire();
                let result = self.streams[tier].generate(request, on_token);
                let reason = if router.policy == HybridPolicy::QueueWait {
                    SpillReason::QueueWait
                } else {
                    SpillReason::InFlight
                };
                let spill = (tier > 0).then_some(reason);
                self.route = Some(self.route(tier, 1, spill));
                result
            }
            HybridPolicy::TtftSlo => {
                let start = Instant::now();
                let (tier, id) = router.pick_by_ttft(start);
                let mut first = false;
                let result = self.streams[tier].generate(request, &mut |ev: TokenEvent| {
                    if !first && ev.tokens > 0 {
                        first = true;
                        let ttft = ev.at.duration_since(start).as_secs_f64();
                        router.first_token(tier, id, ev.at, Some(ttft));
                    }
                    on_token(ev)
                });
                if !first {
                    router.first_token(tier, id, Instant::now(), None);
                }
                let spill = (tier > 0).then_some(SpillReason::TtftSlo);
                self.route = Some(self.route(tier, 1, spill));
                result
            }
            HybridPolicy::Failover => {
                let mut tokens_seen = 0u32;
                let first = self.streams[0].generate(request, &mut |ev: TokenEvent| {
                    tokens_seen += ev.tokens;
                    on_token(ev)
                });
                let e = match first {
                    Err(e) if self.streams.len() > 1 && fails_over(&e, tokens_seen) => e,
                    other => {
                        self.route = Some(self.route(0, 1, None));
                        return other;
                    }
                };
                // Latency counts from the first attempt: the retry's own send time is not
                // the request's start.
                let first_sent = e.wire.as_ref().and_then(|w| w.sent_at);
                let mut result = self.streams[1].generate(request, on_token);
                let wire = match &mut result {
                    Ok(o) => o.wire.as_mut(),
                    Err(e) => e.wire.as_mut(),
                };
                if let Some(w) = wire {
                    w.sent_at = first_sent;
                }
                let mut route = self.route(1, 2, Some(SpillReason::Failover));
                route.failed_attempt = Some(format!("{}: {e}", router.tiers[0].name));
                self.route = Some(route);
                result
            }
        }
    }

    fn compute_site(&self) -> ComputeSite {
        self.streams[0].compute_site()
    }

    fn take_route(&mut self) -> Option<Route> {
        self.route.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulated::SimulatedTimings;
    use crate::{Prompt, Sampling};
    use std::ops::ControlFlow;

    fn sim(name: &str, max_in_flight: Option<u32>) -> TierOptions {
        TierOptions::new(
            name,
            max_in_flight,
            BackendSpec::Simulated(SimulatedTimings {
                ttft: Duration::ZERO,
                itl: Duration::ZERO,
                cpu_fraction: 0.0,
            }),
        )
    }

    #[test]
    fn in_flight_fills_each_tier_to_its_limit_then_spills() {
        let b = HybridBackend::load(&HybridOptions {
            policy: HybridPolicy::InFlight,
            tiers: vec![sim("onprem", Some(2)), sim("cloud", Some(1))],
            spill_ttft: None,
            spill_window: DEFAULT_SPILL_WINDOW,
        })
        .unwrap();
        let r = &b.router;
        let (a, sa) = r.acquire();
        let (b1, sb) = r.acquire();
        let (c, _sc) = r.acquire();
        // The last tier has room beyond its limit: nothing is ever refused.
        let (d, _sd) = r.acquire();
        assert_eq!((a, b1, c, d), (0, 0, 1, 1));
        drop(sa);
        let (e, _se) = r.acquire();
        assert_eq!(e, 0, "a freed slot on the first tier is taken again");
        drop(sb);
        assert_eq!(r.tiers[0].in_flight.load(Ordering::Acquire), 1);
    }

    /// A queue-wait backend of `onprem` and an unlimited cloud tier.
    fn queue_wait(onprem: TierOptions) -> HybridBackend {
        HybridBackend::load(&HybridOptions {
            policy: HybridPolicy::QueueWait,
            tiers: vec![onprem, sim("cloud", None)],
            spill_ttft: None,
            spill_window: DEFAULT_SPILL_WINDOW,
        })
        .unwrap()
    }

    #[test]
    fn queue_wait_spills_from_full_until_drained_to_resume_below() {
        let mut onprem = sim("onprem", Some(3));
        onprem.resume_below = Some(1);
        let b = queue_wait(onprem);
        let r = &b.router;
        let mut onprem_slots: Vec<Slot<'_>> = Vec::new();
        for _ in 0..3 {
            let (t, s) = r.acquire();
            assert_eq!(t, 0);
            onprem_slots.push(s);
        }
        // Full: spill, and keep spilling at 2 in flight (above resume_below = 1).
        let (t, _c1) = r.acquire();
        assert_eq!(t, 1);
        onprem_slots.pop();
        let (t, _c2) = r.acquire();
        assert_eq!(
            t, 1,
            "2 in flight > resume_below: still spilling (in-flight would take it)"
        );
        // Drained to 1: the tier takes requests again.
        onprem_slots.pop();
        let (t, _s) = r.acquire();
        assert_eq!(t, 0);
    }

    #[test]
    fn queue_wait_goes_by_the_servers_waiting_count_when_there_is_one() {
        let mut onprem = sim("onprem", Some(1));
        onprem.resume_below = Some(0);
        onprem.max_waiting = Some(2);
        onprem.resume_waiting = Some(0);
        let server = Arc::clone(&onprem.server_waiting);
        let b = queue_wait(onprem);
        let r = &b.router;
        // A reading at the threshold: taken beyond charter's own limit of 1 in flight.
        server.set(Some(2.0));
        let (a, _sa) = r.acquire();
        let (b1, _sb) = r.acquire();
        assert_eq!((a, b1), (0, 0));
        // Above it: spill, and keep spilling until the server reports resume_waiting.
        server.set(Some(3.0));
        assert_eq!(r.acquire().0, 1);
        server.set(Some(1.0));
        assert_eq!(r.acquire().0, 1, "1 waiting > resume_waiting = 0");
        server.set(Some(0.0));
        assert_eq!(r.acquire().0, 0);
        assert_eq!(server.decisions(), (5, 0));
        // No reading (a failed scrape): charter's count decides (2 in flight ≥ 1: spill).
        server.set(None);
        assert_eq!(r.acquire().0, 1);
        assert_eq!(server.decisions(), (5, 1));
    }

    #[test]
    fn a_request_on_the_first_tier_records_one_attempt_and_no_spill() {
        let b = HybridBackend::load(&HybridOptions {
            policy: HybridPolicy::InFlight,
            tiers: vec![sim("onprem", Some(1)), sim("cloud", None)],
            spill_ttft: None,
            spill_window: DEFAULT_SPILL_WINDOW,
        })
        .unwrap();
        let mut s = b.new_stream().unwrap();
        let req = GenRequest {
            prompt: Prompt::Tokens(vec![1, 2, 3]),
            max_tokens: 4,
            ignore_eos: true,
            sampling: Sampling::greedy(),
        };
        let out = s
            .generate(&req, &mut |_| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(out.output_tokens, 4);
        let route = s.take_route().unwrap();
        assert_eq!((route.tier, route.attempts), (0, 1));
        assert_eq!(route.tier_name, "onprem");
        assert_eq!(route.spill_reason, None);
        assert!(s.take_route().is_none(), "taken once");
        assert_eq!(b.router.tiers[0].in_flight.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_ttft_prediction_is_the_recent_median_or_the_oldest_wait_and_expires() {
        let t0 = Instant::now();
        let s = |x: f64| Duration::from_secs_f64(x);
        let mut w = TtftWindow::default();
        assert_eq!(w.predicted(t0, s(10.0)), None, "nothing to go by");
        for (i, ttft) in [0.1, 0.3, 0.2].into_iter().enumerate() {
            w.recent.push_back((t0 + s(i as f64), ttft));
        }
        assert_eq!(w.predicted(t0 + s(2.0), s(10.0)), Some(0.2));
        // A request waiting 0.5 s already says more.
        w.waiting.push((7, t0 + s(1.5)));
        assert_eq!(w.predicted(t0 + s(2.0), s(10.0)), Some(0.5));
        w.waiting.clear();
        // Observations older than the window no longer count.
        assert_eq!(w.predicted(t0 + s(12.5), s(10.0)), None);
    }
}
