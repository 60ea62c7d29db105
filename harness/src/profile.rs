//! `charter profile`: load a backend, run warm-up and measured closed-loop phases while the
//! sampler runs, stream every request to `requests.csv`, and write the run record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Instant;

use charter_backends::candle::{self, CandleBackend, CandleOptions, ModelSource};
use charter_backends::{Backend, Sampling, Stream};
use charter_reports::{
    request_timings, Aggregator, LoadProfile, PromptSpec, RequestRow, ResourceSummary, RunFiles,
    RunRecord, RunStatus, SamplingRecord, ValueSummary, WorkloadRecord, SCHEMA_VERSION,
};
use charter_workloads::{RequestTemplate, StopCondition, SyntheticPrompts};

use crate::cli::ProfileArgs;
use crate::progress::Progress;
use crate::rundir::{self, RunDir};
use crate::runner::{self, Finished, Phase};
use crate::sampler::{self, Sampler, SamplerOutput};
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

/// Load the model named by the arguments.
fn load_backend(args: &ProfileArgs, threads: usize) -> Result<CandleBackend, CliError> {
    let source = match &args.model {
        Some(p) => ModelSource::Path(p.clone()),
        None => ModelSource::Preset {
            name: args.preset.clone(),
            seed: args.seed,
        },
    };
    candle::configure_threads(threads);
    Ok(CandleBackend::load(&CandleOptions { source, threads })?)
}

fn label(args: &ProfileArgs) -> String {
    match &args.model {
        Some(p) => p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into()),
        None => args.preset.clone(),
    }
}

/// Turn a finished request into its CSV row and chunk gaps, on the run's clock.
pub fn request_row(f: &Finished, epoch: Instant) -> (RequestRow, Vec<f64>) {
    let secs = |t: Instant| t.saturating_duration_since(epoch).as_secs_f64();
    let events: Vec<(f64, u32)> = f.events.iter().map(|&(t, n)| (secs(t), n)).collect();
    let (prompt_tokens, output_tokens, stop_reason, error_kind, error_message) = match &f.result {
        Ok(o) => (
            o.prompt_tokens,
            o.output_tokens,
            Some(o.stop_reason.as_str().to_string()),
            None,
            None,
        ),
        Err(e) => (
            e.prompt_tokens,
            e.output_tokens,
            None,
            Some(e.kind.as_str().to_string()),
            Some(e.message.clone()),
        ),
    };
    let (intended, start) = (secs(f.intended_start), secs(f.start));
    let t = request_timings(intended, start, &events, output_tokens);
    let row = RequestRow {
        id: f.id,
        instance: f.instance,
        warmup: f.warmup,
        intended_start_s: intended,
        start_s: start,
        end_s: secs(f.end),
        schedule_lag_s: start - intended,
        ttft_s: t.ttft_s,
        ttft_from_intended_s: t.ttft_from_intended_s,
        e2e_s: t.e2e_s,
        e2e_from_intended_s: t.e2e_from_intended_s,
        decode_time_s: t.decode_time_s,
        itl_s: t.itl_s,
        tpot_incl_first_s: t.tpot_incl_first_s,
        prompt_tokens,
        output_tokens,
        token_count_source: "backend".into(),
        stop_reason,
        error_kind,
        error_message,
    };
    (row, t.chunk_gaps_s)
}

