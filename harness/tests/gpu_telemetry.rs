//! GPU telemetry against the scripted fake NVML (harness/fake_nvml/fake_nvml.c, built by
//! build.rs): every scripted value must come back exactly through `GpuSource::read`, broken or
//! missing libraries must give `Unavailable` (never a panic), and the window summaries must
//! label their method.
//!
//! The fake keeps one global state per process, re-read from `FAKE_NVML_SCRIPT` on every
//! `nvmlInit_v2`, and the environment is process-wide: every test that loads the fake holds
//! `FAKE` for its whole duration.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use charter::telemetry::gpu::{field, GpuReading, GpuSource};
use charter::telemetry::EnergyMethod;
use charter_reports::energy::{idle_fraction, window_energy, DEFAULT_IDLE_THRESHOLD_PCT};

static FAKE: Mutex<()> = Mutex::new(());

const FAKE_LIB: &str = charter::telemetry::gpu::fake::LIB;
const FAKE_LIB_NOINIT: &str = charter::telemetry::gpu::fake::LIB_NOINIT;
const FAKE_LIB_NOSHUTDOWN: &str = charter::telemetry::gpu::fake::LIB_NOSHUTDOWN;

/// Holds the lock, the script file and the environment for one test.
struct Fake {
    _guard: MutexGuard<'static, ()>,
    _dir: tempfile::TempDir,
}

fn fake(script: &str, no_energy: bool) -> Fake {
    let guard = FAKE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.txt");
    std::fs::write(&path, script).unwrap();
    std::env::set_var("FAKE_NVML_SCRIPT", &path);
    if no_energy {
        std::env::set_var("FAKE_NVML_NO_ENERGY", "1");
    } else {
        std::env::remove_var("FAKE_NVML_NO_ENERGY");
    }
    Fake {
        _guard: guard,
        _dir: dir,
    }
}

fn open_fake() -> GpuSource {
    GpuSource::open(Some(Path::new(FAKE_LIB))).expect("fake NVML opens")
}

const TWO_GPUS: &str = "\
# two devices, three ticks each
driver_version=555.42.06
device 0 uuid=GPU-aaaa-0000 mem_total=85899345920 power_limit_mw=700000 name=NVIDIA H100 80GB HBM3
device 1 uuid=GPU-bbbb-1111 mem_total=25769803776 name=Fake L4
tick 0 util=37 mem_util=12 mem_used=1073741824 power_mw=150000 energy_mj=123456 temp=55 sm_clock=1410
tick 0 util=99 mem_util=80 mem_used=2147483648 power_mw=650250 energy_mj=124000 temp=71 sm_clock=1980
tick 0 util=0 mem_util=0 mem_used=1024 power_mw=70001 energy_mj=130001 temp=40 sm_clock=345
tick 1 util=3 mem_util=1 mem_used=5 power_mw=16000 energy_mj=9 temp=30 sm_clock=210
tick 1 util=4 mem_util=2 mem_used=6 power_mw=17000 energy_mj=10 temp=31 sm_clock=211
tick 1 util=5 mem_util=3 mem_used=7 power_mw=18000 energy_mj=11 temp=32 sm_clock=212
";

/// (util, mem_util, mem_used, power_mw, energy_mj, temp, sm_clock) as read.
fn tuple(r: &GpuReading, dev: usize) -> [Option<u64>; 7] {
    let d = &r.devices[dev];
    [
        d.util_gpu_pct.map(u64::from),
        d.util_mem_pct.map(u64::from),
        d.mem_used_bytes,
        d.power_mw.map(u64::from),
        d.energy_mj,
        d.temp_c.map(u64::from),
        d.sm_clock_mhz.map(u64::from),
    ]
}

fn some(v: [u64; 7]) -> [Option<u64>; 7] {
    v.map(Some)
}

