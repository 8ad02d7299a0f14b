//! Shared by the corpus-replay tests of the fuzz targets whose bodies live
//! in this crate: reading a committed corpus and a deterministic generator.
#![allow(dead_code)] // each test binary uses its own subset (so `expect` would fail in some)

use std::path::{Path, PathBuf};

/// Every input of `tests/corpus/<target>/`, sorted by path.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read corpus {}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("read corpus input");
            (path, data)
        })
        .collect();
    inputs.sort();
    inputs
}

/// Run `body` over the corpus of `target`, which must hold at least `min`
/// inputs.
pub fn replay_all(target: &str, min: usize, body: fn(&[u8])) {
    let inputs = corpus(target);
    assert!(
        inputs.len() >= min,
        "corpus {target} has only {} inputs",
        inputs.len()
    );
    for (_, data) in inputs {
        body(&data);
    }
}

/// A small xorshift generator: the same inputs on every run.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
