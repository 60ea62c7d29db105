//! The runners. Closed loop: N streams on N dedicated OS threads, each issuing its next request
//! when the previous one finishes. Open loop: a dispatcher issues requests at scheduled times
//! to worker threads (see [`run_open_level`]). Finished requests go to the caller's thread through a
//! channel as they complete, so results are recorded (and streamed to disk) immediately.
//! Sessions: a closed loop over multi-turn conversations (see [`run_sessions`]), or sessions
//! arriving on an open-loop schedule, each run whole by a worker ([`OpenWork::Sessions`]).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use charter_backends::{Backend, GenRequest, LoadError, Prompt, Stream};
use charter_record::{Observation, SessionTurn};
use charter_workloads::{Arrivals, RequestTemplate, Schedule, SessionPlan, Shard, StopCondition};

use charter_reports::stats::LatencyHistogram;

use crate::sampler::Instances;

/// One phase of a closed-loop run (warm-up or measured).
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub warmup: bool,
    /// Request ids of this phase start here (ids are unique over the run).
    pub first_id: u64,
    pub stop: StopCondition,
    /// A sharded run deals the phase's ids out round-robin: this shard's n-th request has id
    /// `first_id + shard.global_index(n)` (the stop condition counts this shard's requests).
    pub shard: Shard,
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
    instances: &Instances,
    mut on_finished: impl FnMut(Observation),
) -> u64 {
    let issued = AtomicU64::new(0);
    let phase_start = Instant::now();
    let (tx, rx) = mpsc::channel::<Observation>();
    std::thread::scope(|scope| {
        for (instance, stream) in streams.iter_mut().enumerate() {
            let tx = tx.clone();
            let issued = &issued;
            std::thread::Builder::new()
                .name(format!("charter-stream-{instance}"))
                .spawn_scoped(scope, move || {
                    instances.attach(instance as u32, &stream.compute_site());
                    loop {
                        if interrupted.load(Ordering::Relaxed) {
                            break;
                        }
                        let n = issued.fetch_add(1, Ordering::Relaxed);
                        if !phase.stop.may_issue(n, phase_start.elapsed()) {
                            break;
                        }
                        let job = Job {
                            id: phase.first_id + phase.shard.global_index(n),
                            warmup: phase.warmup,
                            intended: None,
                        };
                        let request = template.request(job.id, vocab);
                        let done =
                            serve(&mut **stream, &request, job, instance as u32, interrupted);
                        if tx.send(done).is_err() {
                            break;
                        }
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

/// Streams kept across levels: a level takes as many as it needs, creating more on demand.
pub struct StreamPool<'b> {
    backend: &'b dyn Backend,
    pub streams: Vec<Box<dyn Stream>>,
}

impl<'b> StreamPool<'b> {
    pub fn new(backend: &'b dyn Backend) -> Self {
        Self {
            backend,
            streams: Vec::new(),
        }
    }

    /// Make sure at least `n` streams exist.
    pub fn ensure(&mut self, n: usize) -> Result<(), LoadError> {
        while self.streams.len() < n {
            self.streams.push(self.backend.new_stream()?);
        }
        Ok(())
    }
}

/// An open-loop level: when to issue requests, and how many may be in flight.
#[derive(Debug, Clone, Copy)]
pub struct OpenLevel {
    pub rate: f64,
    pub arrivals: Arrivals,
    pub burstiness: f64,
    pub max_in_flight: u32,
    pub seed: u64,
    /// The first `warmup` scheduled requests are marked warm-up (excluded from the window).
    pub warmup: u64,
    pub first_id: u64,
    /// Bounds the measured requests (count, and time from the first measured arrival) of the
    /// whole schedule, shared by every shard.
    pub stop: StopCondition,
    /// Which arrivals of the schedule this process issues (`i mod N = K`); the others are
    /// skipped, and every request keeps its index in the whole schedule as its id offset.
    pub shard: Shard,
}

/// What the dispatcher saw in an open-loop level.
#[derive(Debug, Clone, Default)]
pub struct OpenStats {
    /// Requests this process issued.
    pub issued: u64,
    /// Arrivals of the whole schedule passed (this shard's and the others'): the next level's
    /// ids start after them.
    pub scheduled: u64,
    /// When the schedule's offset 0 fell.
    pub schedule_start: Option<Instant>,
    /// Arrivals that found every in-flight slot busy (they queued, and their wait is lag).
    pub max_in_flight_waits: u64,
    /// Dispatcher lateness (hand-off − intended start) of the requests issued (a histogram,
    /// so a long level holds no value per request).
    pub dispatch_lag: LatencyHistogram,
}

struct Job {
    id: u64,
    warmup: bool,
    /// When the load profile scheduled it; `None` in closed loop, where it is the start.
    intended: Option<Instant>,
}

/// What an open-loop level's arrivals are.
#[derive(Clone, Copy)]
pub enum OpenWork<'w> {
    /// Each arrival is one request of the template.
    Requests {
        template: &'w RequestTemplate,
        vocab: &'w [u32],
    },
    /// Each arrival is a new session (the n-th arrival is session n of the level, warm-up
    /// sessions first), run whole by the worker that takes it: turn 1 at the arrival, later
    /// turns after the previous response and the think time. `max_in_flight` then caps the
    /// sessions in progress (a session keeps its stream through its think times).
    Sessions(&'w SessionRun<'w>),
}

impl OpenWork<'_> {
    /// Whether this process runs arrival `n` of the schedule (sessions stay whole on the shard
    /// their key falls to).
    fn keeps(&self, shard: Shard, n: u64) -> bool {
        match self {
            OpenWork::Requests { .. } => shard.keeps(n),
            OpenWork::Sessions(run) => shard.keeps_key(&run.plan.key(n)),
        }
    }
}

/// Run an open-loop level: a dispatcher thread issues requests (or sessions) at their scheduled
/// times to a pool of worker threads (one stream each, grown on demand up to `max_in_flight`);
/// finished requests reach `on_finished` on the calling thread as they complete.
pub fn run_open_level(
    pool: &mut StreamPool<'_>,
    work: OpenWork<'_>,
    level: OpenLevel,
    interrupted: &AtomicBool,
    instances: &Instances,
    mut on_finished: impl FnMut(Observation),
) -> Result<OpenStats, LoadError> {
    let schedule = match work {
        OpenWork::Requests { template, .. } => {
            template.schedule(level.rate, level.arrivals, level.burstiness, level.seed)
        }
        OpenWork::Sessions(run) => Schedule::given_or_new(
            run.plan.trace_offsets(),
            level.rate,
            level.arrivals,
            level.burstiness,
            level.seed,
        ),
    }
    .map_err(|what| LoadError::Setting { what })?;
    let max = level.max_in_flight.max(1) as usize;
    // Start with enough workers for the expected concurrency (Little's law needs latency we do
    // not know yet, so: a few, growing on demand).
    let initial = max.min(4);
    pool.ensure(initial)?;
    let (done_tx, done_rx) = mpsc::channel::<Observation>();
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    let idle = AtomicUsize::new(0);
    let mut stats = OpenStats::default();
    let mut result: Result<(), LoadError> = Ok(());
    let shared = Shared {
        job_rx: &job_rx,
        idle: &idle,
        work,
        interrupted,
        instances,
    };
    let initial_streams: Vec<Box<dyn Stream>> = pool.streams.drain(..initial).collect();
    let returned = std::thread::scope(|scope| {
        let (stats, result, backend, spare) =
            (&mut stats, &mut result, pool.backend, &mut pool.streams);
        let dispatcher = std::thread::Builder::new()
            .name("charter-dispatch".into())
            .spawn_scoped(scope, move || {
                let mut handles = Vec::new();
                let spawn = |handles: &mut Vec<_>, stream: Box<dyn Stream>| {
                    let instance = handles.len() as u32;
                    let done_tx = done_tx.clone();
                    handles.push(
                        std::thread::Builder::new()
                            .name(format!("charter-worker-{instance}"))
                            .spawn_scoped(scope, move || worker(shared, instance, stream, done_tx))
                            .expect("spawning a worker thread"),
                    );
                };
                for s in initial_streams {
                    spawn(&mut handles, s);
                }
                let start = Instant::now();
                stats.schedule_start = Some(start);
                let mut measured_start: Option<Instant> = None;
                for (n, offset) in (0u64..).zip(schedule) {
                    if interrupted.load(Ordering::Relaxed) {
                        break;
                    }
                    let intended = start + Duration::from_secs_f64(offset);
                    let warmup = n < level.warmup;
                    if !warmup {
                        let first = *measured_start.get_or_insert(intended);
                        let k = n - level.warmup;
                        if !level
                            .stop
                            .may_issue(k, intended.saturating_duration_since(first))
                        {
                            break;
                        }
                    }
                    stats.scheduled = n + 1;
                    if !work.keeps(level.shard, n) {
                        continue;
                    }
                    wait_until(intended);
                    if shared.idle.load(Ordering::SeqCst) == 0 {
                        if handles.len() < max {
                            match spare.pop().map(Ok).unwrap_or_else(|| backend.new_stream()) {
                                Ok(s) => spawn(&mut handles, s),
                                Err(e) => {
                                    *result = Err(e);
                                    break;
                                }
                            }
                        } else {
                            stats.max_in_flight_waits += 1;
                        }
                    }
                    stats.dispatch_lag.record_s(
                        Instant::now()
                            .saturating_duration_since(intended)
                            .as_secs_f64(),
                    );
                    // Sessions: the job's id is the session's index in the level.
                    let job = Job {
                        id: match work {
                            OpenWork::Requests { .. } => level.first_id + n,
                            OpenWork::Sessions(_) => n,
                        },
                        warmup,
                        intended: Some(intended),
                    };
                    if job_tx.send(job).is_err() {
                        break;
                    }
                    stats.issued += 1;
                }
                drop(job_tx);
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok())
                    .collect::<Vec<_>>()
            })
            .expect("spawning the dispatcher");
        for f in done_rx {
            on_finished(f);
        }
        dispatcher.join().expect("dispatcher thread")
    });
    pool.streams.extend(returned);
    result.map(|()| stats)
}

/// Sleep until shortly before `t`, then spin: `thread::sleep` overshoots by tens to hundreds
/// of microseconds, which would show up as schedule lag.
fn wait_until(t: Instant) {
    const SPIN: Duration = Duration::from_micros(300);
    let now = Instant::now();
    if t > now + SPIN {
        std::thread::sleep(t - now - SPIN);
    }
    while Instant::now() < t {
        std::hint::spin_loop();
    }
}

/// What every open-loop worker shares.
#[derive(Clone, Copy)]
struct Shared<'s> {
    job_rx: &'s Mutex<mpsc::Receiver<Job>>,
    idle: &'s AtomicUsize,
    work: OpenWork<'s>,
    interrupted: &'s AtomicBool,
    instances: &'s Instances,
}

/// An open-loop worker: take jobs until the queue closes; give the stream back at the end.
fn worker(
    sh: Shared<'_>,
    instance: u32,
    mut stream: Box<dyn Stream>,
    done_tx: mpsc::Sender<Observation>,
) -> Box<dyn Stream> {
    sh.instances.attach(instance, &stream.compute_site());
    loop {
        sh.idle.fetch_add(1, Ordering::SeqCst);
        let job = sh.job_rx.lock().map(|rx| rx.recv());
        sh.idle.fetch_sub(1, Ordering::SeqCst);
        let Ok(Ok(job)) = job else { break };
        if sh.interrupted.load(Ordering::Relaxed) {
            continue; // queued but never started: nothing was measured
        }
        let sent = match sh.work {
            OpenWork::Requests { template, vocab } => {
                let request = template.request(job.id, vocab);
                let f = serve(&mut *stream, &request, job, instance, sh.interrupted);
                done_tx.send(f).is_ok()
            }
            OpenWork::Sessions(run) => run_session(&mut *stream, run, job, instance, &done_tx),
        };
        if !sent {
            break;
        }
    }
    stream
}

/// Serve one job's `request` on `stream`.
fn serve(
    stream: &mut dyn Stream,
    request: &GenRequest,
    job: Job,
    instance: u32,
    interrupted: &AtomicBool,
) -> Observation {
    let _in_flight = crate::live::in_flight();
    let mut events = Vec::with_capacity(request.max_tokens as usize);
    let start = Instant::now();
    let result = stream.generate(request, &mut |ev| {
        events.push((ev.at, ev.tokens));
        if interrupted.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    Observation {
        id: job.id,
        instance,
        warmup: job.warmup,
        intended_start: job.intended.unwrap_or(start),
        start,
        end: Instant::now(),
        events,
        result,
        route: stream.take_route(),
        session: None,
    }
}

/// One phase of a level of multi-turn sessions (warm-up or measured).
#[derive(Debug, Clone)]
pub struct SessionPhase {
    pub warmup: bool,
    /// Sessions of this phase, by their index in the level (the same on every shard).
    pub sessions: std::ops::Range<u64>,
    /// No session starts after this long.
    pub duration: Option<Duration>,
    /// A sharded run keeps each session whole on the shard its key falls to.
    pub shard: Shard,
}

/// What session phases share besides their sessions.
pub struct SessionRun<'r> {
    pub backend: &'r dyn Backend,
    pub template: &'r RequestTemplate,
    pub plan: &'r SessionPlan,
    /// Request ids of the level start here: turn k of session s has id
    /// `first_id + s × max_turns + k − 1`.
    pub first_id: u64,
    pub interrupted: &'r AtomicBool,
    pub instances: &'r Instances,
}

/// Run one phase of sessions as a closed loop over `streams`: each stream runs a whole session
/// at a time, turn after turn (each turn sent with the history, after the think time), then
/// takes the next session. `on_finished` gets every request on the calling thread as it
/// finishes. Returns how many sessions this process started.
pub fn run_sessions(
    streams: &mut [Box<dyn Stream>],
    run: &SessionRun<'_>,
    phase: &SessionPhase,
    mut on_finished: impl FnMut(Observation),
) -> u64 {
    let next = AtomicU64::new(phase.sessions.start);
    let started = AtomicU64::new(0);
    let phase_start = Instant::now();
    let (tx, rx) = mpsc::channel::<Observation>();
    std::thread::scope(|scope| {
        for (instance, stream) in streams.iter_mut().enumerate() {
            let (tx, next, started) = (tx.clone(), &next, &started);
            std::thread::Builder::new()
                .name(format!("charter-session-{instance}"))
                .spawn_scoped(scope, move || {
                    run.instances
                        .attach(instance as u32, &stream.compute_site());
                    loop {
                        let session = next.fetch_add(1, Ordering::Relaxed);
                        if session >= phase.sessions.end
                            || run.interrupted.load(Ordering::Relaxed)
                            || phase.duration.is_some_and(|d| phase_start.elapsed() >= d)
                        {
                            break;
                        }
                        if !phase.shard.keeps_key(&run.plan.key(session)) {
                            continue;
                        }
                        started.fetch_add(1, Ordering::Relaxed);
                        let job = Job {
                            id: session,
                            warmup: phase.warmup,
                            intended: None,
                        };
                        let sent = run_session(&mut **stream, run, job, instance as u32, &tx);
                        if !sent {
                            break;
                        }
                    }
                })
                .expect("spawning a session thread");
        }
        drop(tx);
        for f in rx {
            on_finished(f);
        }
    });
    started.load(Ordering::Relaxed)
}

/// Run every turn of the session `job.id` on `stream` (turn 1 scheduled at `job.intended` in
/// open loop); false when the receiver is gone.
fn run_session(
    stream: &mut dyn Stream,
    run: &SessionRun<'_>,
    job: Job,
    instance: u32,
    tx: &mpsc::Sender<Observation>,
) -> bool {
    let (plan, seed, session) = (run.plan, run.template.sampling.seed, job.id);
    let vocab = run.backend.prompt_token_ids();
    let mut history = charter_workloads::History::default();
    let turns = plan.turns(session, seed);
    let mut last: Option<(Instant, Instant)> = None;
    for turn in 1..=turns {
        let id = run.first_id + session * u64::from(plan.max_turns()) + u64::from(turn - 1);
        let think_time = last.map(|(start, end)| {
            let think = plan.think_before(session, turn, id, seed, end - start);
            sleep_until_or_interrupted(end + think, run.interrupted);
            think
        });
        if run.interrupted.load(Ordering::Relaxed) {
            break;
        }
        let mut request = plan.turn_request(run.template, session, turn, id, vocab);
        let user = match std::mem::replace(&mut request.prompt, Prompt::Tokens(Vec::new())) {
            // A backend that sends text for ids (remote APIs) gets a chat history.
            Prompt::Tokens(ids) => match run.backend.synthetic_text(&ids) {
                Some(text) => Prompt::Text(text),
                None => Prompt::Tokens(ids),
            },
            other => other,
        };
        history.push_user(user);
        request.prompt = history.prompt();
        let turn_job = Job {
            id,
            warmup: job.warmup,
            // Later turns start when their think time ends: that is their intended start.
            intended: job.intended.filter(|_| turn == 1),
        };
        let mut done = serve(stream, &request, turn_job, instance, run.interrupted);
        done.session = Some(SessionTurn {
            session,
            turn,
            think_time,
        });
        last = Some((done.start, done.end));
        let response = match &mut done.result {
            Ok(outcome) => Some((
                std::mem::take(&mut outcome.output_token_ids),
                outcome.output_text.take(),
            )),
            // A failed turn ends its session: there is no response to continue from.
            Err(_) => None,
        };
        if tx.send(done).is_err() {
            return false;
        }
        let Some((ids, text)) = response else { break };
        history.push_response(&ids, || {
            text.or_else(|| run.backend.decode(&ids))
                // No tokenizer (random-weight presets, the simulated backend): one word per
                // output token, as `charter serve` streams for them.
                .unwrap_or_else(|| vec!["tok"; ids.len()].join(" "))
        });
    }
    true
}

/// Sleep until `t`, waking early when the run is interrupted.
fn sleep_until_or_interrupted(t: Instant, interrupted: &AtomicBool) {
    const STEP: Duration = Duration::from_millis(50);
    loop {
        let now = Instant::now();
        if now >= t || interrupted.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep((t - now).min(STEP));
    }
}
