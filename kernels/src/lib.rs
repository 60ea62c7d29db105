//! CPU kernels charter's in-process engine needs and candle 0.11 lacks. Kept in their own crate
//! so that they build at opt-level 3 in every profile (a SIMD kernel at opt-level 1 is slower
//! than the scalar code it replaces) without slowing the build of the rest of `backends`.

pub mod q8_matrix;

pub use q8_matrix::Q8Matrix;
