//! One `charter profile` run in progress: the plan loop (levels, sweeps, the saturation probe and
//! the SLO search) and one level (warm-up, measured window, cool-down) while the sampler runs;
//! every request is streamed to `requests.csv` and the run record rewritten after every level.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Instant;

use charter_backends::{Backend, Sampling};
use charter_record::{HistoryReuse, Observation};
use charter_reports::export::{Export, Format, ProfileDoc};
use charter_reports::resources::flags::{self, ClientInputs};
use charter_reports::resources::{self, ContextSpan, LiveContext, WindowInputs};
use charter_reports::sessions::SessionAggregator;
use charter_reports::{
    Aggregator, IdRange, LevelRecord, LevelRole, LoadProfile, RequestRow, RunRecord, RunStatus,
    SearchRecord, ShardRecord,
};
use charter_workloads::search::{RateSearch, Trial};
use charter_workloads::{LoadLevel, PromptSource, RequestTemplate, SessionSource, StopCondition};

use super::config::{Plan, ProfileConfig, AUTO_SWEEP_FRACTIONS};
use super::failures::Failures;
use crate::progress::Progress;
use crate::rundir::{self, RequestsWriter, RunDir};
use crate::runner::{self, OpenLevel, OpenWork, Phase, SessionPhase, StreamPool};
use crate::sampler::{self, Instances, Sampler};
use crate::telemetry::server_metrics::ServerScraper;
use crate::{CliError, EXIT_INTERRUPTED};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CTRLC: Once = Once::new();

/// First Ctrl-C: stop issuing requests, cut in-flight ones short, write the partial record.
/// Second Ctrl-C: exit at once with 130.
pub(super) fn install_ctrlc() {
    INTERRUPTED.store(false, Ordering::SeqCst);
    CTRLC.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(EXIT_INTERRUPTED);
            }
            eprintln!("charter: interrupted; finishing the record (Ctrl-C again to quit at once)");
        });
    });
}

/// One `charter profile` run in progress.
pub(super) struct Session<'a> {
    cfg: &'a ProfileConfig,
    backend: &'a dyn Backend,
    dir: &'a RunDir,
    template: RequestTemplate,
    record: RunRecord,
    requests_out: RequestsWriter,
    write_err: Option<anyhow::Error>,
    sampler: Sampler,
    epoch: Instant,
    baseline: Option<u64>,
    instances: std::sync::Arc<Instances>,
    unavailable: std::collections::BTreeMap<String, String>,
    idle: Option<charter_reports::IdleBaseline>,
    /// CPU cores this process may use (affinity, cgroup quota).
    cores_available: f64,
    context_out: csv::Writer<std::io::BufWriter<std::fs::File>>,
    pool: StreamPool<'a>,
    next_id: u64,
    trial: u32,
    progress: Progress,
    failures: Failures,
    server: ServerScraper,
}