#[test]
fn scripted_values_come_back_exactly() {
    let _f = fake(TWO_GPUS, false);
    let mut gpu = open_fake();
    assert_eq!(gpu.library(), FAKE_LIB);
    assert_eq!(gpu.driver_version(), Some("555.42.06"));
    let info = gpu.devices();
    assert_eq!(info.len(), 2);
    assert_eq!(info[0].index, 0);
    assert_eq!(info[0].name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    assert_eq!(info[0].uuid.as_deref(), Some("GPU-aaaa-0000"));
    assert_eq!(info[0].mem_total_bytes, Some(85_899_345_920));
    assert_eq!(info[0].power_limit_mw, Some(700_000));
    assert!(info[0].energy_counter_supported);
    assert_eq!(info[1].index, 1);
    assert_eq!(info[1].name.as_deref(), Some("Fake L4"));
    assert_eq!(info[1].mem_total_bytes, Some(25_769_803_776));
    // Device 1 has no power limit in the script: None, with the reason kept.
    assert_eq!(info[1].power_limit_mw, None);
    let why = &gpu.unavailable_fields()[1][field::POWER_LIMIT_MW];
    assert!(why.starts_with("unsupported: "), "{why}");
    assert!(!gpu.unavailable_fields()[0].contains_key(field::POWER_LIMIT_MW));

    let expected0 = [
        [37, 12, 1_073_741_824, 150_000, 123_456, 55, 1410],
        [99, 80, 2_147_483_648, 650_250, 124_000, 71, 1980],
        [0, 0, 1024, 70_001, 130_001, 40, 345],
    ];
    let expected1 = [
        [3, 1, 5, 16_000, 9, 30, 210],
        [4, 2, 6, 17_000, 10, 31, 211],
        [5, 3, 7, 18_000, 11, 32, 212],
    ];
    for (e0, e1) in expected0.iter().zip(&expected1) {
        let r = gpu.read(&[]);
        assert_eq!(r.devices.len(), 2);
        assert_eq!(r.devices[0].index, 0);
        assert_eq!(r.devices[1].index, 1);
        assert_eq!(tuple(&r, 0), some(*e0));
        assert_eq!(tuple(&r, 1), some(*e1));
        assert_eq!(r.devices[0].mem_total_bytes, Some(85_899_345_920));
        assert!(r.devices[0].processes.is_empty());
    }
    // Past the script's end the fake holds its last tick.
    let r = gpu.read(&[]);
    assert_eq!(tuple(&r, 0), some(expected0[2]));
    for f in gpu.unavailable_fields() {
        assert!(
            f.keys().all(|k| *k == field::POWER_LIMIT_MW),
            "unexpected failures: {f:?}"
        );
    }
}

#[test]
fn missing_fields_are_none_with_the_first_reason() {
    let _f = fake(
        "device 0 uuid=GPU-x mem_total=1000 name=G\n\
         tick 0 util=50 mem_util=5 mem_used=10 power_mw=1000 energy_mj=7 sm_clock=900\n\
         tick 0 util=51 mem_util=6 mem_used=11 energy_mj=8 temp=60 sm_clock=901\n",
        false,
    );
    let mut gpu = open_fake();
    let a = gpu.read(&[]);
    assert_eq!(a.devices[0].temp_c, None);
    assert_eq!(a.devices[0].power_mw, Some(1000));
    let b = gpu.read(&[]);
    assert_eq!(b.devices[0].temp_c, Some(60));
    assert_eq!(b.devices[0].power_mw, None);
    assert_eq!(b.devices[0].sm_clock_mhz, Some(901));
    let f = &gpu.unavailable_fields()[0];
    assert_eq!(
        f[field::TEMP_C],
        "unsupported: nvmlDeviceGetTemperature(GPU) returned NotSupported"
    );
    assert_eq!(
        f[field::POWER_MW],
        "unsupported: nvmlDeviceGetPowerUsage returned NotSupported"
    );
    assert!(!f.contains_key(field::SM_CLOCK_MHZ));
}

#[test]
fn missing_library_is_unavailable_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libnvidia-ml.so.1");
    let e = GpuSource::open(Some(&path)).unwrap_err();
    assert!(e.reason.contains(&path.display().to_string()), "{e}");
    assert!(e.reason.starts_with("cannot load NVML library"), "{e}");
}

