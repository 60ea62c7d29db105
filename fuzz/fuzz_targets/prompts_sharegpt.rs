#![no_main]
//! cargo-fuzz target: `charter::fuzzing::prompts_sharegpt`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| charter::fuzzing::prompts_sharegpt(data));
