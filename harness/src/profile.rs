//! `charter profile`: load a backend, run each load level of the plan (warm-up, measured window,
//! cool-down) while the sampler runs, stream every request to `requests.csv`, and rewrite the
//! run record after every level.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Instant;

use charter_backends::candle::{self, CandleBackend, CandleOptions, ModelSource};
use charter_backends::simulated::{SimulatedBackend, SimulatedTimings};
use charter_backends::{Backend, Sampling};
use charter_record::{Observation, PlanKind};
use charter_reports::{
    Aggregator, ClientBound, LevelRecord, LevelRole, LoadProfile, PromptSpec, RequestRow,
    ResourceSummary, RunFiles, RunRecord, RunStatus, SamplingRecord, SearchRecord, WorkloadRecord,
    SCHEMA_VERSION,
};
use charter_workloads::search::{RateSearch, Trial};
use charter_workloads::{LoadLevel, PromptSource, RequestTemplate, StopCondition};

use crate::cli::ProfileArgs;
use crate::config::{BackendChoice, Plan, ProfileConfig, AUTO_SWEEP_FRACTIONS};
use crate::progress::Progress;
use crate::resources::{self, ContextSpan, WindowInputs};
use crate::rundir::{self, RequestsWriter, RunDir};
use crate::runner::{self, OpenLevel, Phase, StreamPool};
use crate::sampler::{self, Instances, Isolation, Sampler, Sources};
use crate::worker::{ProcessBackend, WorkerCommand};
use crate::{host, CliError, EXIT_INTERRUPTED, EXIT_OK};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CTRLC: Once = Once::new();

/// First Ctrl-C: stop issuing requests, cut in-flight ones short, write the partial record.
/// Second Ctrl-C: exit at once with 130.
fn install_ctrlc() {
    CTRLC.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(EXIT_INTERRUPTED);
            }
            eprintln!("charter: interrupted; finishing the record (Ctrl-C again to quit at once)");
        });
    });
}

/// Load the backend for a `charter worker` from the profile arguments it was given.
pub(crate) fn load_worker_backend(
    threads: usize,
    profile_args: &[std::ffi::OsString],
) -> Result<Box<dyn Backend>, CliError> {
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ProfileArgs,
    }
    let mut argv = vec![std::ffi::OsString::from("charter-worker")];
    argv.extend(profile_args.iter().cloned());
    let w = <Wrapper as clap::Parser>::try_parse_from(argv)
        .map_err(|e| CliError::BadInput(format!("worker arguments: {e}")))?;
    let cfg = ProfileConfig::resolve(&w.args)?;
    load_backend(&cfg, threads)
}

/// Load the backend the configuration names.
pub(crate) fn load_backend(
    cfg: &ProfileConfig,
    threads: usize,
) -> Result<Box<dyn Backend>, CliError> {
    Ok(match &cfg.backend {
        BackendChoice::Candle { source, .. } => {
            candle::configure_threads(threads);
            Box::new(CandleBackend::load(&CandleOptions {
                source: source.clone(),
                threads,
            })?)
        }
        BackendChoice::Simulated {
            ttft,
            itl,
            cpu_fraction,
        } => Box::new(SimulatedBackend::new(SimulatedTimings {
            ttft: *ttft,
            itl: *itl,
            cpu_fraction: *cpu_fraction,
        })),
        BackendChoice::Onnx {
            model,
            threads: explicit,
            args,
        } => {
            use charter_backends::onnx::{self, OnnxBackend, OnnxOptions, SessionSharing};
            let sharing = args.onnx_sessions.unwrap_or_default();
            // A shared session serves one call at a time, so by default it gets every core.
            let default_threads = match sharing {
                SessionSharing::Shared => std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
                SessionSharing::PerInstance => threads,
            };
            let mut opts = OnnxOptions::new(model.clone());
            opts.ort_lib = args.ort_lib.clone();
            opts.mode = args.onnx_mode;
            opts.batch = args.batch.map(|b| b as usize);
            opts.seq_len = args.seq_len.map(|s| s as usize);
            opts.dims = args.onnx_dim.clone();
            opts.session = onnx::SessionSettings {
                intra_op_threads: args
                    .intra_op_threads
                    .map(|t| t as usize)
                    .or(*explicit)
                    .unwrap_or(default_threads),
                inter_op_threads: args.inter_op_threads.unwrap_or(1) as usize,
                spinning: args.onnx_spinning != Some(crate::cli::OnOff::Off),
                graph_opt: args.graph_opt.unwrap_or_default(),
                execution_provider: args.execution_provider.unwrap_or_default(),
            };
            opts.sharing = sharing;
            opts.tokenizer = args.tokenizer.clone();
            opts.seed = cfg.seed;
            Box::new(OnnxBackend::load(&opts)?)
        }
        BackendChoice::Remote(o) => Box::new(charter_backends::remote::RemoteBackend::new(o)?),
    })
}

