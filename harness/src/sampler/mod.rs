//! The resource sampler: one background thread that reads every [`Source`] at a fixed interval,
//! stamped on the run's clock, and streams what it read to the run directory as it goes.
//!
//! A source is opened once (or is unavailable, with the reason, which the record keeps — never a
//! zero) and then fills its part of each tick's [`Sample`]: this process ([`process`]: CPU time,
//! RSS, heap in use), the machine ([`system`]: per-core busy shares), instances and watched
//! processes ([`procs`]), CPU package energy (`telemetry::rapl`) and GPUs (`telemetry::gpu`).
//! The files: `samples.csv` (the [`SampleRow`] plus `core{i}_busy`), `instances.csv` (one row
//! per target), `gpu.csv` (one row per device). The sampler's own CPU time comes from its thread
//! CPU clock.
//!
//! Adding a source: implement [`Source`] in its own module, open it in [`open_sources`], and give
//! its reading a field of [`Sample`] (and a column below); the window summaries live in
//! `charter_reports::resources`.

pub mod process;
mod procfile;
pub mod procs;
pub mod system;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use charter_record::{Sample, SamplerInfo, Target};

use crate::profile::config::SamplerConfig;
use crate::telemetry::Unavailable;
pub use procs::{find_processes, Instances, Isolation, ProcReader, Watched};

