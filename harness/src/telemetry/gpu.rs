//! GPU telemetry through NVML (the NVIDIA Management Library), loaded at run time.
//!
//! Method: [`GpuSource::open`] loads NVML with `nvml-wrapper` — by default `libnvidia-ml.so.1`
//! through the dynamic loader (so `LD_LIBRARY_PATH` is honoured), or a given library path — and
//! calls `nvmlInit_v2`. Nothing is linked at build time: a host without the library or the driver
//! gets an [`Unavailable`] with the reason, never a panic. Each [`GpuSource::read`] then asks every
//! device for:
//! - utilisation (`nvmlDeviceGetUtilizationRates`: GPU and memory-controller busy %, over the
//!   driver's last sample period);
//! - memory used/total (`nvmlDeviceGetMemoryInfo_v2`, bytes);
//! - power (`nvmlDeviceGetPowerUsage`, mW; a ~1 s average on Ampere and newer);
//! - the cumulative energy counter (`nvmlDeviceGetTotalEnergyConsumption`, mJ since driver load,
//!   Volta and newer; `None` where unsupported);
//! - temperature (`nvmlDeviceGetTemperature`, GPU sensor, °C) and SM clock
//!   (`nvmlDeviceGetClockInfo(NVML_CLOCK_SM)`, MHz);
//! - GPU memory used by the watched processes, from the running compute and graphics process
//!   lists (`nvmlDeviceGetComputeRunningProcesses_v3`, `..GraphicsRunningProcesses_v3`).
//!
//! Every field is an `Option`: a call that fails gives `None` for that field in that reading, and
//! the source keeps the first failure reason per device and field ([`GpuSource::unavailable_fields`])
//! so the record can say why (e.g. `unsupported: nvmlDeviceGetTotalEnergyConsumption returned
//! NotSupported`). Nothing unmeasured is reported as 0.
//!
//! Window summaries (`charter_reports::energy::{window_energy, idle_fraction}`) are pure functions of the sampled
//! readings: energy is the difference of the energy counter between the window's first and last
//! samples (method `counter`), else the trapezoidal integral of sampled power (`integrated`);
//! the idle fraction is the share of samples whose GPU utilisation is below a threshold
//! ([`DEFAULT_IDLE_THRESHOLD_PCT`]). The counter updates every ~20–100 ms and power is averaged
//! over ~1 s, so windows shorter than 1–2 s are imprecise (docs: cost-energy.md).
//!
//! Tests run against a scripted fake NVML built from `harness/fake_nvml/fake_nvml.c`.

use std::collections::BTreeMap;
use std::path::Path;

use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use serde::Serialize;

use charter_record::{GpuSample, Sample};
use charter_reports::energy::PowerSample;

use super::Unavailable;
use crate::sampler::Source;

/// How each GPU quantity is read (for the run record).
pub const METHOD: &str = "NVML (nvml-wrapper, libnvidia-ml loaded at run time): utilisation: \
nvmlDeviceGetUtilizationRates; memory: nvmlDeviceGetMemoryInfo_v2; power: nvmlDeviceGetPowerUsage (mW); \
energy: nvmlDeviceGetTotalEnergyConsumption (mJ counter, difference over the window), else trapezoidal \
integral of sampled power; temperature: nvmlDeviceGetTemperature(GPU); SM clock: \
nvmlDeviceGetClockInfo(SM); per-process memory: nvmlDeviceGet{Compute,Graphics}RunningProcesses_v3";

/// The library [`GpuSource::open`] loads when given no path (resolved by the dynamic loader).
pub const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";

/// Paths of the scripted fake NVML libraries that `build.rs` compiles from
/// `harness/fake_nvml/fake_nvml.c` (a test fixture, for tests and benches of other crates; see
/// that file for the script format). The files exist only where a C compiler was found.
pub mod fake {
    /// The full fake (`libfake_nvml.so`).
    pub const LIB: &str = env!("CHARTER_FAKE_NVML");
    /// The fake without `nvmlInit_v2`.
    pub const LIB_NOINIT: &str = env!("CHARTER_FAKE_NVML_NOINIT");
    /// The fake without `nvmlShutdown`.
    pub const LIB_NOSHUTDOWN: &str = env!("CHARTER_FAKE_NVML_NOSHUTDOWN");
}

