//! The resolved configuration of `charter profile`: command line over scenario over defaults.

use std::path::PathBuf;
use std::time::Duration;

use charter_backends::candle::{presets, ModelSource};
use charter_record::Slo;
use charter_workloads::{Arrivals, LengthDist, LoadLevel, PromptSource, PromptSpec};

use crate::cli::{BackendKind, ProfileArgs, SweepMode};
use crate::{scenario, CliError};

/// Which backend, configured.
#[derive(Debug, Clone)]
pub enum BackendChoice {
    Candle {
        source: ModelSource,
        threads: Option<usize>,
    },
    Simulated {
        ttft: Duration,
        itl: Duration,
        cpu_fraction: f64,
    },
    /// ONNX Runtime: the model file, `--threads`, and the ONNX flags as given.
    Onnx {
        model: PathBuf,
        threads: Option<usize>,
        args: crate::cli::OnnxArgs,
    },
    /// A remote API (OpenAI-compatible or Anthropic).
    Remote(Box<charter_backends::remote::RemoteOptions>),
}

/// What load to offer.
#[derive(Debug, Clone)]
pub enum Plan {
    /// The given levels, in order (one level is a plain run; several are a sweep).
    Levels(Vec<LoadLevel>),
    /// Closed-loop saturation probe, then open-loop rates at fractions of saturation.
    Auto,
    /// Closed-loop saturation probe, then bisection for the highest rate meeting the SLO.
    Search,
}

/// Fractions of saturation throughput an automatic sweep runs.
pub const AUTO_SWEEP_FRACTIONS: &[f64] = &[0.2, 0.4, 0.6, 0.8, 0.9, 1.0];

#[derive(Debug, Clone)]
pub struct ProfileConfig {
    pub backend: BackendChoice,
    pub seed: u64,
    pub plan: Plan,
    pub arrivals: Arrivals,
    pub burstiness: f64,
    pub max_in_flight: u32,
    /// Closed-loop concurrency of the saturation probe (auto sweep, search).
    pub probe_concurrency: u32,
    pub requests: Option<u64>,
    /// Repeats of each level (Levels plans only).
    pub trials: u32,
    pub duration: Option<Duration>,
    pub warmup: Option<u64>,
    pub cooldown: Duration,
    pub prompts: Option<PromptSpec>,
    pub prompt_tokens: LengthDist,
    /// `--prompt-tokens` was given: without `--prompts`, that asks for synthetic prompts.
    pub prompt_tokens_explicit: bool,
    /// Explicit output cap (overrides a prompt file's own `max_tokens`).
    pub max_tokens: Option<LengthDist>,
    pub ignore_eos: bool,
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub slo: Option<Slo>,
    pub attainment: f64,
    pub search_steps: u32,
    pub lag_threshold: Duration,
    pub out: Option<PathBuf>,
    pub json: bool,
    pub sample_interval: Duration,
    pub no_progress: bool,
    pub scenario: Option<PathBuf>,
    pub isolation: crate::sampler::Isolation,
    pub nvml_lib: Option<PathBuf>,
    pub no_gpu: bool,
    pub powercap_root: PathBuf,
    pub cpu_tdp_w: Option<f64>,
    pub baseline: Option<Duration>,
    pub watch_pids: Vec<u32>,
    pub watch_processes: Vec<String>,
}

