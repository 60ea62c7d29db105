//! A q8_0 weight matrix laid out for decode: the matrix-vector product that dominates a
//! token's time.
//!
//! candle's q8_0 matmul computes one dot product per call, reads each row as its own stream
//! and converts both f16 block scales through a function call per block (`half`'s run-time
//! dispatch). Here the weights are copied once at load into tiles of four rows: for each
//! 32-value block, the four rows' f32 scales and then their int8 values (144 bytes, 6 % more
//! than q8_0), so one matrix-vector product reads one sequential stream and uses each loaded
//! activation block four times. The activation is quantized to q8_0 exactly as candle
//! quantizes it, and the arithmetic is candle's and llama.cpp's (int8 products summed exactly,
//! scaled per block, in the same lane order), so results agree with candle's kernel (tested
//! in `backends/tests/candle_models.rs`). AVX2 + FMA where the CPU has them, plain Rust
//! otherwise. `cargo bench -p charter-benches --bench bench_main -- q8_matvec` compares the
//! two on one decode step's matrices.

use rayon::prelude::*;

/// Values per q8_0 block.
pub const Q8_0_BLOCK: usize = 32;
/// Bytes per q8_0 block in GGUF: an f16 scale, then 32 int8 values.
const GGUF_BLOCK_BYTES: usize = 2 + Q8_0_BLOCK;
/// Rows per tile.
const TILE_ROWS: usize = 4;
/// Tile groups (of four rows) per rayon task.
const GROUPS_PER_TASK: usize = 16;

/// One 32-column block of four consecutive rows.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Tile {
    scales: [f32; TILE_ROWS],
    values: [[i8; Q8_0_BLOCK]; TILE_ROWS],
}

const EMPTY_TILE: Tile = Tile {
    scales: [0.0; TILE_ROWS],
    values: [[0; Q8_0_BLOCK]; TILE_ROWS],
};

/// A `rows × cols` q8_0 matrix (the GGUF `(out, in)` layout) in tiles of four rows; a last
/// group of fewer rows is padded with zero rows.
#[derive(Debug)]
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    /// Group-major: group g's blocks are `tiles[g × blocks .. (g + 1) × blocks]`.
    tiles: Vec<Tile>,
}

/// An activation row quantized to q8_0 (candle's `BlockQ8_0::from_float`).
struct QuantizedRow {
    scales: Vec<f32>,
    values: Vec<[i8; Q8_0_BLOCK]>,
}

fn quantize_row(xs: &[f32]) -> QuantizedRow {
    let blocks = xs.len() / Q8_0_BLOCK;
    let mut scales = Vec::with_capacity(blocks);
    let mut values = vec![[0i8; Q8_0_BLOCK]; blocks];
    for (x, q) in xs.chunks_exact(Q8_0_BLOCK).zip(values.iter_mut()) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        // candle stores the scale as f16: the product uses the rounded value.
        scales.push(half::f16::from_f32(d).to_f32());
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
        }
    }
    QuantizedRow { scales, values }
}

impl Q8Matrix {
    /// The matrix from GGUF q8_0 bytes (`rows × cols / 32` blocks of an f16 scale and 32
    /// int8 values, row-major); `cols` must be a multiple of 32, and values in [-127, 127] as
    /// llama.cpp's and candle's quantizers write them (the AVX2 product takes |value|, which
    /// -128 overflows; candle's own kernel has the same limit).
    pub fn from_q8_0_bytes(rows: usize, cols: usize, data: &[u8]) -> Result<Self, String> {
        if !cols.is_multiple_of(Q8_0_BLOCK) {
            return Err(format!(
                "q8_0 matrix of {rows}×{cols}: columns are not a multiple of {Q8_0_BLOCK}"
            ));
        }
        let blocks = cols / Q8_0_BLOCK;
        if data.len() != rows * blocks * GGUF_BLOCK_BYTES {
            return Err(format!(
                "q8_0 matrix of {rows}×{cols} has {} bytes, expected {}",
                data.len(),
                rows * blocks * GGUF_BLOCK_BYTES
            ));
        }
        if let Some(at) = data
            .chunks_exact(GGUF_BLOCK_BYTES)
            .position(|block| block[2..].contains(&0x80))
        {
            return Err(format!(
                "q8_0 matrix of {rows}×{cols}: block {at} holds -128 (expected values in [-127, 127])"
            ));
        }
        let groups = rows.div_ceil(TILE_ROWS);
        let mut tiles = vec![EMPTY_TILE; groups * blocks];
        for (row, bytes) in data.chunks_exact(blocks * GGUF_BLOCK_BYTES).enumerate() {
            let (g, r) = (row / TILE_ROWS, row % TILE_ROWS);
            for (b, block) in bytes.chunks_exact(GGUF_BLOCK_BYTES).enumerate() {
                let tile = &mut tiles[g * blocks + b];
                tile.scales[r] = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
                for (v, &byte) in tile.values[r].iter_mut().zip(&block[2..]) {
                    *v = byte as i8;
                }
            }
        }
        Ok(Self { rows, cols, tiles })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The matrix in f32, row-major `rows × cols`.
    pub fn dequantize(&self) -> Vec<f32> {
        let blocks = self.cols / Q8_0_BLOCK;
        let mut out = vec![0f32; self.rows * self.cols];
        let group = |(g, out): (usize, &mut [f32])| {
            for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
                let tiles = &self.tiles[g * blocks..(g + 1) * blocks];
                for (o, tile) in row.chunks_exact_mut(Q8_0_BLOCK).zip(tiles) {
                    let d = tile.scales[r];
                    for (o, &q) in o.iter_mut().zip(&tile.values[r]) {
                        *o = q as f32 * d;
                    }
                }
            }
        };
        let chunk = TILE_ROWS * self.cols;
        if rayon::current_thread_index().is_some() {
            out.par_chunks_mut(chunk).enumerate().for_each(group);
        } else {
            out.chunks_mut(chunk).enumerate().for_each(group);
        }
        out
    }