/// Field names used as keys of [`GpuSource::unavailable_fields`] (the [`DeviceReading`] and
/// [`DeviceInfo`] field names).
pub mod field {
    pub const HANDLE: &str = "handle";
    pub const NAME: &str = "name";
    pub const UUID: &str = "uuid";
    pub const POWER_LIMIT_MW: &str = "power_limit_mw";
    pub const UTIL_GPU_PCT: &str = "util_gpu_pct";
    pub const UTIL_MEM_PCT: &str = "util_mem_pct";
    pub const MEM_USED_BYTES: &str = "mem_used_bytes";
    pub const MEM_TOTAL_BYTES: &str = "mem_total_bytes";
    pub const POWER_MW: &str = "power_mw";
    pub const ENERGY_MJ: &str = "energy_mj";
    pub const TEMP_C: &str = "temp_c";
    pub const SM_CLOCK_MHZ: &str = "sm_clock_mhz";
    pub const PROCESSES: &str = "processes";
}

/// Static facts about one device, read once at [`GpuSource::open`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// NVML device index (as in `nvidia-smi`).
    pub index: u32,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub mem_total_bytes: Option<u64>,
    /// Whether `nvmlDeviceGetTotalEnergyConsumption` answered at open (Volta and newer).
    pub energy_counter_supported: bool,
    /// Enforced power limit (mW), else the power-management limit.
    pub power_limit_mw: Option<u32>,
}

/// GPU memory held by one watched process on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcessMemory {
    pub pid: u32,
    /// Bytes used. `Some(0)` when both process lists were read and the pid is in neither (it has
    /// no context on this device); `None` when the lists could not be read or NVML reports the
    /// amount as not available (e.g. under WDDM).
    pub used_bytes: Option<u64>,
}

/// One device's reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceReading {
    /// NVML device index.
    pub index: u32,
    pub util_gpu_pct: Option<u32>,
    pub util_mem_pct: Option<u32>,
    pub mem_used_bytes: Option<u64>,
    pub mem_total_bytes: Option<u64>,
    pub power_mw: Option<u32>,
    /// Cumulative energy counter since driver load (mJ); `None` where unsupported.
    pub energy_mj: Option<u64>,
    pub temp_c: Option<u32>,
    pub sm_clock_mhz: Option<u32>,
    /// One entry per watched pid, in the order given to [`GpuSource::read`].
    pub processes: Vec<ProcessMemory>,
}

impl DeviceReading {
    /// The power and energy of this reading, stamped `t_s`, for
    /// `charter_reports::energy::window_energy`.
    pub fn power_sample(&self, t_s: f64) -> PowerSample {
        PowerSample {
            t_s,
            power_mw: self.power_mw,
            energy_mj: self.energy_mj,
        }
    }
}

/// One reading of every device, in the order of [`GpuSource::devices`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuReading {
    pub devices: Vec<DeviceReading>,
}

/// An open NVML session over every device it reports.
pub struct GpuSource {
    nvml: Nvml,
    library: String,
    driver_version: Option<String>,
    devices: Vec<DeviceInfo>,
    /// First failure reason per device (same order as `devices`) and field.
    failures: Vec<BTreeMap<&'static str, String>>,
}

impl std::fmt::Debug for GpuSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSource")
            .field("library", &self.library)
            .field("driver_version", &self.driver_version)
            .field("devices", &self.devices)
            .finish_non_exhaustive()
    }
}

/// The reason a call failed, as kept in [`GpuSource::unavailable_fields`].
fn reason(call: &str, e: &NvmlError) -> String {
    match e {
        NvmlError::NotSupported => format!("unsupported: {call} returned NotSupported"),
        NvmlError::FailedToLoadSymbol(s) => {
            format!("unsupported: {call} missing from library: {s}")
        }
        e => format!("{call} failed: {e}"),
    }
}

fn keep<T>(
    failures: &mut BTreeMap<&'static str, String>,
    key: &'static str,
    call: &str,
    r: Result<T, NvmlError>,
) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            failures.entry(key).or_insert_with(|| reason(call, &e));
            None
        }
    }
}