/// Resource use over the measured window `[start_s, end_s]` from the sampler's output.
pub fn resources_in_window(
    out: &SamplerOutput,
    window: Option<(f64, f64)>,
    baseline: Option<u64>,
) -> ResourceSummary {
    let mut r = ResourceSummary {
        sampler: Some(out.info.clone()),
        peak_rss_bytes: sampler::peak_rss_bytes(),
        ram_baseline_bytes: baseline,
        ..Default::default()
    };
    let Some((a, b)) = window else { return r };
    // A sample covers the interval that ends at its timestamp: keep those ending inside the
    // window, plus the first one after it (it covers the window's tail).
    let mut inside: Vec<usize> = (1..out.samples.len())
        .filter(|&i| out.samples[i].row.t_s > a && out.samples[i - 1].row.t_s < b)
        .collect();
    inside.retain(|&i| out.samples[i].row.process_cpu_cores.is_finite());
    if inside.is_empty() {
        return r;
    }
    let vals = |f: &dyn Fn(usize) -> f64| inside.iter().map(|&i| f(i)).collect::<Vec<f64>>();
    r.process_cpu_cores =
        ValueSummary::from_values(&vals(&|i| out.samples[i].row.process_cpu_cores));
    r.system_busy_cores =
        ValueSummary::from_values(&vals(&|i| out.samples[i].row.system_busy_cores));
    r.rss_bytes = ValueSummary::from_values(&vals(&|i| out.samples[i].row.rss_bytes as f64));
    r.process_cpu_seconds = Some(
        inside
            .iter()
            .map(|&i| {
                let s = &out.samples[i].row;
                s.process_cpu_cores * (s.t_s - out.samples[i - 1].row.t_s)
            })
            .sum(),
    );
    r
}

/// Run `charter profile`; returns the exit code.
pub fn profile(args: &ProfileArgs) -> Result<i32, CliError> {
    args.validate()?;
    install_ctrlc();
    INTERRUPTED.store(false, Ordering::SeqCst);
    if args.model.is_none() && candle::presets::find(&args.preset).is_none() {
        return Err(charter_backends::LoadError::UnknownPreset {
            name: args.preset.clone(),
            known: candle::presets::names(),
        }
        .into());
    }
    if let Some(p) = &args.model {
        if !p.exists() {
            return Err(charter_backends::LoadError::NotFound { path: p.clone() }.into());
        }
    }
    let host = host::host_info();
    let concurrency = args.concurrency as usize;
    let threads = args
        .threads
        .unwrap_or_else(|| (host.logical_cores as usize / concurrency).max(1));
    let dir = RunDir::create(
        args.out
            .clone()
            .unwrap_or_else(|| rundir::default_path(&label(args))),
    )?;
    let backend = match load_backend(args, threads) {
        Ok(b) => b,
        Err(e) => {
            dir.discard();
            return Err(e);
        }
    };
    let mut streams: Vec<Box<dyn Stream>> = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        match backend.new_stream() {
            Ok(s) => streams.push(s),
            Err(e) => {
                dir.discard();
                return Err(e.into());
            }
        }
    }
    let result = measure(args, &host, &backend, &mut streams, &dir);
    if let Err(CliError::BadInput(_)) = &result {
        dir.discard();
    }
    result
}

