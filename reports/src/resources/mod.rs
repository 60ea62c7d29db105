//! Resource summaries of a measured window, from the sampler's readings ([`Sample`]s) and the
//! requests: process and system CPU, per-instance CPU and RSS, watched processes, RAM per 1k
//! tokens of live context ([`ram`]), GPU utilisation / memory / power / energy, CPU energy,
//! energy per token, and the level's flags ([`flags`]: client-bound, contention).
//!
//! Every quantity is computed only from readings that were taken: a reading a source could not
//! take is `None` in the sample and stays out of every mean, sum and fit; a quantity with no
//! reading at all is `None` in the summary, and `unmeasured` says why.

pub mod flags;
pub mod ram;

use std::collections::BTreeMap;

use charter_record::{
    Contention, ContextPoint, EnergyMethod, EnergySummary, GpuSummary, IdleBaseline,
    InstancesSummary, Isolation, MemorySignal, ProcessResources, RamFit, ResourceSummary,
    RunSummary, Sample, Target, ValueSummary,
};

use crate::energy::{self, PowerSample};
use crate::stats::mean;
pub use ram::{live_tokens_at, ContextSpan, LiveContext};

/// What, besides the samples, a window summary needs.
pub struct WindowInputs<'a> {
    /// First measured start to last measured completion (`None`: nothing completed).
    pub window: Option<(f64, f64)>,
    /// RSS after loading, before traffic.
    pub baseline_rss: Option<u64>,
    /// Peak RSS of the process so far (VmHWM).
    pub peak_rss: Option<u64>,
    pub isolation: Isolation,
    /// The model runs in charter's process (candle, ONNX Runtime, simulated), not behind an API.
    pub in_process: bool,
    /// Names of the watched processes, by index.
    pub watched: &'a [String],
    pub gpu_names: &'a [String],
    /// Context held by requests at each sample (for the RAM fits), warm-up included.
    pub context: &'a LiveContext,
    pub summary: &'a RunSummary,
    /// Declared CPU TDP (W) for an `estimated` CPU energy when RAPL is unavailable.
    pub cpu_tdp_w: Option<f64>,
    pub logical_cores: u32,
    pub idle: Option<&'a IdleBaseline>,
    /// Sources that could not be opened, with the reason.
    pub unavailable: &'a BTreeMap<String, String>,
    /// Mean cores of other processes above which the level is contended.
    pub contention_threshold_cores: f64,
}

/// A window's resources and its contention verdict.
pub struct Window {
    pub resources: ResourceSummary,
    pub contention: Contention,
}

/// Indexes of the samples that cover `[a, b]`: each sample covers the interval ending at its
/// timestamp, so keep those overlapping the window.
fn covering(samples: &[Sample], a: f64, b: f64) -> Vec<usize> {
    (1..samples.len())
        .filter(|&i| samples[i].row.t_s > a && samples[i - 1].row.t_s < b)
        .collect()
}

/// CPU cores of `target` over the interval ending at sample `i` (its counter difference).
fn target_cores(samples: &[Sample], i: usize, target: &Target) -> Option<f64> {
    let find = |j: usize| samples[j].targets.iter().find(|t| &t.target == target);
    let (cur, prev) = (find(i)?, find(i - 1)?);
    let dt = samples[i].row.t_s - samples[i - 1].row.t_s;
    Some((cur.cpu_s? - prev.cpu_s?) / dt).filter(|_| dt > 0.0)
}

fn per_target(samples: &[Sample], inside: &[usize], target: &Target) -> ProcessResources {
    let find = |i: usize| samples[i].targets.iter().find(|t| &t.target == target);
    let mut cores = Vec::new();
    let mut rss = Vec::new();
    let mut pid = None;
    let mut first: Option<(f64, f64)> = None;
    let mut last: Option<(f64, f64)> = None;
    for &i in inside {
        let (Some(cur), Some(prev)) = (find(i), find(i - 1)) else {
            continue;
        };
        pid = pid.or(cur.pid);
        let (t0, t1) = (samples[i - 1].row.t_s, samples[i].row.t_s);
        if let (Some(c1), Some(c0)) = (cur.cpu_s, prev.cpu_s) {
            if t1 > t0 {
                cores.push((c1 - c0) / (t1 - t0));
                first.get_or_insert((t0, c0));
                last = Some((t1, c1));
            }
        }
        if let (Some(r), true) = (cur.rss_bytes, cur.alive) {
            rss.push(r as f64);
        }
    }
    let (cpu_seconds, cpu_cores) = match (first, last) {
        (Some((t0, c0)), Some((t1, c1))) if t1 > t0 => (Some(c1 - c0), Some((c1 - c0) / (t1 - t0))),
        _ => (None, None),
    };
    ProcessResources {
        label: String::new(),
        pid,
        cpu_seconds,
        cpu_cores,
        cpu_cores_samples: ValueSummary::from_values(&cores),
        rss_bytes: ValueSummary::from_values(&rss),
    }
}