impl<'a> Session<'a> {
    pub(super) fn new(
        cfg: &'a ProfileConfig,
        host: &charter_reports::HostInfo,
        backend: &'a dyn Backend,
        prompts: PromptSource,
        dir: &'a RunDir,
    ) -> Result<Self, CliError> {
        if let Some(addr) = &cfg.metrics_listen {
            crate::live::listen(addr)?;
        }
        let mut record = super::record::initial(cfg, host, backend, &prompts);
        let requests_out = dir.requests_writer()?;
        let epoch = Instant::now();
        let epoch_wall = std::time::SystemTime::now();
        record.shard = cfg.shard.map(|shard| ShardRecord {
            index: shard.index,
            count: shard.count,
            config_hash: cfg.config_hash(),
            epoch_unix_s: epoch_wall
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            start_at: cfg
                .start_at
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            start_late_s: None,
            clock: crate::clock::clock_status(),
        });
        dir.write_record(&record)?;
        let baseline = sampler::current_rss_bytes();
        let sources = sampler::open_sources(&cfg.sampler);
        let instances = std::sync::Arc::clone(&sources.instances);
        let unavailable = sources.unavailable.iter().cloned().collect();
        let outputs = sampler::Outputs {
            samples: dir.data_file(rundir::SAMPLES_CSV)?,
            instances: dir.data_file(rundir::INSTANCES_CSV)?,
            gpu: dir.data_file(rundir::GPU_CSV)?,
        };
        let sampler = Sampler::start(epoch, cfg.sampler.interval, outputs, sources)
            .map_err(|e| CliError::Failure(anyhow::anyhow!("starting the sampler: {e}")))?;
        let server = ServerScraper::start(
            &cfg.sampler.server_metrics,
            &cfg.backend,
            epoch,
            cfg.sampler.interval,
            dir,
        )?;
        record.server_metrics = server.sources();
        note_waiting_signals(&mut record, &server);
        if server.writes_csv() {
            record.files.server_metrics_csv = Some(rundir::SERVER_METRICS_CSV.into());
        }
        // The header comes with the first serialised point.
        let context_out = csv::Writer::from_writer(dir.data_file(rundir::CONTEXT_CSV)?);
        let template = RequestTemplate {
            prompts,
            max_tokens: cfg.max_tokens,
            ignore_eos: cfg.ignore_eos,
            sampling: Sampling {
                temperature: cfg.temperature,
                top_p: cfg.top_p,
                seed: cfg.seed,
            },
        };
        Ok(Self {
            cfg,
            backend,
            dir,
            template,
            record,
            requests_out,
            write_err: None,
            sampler,
            epoch,
            baseline,
            instances,
            unavailable,
            idle: None,
            context_out,
            cores_available: crate::host::cores_available(),
            pool: StreamPool::new(backend),
            next_id: 0,
            trial: 0,
            progress: Progress::new(None, cfg.no_progress, cfg.json),
            failures: Failures::default(),
            server,
        })
    }