fn label(cfg: &ProfileConfig) -> String {
    match &cfg.backend {
        BackendChoice::Candle {
            source: ModelSource::Path(p),
            ..
        } => p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into()),
        BackendChoice::Candle {
            source: ModelSource::Preset { name, .. },
            ..
        } => name.clone(),
        BackendChoice::Simulated { .. } => "simulated".into(),
        BackendChoice::Remote(o) => format!("{}-{}", o.api.as_str(), o.model.replace('/', "_")),
        // `model.onnx` says little: Optimum exports name the directory after the model.
        BackendChoice::Onnx { model, .. } => match model.file_stem().map(|s| s.to_string_lossy()) {
            Some(stem) if !stem.starts_with("model") && !stem.starts_with("decoder_model") => {
                stem.into_owned()
            }
            _ => model
                .canonicalize()
                .ok()
                .and_then(|p| {
                    p.parent()?
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| "onnx".into()),
        },
    }
}

/// Run `charter profile`; returns the exit code.
pub fn profile(args: &ProfileArgs) -> Result<i32, CliError> {
    let cfg = ProfileConfig::resolve(args)?;
    cfg.check_inputs()?;
    install_ctrlc();
    INTERRUPTED.store(false, Ordering::SeqCst);
    let host = host::host_info();
    let threads = match &cfg.backend {
        BackendChoice::Candle {
            threads: Some(t), ..
        } => *t,
        _ => (host.logical_cores / cfg.max_instances()).max(1) as usize,
    };
    let dir = RunDir::create(
        cfg.out
            .clone()
            .unwrap_or_else(|| rundir::default_path(&label(&cfg))),
    )?;
    let loaded = match cfg.isolation {
        Isolation::Thread => load_backend(&cfg, threads),
        Isolation::Process => {
            let args = crate::profile_args();
            if args.is_empty() {
                Err(CliError::BadInput(
                    "--isolation process starts `charter worker` processes with charter's own command line; it is available from the charter binary only".into(),
                ))
            } else {
                WorkerCommand::for_profile(&args, threads)
                    .and_then(ProcessBackend::start)
                    .map(|b| Box::new(b) as Box<dyn Backend>)
            }
        }
    };
    let prepared = loaded.and_then(|backend| {
        let default = if backend.accepts_text() && !cfg.prompt_tokens_explicit {
            charter_workloads::PromptSpec::Corpus
        } else {
            charter_workloads::PromptSpec::Synthetic
        };
        let prompts = cfg.prompt_source(
            cfg.prompts.as_ref().unwrap_or(&default),
            backend.accepts_text(),
        )?;
        Ok((backend, prompts))
    });
    let (backend, prompts) = match prepared {
        Ok(p) => p,
        Err(e) => {
            dir.discard();
            return Err(e);
        }
    };
    let result = Session::new(&cfg, &host, backend.as_ref(), prompts, &dir).and_then(|s| s.run());
    if let Err(CliError::BadInput(_)) = &result {
        dir.discard();
    }
    result
}

