//! Random bytes as code with random register state never panic.

use hv_cpu::interp::fuzzing::run_random;

#[test]
fn random_code_never_panics() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 256 + 512];
    let pages = if cfg!(debug_assertions) {
        3_000
    } else {
        20_000
    };
    for _ in 0..pages {
        for b in &mut buf {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x.to_le_bytes()[0];
        }
        run_random(&buf);
    }
}

/// Inputs the `interp_code` fuzz target once crashed on, replayed.
#[test]
fn fuzz_findings_replay_without_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/interp_code");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("read the interp_code corpus") {
        let data = std::fs::read(entry.expect("corpus entry").path()).expect("read input");
        run_random(&data);
        n += 1;
    }
    assert!(n >= 1, "corpus {} is empty", dir.display());
}
