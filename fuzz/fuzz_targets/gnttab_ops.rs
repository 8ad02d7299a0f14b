//! Grant-table operation sequences from three guests (well-formed and
//! hostile, including scribbling over their own grant entries and lying
//! batch counts) plus the runtime's own grant access. The body lives in
//! `hv_runtime::gnttab::fuzzing` so `cargo test` replays the corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hv_runtime::gnttab::fuzzing::grant_ops(data));
