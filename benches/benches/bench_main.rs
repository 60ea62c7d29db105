//! `cargo bench -p charter-benches`: one module per topic.

mod decode_loop;
mod histogram;

criterion::criterion_main!(decode_loop::benches, histogram::benches);
