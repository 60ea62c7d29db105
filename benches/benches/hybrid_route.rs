//! The hybrid backend's routing decision: one request through a two-tier hybrid stream against
//! the same request on its first tier directly (both tiers simulated with zero delays, so the
//! difference is the routing: the in-flight count's compare-and-swap, its release and the
//! route record).

use std::ops::ControlFlow;
use std::time::Duration;

use charter_backends::hybrid::{HybridOptions, TierOptions};
use charter_backends::simulated::SimulatedTimings;
use charter_backends::{BackendSpec, GenRequest, HybridPolicy, Prompt, Sampling};
use criterion::Criterion;

fn instant_tier(name: &str, max_in_flight: Option<u32>) -> TierOptions {
    TierOptions::new(
        name,
        max_in_flight,
        BackendSpec::Simulated(SimulatedTimings {
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            cpu_fraction: 0.0,
        }),
    )
}

fn route(c: &mut Criterion) {
    let request = GenRequest {
        prompt: Prompt::Tokens(vec![1; 16]),
        max_tokens: 1,
        ignore_eos: true,
        sampling: Sampling::greedy(),
    };
    let hybrid = BackendSpec::Hybrid(HybridOptions {
        policy: HybridPolicy::InFlight,
        tiers: vec![instant_tier("onprem", Some(4)), instant_tier("cloud", None)],
        spill_ttft: None,
        spill_window: charter_backends::hybrid::DEFAULT_SPILL_WINDOW,
    });
    let mut g = c.benchmark_group("hybrid_route");
    for (label, spec) in [
        ("direct", instant_tier("onprem", None).spec),
        ("hybrid", hybrid),
    ] {
        let backend = spec.load().expect("simulated tiers load");
        let mut stream = backend.new_stream().expect("stream");
        g.bench_function(label, |b| {
            b.iter(|| {
                let out = stream
                    .generate(&request, &mut |_| ControlFlow::Continue(()))
                    .expect("simulated");
                (out, stream.take_route())
            })
        });
    }
    g.finish();
}

criterion::criterion_group!(benches, route);
