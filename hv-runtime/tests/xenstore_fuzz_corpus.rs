//! Replays the `xenstore_msg` fuzz target's body over its checked-in corpus
//! (`tests/corpus/xenstore_msg/`) and over deterministically generated
//! inputs, so the fuzz properties are checked on stable by `cargo test`.
//! `xenstore_fuzz_long_run` (ignored by default) runs the body for many
//! iterations: `cargo test -p hv-runtime --release --test
//! xenstore_fuzz_corpus -- --ignored --nocapture`.

use hv_runtime::xenstore::fuzzing::xenstore_msg;
mod corpus_util;
use corpus_util::{replay_all, xorshift};

#[test]
fn xenstore_msg_corpus_replays_cleanly() {
    replay_all("xenstore_msg", 10, xenstore_msg);
}

fn generated(state: &mut u64, len: usize) -> Vec<u8> {
    (0..len).map(|_| xorshift(state).to_le_bytes()[0]).collect()
}

#[test]
fn xenstore_msg_generated_inputs_replay_cleanly() {
    let mut state = 0x9E37_79B9_7F4A_7C15;
    for i in 0..600usize {
        let mut data = generated(&mut state, i % 900);
        if let Some(first) = data.first_mut() {
            *first = u8::try_from(i % 3).unwrap();
        }
        xenstore_msg(&data);
    }
}

#[test]
#[ignore = "long: run with --release -- --ignored"]
fn xenstore_fuzz_long_run() {
    let iterations: u64 = std::env::var("XS_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let mut state = 0xD1B5_4A32_D192_ED03;
    for i in 0..iterations {
        let len = usize::try_from(xorshift(&mut state) % 2048).unwrap();
        let mut data = generated(&mut state, len);
        if let Some(first) = data.first_mut() {
            *first = u8::try_from(i % 3).unwrap();
        }
        xenstore_msg(&data);
    }
    println!("xenstore fuzz body: {iterations} inputs, no failure");
}
