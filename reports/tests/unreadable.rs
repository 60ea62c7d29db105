//! No zero stands in for an unreadable source: for each telemetry source, the same window is
//! summarised with that source's readings missing (what the sampler keeps when a read fails),
//! and the record, the console and the charter say "not measured" with a reason, or leave the
//! value empty, while the other sources' figures are still there.

mod common;

use std::collections::BTreeMap;

use charter_record::{GpuSample, Isolation, Sample, SampleRow, Target, TargetSample};
use charter_reports::charter;
use charter_reports::render;
use charter_reports::resources::{self, WindowInputs};
use charter_reports::summary;
use common::fixture;

/// The sources a tick reads, each of which can fail on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    ProcessCpu,
    Rss,
    Heap,
    System,
    Rapl,
    Gpu,
    Instance,
}

/// 21 ticks 0.1 s apart: process at 0.5 cores and 100 MB, the machine at 1.5 busy cores, the
/// CPU package at 20 W, one instance at 0.4 cores, one GPU at 50 % and 100 W — with
/// `missing`'s readings left out of every tick.
fn samples(missing: Source) -> Vec<Sample> {
    (0..=20)
        .map(|i| {
            let t = i as f64 * 0.1;
            let has = |s: Source| s != missing;
            Sample {
                row: SampleRow {
                    t_s: t,
                    process_cpu_s: has(Source::ProcessCpu).then_some(0.5 * t),
                    process_cpu_cores: (has(Source::ProcessCpu) && i > 0).then_some(0.5),
                    rss_bytes: has(Source::Rss).then_some(100_000_000),
                    heap_bytes: has(Source::Heap).then_some(60_000_000),
                    system_busy_cores: (has(Source::System) && i > 0).then_some(1.5),
                    cpu_energy_j: has(Source::Rapl).then_some(20.0 * t),
                },
                core_busy: if has(Source::System) && i > 0 {
                    vec![0.75, 0.75]
                } else {
                    Vec::new()
                },
                targets: vec![TargetSample {
                    target: Target::Instance(0),
                    pid: None, // threads of this process (thread isolation)
                    cpu_s: has(Source::Instance).then_some(0.4 * t),
                    rss_bytes: None,
                    alive: true,
                }],
                gpus: vec![GpuSample {
                    device: 0,
                    utilization_pct: has(Source::Gpu).then_some(50.0),
                    memory_used_bytes: has(Source::Gpu).then_some(1 << 30),
                    memory_total_bytes: has(Source::Gpu).then_some(16 << 30),
                    power_mw: has(Source::Gpu).then_some(100_000.0),
                    energy_mj: has(Source::Gpu).then_some(100_000.0 * t),
                    ..Default::default()
                }],
            }
        })
        .collect()
}

/// The window 0.05–1.95 s of `samples`, in-process with thread isolation, on 2 cores, one GPU.
fn window_of(samples: &[Sample], summary: &charter_record::RunSummary) -> resources::Window {
    resources::window(
        samples,
        &WindowInputs {
            window: Some((0.05, 1.95)),
            baseline_rss: None,
            peak_rss: None,
            isolation: Isolation::Thread,
            in_process: true,
            watched: &[],
            gpu_names: &["Test GPU".to_string()],
            context: &Default::default(),
            summary,
            cpu_tdp_w: None,
            logical_cores: 2,
            idle: None,
            unavailable: &BTreeMap::new(),
            contention_threshold_cores: 0.25,
        },
    )
}

/// The fixture run with its first level's resources summarised from `samples(missing)`, and
/// that level's console text and Markdown charter.
fn outputs(missing: Source) -> (charter_record::ResourceSummary, String, String) {
    let mut run = fixture();
    let summary = run.record.levels[0].summary.clone();
    let w = window_of(&samples(missing), &summary);
    run.record.levels.truncate(1);
    run.record.levels[0].resources = w.resources.clone();
    run.record.levels[0].contention = w.contention;
    let console = summary::render_console(&run.record, "run");
    let ch = charter::build(std::slice::from_ref(&run), None, "charter (test)");
    let md = render::markdown(&ch, &[]);
    (w.resources, console, md)
}