    /// `input` (`m × cols`, row-major) times this matrix transposed: `m × rows`. Each input
    /// row is quantized to q8_0 first, as candle's quantized matmul does.
    ///
    /// # Panics
    /// When `input.len()` is not a multiple of `cols`.
    pub fn matmul(&self, input: &[f32]) -> Vec<f32> {
        assert_eq!(
            input.len() % self.cols,
            0,
            "input rows of {} values",
            self.cols
        );
        let mut out = vec![0f32; input.len() / self.cols * self.rows];
        for (x, y) in input
            .chunks_exact(self.cols)
            .zip(out.chunks_exact_mut(self.rows))
        {
            self.row_times(&quantize_row(x), y);
        }
        out
    }

    /// `out[r] = row r · x` for every row: split over the stream's rayon pool when it runs
    /// in one, on the calling thread otherwise (a one-thread stream computes on its own
    /// thread, where its CPU time is counted).
    fn row_times(&self, x: &QuantizedRow, out: &mut [f32]) {
        let blocks = self.cols / Q8_0_BLOCK;
        let task = |(task, out): (usize, &mut [f32])| {
            let first = task * GROUPS_PER_TASK;
            for (i, out) in out.chunks_mut(TILE_ROWS).enumerate() {
                let g = first + i;
                let sums = dot_group(&self.tiles[g * blocks..(g + 1) * blocks], x);
                out.copy_from_slice(&sums[..out.len()]);
            }
        };
        let chunk = GROUPS_PER_TASK * TILE_ROWS;
        if rayon::current_thread_index().is_some() {
            out.par_chunks_mut(chunk).enumerate().for_each(task);
        } else {
            out.chunks_mut(chunk).enumerate().for_each(task);
        }
    }
}

/// One group's four rows dotted with `x`.
fn dot_group(tiles: &[Tile], x: &QuantizedRow) -> [f32; TILE_ROWS] {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2::dot_group(tiles, x) };
    }
    dot_group_scalar(tiles, x)
}

