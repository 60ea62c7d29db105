//! `charter bench-engine`: the llama-bench table for one in-process model — load time, prefill
//! tokens/s at given prompt lengths, decode tokens/s at given thread counts, peak RSS.
//!
//! candle sizes its compute pools from the environment once per process, so each thread count
//! runs in its own `charter bench-engine-worker` process (the same binary; the resolved
//! [`BackendSpec`] and the plan as one JSON line on stdin, one JSON result line on stdout).
//! The worker's peak RSS (`VmHWM`) is therefore that configuration's own.
//!
//! Each measurement is repeated `--reps` times after one discarded warm-up request, and the
//! median is reported with the range. Prefill = prompt tokens ÷ time to the first generated
//! token (one batched forward pass over the prompt plus one sampling step: what a user waits
//! for); decode = (tokens − 1) ÷ (last token time − first token time) with end-of-sequence
//! ignored. Prompts are token ids from the model's vocabulary, fixed by the seed.

use std::io::{BufRead, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use charter_backends::{BackendSpec, GenRequest, Prompt, Sampling};
use charter_record::WeightsConversionRecord;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::profile::backend::BackendArgs;
use crate::profile::scenario::Origins;
use crate::CliError;

/// Arguments of `charter bench-engine`.
#[derive(Debug, Clone, Args)]
pub struct BenchEngineArgs {
    /// Prompt lengths whose prefill speed is measured.
    #[arg(long, value_name = "N[,N…]", value_delimiter = ',', default_value = "128,512",
          value_parser = crate::values::at_least_one::<usize>)]
    pub prompt_tokens: Vec<usize>,
    /// Tokens generated for the decode measurement (after a prompt of the first length).
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(2..))]
    pub decode_tokens: u32,
    /// Thread counts, each in its own worker process [default: 1 and every logical core].
    #[arg(long, value_name = "N[,N…]", value_delimiter = ',',
          value_parser = crate::values::at_least_one::<usize>)]
    pub thread_counts: Vec<usize>,
    /// Measured repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: u32,
    /// Directory for bench-engine.json (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The model and backend, exactly as `charter profile` takes them (--threads excepted:
    /// use --thread-counts).
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// What a worker is asked to measure.
#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    spec: BackendSpec,
    threads: usize,
    prompt_tokens: Vec<usize>,
    decode_tokens: u32,
    reps: u32,
    seed: u64,
}

/// Median and range of one measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub values: Vec<f64>,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let raw = values.clone();
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: values[0],
            max: values[n - 1],
            values: raw,
        })
    }
}

/// Prefill at one prompt length.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrefillResult {
    pub prompt_tokens: usize,
    /// `None` when the prompt does not fit the model's context (`skipped` says so).
    pub tokens_per_s: Option<Spread>,
    /// Process CPU seconds ÷ wall seconds over each measured request: below the thread count
    /// when other work on the machine took the cores.
    pub cpu_share: Option<Spread>,
    pub skipped: Option<String>,
}

/// One thread count's results (one worker process).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadsResult {
    pub threads: usize,
    /// Model load, as the backend records it (a weight conversion's time is apart).
    pub load_s: f64,
    pub weights_conversion: Option<WeightsConversionRecord>,
    /// Weight formats that ran, as the backend record spells them.
    pub dtype: String,
    pub kv_cache_dtype: Option<String>,
    /// How prefill multiplied by quantized weights, where it differs from decode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_matmul: Option<String>,
    pub prefill: Vec<PrefillResult>,
    /// Decode tokens/s after a prompt of `decode_prompt_tokens`.
    pub decode_prompt_tokens: usize,
    pub decode_tokens: u32,
    pub decode_tokens_per_s: Spread,
    /// Process CPU seconds ÷ wall seconds over each decode request (prompt included).
    pub decode_cpu_share: Spread,
    /// Peak resident set of the worker process (`VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// 1-minute load average before and after the worker ran (other work on the machine).
    pub load_average_before: Option<f64>,
    pub load_average_after: Option<f64>,
}