/// A telemetry source the sampler reads every tick.
pub trait Source: Send {
    /// Short name: the key under which an unavailable source is recorded (`gpu`, `rapl`, ...).
    fn name(&self) -> &'static str;
    /// How it reads, in words (part of the record's sampler method).
    fn method(&self) -> String;
    /// Read now into this tick's sample (sources run in the order they were opened, so a
    /// source may use what an earlier one read, e.g. the GPU source the targets' pids).
    fn read(&mut self, tick: &mut Sample);
    /// Device names by index, for sources that read devices (GPUs).
    fn devices(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The opened sources, and the ones that could not be opened with the reason.
#[derive(Default)]
pub struct Sources {
    pub sources: Vec<Box<dyn Source>>,
    /// Instances are attached by the runner as its streams start.
    pub instances: Arc<Instances>,
    pub watched: Vec<Watched>,
    /// Sources that could not be opened, with the reason (kept for the record).
    pub unavailable: Vec<(String, String)>,
}

impl Sources {
    /// This process (CPU, RSS, heap) and the machine's per-core load: what every run samples.
    pub fn basic() -> Self {
        let mut src = Sources::default();
        src.add("process", process::ProcessSource::open());
        src.add("heap", process::HeapSource::open());
        src.add("system", system::SystemSource::open());
        src
    }

    /// Keep `s`, or its reason for being unavailable under `name`.
    pub fn add<S: Source + 'static>(&mut self, name: &str, s: Result<S, Unavailable>) {
        match s {
            Ok(s) => self.sources.push(Box::new(s)),
            Err(u) => self.unavailable.push((name.into(), u.reason)),
        }
    }
}

/// Open every source the configuration asks for, in reading order.
pub fn open_sources(cfg: &SamplerConfig) -> Sources {
    let mut src = Sources::basic();
    for &pid in &cfg.watch_pids {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        src.watched.push(Watched {
            pid,
            name: format!("{name} ({pid})"),
        });
    }
    for name in &cfg.watch_processes {
        for w in find_processes(name) {
            if !src.watched.iter().any(|x| x.pid == w.pid) {
                src.watched.push(Watched {
                    pid: w.pid,
                    name: format!("{} ({})", w.name, w.pid),
                });
            }
        }
    }
    let procs = ProcReader::new(Arc::clone(&src.instances), src.watched.clone());
    src.add("instances", Ok::<_, Unavailable>(procs));
    src.add(
        "rapl",
        crate::telemetry::rapl::RaplSource::open(&cfg.powercap_root),
    );
    if cfg.no_gpu {
        src.unavailable
            .push(("gpu".into(), "not sampled (--no-gpu)".into()));
    } else {
        src.add(
            "gpu",
            crate::telemetry::gpu::GpuSource::open(cfg.nvml_lib.as_deref()),
        );
    }
    src
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
        let gpu_names = sources.sources.iter().flat_map(|s| s.devices()).collect();
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

    /// How many samples have been taken.
    pub fn sample_count(&self) -> usize {
        self.samples.lock().map_or(0, |s| s.len())
    }

    /// The times (seconds on the run's clock) of the samples from index `from` on.
    pub fn sample_times_since(&self, from: usize) -> Vec<f64> {
        self.samples.lock().map_or_else(
            |_| Vec::new(),
            |s| {
                s.get(from..)
                    .unwrap_or(&[])
                    .iter()
                    .map(|x| x.row.t_s)
                    .collect()
            },
        )
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

fn fixed(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_default()
}

fn target_label(t: &Target, watched: &[Watched]) -> String {
    match t {
        Target::Instance(i) => format!("instance {i}"),
        Target::Watched(i) => format!("watched {}", watched[*i].name),
    }
}

/// The CSV files of a run's samples.
struct Writers<W: Write> {
    samples: csv::Writer<W>,
    instances: csv::Writer<W>,
    gpu: csv::Writer<W>,
    /// Per-core columns of `samples.csv`, fixed by the first tick.
    cores: Option<usize>,
}

impl<W: Write> Writers<W> {
    fn new(out: Outputs<W>) -> std::io::Result<Self> {
        let mut w = Self {
            samples: csv::Writer::from_writer(out.samples),
            instances: csv::Writer::from_writer(out.instances),
            gpu: csv::Writer::from_writer(out.gpu),
            cores: None,
        };
        w.instances
            .write_record(["t_s", "target", "pid", "cpu_s", "rss_bytes", "alive"])?;
        w.instances.flush()?;
        w.gpu.write_record([
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
        w.gpu.flush()?;
        Ok(w)
    }

    /// The `samples.csv` header, once the first tick has said how many cores there are.
    fn write_header(&mut self, cores: usize) -> std::io::Result<()> {
        let mut header: Vec<String> = [
            "t_s",
            "process_cpu_s",
            "process_cpu_cores",
            "rss_bytes",
            "system_busy_cores",
            "cpu_energy_j",
            "heap_bytes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        header.extend((0..cores).map(|i| format!("core{i}_busy")));
        self.samples.write_record(&header)?;
        Ok(())
    }

    /// Write one tick (the first also writes the `samples.csv` header).
    fn write(&mut self, s: &Sample, watched: &[Watched]) -> std::io::Result<()> {
        let cores = match self.cores {
            Some(n) => n,
            None => {
                let n = s.core_busy.len();
                self.cores = Some(n);
                self.write_header(n)?;
                n
            }
        };
        let r = &s.row;
        let t_s = format!("{:.6}", r.t_s);
        let mut rec = vec![
            t_s.clone(),
            fixed(r.process_cpu_s, 6),
            fixed(r.process_cpu_cores, 4),
            opt(r.rss_bytes),
            fixed(r.system_busy_cores, 4),
            fixed(r.cpu_energy_j, 6),
            opt(r.heap_bytes),
        ];
        rec.extend((0..cores).map(|i| fixed(s.core_busy.get(i).copied(), 4)));
        self.samples.write_record(&rec)?;
        self.samples.flush()?;
        for t in &s.targets {
            self.instances.write_record([
                t_s.clone(),
                target_label(&t.target, watched),
                opt(t.pid),
                fixed(t.cpu_s, 6),
                opt(t.rss_bytes),
                t.alive.to_string(),
            ])?;
        }
        if !s.targets.is_empty() {
            self.instances.flush()?;
        }
        for g in &s.gpus {
            self.gpu.write_record([
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
        if !s.gpus.is_empty() {
            self.gpu.flush()?;
        }
        Ok(())
    }
}

/// One tick: every source reads into a fresh sample stamped now.
fn tick(sources: &mut [Box<dyn Source>], epoch: Instant) -> Sample {
    let mut s = Sample::default();
    s.row.t_s = epoch.elapsed().as_secs_f64();
    for src in sources.iter_mut() {
        src.read(&mut s);
    }
    s
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
    let mut writers = Writers::new(out)?;
    // The heap this thread keeps in stored samples is taken out of the heap signal: it grows
    // with time, and in a run whose context grows with time it would read as memory per token.
    let mut inner_bytes = 0u64;
    let mut retained = 0u64;
    let mut keep = |mut s: Sample, retained: &mut u64| -> std::io::Result<()> {
        if let Some(h) = s.row.heap_bytes {
            s.row.heap_bytes = Some(h.saturating_sub(*retained));
        }
        writers.write(&s, &sources.watched)?;
        if let Ok(mut v) = shared.lock() {
            inner_bytes += process::sample_bytes(&s);
            v.push(s);
            *retained = inner_bytes + process::allocation_bytes(&v, v.capacity());
        }
        Ok(())
    };
    // The first tick is the baseline every later difference (CPU cores, busy shares) starts from.
    keep(tick(&mut sources.sources, epoch), &mut retained)?;
    let _ = ready.send(());
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
        keep(tick(&mut sources.sources, epoch), &mut retained)?;
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
    let method: Vec<String> = sources
        .sources
        .iter()
        .map(|s| format!("{}: {}", s.name(), s.method()))
        .chain(std::iter::once(
            "sampler cost: its thread CPU clock".to_string(),
        ))
        .collect();
    let info = SamplerInfo {
        method: method.join("; "),
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

/// One tick of the default sources (this process, heap, system), as the sampler thread takes
/// it: exposed so benches can measure the tick's cost.
pub struct Probe {
    sources: Vec<Box<dyn Source>>,
    epoch: Instant,
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

impl Probe {
    pub fn new() -> Self {
        Self {
            sources: Sources::basic().sources,
            epoch: Instant::now(),
        }
    }

    /// Take one reading; returns the RSS in bytes (so the work cannot be optimised away).
    pub fn read(&mut self) -> u64 {
        tick(&mut self.sources, self.epoch)
            .row
            .rss_bytes
            .unwrap_or_default()
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
