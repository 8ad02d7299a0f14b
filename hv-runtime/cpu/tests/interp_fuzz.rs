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
