//! The closed-loop runner: N streams on N dedicated OS threads, each issuing its next request
//! when the previous one finishes. Finished requests go to the caller's thread through a
//! channel as they complete, so results are recorded (and streamed to disk) immediately.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use charter_backends::{GenOutcome, RequestError, Stream};
use charter_workloads::{RequestTemplate, StopCondition};

/// A request that finished (or failed), with the raw times of its token events.
#[derive(Debug)]
pub struct Finished {
    pub id: u64,
    pub instance: u32,
    pub warmup: bool,
    /// When the load profile scheduled it (closed loop: equals `start`).
    pub intended_start: Instant,
    pub start: Instant,
    pub end: Instant,
    /// Arrival time and token count of each token event.
    pub events: Vec<(Instant, u32)>,
    pub result: Result<GenOutcome, RequestError>,
}

/// One phase of a closed-loop run (warm-up or measured).
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub warmup: bool,
    /// Request ids of this phase start here (ids are unique over the run).
    pub first_id: u64,
    pub stop: StopCondition,
}

/// Run one phase over `streams` (one OS thread each) and call `on_finished` on the calling
/// thread for every request as it finishes. Returns how many requests were issued.
///
/// Streams stop taking new requests when the phase's stop condition is reached or
/// `interrupted` is set; an interruption also stops in-flight generations at their next token.
pub fn run_phase(
    streams: &mut [Box<dyn Stream>],
    template: &RequestTemplate,
    vocab: &[u32],
    phase: Phase,
    interrupted: &AtomicBool,
    mut on_finished: impl FnMut(Finished),
) -> u64 {
    let issued = AtomicU64::new(0);
    let phase_start = Instant::now();
    let (tx, rx) = mpsc::channel::<Finished>();
    std::thread::scope(|scope| {
        for (instance, stream) in streams.iter_mut().enumerate() {
            let tx = tx.clone();
            let issued = &issued;
            std::thread::Builder::new()
                .name(format!("charter-stream-{instance}"))
                .spawn_scoped(scope, move || loop {
                    if interrupted.load(Ordering::Relaxed) {
                        break;
                    }
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if !phase.stop.may_issue(n, phase_start.elapsed()) {
                        break;
                    }
                    let id = phase.first_id + n;
                    let request = template.request(id, vocab);
                    let mut events = Vec::with_capacity(request.max_tokens as usize);
                    let start = Instant::now();
                    let result = stream.generate(&request, &mut |ev| {
                        events.push((ev.at, ev.tokens));
                        if interrupted.load(Ordering::Relaxed) {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    });
                    let end = Instant::now();
                    let done = Finished {
                        id,
                        instance: instance as u32,
                        warmup: phase.warmup,
                        intended_start: start,
                        start,
                        end,
                        events,
                        result,
                    };
                    if tx.send(done).is_err() {
                        break;
                    }
                })
                .expect("spawning a stream thread");
        }
        drop(tx);
        for f in rx {
            on_finished(f);
        }
    });
    // `issued` over-counts by one per stream that checked and stopped.
    let n = issued.load(Ordering::Relaxed);
    match phase.stop.requests {
        Some(max) => n.min(max),
        None => n,
    }
}
