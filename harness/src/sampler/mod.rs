//! The resource sampler: one background thread that reads every source at a fixed interval,
//! stamped on the run's clock, and streams what it read to the run directory as it goes.
//!
//! Sources: this process (CPU time, RSS) and the system (per-core load) → `samples.csv`;
//! instances (runner threads or `charter worker` processes) and watched processes →
//! `instances.csv` ([`procs`]); CPU package energy (RAPL) → the `cpu_energy_j` column; NVML
//! GPUs → `gpu.csv`. A source that cannot be read is reported as unavailable with its reason
//! and never fails the run.
//!
//! Methods: process CPU time from `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` (ns resolution);
//! RSS from `/proc/self/statm`; per-core busy shares from `/proc/stat` (busy = all − idle −
//! iowait, in clock ticks). The sampler's own CPU time comes from its thread CPU clock.

pub mod procs;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use charter_record::{SampleRow, SamplerInfo};
use procfs::prelude::*;

pub use procs::{
    attribution_method, find_processes, Instances, Isolation, ProcReader, Target, TargetReading,
    Watched,
};

/// How each sampled quantity is read (recorded in the run record).
pub const METHOD: &str =
    "process CPU: clock_gettime(CLOCK_PROCESS_CPUTIME_ID); RSS: /proc/self/statm; \
per-core busy: /proc/stat (all − idle − iowait ticks); sampler cost: its thread CPU clock";

/// Cumulative CPU state read at one instant.
struct Reading {
    t: Instant,
    process_cpu_s: f64,
    rss_bytes: u64,
    /// (busy ticks, total ticks) per core.
    cores: Vec<(u64, u64)>,
}

fn read_now(me: Option<&procfs::process::Process>, page: u64) -> Reading {
    let t = Instant::now();
    let process_cpu_s = cpu_time::ProcessTime::try_now()
        .map(|p| p.as_duration().as_secs_f64())
        .unwrap_or(f64::NAN);
    let rss_bytes = me
        .and_then(|p| p.statm().ok())
        .map(|s| s.resident * page)
        .unwrap_or(0);
    let cores = procfs::KernelStats::current()
        .map(|k| {
            k.cpu_time
                .iter()
                .map(|c| {
                    let idle = c.idle + c.iowait.unwrap_or(0);
                    let total = c.user
                        + c.nice
                        + c.system
                        + idle
                        + c.irq.unwrap_or(0)
                        + c.softirq.unwrap_or(0)
                        + c.steal.unwrap_or(0);
                    (total - idle, total)
                })
                .collect()
        })
        .unwrap_or_default();
    Reading {
        t,
        process_cpu_s,
        rss_bytes,
        cores,
    }
}

/// One sampler reading (process CPU time, RSS, per-core ticks), as the sampler thread takes it
/// each tick: exposed so benches can measure the tick's cost.
pub struct Probe {
    me: Option<procfs::process::Process>,
    page: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

impl Probe {
    pub fn new() -> Self {
        Self {
            me: procfs::process::Process::myself().ok(),
            page: procfs::page_size(),
        }
    }

    /// Take one reading; returns the RSS in bytes (so the work cannot be optimised away).
    pub fn read(&self) -> u64 {
        read_now(self.me.as_ref(), self.page).rss_bytes
    }
}

/// Current resident set size of this process, in bytes (`None` when /proc is unreadable).
pub fn current_rss_bytes() -> Option<u64> {
    let me = procfs::process::Process::myself().ok()?;
    Some(me.statm().ok()?.resident * procfs::page_size())
}

/// Peak resident set size of this process so far (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let me = procfs::process::Process::myself().ok()?;
    me.status().ok()?.vmhwm.map(|kb| kb * 1024)
}

/// One GPU's reading at one sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuSample {
    pub device: u32,
    pub utilization_pct: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub power_mw: Option<f64>,
    /// The device's cumulative energy counter, mJ.
    pub energy_mj: Option<f64>,
    pub temperature_c: Option<f64>,
    pub sm_clock_mhz: Option<f64>,
    /// GPU memory used by the sampled processes (charter, its workers, watched ones).
    pub process_memory_bytes: Option<u64>,
}

