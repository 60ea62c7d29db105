//! The runner's own cost per request: closed-loop phases against the SIMULATED backend with zero
//! latency (a test tool that returns at once), so all time measured is charter's: building the
//! request, the stream call, the token event, the channel hop and the per-request record.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use charter::runner::{run_phase, Phase};
use charter_backends::simulated::{SimulatedBackend, SimulatedTimings};
use charter_backends::{Backend, Sampling};
use charter_record::RequestRow;
use charter_reports::Aggregator;
use charter_workloads::{LengthDist, PromptSource, RequestTemplate, StopCondition};
use criterion::{Criterion, Throughput};

const REQUESTS: u64 = 1000;

fn overhead(c: &mut Criterion) {
    let backend = SimulatedBackend::new(SimulatedTimings {
        ttft: Duration::ZERO,
        itl: Duration::ZERO,
        cpu_fraction: 0.0,
    });
    let template = RequestTemplate {
        prompts: PromptSource::Synthetic {
            tokens: LengthDist::fixed(16),
        },
        max_tokens: Some(LengthDist::fixed(1)),
        ignore_eos: true,
        sampling: Sampling::greedy(),
    };
    let vocab = backend.prompt_token_ids().to_vec();
    let mut streams = vec![backend.new_stream().expect("stream")];
    let stop = AtomicBool::new(false);
    let mut g = c.benchmark_group("runner_overhead");
    g.throughput(Throughput::Elements(REQUESTS));
    g.bench_function("closed_loop_c1_per_1000_requests", |b| {
        b.iter(|| {
            let phase = Phase {
                warmup: false,
                first_id: 0,
                stop: StopCondition {
                    requests: Some(REQUESTS),
                    duration: None,
                },
                shard: charter_workloads::Shard::WHOLE,
            };
            let epoch = std::time::Instant::now();
            let mut agg = Aggregator::new();
            run_phase(
                &mut streams,
                &template,
                &vocab,
                phase,
                &stop,
                &Default::default(),
                |f| {
                    // What the profile command does with each finished request.
                    let (row, gaps) = RequestRow::from_observation(&f, epoch);
                    agg.add(&row, &gaps);
                },
            )
        })
    });
    g.finish();
}

criterion::criterion_group!(benches, overhead);