/// `bench-engine.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchEngineRecord {
    pub tool_version: String,
    pub model: String,
    pub backend: String,
    pub logical_cores: u32,
    pub cpu_model: Option<String>,
    pub reps: u32,
    pub results: Vec<ThreadsResult>,
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds this process has used (all its threads).
fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec; CLOCK_PROCESS_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn with_threads(spec: &BackendSpec, threads: usize) -> Result<BackendSpec, CliError> {
    let mut spec = spec.clone();
    match &mut spec {
        BackendSpec::Candle(o) => o.threads = threads,
        BackendSpec::Onnx(o) => o.session.intra_op_threads = threads,
        _ => {
            return Err(CliError::BadInput(
                "--backend: bench-engine measures in-process models (candle or onnx)".into(),
            ))
        }
    }
    Ok(spec)
}

/// Run `charter bench-engine`; returns the exit code.
pub fn run(args: &BenchEngineArgs, origins: &Origins) -> Result<i32, CliError> {
    if origins.is_set("threads") {
        return Err(origins.bad(
            "threads",
            "bench-engine takes --thread-counts N[,N…] (each in its own process)",
        ));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = args.thread_counts.clone();
    if counts.is_empty() {
        counts = vec![1, cores];
    }
    counts.dedup();
    let base = args.backend.resolve(origins, 1, 1)?;
    let specs: Vec<(usize, BackendSpec)> = counts
        .iter()
        .map(|&t| with_threads(&base, t).map(|s| (t, s)))
        .collect::<Result<_, _>>()?;
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::BadInput(format!("--out {}: cannot create it ({e})", dir.display()))
        })?;
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Failure(anyhow::anyhow!("locating charter's own binary: {e}")))?;
    let mut results = Vec::new();
    let mut model = String::new();
    for (threads, spec) in specs {
        eprintln!("charter bench-engine: {threads} thread(s)…");
        let plan = Plan {
            spec,
            threads,
            prompt_tokens: args.prompt_tokens.clone(),
            decode_tokens: args.decode_tokens,
            reps: args.reps,
            seed: args.backend.seed.unwrap_or(0),
        };
        let before = load_average();
        let mut child = Command::new(&exe)
            .arg("bench-engine-worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::Failure(anyhow::anyhow!("starting a worker: {e}")))?;
        {
            let mut stdin = child.stdin.take().expect("piped stdin");
            let line = serde_json::to_string(&plan).expect("plan serialises");
            stdin
                .write_all(format!("{line}\n").as_bytes())
                .map_err(|e| CliError::Failure(anyhow::anyhow!("writing to a worker: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| CliError::Failure(anyhow::anyhow!("waiting for a worker: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let reply: WorkerReply = text
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| {
                CliError::Failure(anyhow::anyhow!(
                    "bench-engine worker ({threads} threads) exited with {} and no result",
                    out.status
                ))
            })?;
        let mut r = match reply {
            WorkerReply::Ok { model: m, result } => {
                model = m;
                *result
            }
            WorkerReply::LoadError(e) => return Err(CliError::BadInput(e)),
            WorkerReply::Failed(e) => return Err(CliError::Failure(anyhow::anyhow!(e))),
        };
        r.load_average_before = before;
        r.load_average_after = load_average();
        results.push(r);
    }
    let host = crate::host::host_info();
    let record = BenchEngineRecord {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        model,
        backend: match &base {
            BackendSpec::Candle(_) => "candle".into(),
            _ => "onnx".into(),
        },
        logical_cores: host.logical_cores,
        cpu_model: host.cpu_model.clone(),
        reps: args.reps,
        results,
    };
    print!("{}", render(&record));
    if let Some(dir) = &args.out {
        let path = dir.join("bench-engine.json");
        let text = serde_json::to_string_pretty(&record).expect("record serialises");
        std::fs::write(&path, text + "\n")
            .map_err(|e| CliError::Failure(anyhow::anyhow!("writing {}: {e}", path.display())))?;
        eprintln!("charter bench-engine: wrote {}", path.display());
    }
    Ok(crate::EXIT_OK)
}

/// The console table.
pub fn render(r: &BenchEngineRecord) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let first = r.results.first();
    let _ = writeln!(
        out,
        "charter bench-engine: {} ({}), {} logical cores{}, median of {} rep(s)",
        r.model,
        r.backend,
        r.logical_cores,
        r.cpu_model
            .as_ref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default(),
        r.reps
    );
    if let Some(f) = first {
        let _ = writeln!(
            out,
            "  weights {}{}; KV cache {}{}",
            f.dtype,
            f.weights_conversion
                .as_ref()
                .map(|c| format!(", {}", c.describe()))
                .unwrap_or_default(),
            f.kv_cache_dtype.as_deref().unwrap_or("n/a"),
            f.prefill_matmul
                .as_deref()
                .map(|p| format!("\n  prefill: {p}"))
                .unwrap_or_default()
        );
    }
    let mut head = format!("  {:>7} {:>8}", "threads", "load s");
    if let Some(f) = first {
        for p in &f.prefill {
            let _ = write!(head, " {:>13}", format!("pp{} tok/s", p.prompt_tokens));
        }
        let _ = write!(
            head,
            " {:>13} {:>9} {:>10} {:>9}",
            format!("tg{} tok/s", f.decode_tokens),
            "CPU share",
            "peak RSS",
            "load avg"
        );
    }
    let _ = writeln!(out, "{head}");
    for t in &r.results {
        let mut row = format!("  {:>7} {:>8.2}", t.threads, t.load_s);
        for p in &t.prefill {
            let cell = match &p.tokens_per_s {
                Some(s) => format!("{:.1}", s.median),
                None => "n/a".into(),
            };
            let _ = write!(row, " {cell:>13}");
        }
        let _ = write!(
            row,
            " {:>13} {:>9} {:>10} {:>9}",
            format!("{:.1}", t.decode_tokens_per_s.median),
            format!("{:.2}", t.decode_cpu_share.median),
            t.peak_rss_bytes
                .map(charter_reports::summary::human_bytes)
                .unwrap_or_else(|| "n/a".into()),
            match (t.load_average_before, t.load_average_after) {
                (Some(a), Some(b)) => format!("{a:.1}→{b:.1}"),
                _ => "n/a".into(),
            }
        );
        let _ = writeln!(out, "{row}");
        for p in &t.prefill {
            if let Some(why) = &p.skipped {
                let _ = writeln!(out, "    pp{}: {why}", p.prompt_tokens);
            }
        }
    }
    let _ = writeln!(
        out,
        "  (prefill = prompt tokens ÷ time to first token; decode = tokens after the first ÷ their time; \
CPU share = process CPU s ÷ wall s while decoding, below the thread count when other work took the cores)"
    );
    out
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WorkerReply {
    Ok {
        model: String,
        result: Box<ThreadsResult>,
    },
    LoadError(String),
    Failed(String),
}

/// `charter bench-engine-worker`: one thread count, plan on stdin, result on stdout.
pub fn run_worker() -> Result<i32, CliError> {
    let mut line = String::new();
    let reply = match std::io::stdin().lock().read_line(&mut line) {
        Ok(_) => match serde_json::from_str::<Plan>(&line) {
            Ok(plan) => measure(&plan),
            Err(e) => WorkerReply::Failed(format!(
                "charter bench-engine-worker: expected a plan line from `charter bench-engine` ({e})"
            )),
        },
        Err(e) => WorkerReply::Failed(format!("reading the plan: {e}")),
    };
    let code = match &reply {
        WorkerReply::Ok { .. } => crate::EXIT_OK,
        WorkerReply::LoadError(_) => crate::EXIT_BAD_INPUT,
        WorkerReply::Failed(_) => crate::EXIT_FAILURE,
    };
    println!(
        "{}",
        serde_json::to_string(&reply).expect("reply serialises")
    );
    Ok(code)
}

fn measure(plan: &Plan) -> WorkerReply {
    let backend = match plan.spec.load() {
        Ok(b) => b,
        Err(e) => return WorkerReply::LoadError(e.to_string()),
    };
    let rec = backend.record().clone();
    let mut stream = match backend.new_stream() {
        Ok(s) => s,
        Err(e) => return WorkerReply::LoadError(e.to_string()),
    };
    let vocab = backend.prompt_token_ids();
    if vocab.is_empty() {
        return WorkerReply::LoadError("the model has no ordinary tokens to prompt with".into());
    }
    // A fixed pseudo-random walk over the vocabulary (splitmix64 on the seed).
    let prompt = |n: usize| -> Vec<u32> {
        let mut x = plan.seed ^ 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                vocab[((z ^ (z >> 31)) % vocab.len() as u64) as usize]
            })
            .collect()
    };
    // Times of each token event of one greedy request.
    // Token times of one greedy request, and its share of CPU (CPU seconds ÷ wall seconds).
    let mut timed =
        |ids: Vec<u32>, max_tokens: u32| -> Result<(Instant, Vec<Instant>, f64), String> {
            let req = GenRequest {
                prompt: Prompt::Tokens(ids),
                max_tokens,
                ignore_eos: true,
                sampling: Sampling::greedy(),
            };
            let mut times = Vec::with_capacity(max_tokens as usize);
            let cpu0 = process_cpu_s();
            let start = Instant::now();
            stream
                .generate(&req, &mut |ev| {
                    times.push(ev.at);
                    ControlFlow::Continue(())
                })
                .map_err(|e| e.message)?;
            let share = (process_cpu_s() - cpu0) / start.elapsed().as_secs_f64();
            Ok((start, times, share))
        };
    let limit = rec.context_limit_tokens as usize;
    let decode_prompt = plan.prompt_tokens[0];
    let mut run = || -> Result<ThreadsResult, String> {
        // Warm-up: pools, caches, page faults of the weights.
        timed(prompt(decode_prompt.min(limit.saturating_sub(2)).max(1)), 2)?;
        let mut prefill = Vec::new();
        for &n in &plan.prompt_tokens {
            if n + 1 > limit {
                prefill.push(PrefillResult {
                    prompt_tokens: n,
                    tokens_per_s: None,
                    cpu_share: None,
                    skipped: Some(format!(
                        "not measured: {n} prompt tokens + 1 exceed the model's context of {limit}"
                    )),
                });
                continue;
            }
            let (mut v, mut shares) = (Vec::new(), Vec::new());
            for _ in 0..plan.reps {
                let (start, times, share) = timed(prompt(n), 1)?;
                let first = times.first().ok_or("no token was generated")?;
                v.push(n as f64 / first.duration_since(start).as_secs_f64());
                shares.push(share);
            }
            prefill.push(PrefillResult {
                prompt_tokens: n,
                tokens_per_s: Spread::of(v),
                cpu_share: Spread::of(shares),
                skipped: None,
            });
        }
        let decode_tokens = plan
            .decode_tokens
            .min(limit.saturating_sub(decode_prompt) as u32);
        if decode_tokens < 2 {
            return Err(format!(
                "decode not measurable: a {decode_prompt}-token prompt leaves no room in the context of {limit}"
            ));
        }
        let (mut v, mut shares) = (Vec::new(), Vec::new());
        for _ in 0..plan.reps {
            let (_, times, share) = timed(prompt(decode_prompt), decode_tokens)?;
            let (Some(a), Some(b)) = (times.first(), times.last()) else {
                return Err("no token was generated".into());
            };
            v.push((times.len() - 1) as f64 / b.duration_since(*a).as_secs_f64());
            shares.push(share);
        }
        Ok(ThreadsResult {
            threads: plan.threads,
            load_s: rec.load_time_s,
            weights_conversion: rec.weights_conversion.clone(),
            dtype: rec.dtype.clone(),
            kv_cache_dtype: rec.kv_cache.as_ref().map(|k| k.dtype.clone()),
            prefill_matmul: rec.prefill_matmul.clone(),
            prefill,
            decode_prompt_tokens: decode_prompt,
            decode_tokens,
            decode_tokens_per_s: Spread::of(v).expect("reps ≥ 1"),
            decode_cpu_share: Spread::of(shares).expect("reps ≥ 1"),
            peak_rss_bytes: peak_rss(),
            load_average_before: None,
            load_average_after: None,
        })
    };
    match run() {
        Ok(result) => WorkerReply::Ok {
            model: rec.model.clone(),
            result: Box::new(result),
        },
        Err(e) => WorkerReply::Failed(e),
    }
}
