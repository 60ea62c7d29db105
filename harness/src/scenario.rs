//! Scenario files: one TOML file describing backend, workload, load levels, SLOs, sampler and
//! outputs. Every value goes through the same parser as its command-line flag, and every error
//! names the file, the line and the key, and says what was expected.
//!
//! ```toml
//! [backend]   # kind, model, preset, seed, threads, sim_ttft, sim_itl, sim_cpu; for kind = "openai" or
//!             # "anthropic": base_url, api_key_env, endpoint, tokenizer (model = the served
//!             # name); for kind = "onnx":
//!             # ort_lib, onnx_mode, batch, seq_len, onnx_dim, intra_op_threads,
//!             # inter_op_threads, onnx_spinning, graph_opt, execution_provider,
//!             # onnx_sessions, tokenizer
//! [workload]  # prompts, prompt_tokens, max_tokens, ignore_eos, temperature, top_p, warmup
//! [load]      # concurrency, rate, arrivals, burstiness, max_in_flight, sweep, requests,
//!             # duration, cooldown, lag_threshold, trials, instances, isolation
//! [slo]       # <metric>_p<NN> = "500ms" terms, attainment, search, search_steps
//! [sampler]   # interval, nvml_lib, no_gpu, powercap_root, cpu_tdp, baseline, watch_pid,
//!             # watch_process
//! [output]    # dir, json
//! ```
//! Relative `model`, `ort_lib`, `tokenizer` and prompt-file paths are resolved from the
//! scenario's directory; `dir` from the current directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use toml::{Spanned, Value};

use crate::cli::{self, BackendKind, ProfileArgs, SweepMode};
use crate::CliError;

type Section = BTreeMap<String, Spanned<Value>>;

const SECTIONS: &[(&str, &[&str])] = &[
    (
        "backend",
        &[
            "kind",
            "model",
            "preset",
            "seed",
            "threads",
            "sim_ttft",
            "sim_itl",
            "sim_cpu",
            "ort_lib",
            "onnx_mode",
            "batch",
            "seq_len",
            "onnx_dim",
            "intra_op_threads",
            "inter_op_threads",
            "onnx_spinning",
            "graph_opt",
            "execution_provider",
            "onnx_sessions",
            "tokenizer",
            "base_url",
            "api_key_env",
            "endpoint",
        ],
    ),
    (
        "workload",
        &[
            "prompts",
            "prompt_tokens",
            "max_tokens",
            "ignore_eos",
            "temperature",
            "top_p",
            "warmup",
        ],
    ),
    (
        "load",
        &[
            "concurrency",
            "rate",
            "arrivals",
            "burstiness",
            "max_in_flight",
            "sweep",
            "requests",
            "duration",
            "cooldown",
            "lag_threshold",
            "trials",
            "instances",
            "isolation",
        ],
    ),
    ("slo", &["attainment", "search", "search_steps"]),
    (
        "sampler",
        &[
            "interval",
            "nvml_lib",
            "no_gpu",
            "powercap_root",
            "cpu_tdp",
            "baseline",
            "watch_pid",
            "watch_process",
        ],
    ),
    ("output", &["dir", "json"]),
];

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn err(&self, offset: usize, key: &str, what: impl std::fmt::Display) -> CliError {
        CliError::BadInput(format!(
            "scenario {}:{}: key `{key}`: {what}",
            self.path.display(),
            self.line(offset)
        ))
    }
}

/// A leaf value, with where it is and what it is called.
struct Leaf<'a, 'c> {
    ctx: &'c Ctx<'a>,
    key: String,
    v: &'c Spanned<Value>,
}

impl Leaf<'_, '_> {
    fn err(&self, what: impl std::fmt::Display) -> CliError {
        self.ctx.err(self.v.span().start, &self.key, what)
    }

    /// The value as the text a command-line flag would get (strings as they are, numbers printed).
    fn text(&self) -> Result<String, CliError> {
        match self.v.get_ref() {
            Value::String(s) => Ok(s.clone()),
            Value::Integer(i) => Ok(i.to_string()),
            Value::Float(f) => Ok(f.to_string()),
            other => Err(self.err(format!(
                "expected a string or number, found {}",
                other.type_str()
            ))),
        }
    }

    /// Parse with a command-line parser.
    fn parse<T>(&self, f: impl Fn(&str) -> Result<T, String>) -> Result<T, CliError> {
        f(&self.text()?).map_err(|e| self.err(e))
    }