#[test]
fn library_without_init_symbol_is_unavailable() {
    let _f = fake(TWO_GPUS, false);
    let e = GpuSource::open(Some(Path::new(FAKE_LIB_NOINIT))).unwrap_err();
    assert!(e.reason.contains(FAKE_LIB_NOINIT), "{e}");
    assert!(e.reason.contains("nvmlInit_v2"), "{e}");
}

#[test]
fn library_without_shutdown_symbol_is_unavailable_not_a_panic() {
    let _f = fake(TWO_GPUS, false);
    let e = GpuSource::open(Some(Path::new(FAKE_LIB_NOSHUTDOWN))).unwrap_err();
    assert!(e.reason.contains("nvmlShutdown"), "{e}");
}

#[test]
fn driver_not_loaded_and_no_devices_are_unavailable() {
    let f = fake("", false);
    std::env::set_var("FAKE_NVML_SCRIPT", "/nonexistent/script");
    let e = GpuSource::open(Some(Path::new(FAKE_LIB))).unwrap_err();
    assert!(e.reason.contains("driver is not loaded"), "{e}");
    drop(f);
    let _f = fake("driver_version=1\n", false);
    let e = GpuSource::open(Some(Path::new(FAKE_LIB))).unwrap_err();
    assert!(e.reason.contains("no GPU devices"), "{e}");
    assert!(e.reason.contains(FAKE_LIB), "{e}");
}

const POWER_SCRIPT: &str = "\
device 0 uuid=GPU-p mem_total=1000 name=P
tick 0 util=0 mem_util=0 mem_used=1 power_mw=100000 energy_mj=1000000 temp=40 sm_clock=100
tick 0 util=80 mem_util=9 mem_used=1 power_mw=300000 energy_mj=1000250 temp=40 sm_clock=100
tick 0 util=90 mem_util=9 mem_used=1 power_mw=200000 energy_mj=1000700 temp=40 sm_clock=100
tick 0 util=3 mem_util=9 mem_used=1 power_mw=100000 energy_mj=1000900 temp=40 sm_clock=100
";

fn power_samples(gpu: &mut GpuSource, times: &[f64]) -> Vec<charter_reports::energy::PowerSample> {
    times
        .iter()
        .map(|&t| gpu.read(&[]).devices[0].power_sample(t))
        .collect()
}

#[test]
fn energy_counter_delta_is_labelled_counter() {
    let _f = fake(POWER_SCRIPT, false);
    let mut gpu = open_fake();
    let s = power_samples(&mut gpu, &[0.0, 1.0, 2.5, 3.0]);
    let e = window_energy(&s).unwrap();
    assert_eq!(e.method, EnergyMethod::Counter);
    assert_eq!(e.method.as_str(), "counter");
    assert_eq!(e.joules, 0.9); // (1_000_900 − 1_000_000) mJ
}

#[test]
fn energy_unsupported_falls_back_to_integrated_power() {
    let _f = fake(POWER_SCRIPT, true);
    let mut gpu = open_fake();
    assert!(!gpu.devices()[0].energy_counter_supported);
    let s = power_samples(&mut gpu, &[0.0, 1.0, 2.5, 3.0]);
    assert!(s.iter().all(|p| p.energy_mj.is_none()));
    let why = &gpu.unavailable_fields()[0][field::ENERGY_MJ];
    assert_eq!(
        why,
        "unsupported: nvmlDeviceGetTotalEnergyConsumption returned NotSupported"
    );
    let e = window_energy(&s).unwrap();
    assert_eq!(e.method, EnergyMethod::Integrated);
    assert_eq!(e.method.as_str(), "integrated");
    // Trapezoids: (100+300)/2·1 + (300+200)/2·1.5 + (200+100)/2·0.5 W·s = 200 + 375 + 75.
    assert!((e.joules - 650.0).abs() < 1e-9, "{e:?}");
}

