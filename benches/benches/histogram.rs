//! Cost of recording one latency into charter's HDR histogram (done per token for chunk gaps).

use charter_reports::LatencyHistogram;
use criterion::{Criterion, Throughput};

fn record(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("record_s x1000", |b| {
        let mut h = LatencyHistogram::new();
        b.iter(|| {
            for i in 0..1000u32 {
                h.record_s(f64::from(i) * 1.3e-5);
            }
        })
    });
    g.finish();
}

criterion::criterion_group!(benches, record);
