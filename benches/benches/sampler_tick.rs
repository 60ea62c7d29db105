//! Cost of one resource-sampler tick (process CPU time, RSS from /proc/self/statm, heap in use
//! from glibc's mallinfo2, per-core ticks from /proc/stat), and of the heap read alone. At
//! 10 Hz the sampler's share of a core is 10 × the tick's time.

use criterion::Criterion;

fn tick(c: &mut Criterion) {
    let mut probe = charter::sampler::Probe::new();
    c.bench_function("sampler_tick", |b| b.iter(|| probe.read()));
    match charter::sampler::process::HeapSource::open() {
        Ok(heap) => c.bench_function("sampler_heap_read", |b| b.iter(|| heap.in_use_bytes())),
        Err(e) => {
            eprintln!("sampler_heap_read: not measured ({})", e.reason);
            c
        }
    };
}

criterion::criterion_group!(benches, tick);