#[test]
fn idle_fraction_from_readings() {
    let _f = fake(POWER_SCRIPT, false);
    let mut gpu = open_fake();
    let utils: Vec<_> = (0..4)
        .map(|_| gpu.read(&[]).devices[0].util_gpu_pct)
        .collect();
    assert_eq!(utils, vec![Some(0), Some(80), Some(90), Some(3)]);
    assert_eq!(idle_fraction(&utils, DEFAULT_IDLE_THRESHOLD_PCT), Some(0.5));
}

#[test]
fn per_process_memory_for_watched_pids() {
    let me = std::process::id();
    let script = format!(
        "device 0 uuid=GPU-0 mem_total=1000000 name=A\n\
         device 1 uuid=GPU-1 mem_total=1000000 name=B\n\
         process 0 pid={me} used=536870912 kind=compute\n\
         process 0 pid=4242 used=1000 kind=compute\n\
         process 0 pid=777 used=na kind=compute\n\
         process 1 pid={me} used=2048 kind=graphics\n\
         process 1 pid={me} used=4096 kind=compute\n\
         tick 0 util=1 mem_util=1 mem_used=1 power_mw=1 energy_mj=1 temp=1 sm_clock=1\n\
         tick 1 util=1 mem_util=1 mem_used=1 power_mw=1 energy_mj=1 temp=1 sm_clock=1\n"
    );
    let _f = fake(&script, false);
    let mut gpu = open_fake();
    let r = gpu.read(&[me, 777, 31337]);
    let used = |dev: usize| -> Vec<(u32, Option<u64>)> {
        r.devices[dev]
            .processes
            .iter()
            .map(|p| (p.pid, p.used_bytes))
            .collect()
    };
    assert_eq!(
        used(0),
        vec![(me, Some(536_870_912)), (777, None), (31337, Some(0))]
    );
    // In both lists on device 1: counted once (the larger).
    assert_eq!(
        used(1),
        vec![(me, Some(4096)), (777, Some(0)), (31337, Some(0))]
    );
    let why = &gpu.unavailable_fields()[0][field::PROCESSES];
    assert!(
        why.contains("777") && why.contains("not available"),
        "{why}"
    );
}

/// The default path loads `libnvidia-ml.so.1` through the dynamic loader: run this test binary
/// again with `LD_LIBRARY_PATH` pointing at a directory where that name is the fake.
#[test]
fn default_library_is_found_through_ld_library_path() {
    let _f = fake(TWO_GPUS, false);
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(FAKE_LIB, dir.path().join("libnvidia-ml.so.1")).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_open_default", "--ignored", "--nocapture"])
        .env("LD_LIBRARY_PATH", dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
    assert!(text.contains("default open: 2 devices"), "{text}");
}

#[test]
#[ignore = "run by default_library_is_found_through_ld_library_path with LD_LIBRARY_PATH set"]
fn child_open_default() {
    let gpu = GpuSource::open(None).unwrap();
    assert!(gpu.library().starts_with("libnvidia-ml.so.1"));
    assert_eq!(gpu.devices()[0].uuid.as_deref(), Some("GPU-aaaa-0000"));
    println!("default open: {} devices", gpu.devices().len());
}

/// On a host with an NVIDIA GPU and driver: `cargo test -p charter --test gpu_telemetry --
/// --ignored real_nvml` prints what the real library reports.
#[test]
#[ignore = "needs an NVIDIA GPU and driver"]
fn real_nvml_smoke() {
    let mut gpu = match GpuSource::open(None) {
        Ok(g) => g,
        Err(e) => panic!("{e}"),
    };
    println!("driver {:?}", gpu.driver_version());
    for d in gpu.devices() {
        println!("{d:?}");
    }
    let r = gpu.read(&[std::process::id()]);
    for d in &r.devices {
        println!("{d:?}");
        assert!(d.util_gpu_pct.is_some() && d.mem_used_bytes.is_some());
    }
    println!("{:?}", gpu.unavailable_fields());
}

#[test]
fn gpu_source_can_move_to_the_sampler_thread() {
    fn is_send<T: Send>() {}
    is_send::<GpuSource>();
    is_send::<charter::telemetry::rapl::RaplSource>();
}
