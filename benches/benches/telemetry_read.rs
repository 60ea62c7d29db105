//! Cost of one telemetry read per source, as the sampler would take it each tick:
//! - `gpu_read_fake/{1,8}dev`: `GpuSource::read` (watching one pid) against the scripted fake
//!   NVML. This is charter's and nvml-wrapper's own cost per read (9 NVML calls per device);
//!   a real driver adds its ioctl time on top, which only a GPU host can measure.
//! - `rapl_read_fake`: `RaplSource::read` over a fake powercap tree of two packages with two
//!   sub-zones each (6 sysfs-style counter files, on the temp dir's file system).
//!
//! At 10 Hz a source's share of a core is 10 × its read time.

use std::fmt::Write as _;
use std::path::Path;

use charter::telemetry::gpu::{self, GpuSource};
use charter::telemetry::rapl::RaplSource;
use criterion::Criterion;

fn gpu_script(devices: usize) -> String {
    let mut s = String::new();
    let me = std::process::id();
    for d in 0..devices {
        writeln!(
            s,
            "device {d} uuid=GPU-{d} mem_total=85899345920 power_limit_mw=700000 name=Fake GPU {d}"
        )
        .unwrap();
        writeln!(s, "process {d} pid={me} used=1073741824 kind=compute").unwrap();
        writeln!(s, "process {d} pid=1 used=1024 kind=compute").unwrap();
    }
    for d in 0..devices {
        writeln!(s, "tick {d} util=37 mem_util=12 mem_used=1073741824 power_mw=150000 energy_mj=123456 temp=55 sm_clock=1410").unwrap();
    }
    s
}

fn gpu_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("gpu_read_fake");
    for devices in [1, 8] {
        let script = dir.path().join(format!("script{devices}.txt"));
        std::fs::write(&script, gpu_script(devices)).unwrap();
        // Read by the fake at nvmlInit_v2 only (inside `open`).
        std::env::set_var("FAKE_NVML_SCRIPT", &script);
        let mut src = match GpuSource::open(Some(Path::new(gpu::fake::LIB))) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("gpu_read_fake skipped: {e}");
                return;
            }
        };
        let pids = [std::process::id()];
        group.bench_function(format!("{devices}dev"), |b| {
            b.iter(|| src.read(&pids).devices.len())
        });
    }
    group.finish();
}

fn rapl_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for (id, name) in [
        ("intel-rapl:0", "package-0"),
        ("intel-rapl:0:0", "core"),
        ("intel-rapl:0:1", "dram"),
        ("intel-rapl:1", "package-1"),
        ("intel-rapl:1:0", "core"),
        ("intel-rapl:1:1", "dram"),
    ] {
        let z = dir.path().join(id);
        std::fs::create_dir_all(&z).unwrap();
        std::fs::write(z.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(z.join("energy_uj"), "123456789\n").unwrap();
        std::fs::write(z.join("max_energy_range_uj"), "262143328850\n").unwrap();
    }
    let mut src = RaplSource::open(dir.path()).expect("fake powercap tree opens");
    c.bench_function("rapl_read_fake", |b| b.iter(|| src.read().package_total_j));
}

criterion::criterion_group!(benches, gpu_read, rapl_read);