impl ProfileConfig {
    /// Merge the scenario (if any) under the command line and apply defaults.
    pub fn resolve(cli: &ProfileArgs) -> Result<Self, CliError> {
        let a = match &cli.scenario {
            Some(p) => scenario::merge(cli, scenario::load(p)?),
            None => cli.clone(),
        };
        let bad = |s: String| Err(CliError::BadInput(s));
        let remote = a.backend.is_some_and(|b| b.is_remote());
        if !remote && a.remote.any_set() {
            return bad("--base-url, --api-key-env, --endpoint, --header, --length-field, --no-include-usage, --extra-body, --*-timeout, --max-event-bytes and --http2-prior-knowledge apply only to --backend openai|anthropic".into());
        }
        let onnx_only = crate::cli::OnnxArgs {
            tokenizer: None,
            ..a.onnx.clone()
        };
        if remote && onnx_only.any_set() {
            return bad("of the ONNX flags, only --tokenizer applies to --backend openai|anthropic (it counts output tokens when the server sends no usage)".into());
        }
        if a.backend != Some(BackendKind::Onnx) && !remote && a.onnx.any_set() {
            return bad("--ort-lib, --onnx-*, --batch, --seq-len, --intra-op-threads, --inter-op-threads, --graph-opt, --execution-provider and --tokenizer apply only to --backend onnx".into());
        }
        let backend = match a.backend.unwrap_or(BackendKind::Candle) {
            BackendKind::Candle => {
                if a.sim_ttft.is_some() || a.sim_itl.is_some() || a.sim_cpu.is_some() {
                    return bad(
                        "--sim-ttft/--sim-itl/--sim-cpu apply only to --backend simulated".into(),
                    );
                }
                BackendChoice::Candle {
                    source: match &a.model {
                        Some(p) => ModelSource::Path(p.clone()),
                        None => ModelSource::Preset {
                            name: a
                                .preset
                                .clone()
                                .unwrap_or_else(|| presets::DEFAULT_PRESET.into()),
                            seed: a.seed.unwrap_or(0),
                        },
                    },
                    threads: a.threads,
                }
            }
            BackendKind::Simulated => {
                if a.model.is_some() || a.preset.is_some() {
                    return bad("--backend simulated takes no --model or --preset".into());
                }
                BackendChoice::Simulated {
                    ttft: a.sim_ttft.unwrap_or(Duration::from_millis(20)),
                    itl: a.sim_itl.unwrap_or(Duration::from_millis(5)),
                    cpu_fraction: a.sim_cpu.unwrap_or(0.0),
                }
            }
            kind @ (BackendKind::Openai | BackendKind::Anthropic) => {
                use charter_backends::remote::{Api, RemoteOptions, Timeouts};
                let api = if kind == BackendKind::Openai {
                    Api::Openai
                } else {
                    Api::Anthropic
                };
                let flag = if api == Api::Openai {
                    "openai"
                } else {
                    "anthropic"
                };
                if a.sim_ttft.is_some() || a.sim_itl.is_some() || a.preset.is_some() {
                    return bad(format!(
                        "--backend {flag} takes --base-url URL --model NAME, not --preset or --sim-*"
                    ));
                }
                let r = &a.remote;
                let Some(base_url) = r.base_url.clone() else {
                    return bad(format!(
                        "--backend {flag} needs --base-url URL (e.g. http://127.0.0.1:8000)"
                    ));
                };
                let Some(model) = a.model.as_ref().map(|m| m.to_string_lossy().into_owned()) else {
                    return bad(format!(
                        "--backend {flag} needs --model NAME (the model name the server serves)"
                    ));
                };
                if api == Api::Anthropic
                    && r.endpoint == Some(charter_backends::remote::Endpoint::Completions)
                {
                    return bad("--endpoint completions: --backend anthropic has only the messages endpoint".into());
                }
                let d = Timeouts::default();
                let mut o = RemoteOptions::new(api, base_url, model);
                o.endpoint = r.endpoint.unwrap_or_default();
                o.api_key_env = r.api_key_env.clone();
                o.headers = r.headers.clone();
                o.length_field = r.length_field.unwrap_or_default();
                o.include_usage = !r.no_include_usage;
                o.extra_body = r.extra_body.clone();
                o.timeouts = Timeouts {
                    connect: r.connect_timeout.unwrap_or(d.connect),
                    headers: r.headers_timeout.unwrap_or(d.headers),
                    idle: r.idle_timeout.unwrap_or(d.idle),
                    total: r.total_timeout,
                };
                o.tokenizer = a.onnx.tokenizer.clone();
                if let Some(m) = r.max_event_bytes {
                    o.max_event_bytes = m as usize;
                }
                o.http2_prior_knowledge = r.http2_prior_knowledge;
                BackendChoice::Remote(Box::new(o))
            }
            BackendKind::Onnx => {
                if a.sim_ttft.is_some() || a.sim_itl.is_some() || a.sim_cpu.is_some() {
                    return bad(
                        "--sim-ttft/--sim-itl/--sim-cpu apply only to --backend simulated".into(),
                    );
                }
                if a.preset.is_some() {
                    return bad("--backend onnx takes --model PATH.onnx, not --preset".into());
                }
                let Some(model) = a.model.clone() else {
                    return bad("--backend onnx needs --model PATH.onnx".into());
                };
                BackendChoice::Onnx {
                    model,
                    threads: a.threads,
                    args: a.onnx.clone(),
                }
            }
        };
        if a.isolation == Some(crate::sampler::Isolation::Process)
            && matches!(backend, BackendChoice::Remote(_))
        {
            return bad("--isolation process starts in-process model instances; a remote API backend has none (sample the server with --watch-pid or --watch-process instead)".into());
        }
        if a.threads == Some(0) {
            return bad("--threads 0: expected at least 1 thread per instance".into());
        }
        let search = a.search
            || (a.slo.is_some()
                && a.rate.is_none()
                && a.concurrency.is_none()
                && a.sweep.is_none());
        if search && a.slo.is_none() {
            return bad("--search needs --slo (e.g. --slo ttft_p99=500ms)".into());
        }
        if search && (a.rate.is_some() || a.sweep.is_some()) {
            return bad("--search chooses its own rates: drop --rate/--sweep".into());
        }
        let probe_single = match &a.concurrency {
            Some(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        };
        if (search || a.sweep.is_some()) && a.concurrency.is_some() && probe_single.is_none() {
            return bad(
                "--sweep auto/--search take at most one --concurrency (the saturation probe's)"
                    .into(),
            );
        }
        let mut concurrency = a.concurrency.clone();
        let mut max_in_flight = a.max_in_flight;
        if let Some(n) = a.instances {
            if a.rate.is_some() || search || a.sweep.is_some() {
                if max_in_flight.is_some_and(|m| m != n) {
                    return bad(format!("--instances {n} caps requests in flight at {n}: drop --max-in-flight or make it {n}"));
                }
                max_in_flight = Some(n);
            } else {
                match &concurrency {
                    Some(c) if c != &vec![n] => {
                        return bad(format!("--instances {n}: each instance serves one request at a time, so the concurrency is {n}; drop --concurrency or make it {n}"));
                    }
                    _ => concurrency = Some(vec![n]),
                }
            }
        }
        let max_in_flight = max_in_flight.unwrap_or(64);
        let open = |rate: f64| LoadLevel::Open {
            rate,
            arrivals: a.arrivals.unwrap_or(Arrivals::Poisson),
            burstiness: a.burstiness.unwrap_or(1.0),
            max_in_flight,
        };
        let plan = if search {
            Plan::Search
        } else if a.sweep == Some(SweepMode::Auto) {
            Plan::Auto
        } else if let Some(rates) = &a.rate {
            Plan::Levels(rates.iter().map(|&r| open(r)).collect())
        } else {
            let cs = concurrency.clone().unwrap_or_else(|| vec![1]);
            Plan::Levels(
                cs.into_iter()
                    .map(|c| LoadLevel::Closed { concurrency: c })
                    .collect(),
            )
        };
        if a.trials.unwrap_or(1) > 1 && !matches!(plan, Plan::Levels(_)) {
            return bad(
                "--trials repeats given levels; it does not combine with --sweep auto or --search"
                    .into(),
            );
        }
        let levels = match &plan {
            Plan::Levels(l) => l.len(),
            _ => 2,
        };
        Ok(Self {
            backend,
            seed: a.seed.unwrap_or(0),
            plan,
            arrivals: a.arrivals.unwrap_or(Arrivals::Poisson),
            burstiness: a.burstiness.unwrap_or(1.0),
            max_in_flight,
            probe_concurrency: probe_single.unwrap_or(max_in_flight),
            requests: a.requests,
            trials: a.trials.unwrap_or(1),
            duration: a.duration,
            warmup: a.warmup,
            cooldown: a.cooldown.unwrap_or(if levels > 1 {
                Duration::from_secs(1)
            } else {
                Duration::ZERO
            }),
            prompts: a.prompts.clone(),
            prompt_tokens: a.prompt_tokens.unwrap_or(LengthDist::fixed(128)),
            prompt_tokens_explicit: a.prompt_tokens.is_some(),
            max_tokens: a.max_tokens,
            ignore_eos: a.ignore_eos,
            temperature: a.temperature.unwrap_or(0.0),
            top_p: a.top_p,
            slo: a.slo.clone(),
            attainment: a.attainment.unwrap_or(0.9),
            search_steps: a.search_steps.unwrap_or(6),
            lag_threshold: a.lag_threshold.unwrap_or(Duration::from_millis(5)),
            out: a.out.clone(),
            json: a.json,
            sample_interval: a.sample_interval.unwrap_or(Duration::from_millis(100)),
            no_progress: a.no_progress,
            scenario: a.scenario.clone(),
            isolation: a.isolation.unwrap_or_default(),
            nvml_lib: a.nvml_lib.clone(),
            no_gpu: a.no_gpu,
            powercap_root: a
                .powercap_root
                .clone()
                .unwrap_or_else(|| PathBuf::from("/sys/class/powercap")),
            cpu_tdp_w: a.cpu_tdp,
            baseline: a.baseline,
            watch_pids: a.watch_pid.clone().unwrap_or_default(),
            watch_processes: a.watch_process.clone().unwrap_or_default(),
        })
    }

    /// Check inputs that exist outside the command line (model path, preset, prompt files)
    /// without loading the model.
    pub fn check_inputs(&self) -> Result<(), CliError> {
        for &pid in &self.watch_pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(CliError::BadInput(format!(
                    "--watch-pid {pid}: no such process"
                )));
            }
        }
        for name in &self.watch_processes {
            if crate::sampler::find_processes(name).is_empty() {
                return Err(CliError::BadInput(format!(
                    "--watch-process {name}: no running process has that command name"
                )));
            }
        }
        if let Some(p) = &self.nvml_lib {
            if !p.exists() {
                return Err(CliError::BadInput(format!(
                    "--nvml-lib {}: file not found (expected an NVML shared library such as libnvidia-ml.so.1)",
                    p.display()
                )));
            }
        }
        if let BackendChoice::Candle { source, .. } = &self.backend {
            match source {
                ModelSource::Preset { name, .. } if presets::find(name).is_none() => {
                    return Err(charter_backends::LoadError::UnknownPreset {
                        name: name.clone(),
                        known: presets::names(),
                    }
                    .into())
                }
                ModelSource::Path(p) if !p.exists() => {
                    return Err(charter_backends::LoadError::NotFound { path: p.clone() }.into())
                }
                _ => {}
            }
        }
        if let Some(spec) = &self.prompts {
            // Presets have no tokenizer; GGUF files and safetensors directories do (checked on
            // load), and the simulated backend takes any prompt.
            let accepts_text = !matches!(
                self.backend,
                BackendChoice::Candle {
                    source: ModelSource::Preset { .. },
                    ..
                }
            );
            self.prompt_source(spec, accepts_text)?;
        }
        Ok(())
    }

    /// The prompt source: the one asked for, else the corpus when text is accepted, else
    /// synthetic token ids.
    pub fn prompt_source(
        &self,
        spec: &PromptSpec,
        accepts_text: bool,
    ) -> Result<PromptSource, CliError> {
        let src = match spec {
            PromptSpec::Synthetic => PromptSource::Synthetic {
                tokens: self.prompt_tokens,
            },
            PromptSpec::Corpus => PromptSource::corpus(),
            PromptSpec::Jsonl(p) => {
                PromptSource::jsonl(p).map_err(|e| CliError::BadInput(format!("--prompts: {e}")))?
            }
            PromptSpec::ShareGpt(p) => PromptSource::sharegpt(p)
                .map_err(|e| CliError::BadInput(format!("--prompts: {e}")))?,
        };
        if src.needs_tokenizer() && !accepts_text {
            return Err(CliError::BadInput(format!(
                "--prompts {}: this model has no tokenizer (random-weight presets take --prompts synthetic)",
                src.describe()
            )));
        }
        Ok(src)
    }

    /// One line for `charter validate`.
    pub fn describe(&self) -> String {
        let backend = match &self.backend {
            BackendChoice::Candle {
                source: ModelSource::Preset { name, .. },
                ..
            } => format!("candle preset {name}"),
            BackendChoice::Candle {
                source: ModelSource::Path(p),
                ..
            } => format!("candle {}", p.display()),
            BackendChoice::Simulated { .. } => "simulated backend".into(),
            BackendChoice::Onnx { model, .. } => format!("onnx {}", model.display()),
            BackendChoice::Remote(o) => format!("{} {} at {}", o.api.as_str(), o.model, o.base_url),
        };
        let plan = match &self.plan {
            Plan::Levels(l) if l.len() == 1 => "1 level".to_string(),
            Plan::Levels(l) => format!("sweep of {} levels", l.len()),
            Plan::Auto => "automatic sweep".into(),
            Plan::Search => format!(
                "SLO search ({}, attainment ≥ {})",
                self.slo.as_ref().map(|s| s.to_string()).unwrap_or_default(),
                self.attainment
            ),
        };
        format!("{backend}, {plan}")
    }

    /// Most instances (streams) any level may use: sizes the default thread count.
    pub fn max_instances(&self) -> u32 {
        match &self.plan {
            Plan::Levels(l) => l
                .iter()
                .map(|l| match l {
                    LoadLevel::Closed { concurrency } => *concurrency,
                    LoadLevel::Open { max_in_flight, .. } => *max_in_flight,
                })
                .max()
                .unwrap_or(1),
            _ => self.probe_concurrency.max(self.max_in_flight),
        }
    }
}
