//! Raw `ort` inference loop: all-MiniLM-L6-v2 int8 at batch 1 × 128 tokens, the reference for
//! the ONNX Runtime backend's harness tax.
//!
//! The loop calls `Session::run` directly, with the same synthesised inputs (charter's
//! synthesiser, seed 0) and the same session settings charter uses by default at concurrency 1
//! (intra-op threads = logical cores, inter-op 1, spinning on, all graph optimisations, CPU).
//! Compare with
//!
//! ```sh
//! charter profile --backend onnx --model .cache/models/all-MiniLM-L6-v2-int8.onnx \
//!     --concurrency 1 --seq-len 128 --requests 400 --warmup 20 --json
//! ```
//!
//! harness tax = charter's `request_throughput_per_s` (inferences/s) ÷ this loop's inferences/s
//! (criterion's `thrpt`). `CHARTER_ORT_LOOP_THREADS=N` sets the intra-op threads, to compare
//! with `--intra-op-threads N`. When the ONNX Runtime library or the model is missing, the bench says
//! so and skips (run scripts/fetch-onnxruntime.sh and scripts/fetch-minilm.sh).

use std::path::{Path, PathBuf};

use charter_backends::onnx::{self, OnnxBackend, OnnxOptions, SessionSettings};
use criterion::{Criterion, Throughput};

fn model_path() -> PathBuf {
    std::env::var_os("CHARTER_MINILM_ONNX")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../.cache/models/all-MiniLM-L6-v2-int8.onnx")
        })
}

fn ort_loop(c: &mut Criterion) {
    let model = model_path();
    if !model.is_file() {
        eprintln!(
            "ort_loop: skipped: {} not found (run scripts/fetch-minilm.sh)",
            model.display()
        );
        return;
    }
    // CHARTER_ORT_LOOP_THREADS=N matches `charter profile --intra-op-threads N`.
    let intra_op_threads = std::env::var("CHARTER_ORT_LOOP_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let settings = SessionSettings {
        intra_op_threads,
        ..SessionSettings::default()
    };
    let mut opts = OnnxOptions::new(&model);
    opts.ort_lib = std::env::var_os("CHARTER_ORT_LIB").map(PathBuf::from);
    opts.session = settings.clone();
    opts.batch = Some(1);
    opts.seq_len = Some(128);
    // charter's loader finds and checks the library and synthesises the inputs; the loop
    // below then uses ort alone.
    let backend = match OnnxBackend::load(&opts) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ort_loop: skipped: {e}");
            return;
        }
    };
    let inputs = backend
        .synthesised_inputs()
        .expect("MiniLM runs in any-model mode")
        .to_vec();
    let mut session =
        onnx::open_session(backend.runtime(), &model, &settings).expect("session opens");
    drop(backend);
    let mut g = c.benchmark_group("raw_ort_loop");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30);
    g.bench_function("minilm-int8/b1/s128", |b| {
        b.iter(|| {
            let feed: Vec<_> = inputs
                .iter()
                .map(|i| (i.name.as_str(), i.value().expect("input tensor")))
                .collect();
            let outputs = session.run(feed).expect("inference");
            drop(outputs);
        })
    });
    g.finish();
}

criterion::criterion_group!(benches, ort_loop);
