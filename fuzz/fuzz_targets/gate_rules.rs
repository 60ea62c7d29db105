#![no_main]
//! cargo-fuzz target: `charter::fuzzing::gate_rules`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| charter::fuzzing::gate_rules(data));
