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