    fn string(&self) -> Result<String, CliError> {
        match self.v.get_ref() {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.err(format!("expected a string, found {}", other.type_str()))),
        }
    }

    fn bool(&self) -> Result<bool, CliError> {
        match self.v.get_ref() {
            Value::Boolean(b) => Ok(*b),
            other => Err(self.err(format!(
                "expected true or false, found {}",
                other.type_str()
            ))),
        }
    }

    fn int(&self, min: i64) -> Result<i64, CliError> {
        match self.v.get_ref() {
            Value::Integer(i) if *i >= min => Ok(*i),
            Value::Integer(i) => Err(self.err(format!("{i}: expected an integer ≥ {min}"))),
            other => Err(self.err(format!("expected an integer, found {}", other.type_str()))),
        }
    }

    /// One value or an array of them.
    fn list<T>(
        &self,
        f: impl Fn(&Leaf<'_, '_>) -> Result<T, CliError>,
    ) -> Result<Vec<T>, CliError> {
        match self.v.get_ref() {
            Value::Array(items) if items.is_empty() => {
                Err(self.err("expected a value or a non-empty array"))
            }
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    // Array items carry no span of their own: report the array's line.
                    let spanned = Spanned::new(self.v.span(), item.clone());
                    f(&Leaf {
                        ctx: self.ctx,
                        key: self.key.clone(),
                        v: &spanned,
                    })
                })
                .collect(),
            _ => Ok(vec![f(self)?]),
        }
    }

    fn value_enum<T: ValueEnum>(&self) -> Result<T, CliError> {
        let s = self.string()?;
        T::from_str(&s, false).map_err(|_| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
                .collect();
            self.err(format!("`{s}`: expected one of {}", names.join(", ")))
        })
    }
}

fn relative_to(base: &Path, p: String) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