#[test]
fn with_every_source_readable_every_figure_is_there() {
    // The control: the same series with nothing missing has every figure the others lack.
    let mut run = fixture();
    let summary = run.record.levels[0].summary.clone();
    // The heap only feeds the RAM fit, which needs spans: nothing else is missing.
    let w = window_of(&samples(Source::Heap), &summary);
    let r = &w.resources;
    assert!((r.process_cpu_cores.as_ref().unwrap().mean - 0.5).abs() < 1e-9);
    assert!((r.system_busy_cores.as_ref().unwrap().mean - 1.5).abs() < 1e-9);
    assert_eq!(r.rss_bytes.as_ref().unwrap().mean, 100e6);
    let e = r.energy.as_ref().unwrap();
    assert!(e.cpu_j.unwrap() > 0.0 && e.gpu_j.unwrap() > 0.0, "{e:?}");
    assert!((w.contention.other_cores.as_ref().unwrap().mean - 1.0).abs() < 1e-9);
    let i = r.instances.as_ref().unwrap();
    assert!((i.cpu_cores_per_instance_mean.unwrap() - 0.4).abs() < 1e-9);
    run.record.levels.truncate(1);
    run.record.levels[0].resources = w.resources.clone();
    let console = summary::render_console(&run.record, "run");
    assert!(console.contains("CPU cores used: mean 0.50"), "{console}");
}

#[test]
fn process_cpu_unreadable() {
    let (r, console, md) = outputs(Source::ProcessCpu);
    assert!(r.process_cpu_cores.is_none() && r.process_cpu_seconds.is_none());
    assert!(
        r.unmeasured.contains_key("process_cpu"),
        "{:?}",
        r.unmeasured
    );
    assert!(
        console
            .contains("CPU cores used: not measured (this process's CPU time could not be read)"),
        "{console}"
    );
    // Other processes = busy − charter: unknown without charter's own CPU.
    assert!(
        console.contains("other processes: not measured"),
        "{console}"
    );
    assert!(!md.contains("| 0.00 |"), "{md}");
    // The machine and the GPU are still measured.
    assert!(r.system_busy_cores.is_some() && !r.gpus.is_empty());
}

#[test]
fn rss_unreadable() {
    let (r, console, _md) = outputs(Source::Rss);
    assert!(r.rss_bytes.is_none());
    assert!(r.unmeasured.contains_key("rss"), "{:?}", r.unmeasured);
    assert!(console.contains("rss: not measured"), "{console}");
    assert!(!console.contains("RSS: peak 0 B"), "{console}");
}

#[test]
fn heap_unreadable() {
    let (r, console, _md) = outputs(Source::Heap);
    // The heap feeds only the RAM fit; without it the fit is not a number.
    assert!(
        r.ram_per_1k_tokens
            .as_ref()
            .is_none_or(|f| f.bytes_per_1k_tokens.is_none()),
        "{:?}",
        r.ram_per_1k_tokens
    );
    assert!(
        console.contains("RAM per 1k tokens of context: not measured")
            || console.contains("RAM per 1k tokens of context: inconclusive"),
        "{console}"
    );
}

#[test]
fn system_cpu_unreadable() {
    let (r, console, _md) = outputs(Source::System);
    assert!(r.system_busy_cores.is_none());
    assert!(
        r.unmeasured.contains_key("system_cpu"),
        "{:?}",
        r.unmeasured
    );
    assert!(console.contains("system busy mean n/a"), "{console}");
    assert!(
        console.contains("other processes: not measured"),
        "{console}"
    );
    assert!(r.process_cpu_cores.is_some());
}

#[test]
fn rapl_unreadable() {
    let (r, console, _md) = outputs(Source::Rapl);
    let e = r.energy.as_ref().unwrap();
    assert_eq!(e.cpu_j, None, "{e:?}");
    assert_eq!(
        e.total_j, None,
        "a total without the CPU part is not a total: {e:?}"
    );
    assert!(e.gpu_j.unwrap() > 0.0);
    assert!(
        r.unmeasured.contains_key("cpu_energy"),
        "{:?}",
        r.unmeasured
    );
    assert!(console.contains("cpu_energy: not measured"), "{console}");
    assert!(console.contains("energy: CPU n/a"), "{console}");
}

#[test]
fn gpu_unreadable() {
    let (r, console, _md) = outputs(Source::Gpu);
    let g = &r.gpus[0];
    assert!(g.utilization_pct.is_none() && g.power_w.is_none() && g.energy_j.is_none());
    assert!(
        g.idle_fraction.is_none(),
        "no idle share without utilisation: {g:?}"
    );
    assert!(
        console.contains("utilisation mean n/a") && console.contains("power mean n/a"),
        "{console}"
    );
    assert!(!console.contains("utilisation mean 0 %"), "{console}");
}

#[test]
fn instance_cpu_unreadable() {
    let (r, console, _md) = outputs(Source::Instance);
    // Nothing attributed: no per-instance line with a made-up share.
    assert!(r.instances.is_none(), "{:?}", r.instances);
    assert!(!console.contains("CPU per instance"), "{console}");
}
