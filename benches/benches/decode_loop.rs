//! Raw candle decode loop on the tiny preset: the reference for charter's harness tax.
//!
//! Compare with `charter profile --concurrency 1 --threads 2 --prompt-tokens 128 --max-tokens 64`
//! (same preset, seed, prompt length, output length): harness tax = charter's output tokens/s
//! ÷ this loop's tokens/s. Thread count comes from RAYON_NUM_THREADS / CANDLE_NUM_THREADS
//! (set to 2 here, as charter does with --threads 2).

use charter_benches::RawDecode;
use criterion::{Criterion, Throughput};

const PROMPT_TOKENS: u32 = 128;
const OUTPUT_TOKENS: usize = 64;

fn decode(c: &mut Criterion) {
    charter_backends::candle::configure_threads(2);
    let raw = RawDecode::preset("tiny-15m", 0).expect("preset builds");
    let prompt: Vec<u32> = (1000..1000 + PROMPT_TOKENS).collect();
    let mut g = c.benchmark_group("raw_candle_decode");
    g.throughput(Throughput::Elements(OUTPUT_TOKENS as u64));
    g.sample_size(20);
    g.bench_function("tiny-15m/p128/o64", |b| {
        b.iter(|| raw.generate(&prompt, OUTPUT_TOKENS).expect("generates"))
    });
    g.finish();
}

criterion::criterion_group!(benches, decode);