/// A GPU source as the sampler drives it.
pub trait GpuReader: Send {
    /// One reading per device; `pids` are the processes whose GPU memory to sum.
    fn read(&mut self, pids: &[u32]) -> Vec<GpuSample>;
    /// Names per device index.
    fn device_names(&self) -> Vec<String>;
    /// How each quantity is read, in words.
    fn method(&self) -> String;
}

/// A cumulative CPU energy counter (e.g. RAPL packages), joules since it was opened, with
/// counter wraps already handled.
pub trait CpuEnergyReader: Send {
    fn read_j(&mut self) -> Option<f64>;
    fn method(&self) -> String;
}

impl GpuReader for crate::telemetry::gpu::GpuSource {
    fn read(&mut self, pids: &[u32]) -> Vec<GpuSample> {
        crate::telemetry::gpu::GpuSource::read(self, pids)
            .devices
            .into_iter()
            .map(|d| GpuSample {
                device: d.index,
                utilization_pct: d.util_gpu_pct.map(f64::from),
                memory_used_bytes: d.mem_used_bytes,
                memory_total_bytes: d.mem_total_bytes,
                power_mw: d.power_mw.map(f64::from),
                energy_mj: d.energy_mj.map(|e| e as f64),
                temperature_c: d.temp_c.map(f64::from),
                sm_clock_mhz: d.sm_clock_mhz.map(f64::from),
                process_memory_bytes: {
                    let v: Vec<u64> = d.processes.iter().filter_map(|p| p.used_bytes).collect();
                    (!v.is_empty()).then(|| v.iter().sum())
                },
            })
            .collect()
    }

    fn device_names(&self) -> Vec<String> {
        self.devices()
            .iter()
            .map(|d| d.name.clone().unwrap_or_else(|| format!("GPU {}", d.index)))
            .collect()
    }

    fn method(&self) -> String {
        format!(
            "{} (library {})",
            crate::telemetry::gpu::METHOD,
            self.library()
        )
    }
}

impl CpuEnergyReader for crate::telemetry::rapl::RaplSource {
    fn read_j(&mut self) -> Option<f64> {
        crate::telemetry::rapl::RaplSource::read(self).package_total_j
    }

    fn method(&self) -> String {
        let zones: Vec<String> = self
            .zones()
            .iter()
            .map(|z| format!("{} ({})", z.id, z.name))
            .collect();
        format!(
            "RAPL powercap energy_uj of package zones {} (µJ counters, wraps at max_energy_range_uj handled)",
            zones.join(", ")
        )
    }
}

/// A sample as kept in memory (the same values go to the CSV files).
#[derive(Debug, Clone)]
pub struct Sample {
    pub row: SampleRow,
    pub core_busy: Vec<f64>,
    /// Cumulative CPU package energy since the sampler started, J.
    pub cpu_energy_j: Option<f64>,
    pub targets: Vec<(Target, Option<u32>, TargetReading)>,
    pub gpus: Vec<GpuSample>,
}

/// What to sample besides this process and the system.
#[derive(Default)]
pub struct Sources {
    pub instances: Arc<Instances>,
    pub watched: Vec<Watched>,
    pub gpu: Option<Box<dyn GpuReader>>,
    pub cpu_energy: Option<Box<dyn CpuEnergyReader>>,
    /// Sources that could not be opened, with the reason (kept for the record).
    pub unavailable: Vec<(String, String)>,
}

/// Where the sampler writes.
pub struct Outputs<W> {
    pub samples: W,
    pub instances: W,
    pub gpu: W,
}

/// A running sampler; [`Sampler::stop`] ends it and returns what it saw.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    handle: Option<JoinHandle<std::io::Result<SamplerOutput>>>,
    watched: Vec<Watched>,
    gpu_names: Vec<String>,
}

/// Everything the sampler measured.
pub struct SamplerOutput {
    pub samples: Vec<Sample>,
    pub info: SamplerInfo,
}

