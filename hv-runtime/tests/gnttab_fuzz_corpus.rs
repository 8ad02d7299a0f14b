//! Replays the `gnttab_ops` fuzz target's body over its checked-in corpus
//! (`tests/corpus/gnttab_ops/`: hand-written sequences covering every
//! operation, hostile entries, lying batch counts and domain ends) and over
//! deterministically generated inputs, so the fuzz properties — no panic,
//! grant and frame-table invariants after every step, nothing pinned after
//! teardown — are checked on stable by `cargo test`.

use hv_runtime::gnttab::fuzzing::grant_ops;
mod corpus_util;
use corpus_util::{replay_all, xorshift};

#[test]
fn gnttab_ops_corpus_replays_cleanly() {
    replay_all("gnttab_ops", 10, grant_ops);
}

#[test]
fn gnttab_ops_generated_inputs_replay_cleanly() {
    let mut state = 0x2545_F491_4F6C_DD1D;
    for len in 0..24usize {
        let data: Vec<u8> = (0..len * 37 % 1500)
            .map(|_| xorshift(&mut state).to_le_bytes()[0])
            .collect();
        grant_ops(&data);
    }
}