    fn interrupted() -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }

    /// Measure the idle machine before any traffic.
    fn idle_baseline(&mut self, d: std::time::Duration) {
        self.progress
            .phase(&format!("idle baseline: {}", humantime::format_duration(d)));
        let a = self.epoch.elapsed().as_secs_f64();
        let deadline = Instant::now() + d;
        while Instant::now() < deadline && !Self::interrupted() {
            std::thread::sleep(
                (deadline - Instant::now()).min(std::time::Duration::from_millis(100)),
            );
        }
        // One more tick so the last sample covers the end.
        std::thread::sleep(self.cfg.sampler.interval);
        let b = self.epoch.elapsed().as_secs_f64();
        self.idle = Some(resources::idle_baseline(
            &self.sampler.snapshot(),
            a,
            b,
            self.sampler.gpu_names(),
        ));
    }

    /// Run every level of the plan, then finish the record.
    pub(super) fn run(mut self) -> Result<i32, CliError> {
        if let Some(d) = self.cfg.sampler.baseline {
            self.idle_baseline(d);
        }
        if let Some(at) = self.cfg.start_at {
            let late = crate::clock::wait_for_wall_clock(at, &INTERRUPTED);
            if let Some(shard) = &mut self.record.shard {
                shard.start_late_s = Some(late.as_secs_f64());
            }
        }
        match self.cfg.plan.clone() {
            Plan::Levels(levels) => {
                // Trials interleave: every level once, then every level again, so slow drift
                // of the machine spreads over all levels instead of biasing the last ones.
                'trials: for trial in 0..self.cfg.trials {
                    for &level in &levels {
                        if Self::interrupted() {
                            break 'trials;
                        }
                        self.trial = trial;
                        self.level(level, LevelRole::Measure)?;
                    }
                }
            }
            Plan::Auto => {
                if let Some(sat) = self.saturation()? {
                    for f in AUTO_SWEEP_FRACTIONS {
                        if Self::interrupted() {
                            break;
                        }
                        self.level(self.cfg.open_level(sat * f), LevelRole::Measure)?;
                    }
                }
            }
            Plan::Search => self.search()?,
        }
        self.finish()
    }

    /// Closed-loop probe at the probe concurrency: its request throughput is saturation.
    fn saturation(&mut self) -> Result<Option<f64>, CliError> {
        let probe = LoadLevel::Closed {
            concurrency: self.cfg.probe_concurrency,
        };
        let l = self.level(probe, LevelRole::SaturationProbe)?;
        match l.summary.request_throughput_per_s {
            Some(r) if r > 0.0 => Ok(Some(r)),
            _ if Self::interrupted() || self.failures.all_failed(l.index) => Ok(None),
            _ => Err(CliError::Failure(anyhow::anyhow!(
                "the saturation probe (closed loop, concurrency {}) completed no requests; see requests.csv",
                self.cfg.probe_concurrency
            ))),
        }
    }

    fn search(&mut self) -> Result<(), CliError> {
        let slo = self.cfg.slo.clone().expect("search has an SLO");
        let sat = self.saturation()?;
        let mut rec = SearchRecord {
            slo,
            attainment_target: self.cfg.attainment,
            saturation_rate_per_s: sat,
            best_rate_per_s: None,
            best_level: None,
            best_attainment: None,
            best_attainment_ci95: None,
            best_requests: None,
            lowest_failing_rate_per_s: None,
            stopped_because: "interrupted".into(),
        };
        if sat.is_none() && !Self::interrupted() {
            rec.stopped_because = "every request of the saturation probe failed".into();
        }
        if let Some(sat) = sat {
            let mut search = RateSearch::new(sat, self.cfg.search_steps, 0.05);
            while let Some(rate) = search.next_rate() {
                if Self::interrupted() {
                    break;
                }
                let l = self.level(self.cfg.open_level(rate), LevelRole::Search)?;
                let attainment = l.summary.slo_attainment.unwrap_or(0.0);
                let met = attainment >= self.cfg.attainment;
                search.record(Trial {
                    rate,
                    met,
                    saturated: l.completed_to_offered.is_some_and(|c| c < 0.98),
                });
                if search.best() == Some(rate) {
                    rec.best_rate_per_s = Some(rate);
                    rec.best_level = Some(l.index);
                    rec.best_attainment = l.summary.slo_attainment;
                    rec.best_attainment_ci95 = l.summary.slo_attainment_ci95;
                    rec.best_requests =
                        Some(l.summary.requests_completed + l.summary.requests_failed);
                }
                rec.lowest_failing_rate_per_s = search.lowest_failing();
                if let Some(why) = search.stopped_because() {
                    rec.stopped_because = why.to_string();
                }
            }
        }
        self.record.search = Some(rec);
        if let Err(e) = self.dir.write_record(&self.record) {
            return Err(self.results_lost(e));
        }
        Ok(())
    }

    /// Run one level (warm-up, measured window, cool-down), record it, rewrite run.json.
    fn level(&mut self, load: LoadLevel, role: LevelRole) -> Result<LevelRecord, CliError> {
        let index = self.record.levels.len() as u32;
        if index > 0 && !self.cfg.cooldown.is_zero() {
            std::thread::sleep(self.cfg.cooldown);
        }
        let mut agg = Aggregator::with_slo(self.cfg.slo.clone());
        let (warmup, stop) = self.cfg.level_bounds(load);
        let shard = self.cfg.shard();
        let first_id = self.next_id;
        let mut schedule_start_s = None;
        let profile_rec = match load {
            LoadLevel::Closed { concurrency } => LoadProfile::ClosedLoop { concurrency },
            LoadLevel::Open {
                rate,
                arrivals,
                burstiness,
                max_in_flight,
            } => LoadProfile::OpenLoop {
                rate_per_s: rate,
                arrivals,
                burstiness,
                max_in_flight,
                seed: self.cfg.seed.wrapping_add(u64::from(index)),
                sessions: self.cfg.sessions.is_some(),
            },
        };
        // Sessions: the requests a level makes are not known before their turns are drawn.
        let expected = stop.requests.filter(|_| self.cfg.sessions.is_none());
        self.progress
            .reset(expected.map(|r| shard.share(r + warmup)));
        self.progress
            .phase(&format!("level {index}: {}", profile_rec.label()));
        crate::live::level_started(index);
        let epoch = self.epoch;
        let vocab = self.backend.prompt_token_ids();
        let (out, write_err, progress, failures) = (
            &mut self.requests_out,
            &mut self.write_err,
            &mut self.progress,
            &mut self.failures,
        );
        // Live context at each sample, summed as requests finish (no span kept per request).
        let mut context = LiveContext::default();
        let mut samples_seen = self.sampler.sample_count();
        let sampler = &self.sampler;
        let mut sessions = SessionAggregator::default();
        let mut on_finished = |f: Observation| {
            let times = sampler.sample_times_since(samples_seen);
            samples_seen += times.len();
            context.add_samples(times);
            context.add_span(ContextSpan::from_observation(&f, epoch));
            let (row, gaps) = RequestRow::from_observation(&f, epoch);
            crate::live::finished(&row);
            progress.request_done(row.error_kind.is_some(), row.output_tokens);
            failures.add(&row);
            agg.add(&row, &gaps);
            sessions.add(&row);
            if write_err.is_none() {
                if let Err(e) = out.write(&row) {
                    *write_err = Some(e);
                }
            }
        };
        let mut open_stats = None;
        let session_run = self.cfg.sessions.as_deref().map(|plan| runner::SessionRun {
            backend: self.backend,
            template: &self.template,
            plan,
            first_id,
            interrupted: &INTERRUPTED,
            instances: &self.instances,
        });
        match load {
            LoadLevel::Closed { concurrency } if session_run.is_some() => {
                let run = session_run.as_ref().expect("checked");
                let plan = run.plan;
                let c = shard.share(u64::from(concurrency)) as usize;
                self.pool.ensure(c)?;
                let phase = |warmup: bool, sessions: std::ops::Range<u64>| SessionPhase {
                    warmup,
                    sessions,
                    duration: if warmup { None } else { stop.duration },
                    shard,
                };
                let streams = &mut self.pool.streams[..c];
                runner::run_sessions(streams, run, &phase(true, 0..warmup), &mut on_finished);
                if !Self::interrupted() {
                    let measured = phase(false, warmup..warmup + plan.sessions);
                    runner::run_sessions(streams, run, &measured, &mut on_finished);
                }
                self.next_id += (warmup + plan.sessions) * u64::from(plan.max_turns());
            }
            LoadLevel::Closed { concurrency } => {
                // This shard's streams and requests: ⌊x/N⌋ or ⌈x/N⌉ of the level's.
                let c = shard.share(u64::from(concurrency)) as usize;
                self.pool.ensure(c)?;
                let streams = &mut self.pool.streams[..c];
                if warmup > 0 {
                    let phase = Phase {
                        warmup: true,
                        first_id: self.next_id,
                        stop: StopCondition {
                            requests: Some(shard.share(warmup)),
                            duration: None,
                        },
                        shard,
                    };
                    // Ids of the whole warm-up (every shard's part) are spoken for.
                    self.next_id += warmup;
                    runner::run_phase(
                        streams,
                        &self.template,
                        vocab,
                        phase,
                        &INTERRUPTED,
                        &self.instances,
                        &mut on_finished,
                    );
                }
                if !Self::interrupted() {
                    let phase = Phase {
                        warmup: false,
                        first_id: self.next_id,
                        stop: StopCondition {
                            requests: stop.requests.map(|r| shard.share(r)),
                            ..stop
                        },
                        shard,
                    };
                    let issued = runner::run_phase(
                        streams,
                        &self.template,
                        vocab,
                        phase,
                        &INTERRUPTED,
                        &self.instances,
                        &mut on_finished,
                    );
                    // A count-bounded level spends the same ids on every shard; a time-bounded
                    // one as many as this shard's requests would reach.
                    self.next_id += stop.requests.unwrap_or(issued * u64::from(shard.count));
                }
            }
            LoadLevel::Open {
                rate,
                arrivals,
                burstiness,
                max_in_flight,
            } => {
                let level = OpenLevel {
                    rate,
                    arrivals,
                    burstiness,
                    max_in_flight,
                    seed: self.cfg.seed.wrapping_add(u64::from(index)),
                    warmup,
                    first_id: self.next_id,
                    stop,
                    shard,
                };
                let work = match &session_run {
                    Some(run) => OpenWork::Sessions(run),
                    None => OpenWork::Requests {
                        template: &self.template,
                        vocab,
                    },
                };
                let stats = runner::run_open_level(
                    &mut self.pool,
                    work,
                    level,
                    &INTERRUPTED,
                    &self.instances,
                    &mut on_finished,
                )?;
                self.next_id += match &self.cfg.sessions {
                    // Arrivals are sessions: each spends its turns' ids.
                    Some(plan) => stats.scheduled * u64::from(plan.max_turns()),
                    None => stats.scheduled,
                };
                schedule_start_s = stats
                    .schedule_start
                    .map(|t| t.saturating_duration_since(epoch).as_secs_f64());
                open_stats = Some(stats);
            }
        }
        if let Some(e) = self.write_err.take() {
            return Err(self.results_lost(e));
        }
        let unit = if self.cfg.sessions.is_some() {
            "session"
        } else {
            "request"
        };
        let excluded = format!("{warmup} warm-up {unit}(s) before the window");
        let window = agg.window(&excluded);
        let summary = agg.summary();
        charter_reports::histograms::write_level(
            &self.dir.histograms_dir(),
            index,
            agg.histograms(),
        )
        .map_err(|e| {
            CliError::Failure(anyhow::anyhow!(
                "writing {}: {e}",
                self.dir.histograms_dir().display()
            ))
        })?;
        self.failures
            .level_done(index, &profile_rec.label(), &summary);
        // The requests' context must be complete before the last samples are read.
        std::thread::sleep(
            self.cfg
                .sampler
                .interval
                .min(std::time::Duration::from_millis(200)),
        );
        let samples = self.sampler.snapshot();
        context.add_samples(
            samples
                .get(samples_seen..)
                .unwrap_or(&[])
                .iter()
                .map(|s| s.row.t_s),
        );
        let server_metrics = self
            .server
            .level(window.as_ref().map(|w| (w.start_s, w.end_s)));
        self.record.server_metrics = self.server.sources();
        let watched: Vec<String> = self
            .sampler
            .watched()
            .iter()
            .map(|w| w.name.clone())
            .collect();
        let measured = resources::window(
            &samples,
            &WindowInputs {
                window: window.as_ref().map(|w| (w.start_s, w.end_s)),
                baseline_rss: self.baseline,
                peak_rss: sampler::peak_rss_bytes(),
                isolation: self.cfg.isolation,
                in_process: !self.cfg.backend.is_remote(),
                watched: &watched,
                gpu_names: self.sampler.gpu_names(),
                context: &context,
                summary: &summary,
                cpu_tdp_w: self.cfg.sampler.cpu_tdp_w,
                logical_cores: self.record.host.logical_cores,
                idle: self.idle.as_ref(),
                unavailable: &self.unavailable,
                contention_threshold_cores: self.cfg.sampler.contention_threshold_cores,
            },
        );
        for point in resources::context_points(&samples, &context, index, self.cfg.isolation) {
            self.context_out
                .serialize(point)
                .map_err(anyhow::Error::from)?;
        }
        self.context_out.flush().map_err(anyhow::Error::from)?;
        let completed_to_offered = match load {
            LoadLevel::Open { .. } => agg.keep_up_ratio(),
            LoadLevel::Closed { .. } => None,
        };
        let sustainable = flags::sustainable(completed_to_offered, &summary);
        let client_bound = flags::client_bound(
            &summary,
            &measured.resources,
            &ClientInputs {
                lag_threshold_s: self.cfg.lag_threshold.as_secs_f64(),
                dispatch_lag: open_stats.as_ref().map(|o| &o.dispatch_lag),
                max_in_flight_waits: open_stats.as_ref().map_or(0, |o| o.max_in_flight_waits),
                max_in_flight: match load {
                    LoadLevel::Open { max_in_flight, .. } => Some(max_in_flight),
                    LoadLevel::Closed { .. } => None,
                },
                remote: self.cfg.backend.is_remote(),
                cores_available: self.cores_available,
                logical_cores: self.record.host.logical_cores,
            },
        );
        let level = LevelRecord {
            index,
            trial: self.trial,
            role,
            load: profile_rec,
            window,
            summary,
            resources: measured.resources,
            completed_to_offered,
            sustainable,
            client_bound,
            contention: measured.contention,
            server_metrics,
            request_ids: Some(IdRange {
                first: first_id,
                end: self.next_id,
            }),
            schedule_start_s,
            sessions: sessions.summary(if self.cfg.backend.is_remote() {
                HistoryReuse::ServerCache
            } else {
                HistoryReuse::RePrefilled
            }),
        };
        self.record.levels.push(level.clone());
        note_waiting_signals(&mut self.record, &self.server);
        if let Err(e) = self.dir.write_record(&self.record) {
            return Err(self.results_lost(e));
        }
        Ok(level)
    }

    /// A results file could not be written (disk full, a file size limit, the directory
    /// gone): keep the record of the finished levels (`complete: false`) if it can still be
    /// written, and say in one line what failed and what is kept.
    fn results_lost(&mut self, e: anyhow::Error) -> CliError {
        results_lost(self.dir, &mut self.record, self.requests_out.rows(), e)
    }

    fn finish(mut self) -> Result<i32, CliError> {
        self.progress.finish();
        // Trace sessions send their real history after turn 1, not the trace's hashed blocks.
        let trace_sessions = self
            .cfg
            .sessions
            .as_ref()
            .is_some_and(|p| matches!(p.source, SessionSource::Trace(_)));
        self.record.workload.ideal_prefix_cache_hit_rate = if trace_sessions {
            None
        } else {
            self.template
                .prompts
                .ideal_prefix_hit_rate(self.next_id, self.cfg.seed)
        };
        let interrupted = Self::interrupted();
        let out = self
            .sampler
            .stop()
            .map_err(|e| CliError::Failure(anyhow::anyhow!("sampler: {e}")))?;
        if let Err(e) = self.requests_out.finish() {
            return Err(results_lost(
                self.dir,
                &mut self.record,
                self.requests_out.rows(),
                e,
            ));
        }
        let (sources, write_error) = self.server.stop();
        self.record.server_metrics = sources;
        note_waiting_signals(&mut self.record, &self.server);
        for l in &mut self.record.levels {
            l.resources.sampler = Some(out.info.clone());
        }
        self.record.status = if interrupted {
            RunStatus::Interrupted
        } else {
            RunStatus::Finished
        };
        self.record.complete = !interrupted;
        if let Err(e) = self.dir.write_record(&self.record) {
            return Err(results_lost(
                self.dir,
                &mut self.record,
                self.requests_out.rows(),
                e,
            ));
        }
        if let Some(e) = write_error {
            return Err(CliError::Failure(anyhow::anyhow!(
                "writing {}: {e}",
                rundir::SERVER_METRICS_CSV
            )));
        }
        let dir_str = self.dir.path().display().to_string();
        let doc = ProfileDoc {
            record: &self.record,
            run_dir: &dir_str,
        };
        let format = if self.cfg.json {
            Format::Json
        } else {
            Format::Console
        };
        print!("{}", doc.export(format)?);
        Ok(if interrupted {
            EXIT_INTERRUPTED
        } else {
            self.failures.exit_code()
        })
    }
}

/// See `Session::results_lost` (by field, for a session partly taken apart at its end).
fn results_lost(dir: &RunDir, record: &mut RunRecord, rows: u64, e: anyhow::Error) -> CliError {
    record.complete = false;
    let kept = match dir.write_record(record) {
        Ok(()) => format!(
            "run.json with {} finished level(s) (complete: false)",
            record.levels.len()
        ),
        Err(e) => {
            format!("run.json as it was last written (complete: false; rewriting it failed: {e:#})")
        }
    };
    CliError::Failure(anyhow::anyhow!(
        "{e:#}; kept in {}: {rows} whole request row(s) in {}, {kept}",
        dir.path().display(),
        rundir::REQUESTS_CSV,
    ))
}

/// Queue-wait: which waiting signal each hybrid tier went by, and how often, into the record.
fn note_waiting_signals(record: &mut RunRecord, server: &ServerScraper) {
    if let Some(h) = record.backend.hybrid.as_mut() {
        for (i, signal) in server.waiting_signals() {
            if let Some(t) = h.tiers.get_mut(i) {
                t.waiting_signal = Some(signal);
            }
        }
    }
}
