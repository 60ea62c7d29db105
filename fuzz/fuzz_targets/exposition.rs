#![no_main]
//! cargo-fuzz target: `charter::fuzzing::exposition`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| charter::fuzzing::exposition(data));
