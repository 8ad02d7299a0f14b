//! The back end of a shared ring facing a hostile frontend: arbitrary page
//! contents, index values and operation sequences. The body lives in
//! `guest_abi::ring::fuzzing` so `cargo test` replays the corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| guest_abi::ring::fuzzing::back_end_ops(data));
