#![no_main]
//! cargo-fuzz target: `charter::fuzzing::sse`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| charter::fuzzing::sse(data));