fn measure(
    args: &ProfileArgs,
    host: &charter_reports::HostInfo,
    backend: &CandleBackend,
    streams: &mut [Box<dyn Stream>],
    dir: &RunDir,
) -> Result<i32, CliError> {
    let concurrency = streams.len() as u64;
    let requests = match (args.requests, args.duration) {
        (None, None) => Some(4 * concurrency),
        (r, _) => r,
    };
    let warmup = args.warmup.unwrap_or(concurrency);
    let template = RequestTemplate {
        prompts: SyntheticPrompts {
            tokens: args.prompt_tokens,
            seed: args.seed,
        },
        max_tokens: args.max_tokens,
        ignore_eos: args.ignore_eos,
        sampling: Sampling {
            temperature: args.temperature,
            top_p: args.top_p,
            seed: args.seed,
        },
    };
    let mut record = RunRecord {
        schema_version: SCHEMA_VERSION,
        complete: false,
        status: RunStatus::Running,
        started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        tool: host::tool_info(),
        host: host.clone(),
        backend: backend.record().clone(),
        workload: WorkloadRecord {
            load: LoadProfile::ClosedLoop {
                concurrency: concurrency as u32,
            },
            requests,
            duration_s: args.duration.map(|d| d.as_secs_f64()),
            warmup_requests: warmup,
            prompt: PromptSpec {
                source: "synthetic-tokens".into(),
                tokens: args.prompt_tokens,
                seed: args.seed,
            },
            max_tokens: args.max_tokens,
            ignore_eos: args.ignore_eos,
            sampling: SamplingRecord {
                temperature: args.temperature,
                top_p: args.top_p,
                seed: args.seed,
            },
        },
        window: None,
        summary: Default::default(),
        resources: Default::default(),
        files: RunFiles {
            requests_csv: rundir::REQUESTS_CSV.into(),
            samples_csv: rundir::SAMPLES_CSV.into(),
        },
    };
    dir.write_record(&record)?;
    let mut requests_out = dir.requests_writer()?;
    let epoch = Instant::now();
    let baseline = sampler::current_rss_bytes();
    let sampler = Sampler::start(epoch, args.sample_interval, dir.samples_file()?)
        .map_err(|e| CliError::Failure(anyhow::anyhow!("starting the sampler: {e}")))?;

    let vocab = backend.prompt_token_ids();
    let mut agg = Aggregator::new();
    let mut progress = Progress::new(Some(warmup), args.no_progress, args.json);
    let mut write_err: Option<anyhow::Error> = None;
    let mut on_finished = |f: Finished, progress: &mut Progress| {
        let (row, gaps) = request_row(&f, epoch);
        progress.request_done(row.error_kind.is_some(), row.output_tokens);
        agg.add(&row, &gaps);
        if write_err.is_none() {
            if let Err(e) = requests_out.write(&row) {
                write_err = Some(e);
            }
        }
    };
    if warmup > 0 {
        progress.phase("warm-up");
        let phase = Phase {
            warmup: true,
            first_id: 0,
            stop: StopCondition {
                requests: Some(warmup),
                duration: None,
            },
        };
        runner::run_phase(streams, &template, vocab, phase, &INTERRUPTED, |f| {
            on_finished(f, &mut progress)
        });
    }
    if !INTERRUPTED.load(Ordering::SeqCst) {
        progress.reset(requests);
        progress.phase("measuring");
        let phase = Phase {
            warmup: false,
            first_id: warmup,
            stop: StopCondition {
                requests,
                duration: args.duration,
            },
        };
        runner::run_phase(streams, &template, vocab, phase, &INTERRUPTED, |f| {
            on_finished(f, &mut progress)
        });
    }
    progress.finish();
    let interrupted = INTERRUPTED.load(Ordering::SeqCst);
    let samples = sampler
        .stop()
        .map_err(|e| CliError::Failure(anyhow::anyhow!("sampler: {e}")))?;
    requests_out.finish().map_err(CliError::Failure)?;
    if let Some(e) = write_err {
        return Err(CliError::Failure(e));
    }

    let excluded = format!("{warmup} warm-up request(s) run before the window");
    record.window = agg.window(&excluded);
    record.summary = agg.summary();
    record.resources = resources_in_window(
        &samples,
        record.window.as_ref().map(|w| (w.start_s, w.end_s)),
        baseline,
    );
    record.status = if interrupted {
        RunStatus::Interrupted
    } else {
        RunStatus::Finished
    };
    record.complete = !interrupted;
    dir.write_record(&record)?;

    let dir_str = dir.path().display().to_string();
    if args.json {
        let out = serde_json::json!({
            "run_dir": dir_str,
            "complete": record.complete,
            "status": record.status,
            "backend": record.backend.model,
            "threads_per_instance": record.backend.threads_per_instance,
            "window": record.window,
            "summary": record.summary,
            "resources": record.resources,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(anyhow::Error::from)?
        );
    } else {
        print!(
            "{}",
            charter_reports::summary::render_console(&record, &dir_str)
        );
    }
    Ok(if interrupted {
        EXIT_INTERRUPTED
    } else {
        EXIT_OK
    })
}
