#![no_main]
//! cargo-fuzz target: `charter::fuzzing::trace`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| charter::fuzzing::trace(data));
