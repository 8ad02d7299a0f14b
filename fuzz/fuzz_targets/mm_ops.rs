//! The page-type machine under arbitrary sequences of the operations
//! guests reach through mmu_update, mmuext_op and update_va_mapping, with
//! Xen's invariants checked after every step. The body lives in
//! `hv_runtime::mm::fuzzing` so `cargo test` replays the corpus on stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hv_runtime::mm::fuzzing::mm_ops(data));