/// [`dot_group`] in plain Rust.
fn dot_group_scalar(tiles: &[Tile], x: &QuantizedRow) -> [f32; TILE_ROWS] {
    let mut sums = [0f32; TILE_ROWS];
    for ((tile, xq), dx) in tiles.iter().zip(&x.values).zip(&x.scales) {
        for (r, sum) in sums.iter_mut().enumerate() {
            let dot: i32 = tile.values[r]
                .iter()
                .zip(xq)
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum();
            *sum += tile.scales[r] * dx * dot as f32;
        }
    }
    sums
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{QuantizedRow, Tile, TILE_ROWS};
    use std::arch::x86_64::*;

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// Sum of the eight lanes.
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// One row's block: int8 products summed exactly in eight int32 lanes, scaled by both
    /// block scales, added to `acc`. `ax` is |x| and `xq` carries x's signs onto `w`
    /// (maddubs multiplies unsigned by signed bytes).
    #[target_feature(enable = "avx2,fma")]
    fn block(acc: __m256, w: &[i8; 32], ax: __m256i, xq: __m256i, scale: f32) -> __m256 {
        // SAFETY: `w` is 32 readable bytes.
        let wq = unsafe { _mm256_loadu_si256(w.as_ptr() as *const __m256i) };
        let pairs = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(wq, xq));
        let sums = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
        _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(sums), acc)
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_group(tiles: &[Tile], x: &QuantizedRow) -> [f32; TILE_ROWS] {
        let mut acc = [_mm256_setzero_ps(); TILE_ROWS];
        for ((tile, xb), &dx) in tiles.iter().zip(&x.values).zip(&x.scales) {
            // SAFETY: `xb` is 32 readable bytes.
            let xq = unsafe { _mm256_loadu_si256(xb.as_ptr() as *const __m256i) };
            let ax = _mm256_sign_epi8(xq, xq);
            acc[0] = block(acc[0], &tile.values[0], ax, xq, tile.scales[0] * dx);
            acc[1] = block(acc[1], &tile.values[1], ax, xq, tile.scales[1] * dx);
            acc[2] = block(acc[2], &tile.values[2], ax, xq, tile.scales[2] * dx);
            acc[3] = block(acc[3], &tile.values[3], ax, xq, tile.scales[3] * dx);
        }
        acc.map(|a| hsum(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GGUF q8_0 bytes of a `rows × cols` matrix with varied scales and values.
    fn gguf_bytes(rows: usize, cols: usize) -> Vec<u8> {
        let mut data = Vec::new();
        for b in 0..rows * cols / Q8_0_BLOCK {
            let scale = 0.001 + (b % 17) as f32 * 0.0007;
            data.extend_from_slice(&half::f16::from_f32(scale).to_le_bytes());
            // q8_0 values are in [-127, 127] (see `from_q8_0_bytes`).
            data.extend(
                (0..Q8_0_BLOCK).map(|j| (((b * 31 + j * 57) % 255) as i32 - 127) as i8 as u8),
            );
        }
        data
    }

    /// The same product in f64 from the GGUF bytes, on the activation as quantized.
    fn reference(rows: usize, cols: usize, data: &[u8], x: &QuantizedRow) -> Vec<f64> {
        let per_row = cols / Q8_0_BLOCK * GGUF_BLOCK_BYTES;
        (0..rows)
            .map(|r| {
                data[r * per_row..(r + 1) * per_row]
                    .chunks_exact(GGUF_BLOCK_BYTES)
                    .zip(x.values.iter().zip(&x.scales))
                    .map(|(block, (xq, &dx))| {
                        let dw = half::f16::from_le_bytes([block[0], block[1]]).to_f64();
                        let dot: i64 = block[2..]
                            .iter()
                            .zip(xq)
                            .map(|(&w, &v)| (w as i8) as i64 * v as i64)
                            .sum();
                        dw * dx as f64 * dot as f64
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn matmul_matches_an_f64_reference_including_a_partial_tile() {
        for (rows, cols) in [(4, 32), (7, 64), (70, 576)] {
            let data = gguf_bytes(rows, cols);
            let m = Q8Matrix::from_q8_0_bytes(rows, cols, &data).unwrap();
            let x: Vec<f32> = (0..2 * cols)
                .map(|i| (i as f32 * 0.37).sin() * 3.0)
                .collect();
            let out = m.matmul(&x);
            assert_eq!(out.len(), 2 * rows);
            for (i, xr) in x.chunks_exact(cols).enumerate() {
                let want = reference(rows, cols, &data, &quantize_row(xr));
                for (r, w) in want.iter().enumerate() {
                    let got = out[i * rows + r] as f64;
                    assert!(
                        (got - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "{rows}×{cols} input {i} row {r}: {got} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_scalar_path_computes_the_same_sums() {
        let (rows, cols) = (8, 576);
        let data = gguf_bytes(rows, cols);
        let m = Q8Matrix::from_q8_0_bytes(rows, cols, &data).unwrap();
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.11).cos()).collect();
        let x = quantize_row(&x);
        let blocks = cols / Q8_0_BLOCK;
        for g in 0..rows / TILE_ROWS {
            let tiles = &m.tiles[g * blocks..(g + 1) * blocks];
            let (fast, plain) = (dot_group(tiles, &x), dot_group_scalar(tiles, &x));
            for (f, p) in fast.iter().zip(plain) {
                assert!((f - p).abs() <= 1e-4 * p.abs().max(1.0), "{f} vs {p}");
            }
        }
    }

    #[test]
    fn dequantize_is_scale_times_value() {
        let (rows, cols) = (6, 64);
        let data = gguf_bytes(rows, cols);
        let m = Q8Matrix::from_q8_0_bytes(rows, cols, &data).unwrap();
        let f = m.dequantize();
        for (b, block) in data.chunks_exact(GGUF_BLOCK_BYTES).enumerate() {
            let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
            for (j, &w) in block[2..].iter().enumerate() {
                assert_eq!(f[b * Q8_0_BLOCK + j], (w as i8) as f32 * d);
            }
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(Q8Matrix::from_q8_0_bytes(2, 33, &[0; 68]).is_err());
        assert!(Q8Matrix::from_q8_0_bytes(2, 32, &[0; 67]).is_err());
        let mut minus_128 = vec![0u8; 68];
        minus_128[40] = 0x80;
        assert!(Q8Matrix::from_q8_0_bytes(2, 32, &minus_128).is_err());
        assert!(Q8Matrix::from_q8_0_bytes(2, 32, &[0; 68]).is_ok());
    }
}