/// Open the sampler's sources the configuration asks for; what cannot be opened is recorded
/// as unavailable with its reason.
fn open_sources(cfg: &ProfileConfig) -> Sources {
    let mut src = Sources::default();
    for &pid in &cfg.watch_pids {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        src.watched.push(sampler::Watched {
            pid,
            name: format!("{name} ({pid})"),
        });
    }
    if cfg.no_gpu {
        src.unavailable
            .push(("gpu".into(), "not sampled (--no-gpu)".into()));
    } else {
        match crate::telemetry::gpu::GpuSource::open(cfg.nvml_lib.as_deref()) {
            Ok(g) => src.gpu = Some(Box::new(g)),
            Err(u) => src.unavailable.push(("gpu".into(), u.reason)),
        }
    }
    match crate::telemetry::rapl::RaplSource::open(&cfg.powercap_root) {
        Ok(r) => src.cpu_energy = Some(Box::new(r)),
        Err(u) => src.unavailable.push(("rapl".into(), u.reason)),
    }
    for name in &cfg.watch_processes {
        for w in sampler::find_processes(name) {
            if !src.watched.iter().any(|x| x.pid == w.pid) {
                src.watched.push(sampler::Watched {
                    pid: w.pid,
                    name: format!("{} ({})", w.name, w.pid),
                });
            }
        }
    }
    src
}

/// One `charter profile` run in progress.
struct Session<'a> {
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
    context_out: csv::Writer<std::io::BufWriter<std::fs::File>>,
    pool: StreamPool<'a>,
    next_id: u64,
    trial: u32,
    progress: Progress,
}

impl<'a> Session<'a> {
    fn new(
        cfg: &'a ProfileConfig,
        host: &charter_reports::HostInfo,
        backend: &'a dyn Backend,
        prompts: PromptSource,
        dir: &'a RunDir,
    ) -> Result<Self, CliError> {
        let plan = match &cfg.plan {
            Plan::Levels(l) if l.len() == 1 => PlanKind::Single,
            Plan::Levels(_) => PlanKind::List,
            Plan::Auto => PlanKind::Auto,
            Plan::Search => PlanKind::SloSearch,
        };
        let license = matches!(&prompts, PromptSource::Entries { name, .. } if name == "corpus")
            .then(|| charter_workloads::prompts::CORPUS_LICENSE.to_string());
        let record = RunRecord {
            schema_version: SCHEMA_VERSION,
            complete: false,
            status: RunStatus::Running,
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            tool: host::tool_info(),
            host: host.clone(),
            backend: backend.record().clone(),
            workload: WorkloadRecord {
                plan,
                requests: cfg.requests,
                trials: cfg.trials,
                duration_s: cfg.duration.map(|d| d.as_secs_f64()),
                warmup_requests: cfg.warmup,
                cooldown_s: cfg.cooldown.as_secs_f64(),
                prompt: PromptSpec {
                    source: prompts.describe(),
                    license,
                    seed: cfg.seed,
                },
                max_tokens: match cfg.max_tokens {
                    Some(d) => d.to_string(),
                    None if matches!(prompts, PromptSource::Entries { .. }) => {
                        format!(
                            "from the prompt file, else {}",
                            charter_workloads::DEFAULT_MAX_TOKENS
                        )
                    }
                    None => charter_workloads::DEFAULT_MAX_TOKENS.to_string(),
                },
                ignore_eos: cfg.ignore_eos,
                sampling: SamplingRecord {
                    temperature: cfg.temperature,
                    top_p: cfg.top_p,
                    seed: cfg.seed,
                },
                slo: cfg.slo.clone(),
                slo_attainment_target: cfg.slo.as_ref().map(|_| cfg.attainment),
                scenario: cfg.scenario.as_ref().map(|p| p.display().to_string()),
            },
            levels: Vec::new(),
            search: None,
            files: RunFiles {
                requests_csv: rundir::REQUESTS_CSV.into(),
                samples_csv: rundir::SAMPLES_CSV.into(),
                instances_csv: Some(rundir::INSTANCES_CSV.into()),
                gpu_csv: Some(rundir::GPU_CSV.into()),
                context_csv: Some(rundir::CONTEXT_CSV.into()),
            },
        };
        dir.write_record(&record)?;
        let requests_out = dir.requests_writer()?;
        let epoch = Instant::now();
        let baseline = sampler::current_rss_bytes();
        let sources = open_sources(cfg);
        let instances = std::sync::Arc::clone(&sources.instances);
        let unavailable = sources.unavailable.iter().cloned().collect();
        let outputs = sampler::Outputs {
            samples: dir.data_file(rundir::SAMPLES_CSV)?,
            instances: dir.data_file(rundir::INSTANCES_CSV)?,
            gpu: dir.data_file(rundir::GPU_CSV)?,
        };
        let sampler = Sampler::start(epoch, cfg.sample_interval, outputs, sources)
            .map_err(|e| CliError::Failure(anyhow::anyhow!("starting the sampler: {e}")))?;
        let mut context_out = csv::Writer::from_writer(dir.data_file(rundir::CONTEXT_CSV)?);
        context_out
            .write_record(["t_s", "level", "live_context_tokens", "rss_bytes"])
            .map_err(anyhow::Error::from)?;
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
            pool: StreamPool::new(backend),
            next_id: 0,
            trial: 0,
            progress: Progress::new(None, cfg.no_progress, cfg.json),
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
        std::thread::sleep(self.cfg.sample_interval);
        let b = self.epoch.elapsed().as_secs_f64();
        self.idle = Some(resources::idle_baseline(
            &self.sampler.snapshot(),
            a,
            b,
            self.sampler.gpu_names(),
        ));
    }

