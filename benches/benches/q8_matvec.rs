//! One decode step's matrix-vector products on SmolLM2-135M's q8_0 shapes (30 layers of
//! q/k/v/o/gate/up/down plus the 49152-row output layer: 142 MB, read from memory, not
//! cache): candle's quantized matmul against charter's tiled kernel (`charter-kernels`), in
//! one run, on the calling thread's rayon setting (run with `RAYON_NUM_THREADS=1` for the
//! one-thread figure). Throughput is weight bytes read.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use charter_kernels::Q8Matrix;
use criterion::{Criterion, Throughput};

/// `(rows, cols)` of every matrix a SmolLM2-135M decode step multiplies by.
fn smollm2_shapes() -> Vec<(usize, usize)> {
    let layer = [
        (576, 576),
        (192, 576),
        (192, 576),
        (576, 576),
        (1536, 576),
        (1536, 576),
        (576, 1536),
    ];
    let mut shapes: Vec<_> = (0..30).flat_map(|_| layer).collect();
    shapes.push((49152, 576));
    shapes
}

fn matvec(c: &mut Criterion) {
    let mut candle = Vec::new();
    let mut ours = Vec::new();
    let mut bytes = 0u64;
    for (i, (rows, cols)) in smollm2_shapes().into_iter().enumerate() {
        let w = Tensor::from_vec(
            (0..rows * cols)
                .map(|j| ((j + i) as f32 * 0.618).sin() * 0.05)
                .collect::<Vec<f32>>(),
            (rows, cols),
            &Device::Cpu,
        )
        .unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        ours.push(Q8Matrix::from_q8_0_bytes(rows, cols, &q.data().unwrap()).unwrap());
        bytes += q.storage_size_in_bytes() as u64;
        candle.push(QMatMul::from_qtensor(q).unwrap());
    }
    let input = |cols: usize| -> Vec<f32> { (0..cols).map(|i| (i as f32 * 0.37).cos()).collect() };
    let mut g = c.benchmark_group("q8_matvec");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("candle QMatMul, SmolLM2 decode step", |b| {
        let xs: Vec<Tensor> = ours
            .iter()
            .map(|m| Tensor::from_vec(input(m.cols()), (1, m.cols()), &Device::Cpu).unwrap())
            .collect();
        b.iter(|| {
            for (m, x) in candle.iter().zip(&xs) {
                m.forward(x).unwrap();
            }
        })
    });
    g.bench_function("charter Q8Matrix, SmolLM2 decode step", |b| {
        let xs: Vec<Vec<f32>> = ours.iter().map(|m| input(m.cols())).collect();
        b.iter(|| {
            for (m, x) in ours.iter().zip(&xs) {
                m.matmul(x);
            }
        })
    });
    g.finish();
}

criterion::criterion_group!(benches, matvec);
