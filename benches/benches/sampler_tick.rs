//! Cost of one resource-sampler tick (process CPU time, RSS from /proc/self/statm, per-core
//! ticks from /proc/stat). At 10 Hz the sampler's share of a core is 10 × this time.

use criterion::Criterion;

fn tick(c: &mut Criterion) {
    let mut probe = charter::sampler::Probe::new();
    c.bench_function("sampler_tick", |b| b.iter(|| probe.read()));
}

criterion::criterion_group!(benches, tick);
