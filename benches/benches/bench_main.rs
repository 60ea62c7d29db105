//! `cargo bench -p charter-benches`: one module per topic.

mod decode_loop;
mod histogram;
mod hybrid_route;
mod ort_loop;
mod q8_matvec;
mod runner_overhead;
mod sampler_tick;
mod sse_parse;
mod telemetry_read;

criterion::criterion_main!(
    decode_loop::benches,
    histogram::benches,
    hybrid_route::benches,
    ort_loop::benches,
    q8_matvec::benches,
    runner_overhead::benches,
    sampler_tick::benches,
    telemetry_read::benches,
    sse_parse::benches
);