impl Sampler {
    /// Start sampling every `interval`, on the clock whose zero is `epoch`, writing rows to `out`
    /// (flushed after every row so a crash keeps them).
    pub fn start<W: Write + Send + 'static>(
        epoch: Instant,
        interval: Duration,
        out: Outputs<W>,
        sources: Sources,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let samples = Arc::new(Mutex::new(Vec::new()));
        let samples2 = Arc::clone(&samples);
        let watched = sources.watched.clone();
        let gpu_names = sources
            .gpu
            .as_ref()
            .map(|g| g.device_names())
            .unwrap_or_default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("charter-sampler".into())
            .spawn(move || run(epoch, interval, out, sources, &stop2, &samples2, ready_tx))?;
        // Wait for the first reading so the window starts with a baseline.
        let _ = ready_rx.recv_timeout(Duration::from_secs(5));
        Ok(Self {
            stop,
            samples,
            handle: Some(handle),
            watched,
            gpu_names,
        })
    }

    /// The samples taken so far.
    pub fn snapshot(&self) -> Vec<Sample> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Processes watched on request.
    pub fn watched(&self) -> &[Watched] {
        &self.watched
    }

    /// GPU names by device index (empty without a GPU source).
    pub fn gpu_names(&self) -> &[String] {
        &self.gpu_names
    }

    /// Stop the thread (after one last sample) and collect its results.
    pub fn stop(mut self) -> std::io::Result<SamplerOutput> {
        self.stop.store(true, Ordering::Release);
        let h = self.handle.take().expect("sampler joined once");
        h.thread().unpark();
        h.join()
            .map_err(|_| std::io::Error::other("sampler thread panicked"))?
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn target_label(t: &Target, watched: &[Watched]) -> String {
    match t {
        Target::Instance(i) => format!("instance {i}"),
        Target::Watched(i) => format!("watched {}", watched[*i].name),
    }
}

fn run<W: Write>(
    epoch: Instant,
    interval: Duration,
    out: Outputs<W>,
    mut sources: Sources,
    stop: &AtomicBool,
    shared: &Mutex<Vec<Sample>>,
    ready: std::sync::mpsc::Sender<()>,
) -> std::io::Result<SamplerOutput> {
    let thread_start = cpu_time::ThreadTime::try_now().ok();
    let wall_start = Instant::now();
    let me = procfs::process::Process::myself().ok();
    let page = procfs::page_size();
    let mut procs = ProcReader::new(Arc::clone(&sources.instances), sources.watched.clone());
    let mut w = csv::Writer::from_writer(out.samples);
    let mut wi = csv::Writer::from_writer(out.instances);
    let mut wg = csv::Writer::from_writer(out.gpu);
    let mut prev = read_now(me.as_ref(), page);
    let ncores = prev.cores.len();
    let mut header: Vec<String> = [
        "t_s",
        "process_cpu_s",
        "process_cpu_cores",
        "rss_bytes",
        "system_busy_cores",
        "cpu_energy_j",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend((0..ncores).map(|i| format!("core{i}_busy")));
    w.write_record(&header)?;
    w.flush()?;
    wi.write_record(["t_s", "target", "pid", "cpu_s", "rss_bytes", "alive"])?;
    wi.flush()?;
    wg.write_record([
        "t_s",
        "device",
        "utilization_pct",
        "memory_used_bytes",
        "memory_total_bytes",
        "power_mw",
        "energy_mj",
        "temperature_c",
        "sm_clock_mhz",
        "process_memory_bytes",
    ])?;
    wg.flush()?;
    let _ = ready.send(());
    let me_pid = std::process::id();
    let mut next = Instant::now() + interval;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if !stopping {
            let now = Instant::now();
            if now < next {
                std::thread::park_timeout(next - now);
                continue;
            }
            next += interval;
            // If we fell far behind (suspended machine), skip missed ticks instead of bursting.
            if next < Instant::now() {
                next = Instant::now() + interval;
            }
        }
        let cur = read_now(me.as_ref(), page);
        let targets = procs.read();
        let cpu_energy_j = sources.cpu_energy.as_mut().and_then(|e| e.read_j());
        let gpus = match sources.gpu.as_mut() {
            Some(g) => {
                let mut pids = vec![me_pid];
                pids.extend(targets.iter().filter_map(|t| t.1));
                g.read(&pids)
            }
            None => Vec::new(),
        };
        let dt = cur.t.duration_since(prev.t).as_secs_f64();
        let cores_used = if dt > 0.0 {
            (cur.process_cpu_s - prev.process_cpu_s) / dt
        } else {
            0.0
        };
        let core_busy: Vec<f64> = cur
            .cores
            .iter()
            .zip(prev.cores.iter())
            .map(|(&(b1, t1), &(b0, t0))| {
                let dt = t1.saturating_sub(t0);
                if dt == 0 {
                    0.0
                } else {
                    b1.saturating_sub(b0) as f64 / dt as f64
                }
            })
            .collect();
        let row = SampleRow {
            t_s: cur.t.duration_since(epoch).as_secs_f64(),
            process_cpu_s: cur.process_cpu_s,
            process_cpu_cores: cores_used,
            rss_bytes: cur.rss_bytes,
            system_busy_cores: core_busy.iter().sum(),
        };
        let t_s = format!("{:.6}", row.t_s);
        let mut rec = vec![
            t_s.clone(),
            format!("{:.6}", row.process_cpu_s),
            format!("{:.4}", row.process_cpu_cores),
            row.rss_bytes.to_string(),
            format!("{:.4}", row.system_busy_cores),
            cpu_energy_j.map(|j| format!("{j:.6}")).unwrap_or_default(),
        ];
        rec.extend(core_busy.iter().map(|b| format!("{b:.4}")));
        w.write_record(&rec)?;
        w.flush()?;
        if !targets.is_empty() {
            for (t, pid, r) in &targets {
                wi.write_record([
                    t_s.clone(),
                    target_label(t, procs.watched()),
                    opt(*pid),
                    format!("{:.6}", r.cpu_s),
                    opt(r.rss_bytes),
                    r.alive.to_string(),
                ])?;
            }
            wi.flush()?;
        }
        if !gpus.is_empty() {
            for g in &gpus {
                wg.write_record([
                    t_s.clone(),
                    g.device.to_string(),
                    opt(g.utilization_pct),
                    opt(g.memory_used_bytes),
                    opt(g.memory_total_bytes),
                    opt(g.power_mw),
                    opt(g.energy_mj),
                    opt(g.temperature_c),
                    opt(g.sm_clock_mhz),
                    opt(g.process_memory_bytes),
                ])?;
            }
            wg.flush()?;
        }
        if let Ok(mut v) = shared.lock() {
            v.push(Sample {
                row,
                core_busy,
                cpu_energy_j,
                targets,
                gpus,
            });
        }
        prev = cur;
        if stopping {
            break;
        }
    }
    let wall_s = wall_start.elapsed().as_secs_f64();
    let cpu_time_s = match (thread_start, cpu_time::ThreadTime::try_now().ok()) {
        (Some(a), Some(b)) => b
            .as_duration()
            .saturating_sub(a.as_duration())
            .as_secs_f64(),
        _ => f64::NAN,
    };
    let samples = shared.lock().map(|v| v.clone()).unwrap_or_default();
    let mut method = METHOD.to_string();
    if !sources.watched.is_empty() || !samples.iter().all(|s| s.targets.is_empty()) {
        method.push_str("; instances and watched processes: /proc/<pid>/stat utime+stime, /proc/<pid>/statm, /proc/self/task/<tid>/schedstat");
    }
    if let Some(e) = &sources.cpu_energy {
        method.push_str("; CPU energy: ");
        method.push_str(&e.method());
    }
    if let Some(g) = &sources.gpu {
        method.push_str("; GPU: ");
        method.push_str(&g.method());
    }
    let info = SamplerInfo {
        method,
        interval_s: interval.as_secs_f64(),
        samples: samples.len() as u64,
        cpu_time_s,
        wall_s,
        overhead_fraction_of_core: if wall_s > 0.0 {
            cpu_time_s / wall_s
        } else {
            0.0
        },
        sources: sources
            .unavailable
            .iter()
            .map(|(k, v)| (k.clone(), format!("unavailable: {v}")))
            .collect(),
    };
    Ok(SamplerOutput { samples, info })
}
