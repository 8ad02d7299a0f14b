//! Random bytes as guest code and register state: the software CPU must end
//! every run with an exit (fault, trap, deadline), never a panic or a hang.
//! The body lives in `hv_cpu::interp::fuzzing` so `cargo test` runs it on
//! stable (`hv-runtime/cpu/tests/interp_fuzz.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hv_cpu::interp::fuzzing::run_random(data));
