//! xenstored facing hostile guests: the message parser over arbitrary bytes,
//! request sequences from several domains against one store, and a guest
//! scribbling on its ring page. The body lives in
//! `hv_runtime::xenstore::fuzzing` so `cargo test` replays the corpus on
//! stable.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hv_runtime::xenstore::fuzzing::xenstore_msg(data));