impl GpuSource {
    /// Load NVML and list its devices: `None` loads [`DEFAULT_LIBRARY`] through the dynamic
    /// loader, `Some(path)` loads that file. A missing library, a missing `nvmlInit_v2` or
    /// `nvmlShutdown`, a driver that is not loaded or zero devices give [`Unavailable`] with a
    /// reason naming the library.
    pub fn open(lib: Option<&Path>) -> Result<GpuSource, Unavailable> {
        let (library, init) = match lib {
            None => (
                format!("{DEFAULT_LIBRARY} (dynamic loader search path)"),
                Nvml::init(),
            ),
            Some(p) => (
                p.display().to_string(),
                Nvml::builder().lib_path(p.as_os_str()).init(),
            ),
        };
        let nvml = init.map_err(|e| {
            Unavailable::new(match e {
                NvmlError::LibloadingError(e) => {
                    format!("cannot load NVML library {library}: {e}")
                }
                NvmlError::FailedToLoadSymbol(s) => {
                    format!("NVML library {library} lacks nvmlInit_v2: {s}")
                }
                NvmlError::DriverNotLoaded => {
                    format!("NVML library {library}: the NVIDIA driver is not loaded")
                }
                NvmlError::NoPermission => {
                    format!("NVML library {library}: no permission to talk to the NVIDIA driver")
                }
                e => format!("NVML library {library}: nvmlInit_v2 failed: {e}"),
            })
        })?;
        if let Err(e) = &nvml.lib().nvmlShutdown {
            let reason = format!("NVML library {library} lacks nvmlShutdown: {e}");
            // Dropping `Nvml` calls nvmlShutdown unconditionally (and panics without it): leak
            // this one session instead.
            std::mem::forget(nvml);
            return Err(Unavailable::new(reason));
        }
        let count = nvml.device_count().map_err(|e| {
            Unavailable::new(format!(
                "NVML library {library}: nvmlDeviceGetCount_v2 failed: {e}"
            ))
        })?;
        if count == 0 {
            return Err(Unavailable::new(format!(
                "NVML library {library} reports no GPU devices"
            )));
        }
        let driver_version = nvml.sys_driver_version().ok();
        let mut devices = Vec::with_capacity(count as usize);
        let mut failures = Vec::with_capacity(count as usize);
        for index in 0..count {
            let mut f = BTreeMap::new();
            let info = match nvml.device_by_index(index) {
                Ok(d) => device_info(index, &d, &mut f),
                Err(e) => {
                    f.insert(field::HANDLE, reason("nvmlDeviceGetHandleByIndex_v2", &e));
                    DeviceInfo {
                        index,
                        name: None,
                        uuid: None,
                        mem_total_bytes: None,
                        energy_counter_supported: false,
                        power_limit_mw: None,
                    }
                }
            };
            devices.push(info);
            failures.push(f);
        }
        Ok(GpuSource {
            nvml,
            library,
            driver_version,
            devices,
            failures,
        })
    }

    /// The library that was loaded (a path, or [`DEFAULT_LIBRARY`] with a note).
    pub fn library(&self) -> &str {
        &self.library
    }

    /// The driver version NVML reports (`nvmlSystemGetDriverVersion`), if it answered.
    pub fn driver_version(&self) -> Option<&str> {
        self.driver_version.as_deref()
    }

    /// Static facts about every device, in NVML index order.
    pub fn devices(&self) -> &[DeviceInfo] {
        &self.devices
    }

    /// First failure reason per field (keys from [`field`]), one map per device in the order
    /// of [`GpuSource::devices`]. A field absent from the map has never failed.
    pub fn unavailable_fields(&self) -> &[BTreeMap<&'static str, String>] {
        &self.failures
    }

    /// Read every device now. `watch_pids` are the processes whose GPU memory is reported
    /// (an empty slice skips the process-list calls).
    pub fn read(&mut self, watch_pids: &[u32]) -> GpuReading {
        let mut out = Vec::with_capacity(self.devices.len());
        for (info, f) in self.devices.iter().zip(self.failures.iter_mut()) {
            let mut r = DeviceReading {
                index: info.index,
                util_gpu_pct: None,
                util_mem_pct: None,
                mem_used_bytes: None,
                mem_total_bytes: None,
                power_mw: None,
                energy_mj: None,
                temp_c: None,
                sm_clock_mhz: None,
                processes: watch_pids
                    .iter()
                    .map(|&pid| ProcessMemory {
                        pid,
                        used_bytes: None,
                    })
                    .collect(),
            };
            let dev = match self.nvml.device_by_index(info.index) {
                Ok(d) => d,
                Err(e) => {
                    f.entry(field::HANDLE)
                        .or_insert_with(|| reason("nvmlDeviceGetHandleByIndex_v2", &e));
                    out.push(r);
                    continue;
                }
            };
            // Utilisation first: it is the call the fake NVML advances its script on.
            match dev.utilization_rates() {
                Ok(u) => {
                    r.util_gpu_pct = Some(u.gpu);
                    r.util_mem_pct = Some(u.memory);
                }
                Err(e) => {
                    let why = reason("nvmlDeviceGetUtilizationRates", &e);
                    f.entry(field::UTIL_GPU_PCT).or_insert_with(|| why.clone());
                    f.entry(field::UTIL_MEM_PCT).or_insert(why);
                }
            }
            match dev.memory_info() {
                Ok(m) => {
                    r.mem_used_bytes = Some(m.used);
                    r.mem_total_bytes = Some(m.total);
                }
                Err(e) => {
                    let why = reason("nvmlDeviceGetMemoryInfo_v2", &e);
                    f.entry(field::MEM_USED_BYTES)
                        .or_insert_with(|| why.clone());
                    f.entry(field::MEM_TOTAL_BYTES).or_insert(why);
                }
            }
            r.power_mw = keep(
                f,
                field::POWER_MW,
                "nvmlDeviceGetPowerUsage",
                dev.power_usage(),
            );
            r.energy_mj = keep(
                f,
                field::ENERGY_MJ,
                "nvmlDeviceGetTotalEnergyConsumption",
                dev.total_energy_consumption(),
            );
            r.temp_c = keep(
                f,
                field::TEMP_C,
                "nvmlDeviceGetTemperature(GPU)",
                dev.temperature(TemperatureSensor::Gpu),
            );
            r.sm_clock_mhz = keep(
                f,
                field::SM_CLOCK_MHZ,
                "nvmlDeviceGetClockInfo(SM)",
                dev.clock_info(Clock::SM),
            );
            if !watch_pids.is_empty() {
                process_memory(&dev, &mut r.processes, f);
            }
            out.push(r);
        }
        GpuReading { devices: out }
    }
}