fn gpu_summaries(samples: &[Sample], inside: &[usize], names: &[String]) -> Vec<GpuSummary> {
    let mut out = Vec::new();
    for (dev, name) in names.iter().enumerate() {
        let dev = dev as u32;
        let get = |i: usize| samples[i].gpus.iter().find(|g| g.device == dev);
        let vals = |f: &dyn Fn(&charter_record::GpuSample) -> Option<f64>| {
            let v: Vec<f64> = inside.iter().filter_map(|&i| get(i).and_then(f)).collect();
            ValueSummary::from_values(&v)
        };
        let util: Vec<f64> = inside
            .iter()
            .filter_map(|&i| get(i)?.utilization_pct)
            .collect();
        // Energy from the sample before the window to its last one.
        let points: Vec<PowerSample> = match (inside.first(), inside.last()) {
            (Some(&first), Some(&last)) => samples[first - 1..=last]
                .iter()
                .filter_map(|s| {
                    let g = s.gpus.iter().find(|g| g.device == dev)?;
                    Some(PowerSample {
                        t_s: s.row.t_s,
                        power_mw: g.power_mw.map(|p| p as u32),
                        energy_mj: g.energy_mj.map(|e| e as u64),
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let e = energy::window_energy(&points).ok();
        out.push(GpuSummary {
            index: dev,
            name: name.clone(),
            utilization_pct: ValueSummary::from_values(&util),
            memory_used_bytes: vals(&|g| g.memory_used_bytes.map(|b| b as f64)),
            memory_total_bytes: inside.iter().find_map(|&i| get(i)?.memory_total_bytes),
            power_w: vals(&|g| g.power_mw.map(|p| p / 1e3)),
            temperature_c: vals(&|g| g.temperature_c),
            sm_clock_mhz: vals(&|g| g.sm_clock_mhz),
            energy_j: e.map(|e| e.joules),
            energy_method: e.map(|e| e.method),
            idle_fraction: energy::idle_fraction(
                &util.iter().map(|&u| Some(u as u32)).collect::<Vec<_>>(),
                energy::DEFAULT_IDLE_THRESHOLD_PCT,
            ),
            idle_threshold_pct: energy::DEFAULT_IDLE_THRESHOLD_PCT,
            process_memory_bytes_max: inside
                .iter()
                .filter_map(|&i| get(i)?.process_memory_bytes)
                .max(),
        });
    }
    out
}

/// The memory a RAM fit reads at a sample for `signal`.
fn memory(s: &Sample, signal: MemorySignal, watched: Option<usize>) -> Option<u64> {
    match signal {
        MemorySignal::Heap => s.row.heap_bytes,
        MemorySignal::Rss => s.row.rss_bytes,
        MemorySignal::WorkersRss => {
            let alive: Vec<u64> = s
                .targets
                .iter()
                .filter(|t| matches!(t.target, Target::Instance(_)) && t.alive)
                .filter_map(|t| t.rss_bytes)
                .collect();
            (!alive.is_empty()).then(|| alive.iter().sum())
        }
        MemorySignal::WatchedRss => {
            let w = Target::Watched(watched?);
            s.targets
                .iter()
                .find(|t| t.target == w && t.alive)?
                .rss_bytes
        }
    }
}

/// The memory signals fitted for a level, headline first: the heap for in-process instances
/// (RSS beside it), the workers' RSS with process isolation, each watched process's RSS with a
/// remote backend (the model's memory is the server's, not charter's).
fn signals(inp: &WindowInputs<'_>) -> Vec<(MemorySignal, Option<usize>)> {
    match (inp.in_process, inp.isolation) {
        (true, Isolation::Thread) => vec![(MemorySignal::Heap, None), (MemorySignal::Rss, None)],
        (true, Isolation::Process) => vec![(MemorySignal::WorkersRss, None)],
        (false, _) => (0..inp.watched.len())
            .map(|i| (MemorySignal::WatchedRss, Some(i)))
            .collect(),
    }
}

/// The samples of a level taken while its requests held context, with their live tokens and
/// the memory of each signal: what `context.csv` keeps and the RAM fits use.
pub fn context_points(
    samples: &[Sample],
    context: &LiveContext,
    level: u32,
    isolation: Isolation,
) -> Vec<ContextPoint> {
    let Some((a, b)) = context.window() else {
        return Vec::new();
    };
    let rss = match isolation {
        Isolation::Thread => MemorySignal::Rss,
        Isolation::Process => MemorySignal::WorkersRss,
    };
    samples
        .iter()
        .filter(|s| s.row.t_s >= a && s.row.t_s <= b)
        .map(|s| ContextPoint {
            t_s: s.row.t_s,
            level,
            live_context_tokens: context.tokens_at_sample(s.row.t_s).unwrap_or(0),
            rss_bytes: memory(s, rss, None),
            heap_bytes: (isolation == Isolation::Thread)
                .then_some(s.row.heap_bytes)
                .flatten(),
        })
        .collect()
}

/// The level's RAM fits, headline first; `Err` says why there is none.
fn ram_fits(samples: &[Sample], inp: &WindowInputs<'_>) -> Result<Vec<RamFit>, String> {
    let signals = signals(inp);
    if signals.is_empty() {
        return Err("a remote backend's model memory is the server's, not charter's: watch the server with --watch-pid or --watch-process to fit its RSS".into());
    }
    let Some((a, b)) = inp.context.window() else {
        return Err("no request held context".into());
    };
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.row.t_s >= a && s.row.t_s <= b)
        .collect();
    let live: Vec<u64> = inside
        .iter()
        .map(|s| inp.context.tokens_at_sample(s.row.t_s).unwrap_or(0))
        .collect();
    let mut fits = Vec::new();
    let mut why = Vec::new();
    for (signal, watched) in signals {
        let points: Vec<(u64, u64)> = inside
            .iter()
            .zip(&live)
            .filter_map(|(s, &tokens)| Some((tokens, memory(s, signal, watched)?)))
            .collect();
        let what = match watched.and_then(|w| inp.watched.get(w)) {
            Some(name) => format!("{} of {name}", signal.describe()),
            None => signal.describe().to_string(),
        };
        let method = format!("least squares of {what} against live context tokens (prompt + generated tokens of in-flight requests, from their token event times) at each sample while requests ran");
        match ram::fit(&points, signal, &method) {
            Some(f) => fits.push(f),
            None => why.push(format!(
                "{what}: {} sample(s), and live context tokens must vary",
                points.len()
            )),
        }
    }
    if fits.is_empty() {
        Err(format!("no fit: {}", why.join("; ")))
    } else {
        Ok(fits)
    }
}

/// Other processes' cores at each covered sample: system busy − charter − its worker processes
/// − watched processes (negative measurement noise clamped to 0).
fn other_cores(samples: &[Sample], inside: &[usize]) -> Vec<f64> {
    inside
        .iter()
        .filter_map(|&i| {
            let s = &samples[i];
            let busy = s.row.system_busy_cores?;
            let own = s.row.process_cpu_cores?;
            // Worker processes and watched processes; instance threads are inside `own`.
            let others: f64 = s
                .targets
                .iter()
                .filter(|t| t.pid.is_some())
                .filter_map(|t| target_cores(samples, i, &t.target))
                .sum();
            Some((busy - own - others).max(0.0))
        })
        .collect()
}

/// Resource use over the window, and its contention verdict.
pub fn window(samples: &[Sample], inp: &WindowInputs<'_>) -> Window {
    let mut r = ResourceSummary {
        peak_rss_bytes: inp.peak_rss,
        ram_baseline_bytes: inp.baseline_rss,
        idle_baseline: inp.idle.cloned(),
        unmeasured: inp.unavailable.clone(),
        ..Default::default()
    };
    let mut contention = flags::contention(&[], inp.contention_threshold_cores);
    match ram_fits(samples, inp) {
        Ok(fits) => {
            r.ram_per_1k_tokens = fits.first().cloned();
            r.ram_fits = fits;
        }
        Err(why) => {
            r.unmeasured.insert("ram_per_1k_tokens".into(), why);
        }
    }
    let Some((a, b)) = inp.window else {
        return Window {
            resources: r,
            contention,
        };
    };
    let inside = covering(samples, a, b);
    if inside.is_empty() {
        r.unmeasured.insert(
            "window".into(),
            "CPU, energy and GPU over the window: the window is shorter than one sample interval"
                .into(),
        );
        return Window {
            resources: r,
            contention,
        };
    }
    let vals = |f: &dyn Fn(&Sample) -> Option<f64>| -> Vec<f64> {
        inside.iter().filter_map(|&i| f(&samples[i])).collect()
    };
    r.process_cpu_cores = ValueSummary::from_values(&vals(&|s| s.row.process_cpu_cores));
    r.system_busy_cores = ValueSummary::from_values(&vals(&|s| s.row.system_busy_cores));
    r.rss_bytes = ValueSummary::from_values(&vals(&|s| s.row.rss_bytes.map(|b| b as f64)));
    let t0 = samples[inside[0] - 1].row.t_s;
    let t1 = samples[*inside.last().unwrap_or(&inside[0])].row.t_s;
    let window_s = t1 - t0;
    // CPU seconds: the cumulative counter across the window, from the sample before it.
    r.process_cpu_seconds = samples[inside[0] - 1]
        .row
        .process_cpu_s
        .zip(
            samples[*inside.last().unwrap_or(&inside[0])]
                .row
                .process_cpu_s,
        )
        .map(|(c0, c1)| c1 - c0);
    for (key, missing, what) in [
        (
            "process_cpu",
            r.process_cpu_cores.is_none(),
            "this process's CPU time could not be read",
        ),
        (
            "system_cpu",
            r.system_busy_cores.is_none(),
            "/proc/stat per-core times could not be read",
        ),
        (
            "rss",
            r.rss_bytes.is_none(),
            "/proc/self/statm could not be read",
        ),
    ] {
        if missing {
            r.unmeasured
                .entry(key.into())
                .or_insert_with(|| what.into());
        }
    }
    contention = flags::contention(
        &other_cores(samples, &inside),
        inp.contention_threshold_cores,
    );
    if contention.other_cores.is_none() {
        r.unmeasured
            .entry("other_cores".into())
            .or_insert_with(|| "system busy cores or this process's CPU were not measured".into());
    }

    // Instances and watched processes.
    let mut targets: Vec<Target> = inside
        .iter()
        .flat_map(|&i| samples[i].targets.iter().map(|t| t.target.clone()))
        .collect();
    targets.sort();
    targets.dedup();
    let mut instances = Vec::new();
    for t in &targets {
        let mut pr = per_target(samples, &inside, t);
        match t {
            Target::Instance(i) => {
                pr.label = format!("instance {i}");
                if inp.isolation == Isolation::Thread {
                    pr.rss_bytes = None; // threads share the process's RAM
                }
                instances.push(pr);
            }
            Target::Watched(i) => {
                pr.label = inp.watched.get(*i).cloned().unwrap_or_default();
                r.watched.push(pr);
            }
        }
    }
    // A remote backend's instances are client streams without a model: nothing to attribute.
    let measured = instances
        .iter()
        .any(|p| p.cpu_seconds.is_some() || p.rss_bytes.is_some());
    if inp.in_process && measured {
        let total: f64 = instances
            .iter()
            .filter_map(|p| p.cpu_seconds)
            .fold(0.0, |a, b| a + b);
        let denominator = match inp.isolation {
            Isolation::Thread => r.process_cpu_seconds,
            // The tree: charter itself plus its workers.
            Isolation::Process => r.process_cpu_seconds.map(|c| c + total),
        };
        r.instances = Some(InstancesSummary {
            isolation: inp.isolation,
            method: attribution_method(inp.isolation).into(),
            cpu_cores_per_instance_mean: mean(instances.iter().filter_map(|p| p.cpu_cores)),
            rss_bytes_per_instance_mean: mean(
                instances
                    .iter()
                    .filter_map(|p| p.rss_bytes.as_ref().map(|v| v.mean)),
            ),
            attributed_cpu_fraction: denominator.filter(|d| *d > 0.0).map(|d| total / d),
            per_instance: instances,
        });
    }

    r.gpus = gpu_summaries(samples, &inside, inp.gpu_names);
    let e = energy_summary(samples, &inside, &r, inp, window_s);
    if e.cpu_j.is_none() {
        r.unmeasured
            .entry("cpu_energy".into())
            .or_insert_with(|| "no RAPL counter and no declared --cpu-tdp for an estimate".into());
    } else if e.total_j.is_none() {
        r.unmeasured.entry("gpu_energy".into()).or_insert_with(|| {
            "a GPU's energy could not be read (no counter and too few power samples)".into()
        });
    }
    r.energy = (e.cpu_j.is_some() || e.gpu_j.is_some()).then_some(e);
    Window {
        resources: r,
        contention,
    }
}

/// How CPU and RSS are attributed to instances under `isolation`, for the record.
pub fn attribution_method(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::Thread => "per-thread CPU time of each instance's runner thread and its own compute pool (/proc/self/task/<tid>/schedstat, ns); RAM is shared by all instances and reported for the process",
        Isolation::Process => "each worker process's utime + stime (/proc/<pid>/stat, clock ticks) and RSS (/proc/<pid>/statm)",
    }
}

/// Energy over the window: CPU from RAPL or the TDP estimate, GPUs from NVML; the total only
/// when every part the machine has was measured.
fn energy_summary(
    samples: &[Sample],
    inside: &[usize],
    r: &ResourceSummary,
    inp: &WindowInputs<'_>,
    window_s: f64,
) -> EnergySummary {
    let mut e = EnergySummary::default();
    let first = samples[inside[0] - 1].row.cpu_energy_j;
    let last = samples[*inside.last().unwrap_or(&inside[0])]
        .row
        .cpu_energy_j;
    if let (Some(c0), Some(c1)) = (first, last) {
        e.cpu_j = Some(c1 - c0);
        e.cpu_method = Some(EnergyMethod::Rapl);
    } else if let (Some(tdp), Some(busy)) = (inp.cpu_tdp_w, r.system_busy_cores.as_ref()) {
        if let Ok(est) =
            energy::estimate_cpu_energy_j(tdp, busy.mean, inp.logical_cores as usize, window_s)
        {
            e.cpu_j = Some(est.joules);
            e.cpu_method = Some(est.method);
        }
    }
    if !r.gpus.is_empty() && r.gpus.iter().all(|g| g.energy_j.is_some()) {
        e.gpu_j = Some(r.gpus.iter().filter_map(|g| g.energy_j).sum());
        e.gpu_method = Some(
            if r.gpus
                .iter()
                .all(|g| g.energy_method == Some(EnergyMethod::Counter))
            {
                EnergyMethod::Counter
            } else {
                EnergyMethod::Integrated
            },
        );
    }
    // GPUs are a part when NVML reported devices; without NVML there are none to count.
    let gpu_part = !r.gpus.is_empty();
    e.total_j = match (e.cpu_j, e.gpu_j, gpu_part) {
        (Some(c), _, false) => Some(c),
        (Some(c), Some(g), true) => Some(c + g),
        _ => None,
    };
    if e.total_j.is_some() {
        e.total_covers = if gpu_part {
            vec!["cpu".into(), "gpu".into()]
        } else {
            vec!["cpu".into()]
        };
    }
    if let Some(total) = e.total_j {
        let tokens = inp.summary.output_tokens;
        let reqs = inp.summary.requests_completed;
        e.per_output_token_j = (tokens > 0).then(|| total / tokens as f64);
        e.per_request_j = (reqs > 0).then(|| total / reqs as f64);
        let idle_w = inp.idle.and_then(|idle| {
            if gpu_part {
                idle.cpu_power_w.zip(idle.gpu_power_w).map(|(a, b)| a + b)
            } else {
                idle.cpu_power_w
            }
        });
        if let Some(w) = idle_w {
            let net = total - w * window_s;
            e.net_j = Some(net);
            e.net_per_output_token_j = (tokens > 0).then(|| net / tokens as f64);
        }
    }
    e
}

/// The idle state over `[a, b]` (before traffic): mean process and system CPU, RSS and power.
pub fn idle_baseline(samples: &[Sample], a: f64, b: f64, gpu_names: &[String]) -> IdleBaseline {
    let inside = covering(samples, a, b);
    let m =
        |f: &dyn Fn(&Sample) -> Option<f64>| mean(inside.iter().filter_map(|&i| f(&samples[i])));
    let (t0, t1) = match (inside.first(), inside.last()) {
        (Some(&f), Some(&l)) => (samples[f - 1].row.t_s, samples[l].row.t_s),
        _ => (a, b),
    };
    let cpu_power_w = match (inside.first(), inside.last()) {
        (Some(&f), Some(&l)) if t1 > t0 => samples[f - 1]
            .row
            .cpu_energy_j
            .zip(samples[l].row.cpu_energy_j)
            .map(|(e0, e1)| (e1 - e0) / (t1 - t0)),
        _ => None,
    };
    let gpus = gpu_summaries(samples, &inside, gpu_names);
    let gpu_power_w = (!gpus.is_empty() && gpus.iter().all(|g| g.energy_j.is_some()) && t1 > t0)
        .then(|| gpus.iter().filter_map(|g| g.energy_j).sum::<f64>() / (t1 - t0));
    IdleBaseline {
        duration_s: t1 - t0,
        process_cpu_cores: m(&|s| s.row.process_cpu_cores),
        system_busy_cores: m(&|s| s.row.system_busy_cores),
        rss_bytes: m(&|s| s.row.rss_bytes.map(|b| b as f64)),
        cpu_power_w,
        gpu_power_w,
    }
}