    /// Run every level of the plan, then finish the record.
    fn run(mut self) -> Result<i32, CliError> {
        if let Some(d) = self.cfg.baseline {
            self.idle_baseline(d);
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
                        self.level(self.open(sat * f), LevelRole::Measure)?;
                    }
                }
            }
            Plan::Search => self.search()?,
        }
        self.finish()
    }

    fn open(&self, rate: f64) -> LoadLevel {
        LoadLevel::Open {
            rate,
            arrivals: self.cfg.arrivals,
            burstiness: self.cfg.burstiness,
            max_in_flight: self.cfg.max_in_flight,
        }
    }

    /// Closed-loop probe at the probe concurrency: its request throughput is saturation.
    fn saturation(&mut self) -> Result<Option<f64>, CliError> {
        let probe = LoadLevel::Closed {
            concurrency: self.cfg.probe_concurrency,
        };
        let l = self.level(probe, LevelRole::SaturationProbe)?;
        match l.summary.request_throughput_per_s {
            Some(r) if r > 0.0 => Ok(Some(r)),
            _ if Self::interrupted() => Ok(None),
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
        if let Some(sat) = sat {
            let mut search = RateSearch::new(sat, self.cfg.search_steps, 0.05);
            while let Some(rate) = search.next_rate() {
                if Self::interrupted() {
                    break;
                }
                let l = self.level(self.open(rate), LevelRole::Search)?;
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
        self.dir.write_record(&self.record)?;
        Ok(())
    }

    /// Run one level (warm-up, measured window, cool-down), record it, rewrite run.json.
    fn level(&mut self, load: LoadLevel, role: LevelRole) -> Result<LevelRecord, CliError> {
        let index = self.record.levels.len() as u32;
        if index > 0 && !self.cfg.cooldown.is_zero() {
            std::thread::sleep(self.cfg.cooldown);
        }
        let mut agg = Aggregator::with_slo(self.cfg.slo.clone());
        let (default_warmup, default_requests) = match load {
            LoadLevel::Closed { concurrency } => {
                (u64::from(concurrency), 4 * u64::from(concurrency))
            }
            LoadLevel::Open { .. } => (2, 40),
        };
        let warmup = self.cfg.warmup.unwrap_or(default_warmup);
        let stop = StopCondition {
            requests: match (self.cfg.requests, self.cfg.duration) {
                (None, None) => Some(default_requests),
                (r, _) => r,
            },
            duration: self.cfg.duration,
        };
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
            },
        };
        self.progress.reset(stop.requests.map(|r| r + warmup));
        self.progress
            .phase(&format!("level {index}: {}", profile_rec.label()));
        let epoch = self.epoch;
        let vocab = self.backend.prompt_token_ids();
        let (out, write_err, progress) = (
            &mut self.requests_out,
            &mut self.write_err,
            &mut self.progress,
        );
        let mut spans: Vec<ContextSpan> = Vec::new();
        let mut on_finished = |f: Observation| {
            spans.push(ContextSpan::from_finished(&f, epoch));
            let (row, gaps) = RequestRow::from_observation(&f, epoch);
            progress.request_done(row.error_kind.is_some(), row.output_tokens);
            agg.add(&row, &gaps);
            if write_err.is_none() {
                if let Err(e) = out.write(&row) {
                    *write_err = Some(e);
                }
            }
        };
        let mut open_stats = None;
        match load {
            LoadLevel::Closed { concurrency } => {
                let c = concurrency as usize;
                self.pool.ensure(c)?;
                let streams = &mut self.pool.streams[..c];
                if warmup > 0 {
                    let phase = Phase {
                        warmup: true,
                        first_id: self.next_id,
                        stop: StopCondition {
                            requests: Some(warmup),
                            duration: None,
                        },
                    };
                    self.next_id += runner::run_phase(
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
                        stop,
                    };
                    self.next_id += runner::run_phase(
                        streams,
                        &self.template,
                        vocab,
                        phase,
                        &INTERRUPTED,
                        &self.instances,
                        &mut on_finished,
                    );
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
                };
                let stats = runner::run_open_level(
                    &mut self.pool,
                    &self.template,
                    vocab,
                    level,
                    &INTERRUPTED,
                    &self.instances,
                    &mut on_finished,
                )?;
                self.next_id += stats.issued;
                open_stats = Some(stats);
            }
        }
        if let Some(e) = self.write_err.take() {
            return Err(CliError::Failure(e));
        }
        let excluded = format!("{warmup} warm-up request(s) before the window");
        let window = agg.window(&excluded);
        let summary = agg.summary();
        // The requests' context must be complete before the last samples are read.
        std::thread::sleep(
            self.cfg
                .sample_interval
                .min(std::time::Duration::from_millis(200)),
        );
        let samples = self.sampler.snapshot();
        let resources = resources::resources_in_window(
            &samples,
            &WindowInputs {
                window: window.as_ref().map(|w| (w.start_s, w.end_s)),
                baseline_rss: self.baseline,
                isolation: self.cfg.isolation,
                watched: self.sampler.watched(),
                gpu_names: self.sampler.gpu_names(),
                spans: &spans,
                summary: &summary,
                cpu_tdp_w: self.cfg.cpu_tdp_w,
                logical_cores: self.record.host.logical_cores,
                idle: self.idle.as_ref(),
                unavailable: &self.unavailable,
            },
        );
        self.write_context(index, &samples, &spans)?;
        let completed_to_offered = match load {
            LoadLevel::Open { .. } => agg.keep_up_ratio(),
            LoadLevel::Closed { .. } => None,
        };
        let sustainable =
            completed_to_offered.map(|c| c >= 0.98 && summary.slo_percentiles_hold != Some(false));
        let client_bound = self.client_bound(&summary, &resources, open_stats.as_ref(), load);
        let level = LevelRecord {
            index,
            trial: self.trial,
            role,
            load: profile_rec,
            window,
            summary,
            resources,
            completed_to_offered,
            sustainable,
            client_bound,
        };
        self.record.levels.push(level.clone());
        self.dir.write_record(&self.record)?;
        Ok(level)
    }

    /// Append this level's (time, live context tokens, RSS) points to `context.csv`.
    fn write_context(
        &mut self,
        index: u32,
        samples: &[sampler::Sample],
        spans: &[ContextSpan],
    ) -> Result<(), CliError> {
        let (a, b) = (
            spans
                .iter()
                .map(|s| s.start_s)
                .fold(f64::INFINITY, f64::min),
            spans
                .iter()
                .map(|s| s.end_s)
                .fold(f64::NEG_INFINITY, f64::max),
        );
        for s in samples.iter().filter(|s| s.row.t_s >= a && s.row.t_s <= b) {
            let Some(rss) = resources::fitted_rss(s, self.cfg.isolation) else {
                continue;
            };
            self.context_out
                .write_record([
                    format!("{:.6}", s.row.t_s),
                    index.to_string(),
                    resources::live_tokens_at(spans, s.row.t_s).to_string(),
                    rss.to_string(),
                ])
                .map_err(anyhow::Error::from)?;
        }
        self.context_out.flush().map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// Flag a level whose schedule lag shows the load generator, not the system, set the pace.
    fn client_bound(
        &self,
        s: &charter_reports::RunSummary,
        res: &ResourceSummary,
        open: Option<&runner::OpenStats>,
        load: LoadLevel,
    ) -> ClientBound {
        let threshold = self.cfg.lag_threshold.as_secs_f64();
        let mut cb = ClientBound {
            schedule_lag_threshold_s: threshold,
            max_in_flight_waits: open.map(|o| o.max_in_flight_waits).unwrap_or(0),
            ..Default::default()
        };
        let Some(lag) = s.schedule_lag.as_ref() else {
            return cb;
        };
        if lag.p99_s <= threshold {
            return cb;
        }
        cb.flagged = true;
        cb.reasons.push(format!(
            "schedule lag p99 {:.1} ms exceeds {:.1} ms: latencies from the actual start hide queueing; use the *_from_intended numbers",
            lag.p99_s * 1e3,
            threshold * 1e3
        ));
        if let Some(o) = open {
            let mut d = o.dispatch_lag_s.clone();
            d.sort_by(f64::total_cmp);
            if let Some(p99) = d.get(((d.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)) {
                if *p99 > threshold {
                    cb.reasons.push(format!(
                        "the dispatcher itself fell behind its schedule (dispatch lag p99 {:.1} ms)",
                        p99 * 1e3
                    ));
                }
            }
            if o.max_in_flight_waits > 0 {
                if let LoadLevel::Open { max_in_flight, .. } = load {
                    cb.reasons.push(format!(
                        "{} arrival(s) found all {max_in_flight} in-flight slots busy and queued (raise --max-in-flight, or this rate is beyond capacity)",
                        o.max_in_flight_waits
                    ));
                }
            }
        }
        if let Some(busy) = &res.system_busy_cores {
            let cores = f64::from(self.record.host.logical_cores);
            if busy.mean >= 0.9 * cores {
                cb.reasons.push(format!(
                    "the machine's CPUs were saturated ({:.2} of {cores} cores busy), shared by charter and the system under test",
                    busy.mean
                ));
            }
        }
        cb
    }

    fn finish(mut self) -> Result<i32, CliError> {
        self.progress.finish();
        let interrupted = Self::interrupted();
        let out = self
            .sampler
            .stop()
            .map_err(|e| CliError::Failure(anyhow::anyhow!("sampler: {e}")))?;
        self.requests_out.finish().map_err(CliError::Failure)?;
        for l in &mut self.record.levels {
            l.resources.sampler = Some(out.info.clone());
        }
        self.record.status = if interrupted {
            RunStatus::Interrupted
        } else {
            RunStatus::Finished
        };
        self.record.complete = !interrupted;
        self.dir.write_record(&self.record)?;
        let dir_str = self.dir.path().display().to_string();
        if self.cfg.json {
            let out = serde_json::json!({
                "run_dir": dir_str,
                "complete": self.record.complete,
                "status": self.record.status,
                "backend": self.record.backend.model,
                "threads_per_instance": self.record.backend.threads_per_instance,
                "levels": self.record.levels,
                "search": self.record.search,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&out).map_err(anyhow::Error::from)?
            );
        } else {
            print!(
                "{}",
                charter_reports::summary::render_console(&self.record, &dir_str)
            );
        }
        Ok(if interrupted {
            EXIT_INTERRUPTED
        } else {
            EXIT_OK
        })
    }
}
