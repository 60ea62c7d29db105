#![no_main]
//! cargo-fuzz target: `charter::fuzzing::scenario`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| charter::fuzzing::scenario(data));