fn device_info(index: u32, d: &Device<'_>, f: &mut BTreeMap<&'static str, String>) -> DeviceInfo {
    let name = keep(f, field::NAME, "nvmlDeviceGetName", d.name());
    let uuid = keep(f, field::UUID, "nvmlDeviceGetUUID", d.uuid());
    let mem_total_bytes = keep(
        f,
        field::MEM_TOTAL_BYTES,
        "nvmlDeviceGetMemoryInfo_v2",
        d.memory_info().map(|m| m.total),
    );
    let energy_counter_supported = keep(
        f,
        field::ENERGY_MJ,
        "nvmlDeviceGetTotalEnergyConsumption",
        d.total_energy_consumption(),
    )
    .is_some();
    let power_limit_mw = match d.enforced_power_limit() {
        Ok(v) => Some(v),
        Err(_) => keep(
            f,
            field::POWER_LIMIT_MW,
            "nvmlDeviceGetEnforcedPowerLimit / nvmlDeviceGetPowerManagementLimit",
            d.power_management_limit(),
        ),
    };
    DeviceInfo {
        index,
        name,
        uuid,
        mem_total_bytes,
        energy_counter_supported,
        power_limit_mw,
    }
}

/// Fill `procs` (one per watched pid) from the compute and graphics process lists. A pid in both
/// lists counts once (the larger figure: NVML reports a process's memory on the device, not per
/// context).
fn process_memory(
    dev: &Device<'_>,
    procs: &mut [ProcessMemory],
    f: &mut BTreeMap<&'static str, String>,
) {
    let compute = keep(
        f,
        field::PROCESSES,
        "nvmlDeviceGetComputeRunningProcesses_v3",
        dev.running_compute_processes(),
    );
    let graphics = keep(
        f,
        field::PROCESSES,
        "nvmlDeviceGetGraphicsRunningProcesses_v3",
        dev.running_graphics_processes(),
    );
    let complete = compute.is_some() && graphics.is_some();
    let listed: Vec<_> = compute
        .into_iter()
        .flatten()
        .chain(graphics.into_iter().flatten())
        .collect();
    for p in procs.iter_mut() {
        let mut found = false;
        let mut not_available = false;
        let mut used: Option<u64> = None;
        for info in listed.iter().filter(|i| i.pid == p.pid) {
            found = true;
            match info.used_gpu_memory {
                UsedGpuMemory::Used(b) => used = Some(used.map_or(b, |u| u.max(b))),
                UsedGpuMemory::Unavailable => not_available = true,
            }
        }
        p.used_bytes = match (found, used) {
            (_, Some(b)) => Some(b),
            (true, None) => None,
            (false, _) if complete => Some(0),
            (false, _) => None,
        };
        if not_available && used.is_none() {
            f.entry(field::PROCESSES).or_insert_with(|| {
                format!(
                    "unsupported: NVML reports per-process memory of pid {} as not available",
                    p.pid
                )
            });
        }
    }
}

impl Source for GpuSource {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn method(&self) -> String {
        format!("{METHOD} (library {})", self.library())
    }

    /// Every device, with the GPU memory of charter and the targets read before this source.
    fn read(&mut self, tick: &mut Sample) {
        let mut pids = vec![std::process::id()];
        pids.extend(tick.targets.iter().filter_map(|t| t.pid));
        tick.gpus = GpuSource::read(self, &pids)
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
            .collect();
    }

    fn devices(&self) -> Vec<String> {
        self.devices()
            .iter()
            .map(|d| d.name.clone().unwrap_or_else(|| format!("GPU {}", d.index)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_default_or_explicit_library_is_unavailable() {
        let e = GpuSource::open(Some(Path::new("/nonexistent/libnvidia-ml.so.1"))).unwrap_err();
        assert!(e.reason.contains("/nonexistent/libnvidia-ml.so.1"), "{e}");
        assert!(e.to_string().starts_with("unavailable: "));
    }
}
