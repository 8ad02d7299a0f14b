//! Replays the `ring_back` fuzz target's body over its checked-in corpus
//! (`tests/corpus/ring_back/`) and over deterministically generated inputs,
//! so the fuzz properties are checked on stable by `cargo test`.
#![cfg(not(loom))]

use guest_abi::ring::fuzzing::back_end_ops;
use std::path::Path;

#[test]
fn ring_back_corpus_replays_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/ring_back");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        back_end_ops(&data);
        count += 1;
    }
    assert!(
        count >= 6,
        "corpus at {} has only {count} inputs",
        dir.display()
    );
}

/// A small xorshift generator: the same inputs on every run.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn ring_back_generated_inputs_replay_cleanly() {
    let mut state = 0x9E37_79B9_7F4A_7C15;
    for len in 0..2_000usize {
        let data: Vec<u8> = (0..len % 700)
            .map(|_| xorshift(&mut state).to_le_bytes()[0])
            .collect();
        back_end_ops(&data);
    }
}

#[test]
fn ring_back_well_behaved_sequences_replay_cleanly() {
    // Every layout, starting near the wrap, with a frontend that advances
    // req_prod legitimately and a backend that takes, answers and publishes.
    for selector in 0..6u8 {
        for start in [0u32, u32::MAX - 3, u32::MAX] {
            let mut data = vec![selector];
            data.extend_from_slice(&start.to_le_bytes());
            for round in 0..300u32 {
                let step = u8::try_from(round % 4).unwrap();
                data.extend_from_slice(&[1, step, 3, 3, 4, 4, 5, 6]);
            }
            back_end_ops(&data);
        }
    }
}
