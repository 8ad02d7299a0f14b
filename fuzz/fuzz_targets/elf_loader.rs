//! The kernel-image parser and the PV64 domain builder on arbitrary files.
//! The body lives in `hv_runtime::domain::fuzzing` so `cargo test` replays
//! the corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hv_runtime::domain::fuzzing::image_and_build(data));
