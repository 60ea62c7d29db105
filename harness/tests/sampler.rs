//! The sampler measures a known CPU load. In its own test binary (own process) so that other
//! tests' threads do not add CPU time to the process being measured.

use std::time::{Duration, Instant};

use charter::sampler::{Outputs, Sampler, Sources};

fn sinks() -> Outputs<std::io::Sink> {
    Outputs {
        samples: std::io::sink(),
        instances: std::io::sink(),
        gpu: std::io::sink(),
    }
}

#[test]
fn busy_thread_is_measured_within_15_percent() {
    let epoch = Instant::now();
    let s = Sampler::start(epoch, Duration::from_millis(50), sinks(), Sources::basic()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let busy_for = Duration::from_millis(800);
    let worker = std::thread::spawn(move || {
        let t0 = cpu_time::ThreadTime::now();
        let mut x = 0u64;
        while t0.elapsed() < busy_for {
            for i in 0..1000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        t0.elapsed().as_secs_f64()
    });
    let truth = worker.join().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let out = s.stop().unwrap();
    // Integrate cores over the sample intervals: core-seconds the process consumed.
    let measured: f64 = out
        .samples
        .windows(2)
        .filter_map(|w| Some(w[1].row.process_cpu_cores? * (w[1].row.t_s - w[0].row.t_s)))
        .sum();
    let err = (measured - truth).abs() / truth;
    assert!(
        err < 0.15,
        "measured {measured:.3} core-s, truth {truth:.3} (error {:.1}%)",
        err * 100.0
    );
    assert!(out.samples.len() >= 10, "{} samples", out.samples.len());
    assert!(out.info.cpu_time_s.is_finite() && out.info.cpu_time_s > 0.0);
    assert!(out.samples.iter().all(|s| s.row.rss_bytes.unwrap() > 0));
}

/// A tick whose every source is unreadable keeps its timestamp and leaves every reading empty:
/// empty CSV cells and `None` in the samples, never a zero.
#[test]
fn unreadable_sources_leave_empty_cells_not_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let file = |n: &str| std::fs::File::create(dir.path().join(n)).unwrap();
    let out = Outputs {
        samples: file("samples.csv"),
        instances: file("instances.csv"),
        gpu: file("gpu.csv"),
    };
    // No source could be opened.
    let mut sources = Sources::default();
    for name in ["process", "heap", "system", "rapl", "gpu"] {
        sources
            .unavailable
            .push((name.into(), "unreadable (test)".into()));
    }
    let s = Sampler::start(Instant::now(), Duration::from_millis(20), out, sources).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let out = s.stop().unwrap();
    assert!(out.samples.len() >= 3);
    for s in &out.samples {
        let r = &s.row;
        assert_eq!(
            (
                r.process_cpu_s,
                r.process_cpu_cores,
                r.rss_bytes,
                r.heap_bytes
            ),
            (None, None, None, None)
        );
        assert_eq!((r.system_busy_cores, r.cpu_energy_j), (None, None));
    }
    let csv = std::fs::read_to_string(dir.path().join("samples.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "t_s,process_cpu_s,process_cpu_cores,rss_bytes,system_busy_cores,cpu_energy_j,heap_bytes"
    );
    for row in lines {
        let cells: Vec<&str> = row.split(',').collect();
        assert!(cells[0].parse::<f64>().is_ok(), "{row}");
        assert!(cells[1..].iter().all(|c| c.is_empty()), "{row}");
    }
}