/// Read a scenario file into the same shape as command-line arguments.
pub fn load(path: &Path) -> Result<ProfileArgs, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::BadInput(format!("scenario {}: cannot read: {e}", path.display()))
    })?;
    let ctx = Ctx { path, text: &text };
    let doc: BTreeMap<String, Spanned<Section>> = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| ctx.line(s.start)).unwrap_or(0);
        CliError::BadInput(format!(
            "scenario {}:{line}: {} (expected tables [backend], [workload], [load], [slo], [sampler], [output] of key = value pairs)",
            path.display(),
            e.message().trim()
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut a = ProfileArgs::default();
    // Where each key is, for errors about combinations of keys.
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    let mut slo_terms = Vec::new();
    // Remote backends take a model name, not a path relative to the scenario.
    let mut raw_model: Option<String> = None;
    for (section, table) in &doc {
        let Some((_, known)) = SECTIONS.iter().find(|(n, _)| n == section) else {
            let names: Vec<&str> = SECTIONS.iter().map(|(n, _)| *n).collect();
            return Err(ctx.err(
                table.span().start,
                section,
                format!("unknown section; expected one of [{}]", names.join("], [")),
            ));
        };
        for (key, v) in table.get_ref() {
            let full = format!("{section}.{key}");
            at.insert(full.clone(), v.span().start);
            let leaf = Leaf {
                ctx: &ctx,
                key: full.clone(),
                v,
            };
            if section == "slo" && !known.contains(&key.as_str()) {
                let term = format!("{key}={}", leaf.text()?);
                let one: charter_record::Slo = term.parse().map_err(|e: String| leaf.err(e))?;
                slo_terms.extend(one.terms);
                continue;
            }
            if !known.contains(&key.as_str()) {
                return Err(leaf.err(format!(
                    "unknown key; expected one of: {}",
                    known.join(", ")
                )));
            }
            match full.as_str() {
                "backend.kind" => a.backend = Some(leaf.value_enum::<BackendKind>()?),
                "backend.model" => {
                    let m = leaf.string()?;
                    raw_model = Some(m.clone());
                    a.model = Some(relative_to(&base, m));
                }
                "backend.preset" => a.preset = Some(leaf.string()?),
                "backend.seed" => a.seed = Some(leaf.int(0)? as u64),
                "backend.threads" => a.threads = Some(leaf.int(1)? as usize),
                "backend.sim_ttft" => {
                    a.sim_ttft = Some(
                        leaf.parse(|s| humantime::parse_duration(s).map_err(|e| e.to_string()))?,
                    )
                }
                "backend.sim_itl" => {
                    a.sim_itl = Some(
                        leaf.parse(|s| humantime::parse_duration(s).map_err(|e| e.to_string()))?,
                    )
                }
                "backend.sim_cpu" => a.sim_cpu = Some(leaf.parse(cli::parse_unit_interval)?),
                "backend.ort_lib" => a.onnx.ort_lib = Some(relative_to(&base, leaf.string()?)),
                "backend.onnx_mode" => a.onnx.onnx_mode = Some(leaf.value_enum()?),
                "backend.batch" => a.onnx.batch = Some(leaf.int(1)? as u32),
                "backend.seq_len" => a.onnx.seq_len = Some(leaf.int(1)? as u32),
                "backend.onnx_dim" => a.onnx.onnx_dim = leaf.list(|l| l.parse(cli::parse_dim))?,
                "backend.intra_op_threads" => a.onnx.intra_op_threads = Some(leaf.int(1)? as u32),
                "backend.inter_op_threads" => a.onnx.inter_op_threads = Some(leaf.int(1)? as u32),
                "backend.onnx_spinning" => a.onnx.onnx_spinning = Some(leaf.value_enum()?),
                "backend.graph_opt" => a.onnx.graph_opt = Some(leaf.value_enum()?),
                "backend.execution_provider" => {
                    a.onnx.execution_provider = Some(leaf.value_enum()?)
                }
                "backend.onnx_sessions" => a.onnx.onnx_sessions = Some(leaf.value_enum()?),
                "backend.base_url" => a.remote.base_url = Some(leaf.string()?),
                "backend.api_key_env" => a.remote.api_key_env = Some(leaf.string()?),
                "backend.endpoint" => a.remote.endpoint = Some(leaf.value_enum()?),
                "backend.tokenizer" => a.onnx.tokenizer = Some(relative_to(&base, leaf.string()?)),
                "workload.prompts" => {
                    let spec: charter_workloads::PromptSpec = leaf.parse(|s| s.parse())?;
                    a.prompts = Some(match spec {
                        charter_workloads::PromptSpec::Jsonl(p) => {
                            charter_workloads::PromptSpec::Jsonl(base.join(p))
                        }
                        charter_workloads::PromptSpec::ShareGpt(p) => {
                            charter_workloads::PromptSpec::ShareGpt(base.join(p))
                        }
                        other => other,
                    });
                }
                "workload.prompt_tokens" => a.prompt_tokens = Some(leaf.parse(|s| s.parse())?),
                "workload.max_tokens" => a.max_tokens = Some(leaf.parse(|s| s.parse())?),
                "workload.ignore_eos" => a.ignore_eos = leaf.bool()?,
                "workload.temperature" => {
                    a.temperature = Some(leaf.parse(cli::parse_non_negative)?)
                }
                "workload.top_p" => a.top_p = Some(leaf.parse(cli::parse_fraction)?),
                "workload.warmup" => a.warmup = Some(leaf.int(0)? as u64),
                "load.concurrency" => a.concurrency = Some(leaf.list(|l| Ok(l.int(1)? as u32))?),
                "load.rate" => a.rate = Some(leaf.list(|l| l.parse(cli::parse_rate))?),
                "load.arrivals" => a.arrivals = Some(leaf.value_enum()?),
                "load.burstiness" => a.burstiness = Some(leaf.parse(cli::parse_positive)?),
                "load.max_in_flight" => a.max_in_flight = Some(leaf.int(1)? as u32),
                "load.sweep" => a.sweep = Some(leaf.value_enum::<SweepMode>()?),
                "load.requests" => a.requests = Some(leaf.int(1)? as u64),
                "load.trials" => a.trials = Some(leaf.int(1)? as u32),
                "load.duration" => a.duration = Some(leaf.parse(cli::parse_positive_duration)?),
                "load.cooldown" => {
                    a.cooldown = Some(
                        leaf.parse(|s| humantime::parse_duration(s).map_err(|e| e.to_string()))?,
                    )
                }
                "load.lag_threshold" => {
                    a.lag_threshold = Some(leaf.parse(cli::parse_positive_duration)?)
                }
                "slo.attainment" => a.attainment = Some(leaf.parse(cli::parse_fraction)?),
                "slo.search" => a.search = leaf.bool()?,
                "slo.search_steps" => a.search_steps = Some(leaf.int(1)? as u32),
                "sampler.interval" => {
                    a.sample_interval = Some(leaf.parse(cli::parse_positive_duration)?)
                }
                "sampler.nvml_lib" => a.nvml_lib = Some(relative_to(&base, leaf.string()?)),
                "sampler.no_gpu" => a.no_gpu = leaf.bool()?,
                "sampler.powercap_root" => {
                    a.powercap_root = Some(relative_to(&base, leaf.string()?))
                }
                "sampler.cpu_tdp" => a.cpu_tdp = Some(leaf.parse(cli::parse_positive)?),
                "sampler.baseline" => a.baseline = Some(leaf.parse(cli::parse_positive_duration)?),
                "sampler.watch_pid" => a.watch_pid = Some(leaf.list(|l| Ok(l.int(1)? as u32))?),
                "sampler.watch_process" => a.watch_process = Some(leaf.list(|l| l.string())?),
                "load.instances" => a.instances = Some(leaf.int(1)? as u32),
                "load.isolation" => a.isolation = Some(leaf.value_enum()?),
                "output.dir" => a.out = Some(PathBuf::from(leaf.string()?)),
                "output.json" => a.json = leaf.bool()?,
                _ => unreachable!("every known key is handled"),
            }
        }
    }
    let conflict = |key: &str, what: String| ctx.err(at.get(key).copied().unwrap_or(0), key, what);
    if a.rate.is_some() && a.concurrency.is_some() {
        return Err(conflict(
            "load.rate",
            "[load] has both `concurrency` and `rate`; expected one of them".into(),
        ));
    }
    if a.sweep.is_some() && a.rate.is_some() {
        return Err(conflict(
            "load.sweep",
            "`sweep = \"auto\"` chooses its own rates; drop `rate`".into(),
        ));
    }
    if a.model.is_some() && a.preset.is_some() {
        return Err(conflict(
            "backend.preset",
            "[backend] has both `model` and `preset`; expected one of them".into(),
        ));
    }
    let simulated = a.backend == Some(BackendKind::Simulated);
    let remote = a.backend.is_some_and(|b| b.is_remote());
    if remote {
        a.model = raw_model.map(PathBuf::from);
    }
    for key in [
        "backend.base_url",
        "backend.api_key_env",
        "backend.endpoint",
    ] {
        if !remote && at.contains_key(key) {
            return Err(conflict(
                key,
                "applies only to kind = \"openai\" or \"anthropic\"".into(),
            ));
        }
    }
    if a.backend != Some(BackendKind::Onnx) {
        if let Some(key) = at.keys().find(|k| {
            k.starts_with("backend.")
                && ![
                    "kind",
                    "model",
                    "preset",
                    "seed",
                    "threads",
                    "sim_ttft",
                    "sim_itl",
                    "sim_cpu",
                    "base_url",
                    "api_key_env",
                    "endpoint",
                ]
                .contains(&&k["backend.".len()..])
                && !(remote && k.as_str() == "backend.tokenizer")
        }) {
            return Err(conflict(key, "applies only to kind = \"onnx\"".into()));
        }
    }
    if simulated {
        for key in ["backend.model", "backend.preset"] {
            if at.contains_key(key) {
                return Err(conflict(key, "the simulated backend takes no model".into()));
            }
        }
    } else {
        for key in ["backend.sim_ttft", "backend.sim_itl", "backend.sim_cpu"] {
            if at.contains_key(key) {
                return Err(conflict(key, "applies only to kind = \"simulated\"".into()));
            }
        }
        if let Some(name) = &a.preset {
            if charter_backends::candle::presets::find(name).is_none() {
                return Err(conflict(
                    "backend.preset",
                    format!(
                        "unknown preset `{name}`; expected one of: {}",
                        charter_backends::candle::presets::names()
                    ),
                ));
            }
        }
        if let Some(m) = a.model.as_ref().filter(|_| !remote) {
            if !m.exists() {
                return Err(conflict(
                    "backend.model",
                    format!("{}: not found", m.display()),
                ));
            }
        }
    }
    if a.search && slo_terms.is_empty() {
        return Err(conflict(
            "slo.search",
            "a search needs SLO terms in [slo], e.g. ttft_p99 = \"500ms\"".into(),
        ));
    }
    if a.trials.is_some_and(|t| t > 1)
        && (a.search
            || a.sweep.is_some()
            || (!slo_terms.is_empty() && a.rate.is_none() && a.concurrency.is_none()))
    {
        return Err(conflict(
            "load.trials",
            "trials repeat given levels; they do not combine with a sweep or a search".into(),
        ));
    }
    if let Some(spec) = &a.prompts {
        let loaded = match spec {
            charter_workloads::PromptSpec::Jsonl(p) => {
                Some(charter_workloads::PromptSource::jsonl(p))
            }
            charter_workloads::PromptSpec::ShareGpt(p) => {
                Some(charter_workloads::PromptSource::sharegpt(p))
            }
            _ => None,
        };
        if let Some(Err(e)) = loaded {
            return Err(conflict("workload.prompts", e.to_string()));
        }
        let text = !matches!(spec, charter_workloads::PromptSpec::Synthetic);
        if text && !simulated && a.model.is_none() && a.preset.is_some() {
            return Err(conflict(
                "workload.prompts",
                "random-weight presets have no tokenizer; expected \"synthetic\" (or a model with a tokenizer)".into(),
            ));
        }
    }
    if !slo_terms.is_empty() {
        a.slo = Some(charter_record::Slo { terms: slo_terms });
    }
    a.scenario = Some(path.to_path_buf());
    Ok(a)
}

/// Command-line values win; the scenario fills what the command line left out. Load levels
/// are taken as a unit: any of --concurrency, --rate or --sweep on the command line replaces
/// the scenario's levels.
pub fn merge(cli: &ProfileArgs, file: ProfileArgs) -> ProfileArgs {
    let levels_from_cli = cli.concurrency.is_some() || cli.rate.is_some() || cli.sweep.is_some();
    let model_from_cli = cli.model.is_some() || cli.preset.is_some();
    let c = cli.clone();
    ProfileArgs {
        scenario: c.scenario.or(file.scenario),
        backend: c.backend.or(file.backend),
        model: if model_from_cli { c.model } else { file.model },
        preset: if model_from_cli {
            c.preset
        } else {
            file.preset
        },
        seed: c.seed.or(file.seed),
        threads: c.threads.or(file.threads),
        concurrency: if levels_from_cli {
            c.concurrency
        } else {
            file.concurrency
        },
        rate: if levels_from_cli { c.rate } else { file.rate },
        sweep: if levels_from_cli { c.sweep } else { file.sweep },
        arrivals: c.arrivals.or(file.arrivals),
        burstiness: c.burstiness.or(file.burstiness),
        max_in_flight: c.max_in_flight.or(file.max_in_flight),
        slo: c.slo.or(file.slo),
        attainment: c.attainment.or(file.attainment),
        // Levels from the command line replace the file's plan, its search included.
        search: c.search || (!levels_from_cli && file.search),
        search_steps: c.search_steps.or(file.search_steps),
        requests: c.requests.or(file.requests),
        trials: c.trials.or(file.trials),
        duration: c.duration.or(file.duration),
        warmup: c.warmup.or(file.warmup),
        cooldown: c.cooldown.or(file.cooldown),
        prompts: c.prompts.or(file.prompts),
        prompt_tokens: c.prompt_tokens.or(file.prompt_tokens),
        max_tokens: c.max_tokens.or(file.max_tokens),
        ignore_eos: c.ignore_eos || file.ignore_eos,
        temperature: c.temperature.or(file.temperature),
        top_p: c.top_p.or(file.top_p),
        lag_threshold: c.lag_threshold.or(file.lag_threshold),
        sim_ttft: c.sim_ttft.or(file.sim_ttft),
        sim_itl: c.sim_itl.or(file.sim_itl),
        remote: c.remote.or(file.remote),
        onnx: c.onnx.or(file.onnx),
        out: c.out.or(file.out),
        json: c.json || file.json,
        sample_interval: c.sample_interval.or(file.sample_interval),
        no_progress: c.no_progress || file.no_progress,
        instances: c.instances.or(file.instances),
        isolation: c.isolation.or(file.isolation),
        nvml_lib: c.nvml_lib.or(file.nvml_lib),
        no_gpu: c.no_gpu || file.no_gpu,
        powercap_root: c.powercap_root.or(file.powercap_root),
        cpu_tdp: c.cpu_tdp.or(file.cpu_tdp),
        baseline: c.baseline.or(file.baseline),
        watch_pid: c.watch_pid.or(file.watch_pid),
        watch_process: c.watch_process.or(file.watch_process),
        sim_cpu: c.sim_cpu.or(file.sim_cpu),
    }
}
